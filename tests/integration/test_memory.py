#!/usr/bin/python3
"""Memory of the daemon and of the index (docs/spec section 5, issue 13
item 7).

A checkpoint of 1,000,000 small parameters (memutil.py: Float32 [1] or [4],
tags "l{i}.attn.w", about 38 MB) is written once for the suite into a
temporary directory.

* test_million_a_mount: ckptfs mounts it in at most 2 s (the time of the
  mount command, which returns when the mount is live) and the daemon's
  VmRSS after listing the mount root is at most 300 MiB.
* test_million_b_ckpt_ls: `ckpt ls` (the index alone) lists what the
  reference reader (tests/ref/ckref.py) reads: the count, and the names,
  dtypes, shapes and sizes of a sample (`ckpt ls -l`).
* (test_memory_cycles: 100,000 create+unlink cycles leave the daemon's
  VmRSS flat; a suite of its own, which need not run alone.)
* test_generator: the fast writer of memutil.py and the reference reader
  agree on every parameter of a small file.

Under the sanitizers (CKPT_SANITIZED=1, the ASan+UBSan pass of
scripts/test.sh) the same operations run, fewer cycles of them and on
100,000 parameters instead of 1,000,000, but the
time and memory limits are not asserted: ASan's shadow memory and
quarantine of freed blocks make RSS and time meaningless there; that pass
looks for memory errors and leaks, the plain one for the limits.

The figures are printed to stderr.  Each test takes well under a minute
on 2 CPUs; the 1,000,000-parameter reference read is the longest part
(about 10 s).
"""

import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import memutil  # noqa: E402
import ckref  # noqa: E402

SANITIZED = common.SANITIZED
MILLION = 100000 if SANITIZED else 1000000  # (the parameters)
MOUNT_SECONDS = 2.0
RSS_LIMIT_KIB = 300 * 1024          # 300 MiB
SAMPLE_STEP = 9973                  # ckpt ls -l lines compared in full

_DIR = None
_BIG = None


def big_file():
    """The checkpoint of MILLION parameters, written on first use."""
    global _DIR, _BIG
    if _BIG is None:
        _DIR = tempfile.mkdtemp(prefix="ckptfs_mem_")
        path = os.path.join(_DIR, "million.ckpt")
        memutil.write(path, MILLION)
        _BIG = path
    return _BIG


def note(msg):
    sys.stderr.write("\n    [memory] %s " % msg)
    sys.stderr.flush()


LS_L = re.compile(r"^(\S+)\s+(\[[0-9,]*\])\s+(\d+)\s+(.*)$")


class MemoryTests(unittest.TestCase):
    maxDiff = 2000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)

    def test_generator(self):
        size = memutil.check(2000)
        self.assertGreater(size, 0)

    # (unittest runs tests in name order: the mount is timed before the
    # reference reader has used and freed a gigabyte, which on VMs with
    # free page reporting makes the next fresh pages slow to touch)
    def test_million_a_mount(self):
        path = big_file()
        t0 = time.monotonic()
        m = M.mount(self, path)   # the mount command (and a getxattr)
        secs = time.monotonic() - t0
        names = os.listdir(m.mnt)
        rss = memutil.rss_kib(m.pid)
        note("%d parameters: mount %.2f s, daemon VmRSS after "
             "listing the root %.1f MiB (%.0f bytes per parameter)"
             % (MILLION, secs, rss / 1024.0, rss * 1024.0 / MILLION))
        self.assertEqual(len(names), MILLION, "entries in the mount root")
        problems = []
        if SANITIZED:
            return  # the limits hold for the plain build (see the top)
        if secs > MOUNT_SECONDS:
            problems.append("the mount took %.2f s (limit %.1f s)"
                            % (secs, MOUNT_SECONDS))
        if rss > RSS_LIMIT_KIB:
            problems.append("the daemon's VmRSS after listing the root is "
                            "%.1f MiB (limit %d MiB)"
                            % (rss / 1024.0, RSS_LIMIT_KIB // 1024))
        if problems:
            self.fail("%d parameters: " % MILLION + "; ".join(problems))

    def test_million_b_ckpt_ls(self):
        path = big_file()
        t0 = time.monotonic()
        res = M.ckpt("ls", "-l", path)
        secs = time.monotonic() - t0
        common.assert_not_signal(self, res, "ckpt ls -l")
        self.assertEqual(res.rc, 0, res.describe())
        lines = res.text.splitlines()
        note("ckpt ls -l of %d parameters: %.2f s" % (MILLION, secs))
        ref = ckref.load(path)
        self.assertEqual(len(lines), len(ref), "ckpt ls -l: line count")
        sample = sorted(set(list(range(0, len(ref), SAMPLE_STEP)) +
                            [1, len(ref) - 1]))
        for i in sample:
            p = ref[i]
            m = LS_L.match(lines[i])
            self.assertIsNotNone(m, "ckpt ls -l line %d: %r" % (i, lines[i]))
            self.assertEqual(
                (m.group(4), m.group(1), m.group(2), int(m.group(3))),
                (common.escape_name(p.name), p.dtype,
                 common.shape_str(p.shape), len(p.data)),
                "ckpt ls -l line %d" % i)
        res = M.ckpt("ls", path)
        self.assertEqual(res.rc, 0, res.describe())
        names = res.text.splitlines()
        self.assertEqual(len(names), len(ref), "ckpt ls: line count")
        for i in sample:
            self.assertEqual(names[i], common.escape_name(ref[i].name),
                             "ckpt ls line %d" % i)


def tearDownModule():
    if _DIR:
        shutil.rmtree(_DIR, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
