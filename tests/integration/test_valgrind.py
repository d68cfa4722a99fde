#!/usr/bin/python3
"""ckptfs and ckpt under valgrind memcheck: zero errors, zero leaks.

The daemon runs in the foreground under valgrind while a mount is read,
edited and committed through; the CLI reads and converts every real
fixture (the ckpt command line through ckpt_batch, batch.py: one valgrind
process per fixture serves its four commands, and reports at its exit
whatever any of them did wrong or leaked).  Skipped (with the reason) in the sanitizer build, whose binaries
cannot run under valgrind: set CKPT_NO_VALGRIND=1 there.
"""
import os
import shutil
import sys
import unittest

import numpy as np

import common
import mounting as M
import wbutil
from batch import Batch

VALGRIND = shutil.which("valgrind")
SKIP = os.environ.get("CKPT_NO_VALGRIND") == "1"
VG = [VALGRIND or "valgrind", "--error-exitcode=99", "--leak-check=full",
      "--show-leak-kinds=definite,indirect",
      "--errors-for-leak-kinds=definite,indirect", "--quiet"]


def read_log(path):
    with open(path, errors="replace") as f:
        return f.read()


@unittest.skipIf(SKIP or not VALGRIND,
                 "sanitizer build or no valgrind (CKPT_NO_VALGRIND=1)")
class TestValgrind(unittest.TestCase):
    def test_mount_read_edit_commit(self):
        d = wbutil.tempdir(self)
        src = os.path.join(d, "lenet.ckpt")
        wbutil.make_lenet(src)
        log = os.path.join(d, "vg.log")
        m = M.mount(self, src, foreground=True, wrapper=VG, log=log,
                    timeout=60)
        mnt = m.mnt

        names = sorted(os.listdir(mnt))
        self.assertIn("conv1.weight", names)
        for n in names:
            with open(os.path.join(mnt, n), "rb") as f:
                f.read()
            os.getxattr(os.path.join(mnt, n), "user.shape")
        ones = np.ones(84, np.float32)
        ones.tofile(os.path.join(mnt, "fc2.bias"))
        os.remove(os.path.join(mnt, "fc3.bias"))
        np.zeros(8, np.float32).tofile(os.path.join(mnt, "added"))
        os.setxattr(os.path.join(mnt, "added"), "user.dtype", b"float32")
        os.rename(os.path.join(mnt, "moments.fc1.bias"),
                  os.path.join(mnt, "renamed"))
        M.fsync_path(mnt)
        with open(os.path.join(mnt, "fc2.bias"), "rb") as f:
            self.assertEqual(f.read(), ones.tobytes())

        rc = m.unmount()
        self.assertEqual(rc, 0, "valgrind reported errors or leaks:\n" +
                         read_log(log))
        got = {p.name: p for p in common.ref(src)}
        self.assertNotIn("fc3.bias", got)
        self.assertEqual(got["fc2.bias"].data, ones.tobytes())
        self.assertIn("renamed", got)

    def test_cli_on_every_fixture(self):
        d = wbutil.tempdir(self)
        log = os.path.join(d, "vg.log")
        for path in common.real_files() + common.neg_files():
            base = os.path.basename(path)
            with self.subTest(file=base):
                batch = Batch(VG + ["--log-file=" + log])
                self.addCleanup(batch.close)
                for args in (["ls", "-l", path], ["info", path],
                             ["verify", path],
                             ["convert", "-q", path,
                              os.path.join(d, "o.ckpt")]):
                    res = batch.ckpt(*args)
                    common.assert_not_signal(self, res, "ckpt %s %s" % (
                        args[0], base))
                self.assertEqual(batch.close(), 0,
                                 "valgrind reported errors or leaks of "
                                 "ckpt ls, info, verify, convert on %s:\n%s"
                                 % (base, read_log(log)))


if __name__ == "__main__":
    sys.exit(unittest.main())
