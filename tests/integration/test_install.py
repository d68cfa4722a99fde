#!/usr/bin/python3
"""Installed like a filesystem: 'cmake --install' of the build puts
bin/ckptfs, bin/ckpt, share/man/man1/ckptfs.1 and ckpt.1 and
share/bash-completion/completions/ckpt under the prefix (and under
DESTDIR); both man pages render without a warning (groff -ww, man
--warnings), have the sections a man page needs, and document every
option, command, exit status and environment variable that 'ckptfs
--help' and 'ckpt --help' print; the completion loads in bash and offers
the commands, each command's options, the encryption modes, *.ckpt files,
parameter names and mountpoint directories.

Needs the build (CKPT_BUILD_DIR, default the directory of CKPTFS_BIN) and
the sources (CKPT_SOURCE_DIR); no root, no FUSE.
"""

import filecmp
import os
import re
import shutil
import stat
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import installutil as I  # noqa: E402

# what 'cmake --install' must put under the prefix: path -> source file
# (None: a binary of the build)
LAYOUT = {
    "bin/ckptfs": None,
    "bin/ckpt": None,
    "share/man/man1/ckptfs.1": os.path.join(I.MAN_DIR, "ckptfs.1"),
    "share/man/man1/ckpt.1": os.path.join(I.MAN_DIR, "ckpt.1"),
    "share/bash-completion/completions/ckpt": I.COMPLETION,
}


def install(tc, prefix, destdir=None):
    """cmake --install BUILD --prefix prefix [DESTDIR=destdir]."""
    env = dict(os.environ)
    if destdir:
        env["DESTDIR"] = destdir
    r = I.run(["cmake", "--install", I.BUILD_DIR, "--prefix", prefix],
              env=env)
    tc.assertEqual(r.returncode, 0, "cmake --install failed:\n%s%s"
                   % (r.stdout, r.stderr))


