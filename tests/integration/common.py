#!/usr/bin/python3
"""Shared helpers for the ckptfs integration tests: binaries, fixtures,
the reference.  Processes and mounts: mounting.py.

Environment (set by ctest; the defaults suit running by hand from the repo):
  CKPTFS_BIN     the ckptfs mount binary        (default <repo>/build/ckptfs)
  CKPT_BIN       the ckpt CLI                   (default <repo>/build/ckpt)
  CKPT_FIXTURES  real checkpoint fixtures       (default <repo>/tests/fixtures/real)
  CKPT_GEN_DIR   cache of generated fixtures    (default <repo>/build/gen)
  CKPT_BIG       1 (default) to include the cases over 100 MiB, 0 to skip them
  CKPT_TEST_TIMEOUT  seconds allowed per command (default 120)

Run:  /usr/bin/python3 -m unittest discover -s tests/integration -v
"""

import fcntl
import functools
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REF_DIR = os.path.join(REPO, "tests", "ref")
if REF_DIR not in sys.path:
    sys.path.insert(0, REF_DIR)

import ckref  # noqa: E402
import gen_fixtures  # noqa: E402

PYTHON = "/usr/bin/python3"


def _env_path(var, default):
    v = os.environ.get(var)
    return os.path.abspath(v) if v else os.path.normpath(default)


CKPTFS_BIN = _env_path("CKPTFS_BIN", os.path.join(REPO, "build", "ckptfs"))
CKPT_BIN = _env_path("CKPT_BIN", os.path.join(REPO, "build", "ckpt"))
FIXTURES = _env_path("CKPT_FIXTURES",
                     os.path.join(REPO, "tests", "fixtures", "real"))
GEN_DIR = _env_path("CKPT_GEN_DIR", os.path.join(REPO, "build", "gen"))
BIG = os.environ.get("CKPT_BIG", "1").strip().lower() not in (
    "0", "", "no", "off", "false")
TIMEOUT = float(os.environ.get("CKPT_TEST_TIMEOUT", "120"))
# scripts/test.sh --long sets CKPT_LONG=1; its ASan+UBSan pass sets
# CKPT_SANITIZED=1 (see count()).
LONG = os.environ.get("CKPT_LONG", "0").strip() not in ("", "0")
SANITIZED = os.environ.get("CKPT_SANITIZED", "0").strip() not in ("", "0")
EXAMPLE = os.path.join(REPO, "examples", "lenet.ckpt")
BIG_FILE = os.path.join(GEN_DIR, gen_fixtures.BIG_NAME)
BIG_SIZE = 629145600



def count(var, quick, long, sanitized=None):
    """How much a suite does (trials, operations, seconds): $var if it is
    set, else long under --long, else quick (sanitized instead under the
    ASan+UBSan pass, when given).  The figures are in docs/testing.md."""
    kind = type(quick)
    if os.environ.get(var, "").strip():
        return kind(os.environ[var])
    if LONG:
        return kind(long)
    return kind(sanitized if SANITIZED and sanitized is not None else quick)


FUSERMOUNT = shutil.which("fusermount3") or "/usr/bin/fusermount3"

escape_name = ckref.escape_name
shape_str = ckref.shape_str


# --------------------------------------------------------------------------
# binaries

