#!/usr/bin/python3
"""What test_install and test_package share: where the sources and the
build are, the options, commands and exit statuses a --help text
promises, the man pages rendered as plain text, and a driver for the bash
completion of ckpt.

Environment (set by ctest, tests/CMakeLists.txt):
  CKPT_SOURCE_DIR  the source tree          (default: this repository)
  CKPT_BUILD_DIR   the build tree           (default: dirname of CKPTFS_BIN)
"""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402

SOURCE_DIR = common._env_path("CKPT_SOURCE_DIR", common.REPO)
BUILD_DIR = common._env_path("CKPT_BUILD_DIR",
                             os.path.dirname(common.CKPTFS_BIN))
MAN_DIR = os.path.join(SOURCE_DIR, "man")
COMPLETION = os.path.join(SOURCE_DIR, "completions", "ckpt.bash")
PACKAGE_SH = os.path.join(SOURCE_DIR, "scripts", "package.sh")
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
            "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO")
SEE_ALSO = ("fusermount3(1)", "mount.fuse3(8)", "fuse(8)", "setfattr(1)",
            "getfattr(1)")
ENC_MODES = ("AES-GCM", "AES-CBC", "SM4-CBC")


def run(cmd, timeout=120, **kw):
    """subprocess.run with text output captured, stdin /dev/null."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


def version_of(binary):
    """The version BINARY --version prints on its first line
    ("ckpt 0.2.0"; the lines after it name the libraries)."""
    return run([binary, "--version"]).stdout.splitlines()[0].split()[-1]


def help_text(binary):
    """The output of BINARY --help (stdout and stderr: libfuse prints its
    part to stdout, ckpt its whole text)."""
    r = run([binary, "--help"])
    if r.returncode != 0:
        raise AssertionError("%s --help exited %d: %s"
                             % (binary, r.returncode, r.stderr))
    return r.stdout + r.stderr


# --------------------------------------------------------------------------
# what a --help text promises

_OPT = re.compile(r"(?<![\w=/-])(-o[ \t]+[a-z_][a-z0-9_]*|--[a-z][a-z0-9-]*"
                  r"|-[A-Za-z])(?![\w-])")


def help_options(text):
    """Every option token of a --help text: '-o NAME' (of '-o NAME=...'),
    '--long', '-x', in order, without repeats."""
    out = []
    for m in _OPT.finditer(text):
        tok = re.sub(r"[ \t]+", " ", m.group(1))
        if tok not in out:
            out.append(tok)
    return out


def option_pattern(tok):
    """A regex finding option tok in rendered text: '-o NAME' as '-o NAME'
    followed by '=', ',' or a blank; the others as whole tokens."""
    if tok.startswith("-o "):
        return r"(?<![\w-])-o\s+%s(?![\w])" % re.escape(tok[3:])
    return r"(?<![\w-])%s(?![\w-])" % re.escape(tok)


def help_block(text, heading):
    """The lines of the block of text that starts with the line beginning
    with heading, up to the next empty line or line at column 0."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(heading):
            block = [line]
            for nxt in lines[i + 1:]:
                if not nxt.strip() or not nxt[0].isspace():
                    break
                block.append(nxt)
            return "\n".join(block)
    raise AssertionError("no %r block in the help text:\n%s"
                         % (heading, text))


def ckpt_commands(text):
    """The commands of 'ckpt --help' (its 'commands:' block)."""
    block = help_block(text, "commands:")
    return [m.group(1) for m in re.finditer(r"^  ([a-z]+)\b", block, re.M)]


def ckpt_convert_options(text):
    """The long options that 'ckpt --help' gives 'ckpt convert': the key
    options and the convert options."""
    keys = help_block(text, "key options")
    if "convert" not in keys.splitlines()[0]:
        raise AssertionError("the key options are no longer convert's:\n"
                             + keys)
    conv = help_block(text, "convert options")
    return [t for t in help_options(keys + "\n" + conv)
            if t.startswith("--")]


def exit_statuses(text):
    """The exit statuses a --help text names ('Exit status...: 0 ..., 1
    ...')."""
    m = re.search(r"Exit status[^:]*:(.*?)(?:\n\s*\n|\Z)", text, re.S)
    if not m:
        raise AssertionError("no 'Exit status' in the help text:\n" + text)
    return sorted(set(re.findall(r"(?:^|[:,])\s*(\d+)\s+[a-z(]",
                                 ":" + m.group(1))))


def env_vars(text):
    """The environment variables a --help text names (TMPDIR and
    upper-case names with an underscore, like CKPT_CRYPTO_THREADS)."""
    return sorted(set(re.findall(r"\b(TMPDIR|[A-Z][A-Z0-9]*_[A-Z0-9_]+)\b",
                                 text)))


# --------------------------------------------------------------------------
# man pages

def man_lint(page):
    """Warnings of groff (-ww) and of man-db (man --warnings) for the page
    at path page; '' if there are none.  Raises if rendering fails."""
    out = []
    r = run(["groff", "-man", "-ww", "-z", page])
    if r.returncode != 0 or r.stderr.strip():
        out.append("groff -man -ww -z: exit %d\n%s" % (r.returncode,
                                                        r.stderr))
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = run(["man", "--warnings", "-E", "UTF-8", "-l", page], env=env)
    if r.returncode != 0 or r.stderr.strip():
        out.append("man --warnings -l: exit %d\n%s" % (r.returncode,
                                                        r.stderr))
    elif len(r.stdout) < 1000:
        out.append("man -l rendered only %d characters" % len(r.stdout))
    return "\n".join(out)


def man_text(page):
    """The page at path page as plain ASCII text, one line per paragraph
    (no fill limit, no hyphenation, no overstriking)."""
    r = run(["groff", "-man", "-Tascii", "-rLL=2000n", "-rHY=0", "-P-c",
             "-P-b", "-P-u", page])
    if r.returncode != 0:
        raise AssertionError("groff of %s failed: %s" % (page, r.stderr))
    return r.stdout


def man_sections(text):
    """{heading: body} of rendered man text (headings at column 0)."""
    out, name = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.upper() == line and \
                not re.match(r"^[A-Z]+\(\d\)", line):
            name = line.strip()
            out[name] = ""
        elif name is not None:
            out[name] += line + "\n"
    return out


# --------------------------------------------------------------------------
# the bash completion

_DRIVER = r'''
source "$1" || exit 3
shift
spec=$(complete -p ckpt) || exit 4
fn=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
[ -n "$fn" ] || exit 5
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
prev=
((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
"$fn" ckpt "${COMP_WORDS[COMP_CWORD]}" "$prev"
((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"
exit 0
'''


def complete(script, words, cwd=None, path=None):
    """What the completion in script offers for the command line words
    (the last one is the word being completed: '' for a fresh one):
    COMPREPLY as a list.  Runs bash without rc files; path is prepended
    to PATH (where 'ckpt' is found).  Raises if bash fails or writes to
    stderr."""
    env = dict(os.environ)
    if path:
        env["PATH"] = path + os.pathsep + env.get("PATH", "")
    r = run(["bash", "--norc", "--noprofile", "-c", _DRIVER, "bash",
             script] + list(words), cwd=cwd, env=env)
    if r.returncode != 0 or r.stderr.strip():
        raise AssertionError("completing %r: bash exited %d: %s"
                             % (words, r.returncode, r.stderr))
    return [w for w in r.stdout.split("\n") if w]