class InstallTest(unittest.TestCase):
    """cmake --install into a temporary prefix, once for the class."""

    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="ckptfs_install_")
        r = I.run(["cmake", "--install", I.BUILD_DIR, "--prefix",
                   cls.prefix])
        cls.install_error = None if r.returncode == 0 else \
            "cmake --install failed:\n%s%s" % (r.stdout, r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, True)

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        if self.install_error:
            self.fail(self.install_error)

    def p(self, rel):
        return os.path.join(self.prefix, rel)

    # ---- the layout

    def check_layout(self, root, binaries=True):
        for rel, src in sorted(LAYOUT.items()):
            path = os.path.join(root, rel)
            self.assertTrue(os.path.isfile(path), "not installed: %s" % path)
            mode = os.stat(path).st_mode
            if src is None:
                self.assertTrue(mode & stat.S_IXOTH, "%s is not executable"
                                % path)
                if binaries:
                    built = common.CKPTFS_BIN if rel.endswith("ckptfs") \
                        else common.CKPT_BIN
                    self.assertTrue(filecmp.cmp(path, built, shallow=False),
                                    "%s differs from %s" % (path, built))
            else:
                self.assertFalse(mode & stat.S_IXUSR, "%s is executable"
                                 % path)
                self.assertTrue(filecmp.cmp(path, src, shallow=False),
                                "%s differs from %s" % (path, src))

    def test_prefix_layout(self):
        self.check_layout(self.prefix)

    def test_destdir_layout(self):
        d = tempfile.mkdtemp(prefix="ckptfs_destdir_")
        self.addCleanup(shutil.rmtree, d, True)
        install(self, "/usr", destdir=d)
        self.check_layout(os.path.join(d, "usr"))
        found = sorted(os.path.relpath(os.path.join(r, f), d)
                       for r, _, fs in os.walk(d) for f in fs)
        self.assertEqual(found, sorted("usr/" + k for k in LAYOUT),
                         "DESTDIR holds other files than the layout")

    def test_installed_programs_run(self):
        version = I.version_of(common.CKPT_BIN)
        for prog in ("ckptfs", "ckpt"):
            r = I.run([self.p("bin/" + prog), "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("%s %s" % (prog, version), r.stdout)
        src = min(common.real_files(), key=os.path.getsize)
        a = I.run([self.p("bin/ckpt"), "ls", "-l", src])
        b = I.run([common.CKPT_BIN, "ls", "-l", src])
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)

    def test_man_finds_installed_pages(self):
        env = dict(os.environ, MANPATH=self.p("share/man"))
        for page in ("ckptfs", "ckpt"):
            r = I.run(["man", "-w", page], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(),
                             self.p("share/man/man1/%s.1" % page))

    # ---- the man pages

    def page(self, name):
        return os.path.join(I.MAN_DIR, name + ".1")

    def sections(self, name):
        return I.man_sections(I.man_text(self.page(name)))

    def test_pages_render_without_warnings(self):
        for name in ("ckptfs", "ckpt"):
            self.assertEqual(I.man_lint(self.page(name)), "",
                             "man/%s.1" % name)

    def test_pages_have_sections(self):
        for name, extra in (("ckptfs", ("MOUNTING FROM FSTAB",)),
                            ("ckpt", ("COMMANDS",))):
            secs = self.sections(name)
            for s in I.SECTIONS + extra:
                self.assertIn(s, secs, "man/%s.1 has no section %s"
                              % (name, s))
                self.assertGreater(len(secs[s].strip()), 10,
                                   "man/%s.1: section %s is empty"
                                   % (name, s))
            for ref in I.SEE_ALSO + (("ckpt(1)",) if name == "ckptfs"
                                     else ("ckptfs(1)",)):
                self.assertIn(ref, secs["SEE ALSO"], "man/%s.1: SEE ALSO"
                              % name)
            self.assertIn(name + " - ", secs["NAME"])

    def check_help_in_page(self, binary, name):
        text = I.help_text(binary)
        secs = self.sections(name)
        opts = secs["OPTIONS"] + secs.get("COMMANDS", "")
        missing = [t for t in I.help_options(text)
                   if not re.search(I.option_pattern(t), opts)]
        self.assertEqual(missing, [], "options of '%s --help' missing "
                         "from the OPTIONS of man/%s.1" % (name, name))
        tags = set(re.findall(r"^ {7}(\d+)\b", secs["EXIT STATUS"], re.M))
        missing = [s for s in I.exit_statuses(text) if s not in tags]
        self.assertEqual(missing, [], "exit statuses of '%s --help' "
                         "missing from man/%s.1" % (name, name))
        missing = [v for v in I.env_vars(text)
                   if v not in secs["ENVIRONMENT"]]
        self.assertEqual(missing, [], "environment variables of '%s "
                         "--help' missing from man/%s.1" % (name, name))
        return text, secs

    def test_ckptfs_page_documents_help(self):
        _, secs = self.check_help_in_page(common.CKPTFS_BIN, "ckptfs")
        fstab = secs["MOUNTING FROM FSTAB"]
        self.assertIn("fuse.ckptfs", fstab)
        self.assertRegex(
            fstab, r"\S+\s+\S+\s+fuse\.ckptfs\s+\S*keyfile=\S*\s+0\s+0")
        for word in ("keyfd=", "keyfile=-", "noauto", "nofail", "x-*"):
            self.assertIn(word, fstab)
        self.assertIn("user.ckptfs.progress", secs["DESCRIPTION"])
        for word in ("PID.sock", ".recovery-", "staging", "log="):
            self.assertIn(word, secs["FILES"])

    def test_ckpt_page_documents_help(self):
        text, secs = self.check_help_in_page(common.CKPT_BIN, "ckpt")
        cmds = secs["COMMANDS"]
        for cmd in I.ckpt_commands(text) + ["commit"]:
            self.assertRegex(cmds, r"(?m)^ {7}%s\b" % cmd,
                             "man/ckpt.1 does not describe 'ckpt %s'" % cmd)
        self.assertRegex(secs["SYNOPSIS"], r"ckpt commit \[-q\] MOUNTPOINT")
        self.assertRegex(secs["SYNOPSIS"], r"ckpt umount \[-q\] \[--force\]")
        self.assertIn("CKPT_PROGRESS", secs["ENVIRONMENT"])
        for cmd in ("ckpt convert", "ckpt umount", "ckpt commit"):
            self.assertIn(cmd, secs["EXAMPLES"])

    # ---- the bash completion

    def complete(self, *words, cwd=None):
        return I.complete(self.p("share/bash-completion/completions/ckpt"),
                          ("ckpt",) + words, cwd=cwd, path=self.p("bin"))

    def test_completion_commands(self):
        cmds = I.ckpt_commands(I.help_text(common.CKPT_BIN))
        got = self.complete("")
        self.assertEqual(sorted(set(cmds) - set(got)), [],
                         "commands not offered for 'ckpt <TAB>'")
        self.assertIn("commit", got)
        self.assertEqual(self.complete("co"), ["convert", "commit"])
        self.assertIn("--help", self.complete("-"))

    def test_completion_options(self):
        text = I.help_text(common.CKPT_BIN)
        want = I.ckpt_convert_options(text)
        got = self.complete("convert", "--")
        self.assertEqual(sorted(set(want) - set(got)), [],
                         "convert options not offered for 'ckpt convert "
                         "--<TAB>'")
        self.assertTrue(all(w.startswith("--") for w in got), got)
        self.assertNotIn("--force", got)
        self.assertIn("--force", self.complete("umount", "--"))
        self.assertIn("-l", self.complete("ls", "-"))
        self.assertIn("--quiet", self.complete("commit", "-"))
        self.assertIn("--ignore-crc", self.complete("verify", "--"))

    def test_completion_modes(self):
        for opt in ("--enc-mode", "--out-enc-mode"):
            self.assertEqual(sorted(self.complete("convert", opt, "")),
                             sorted(I.ENC_MODES), opt)
        self.assertEqual(self.complete("ls", "--enc-mode", "=", "SM"),
                         ["SM4-CBC"])
        self.assertEqual(self.complete("ls", "--enc-mode", "AES-GCM", "-l",
                                       "--ig"), ["--ignore-crc"])

    def test_completion_files_and_dirs(self):
        d = tempfile.mkdtemp(prefix="ckptfs_compl_")
        self.addCleanup(shutil.rmtree, d, True)
        src = min((f for f in common.real_files()
                   if len(common.ref(f)) >= 2), key=os.path.getsize)
        shutil.copyfile(src, os.path.join(d, "a.ckpt"))
        open(os.path.join(d, "b.txt"), "w").close()
        os.mkdir(os.path.join(d, "sub"))
        for cmd in ("ls", "info", "verify", "convert", "cat"):
            self.assertEqual(sorted(self.complete(cmd, "", cwd=d)),
                             ["a.ckpt", "sub"], "ckpt %s <TAB>" % cmd)
        self.assertEqual(sorted(self.complete("convert", "a.ckpt", "",
                                              cwd=d)), ["a.ckpt", "sub"])
        for cmd in ("umount", "commit"):
            self.assertEqual(self.complete(cmd, "", cwd=d), ["sub"],
                             "ckpt %s <TAB>" % cmd)
            self.assertEqual(self.complete(cmd, "-q", "", cwd=d), ["sub"])
        # ckpt cat FILE <TAB>: the parameters of FILE, as 'ckpt ls' names
        names = I.run([common.CKPT_BIN, "ls", src]).stdout.split("\n")
        names = sorted(n for n in names if n)
        got = self.complete("cat", "a.ckpt", "", cwd=d)
        self.assertEqual(len(got), len(names), got)
        plain = [n for n in names if re.match(r"^[\w./%:+@,=-]+$", n)]
        self.assertEqual(sorted(set(plain) - set(got)), [], got)
        first = names[0]
        self.assertIn(first, self.complete("cat", "a.ckpt", first[:2],
                                           cwd=d))


if __name__ == "__main__":
    unittest.main()