def require_bin(tc, path):
    """Fails (does not skip) the test when a binary is missing."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        tc.fail("binary not found or not executable: %s (build the project "
                "first or set CKPTFS_BIN / CKPT_BIN)" % path)


# --------------------------------------------------------------------------
# fixtures

def real_files():
    """Valid real fixtures (every *.ckpt not starting with NEG_)."""
    return sorted(p for p in glob.glob(os.path.join(FIXTURES, "*.ckpt"))
                  if not os.path.basename(p).startswith("NEG_"))


def neg_files():
    return sorted(glob.glob(os.path.join(FIXTURES, "NEG_*.ckpt")))


def _scripts_digest():
    h = hashlib.sha256()
    for p in (os.path.join(REF_DIR, "ckref.py"),
              os.path.join(REF_DIR, "gen_fixtures.py"),
              os.path.join(REF_DIR, "wire.py"),
              os.path.join(REPO, "proto", "checkpoint.proto")):
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _stamp_ok(stamp, digest):
    try:
        with open(stamp) as f:
            return f.read().strip() == digest
    except OSError:
        return False


def ensure_generated(big=False):
    """Generates the fixtures into GEN_DIR once (locked, cached by digest)."""
    os.makedirs(GEN_DIR, exist_ok=True)
    digest = _scripts_digest()
    with open(os.path.join(GEN_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = os.path.join(GEN_DIR, ".stamp")
        if not _stamp_ok(stamp, digest):
            for old in glob.glob(os.path.join(GEN_DIR, "*.ckpt")):
                if os.path.basename(old) != gen_fixtures.BIG_NAME:
                    os.unlink(old)
            subprocess.run([PYTHON, os.path.join(REF_DIR, "gen_fixtures.py"),
                            GEN_DIR], check=True, stdout=subprocess.DEVNULL)
            with open(stamp, "w") as f:
                f.write(digest)
        if big:
            bstamp = os.path.join(GEN_DIR, ".stamp_big")
            if not (_stamp_ok(bstamp, digest) and os.path.exists(BIG_FILE)):
                subprocess.run([PYTHON,
                                os.path.join(REF_DIR, "gen_fixtures.py"),
                                GEN_DIR, "--only-big"], check=True,
                               stdout=subprocess.DEVNULL)
                with open(bstamp, "w") as f:
                    f.write(digest)


def generated_files():
    """Generated small fixtures plus the bundled example (not the big one)."""
    ensure_generated()
    files = sorted(p for p in glob.glob(os.path.join(GEN_DIR, "*.ckpt"))
                   if os.path.basename(p) != gen_fixtures.BIG_NAME)
    if os.path.exists(EXAMPLE):
        files.append(EXAMPLE)
    return files


def all_valid_files():
    return real_files() + generated_files()


def test_id(path):
    """A method-name friendly id for a fixture path."""
    base = os.path.basename(path)
    if base.endswith(".ckpt"):
        base = base[:-5]
    if os.path.dirname(path) == GEN_DIR:
        base = "gen_" + base
    elif os.path.abspath(path) == os.path.abspath(EXAMPLE):
        base = "example_" + base
    return re.sub(r"[^0-9A-Za-z_]", "_", base)


@functools.lru_cache(maxsize=None)
def _ref_cached(path):
    return ckref.load(path)


def ref(path):
    """Reference parameters of a valid file (cached for small files)."""
    if os.path.getsize(path) > (64 << 20):
        return ckref.load(path)
    return _ref_cached(path)


def tensors_of(params):
    """[(shown path relative to the mount root, Param)] for every file."""
    out = []
    for p in params:
        e = escape_name(p.name)
        if p.kind == "map":
            for s in p.map:
                out.append((e + "/" + s.name, s))
        else:
            out.append((e, p))
    return out


# --------------------------------------------------------------------------
# waiting and files (processes and mounts: mounting.py)

def wait_until(pred, timeout=10.0, interval=0.02):
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def private_copy(tc, path):
    """Copies path into a fresh temporary directory (removed at cleanup).

    Tests never mount a fixture in place: ckptfs may write a checkpoint
    back, and the real fixtures, the example and the generated cache must
    stay untouched whatever the binary does."""
    d = tempfile.mkdtemp(prefix="ckptfs_src_")
    tc.addCleanup(shutil.rmtree, d, True)
    dst = os.path.join(d, os.path.basename(path))
    shutil.copyfile(path, dst)
    return dst


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(16 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_SNAPSHOT = {}


def snapshot_inputs():
    """Records the sha256 of every input file (real fixtures, generated
    small fixtures, the example); check_inputs() compares later."""
    for p in real_files() + neg_files() + generated_files():
        if p not in _SNAPSHOT:
            _SNAPSHOT[p] = sha256_file(p)


def check_inputs():
    """Raises AssertionError if a test run modified an input file."""
    changed = [p for p, h in sorted(_SNAPSHOT.items())
               if not os.path.exists(p) or sha256_file(p) != h]
    if changed:
        raise AssertionError("input files were modified during the tests: "
                             + ", ".join(changed))


def assert_not_signal(tc, res, what=""):
    if res.rc < 0:
        tc.fail("%s killed by signal %d\n%s" % (what, -res.rc,
                                                res.describe()))
