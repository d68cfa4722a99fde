#!/usr/bin/python3
"""Disk full while committing.

A 3 MiB tmpfs holds a checkpoint of ~1.2 MiB (three Float32 [100, 1024]
parameters).  Adding data so that the new file cannot fit beside the old
one must make fsync fail with ENOSPC, leave the original byte-identical
and nothing else on the tmpfs, and keep the mount usable with every edit;
after deleting parameters so that it fits, fsync must succeed and the
reference reader must load exactly the expected parameters.

Variants: staging files elsewhere (-o staging=DIR on the big disk) and on
the tmpfs itself (the default, beside the checkpoint), where a write that
does not fit in the staging area fails with ENOSPC; 'ckpt umount' on a full
disk (exit 1, still mounted, then fixed); a plain unmount on a full disk,
where the recovery checkpoint cannot be written beside the target and must
go to $TMPDIR.
"""

import glob
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
NAME = "model.ckpt"


def base_params():
    rng = np.random.default_rng(21)
    return [W.param("block%d.weight" % i, "Float32", (100, 1024),
                    rng.standard_normal((100, 1024)).astype("<f4"))
            for i in range(3)]


def blob(nbytes, seed):
    n = nbytes // 4
    return np.random.default_rng(seed).standard_normal(n).astype("<f4")


class DiskFullBase(unittest.TestCase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.work = W.tempdir(self, "ckptfs_df_")   # on the big disk
        self.fs = W.mount_tmpfs(self, "3m")
        self.path = os.path.join(self.fs, NAME)
        self.base = base_params()
        ckref.write(self.path, self.base)
        self.orig = W.read_bytes(self.path)
        self.assertGreater(len(self.orig), 1200 * KIB)
        self.free0 = W.free_bytes(self.fs)

    def assertIntact(self, what):
        self.assertEqual(W.read_bytes(self.path), self.orig,
                         "%s: the original checkpoint changed" % what)
        self.assertEqual(os.listdir(self.fs), [NAME],
                         "%s: files left on the full filesystem" % what)

    def assertCommitENOSPC(self, m, what):
        e = m.commit()
        self.assertEqual(W.errno_name(e), "ENOSPC",
                         "%s: fsync must fail with ENOSPC" % what)
        msg = m.error()
        self.assertIn("No space left", msg, "%s: error %r" % (what, msg))
        self.assertIntact(what)
        return msg

    def assertMountShows(self, m, expected):
        self.assertEqual(m.names(), [p["name"] for p in expected])
        for p in expected:
            self.assertEqual(W.read_bytes(m.p(p["name"])), p["data"],
                             p["name"])
            self.assertEqual(W.getx(m.p(p["name"]), "user.shape"),
                             W.shape_str(p["shape"]))


class TestDiskFull(DiskFullBase):

    def test_enospc_staging_elsewhere(self):
        staging = os.path.join(self.work, "staging")
        os.mkdir(staging)
        m = M.mount(self, self.path, "-o", "staging=" + staging)
        big = blob(MIB, 1)
        big.tofile(m.p("extra.weight"))
        W.set_meta(m.p("extra.weight"), "Float32", "[256, 1024]")
        # staging lives on the big disk: the tmpfs did not fill up
        self.assertGreater(W.free_bytes(self.fs), self.free0 - 64 * KIB)
        want = self.base + [W.param("extra.weight", "Float32", (256, 1024),
                                    big)]
        self.assertCommitENOSPC(m, "1 MiB added")
        # fsync of a file fails the same way, still nothing is lost
        self.assertEqual(W.errno_name(m.commit(m.p("block0.weight"))),
                         "ENOSPC")
        self.assertIntact("second attempt")
        self.assertGreater(W.free_bytes(self.fs), self.free0 - 64 * KIB,
                           "space of the failed commit was not released")
        self.assertMountShows(m, want)
        # an edit in place is still possible after the failure
        ones = np.ones(1024, dtype="<f4").tobytes()
        W.pwrite_file(m.p("block2.weight"), ones, 0)
        b2 = bytearray(W.find(want, "block2.weight")["data"])
        b2[:len(ones)] = ones
        want = W.replace(want, "block2.weight", data=bytes(b2))
        # make it fit: 0.4 + 1.0 MiB beside the old 1.2 MiB
        os.unlink(m.p("block0.weight"))
        os.unlink(m.p("block1.weight"))
        want = W.remove(W.remove(want, "block0.weight"), "block1.weight")
        e = m.commit()
        self.assertEqual(e, 0, "commit after making room: %s: %s" % (
            W.errno_name(e), m.error()))
        W.check_ckpt(self, self.path, want)
        self.assertEqual(os.listdir(self.fs), [NAME])
        self.assertMountShows(m, want)
        m.unmount()
        W.check_ckpt(self, self.path, want)
        self.assertEqual(os.listdir(staging), [], "staging files left")

    def test_enospc_staging_on_full_fs(self):
        # default staging: beside the checkpoint, on the tmpfs
        m = M.mount(self, self.path)
        extra = blob(600 * KIB, 2)
        extra.tofile(m.p("extra.weight"))
        W.set_meta(m.p("extra.weight"), "Float32", "[150, 1024]")
        self.assertLess(W.free_bytes(self.fs), self.free0 - 500 * KIB,
                        "the staging file should be on the tmpfs")
        want = self.base + [W.param("extra.weight", "Float32", (150, 1024),
                                    extra)]
        # 1.2 old + 0.6 staged + 1.8 new > 3 MiB
        self.assertCommitENOSPC(m, "600 KiB added, staged on the tmpfs")
        self.assertMountShows(m, want)
        os.unlink(m.p("block0.weight"))
        os.unlink(m.p("block2.weight"))
        want = W.remove(W.remove(want, "block0.weight"), "block2.weight")
        e = m.commit()   # 1.2 old + 0.6 staged + 1.0 new < 3 MiB
        self.assertEqual(e, 0, "commit after making room: %s: %s" % (
            W.errno_name(e), m.error()))
        W.check_ckpt(self, self.path, want)
        m.unmount()
        W.check_ckpt(self, self.path, want)
        self.assertEqual(os.listdir(self.fs), [NAME])

    def test_write_enospc_in_staging(self):
        # a write that does not fit in the staging area fails with ENOSPC;
        # the mount stays usable
        m = M.mount(self, self.path)
        with self.assertRaises(OSError) as cm:
            with open(m.p("huge.weight"), "wb") as f:
                for i in range(4):
                    f.write(blob(MIB, 10 + i).tobytes())
        self.assertEqual(W.errno_name(cm.exception.errno), "ENOSPC")
        self.assertIntact("staging full")  # nothing visible on the tmpfs
        os.unlink(m.p("huge.weight"))
        self.assertMountShows(m, self.base)
        small = np.arange(16, dtype="<f4")
        small.tofile(m.p("small.bias"))
        W.set_meta(m.p("small.bias"), "Float32")
        e = m.commit()
        self.assertEqual(e, 0, "commit after the failed write: %s: %s" % (
            W.errno_name(e), m.error()))
        want = self.base + [W.param("small.bias", "Float32", (16,), small)]
        W.check_ckpt(self, self.path, want)
        m.unmount()
        W.check_ckpt(self, self.path, want)

    def test_edit_in_place_cannot_stage(self):
        # the first write to a stored parameter copies it into a staging
        # file; if that copy does not fit, the write fails with ENOSPC and
        # the parameter is unchanged
        m = M.mount(self, self.path)
        filler = os.path.join(self.fs, "filler")
        with open(filler, "wb") as f:
            left = W.free_bytes(self.fs) - 100 * KIB
            f.write(b"\xAA" * left)
        self.addCleanup(lambda: os.path.exists(filler) and os.unlink(filler))
        with self.assertRaises(OSError) as cm:
            W.pwrite_file(m.p("block0.weight"), b"\0\0\0\0", 1000)
        self.assertEqual(W.errno_name(cm.exception.errno), "ENOSPC")
        self.assertMountShows(m, self.base)
        os.unlink(filler)
        self.assertIntact("failed staging copy")
        W.pwrite_file(m.p("block0.weight"), b"\0\0\0\0", 1000)
        e = m.commit()
        self.assertEqual(e, 0, "%s: %s" % (W.errno_name(e), m.error()))
        b0 = bytearray(self.base[0]["data"])
        b0[1000:1004] = bytes(4)
        m.unmount()
        W.check_ckpt(self, self.path, W.replace(self.base, "block0.weight",
                                                data=bytes(b0)))

    def test_ckpt_umount_disk_full(self):
        staging = os.path.join(self.work, "staging")
        os.mkdir(staging)
        m = M.mount(self, self.path, "-o", "staging=" + staging)
        big = blob(MIB, 3)
        big.tofile(m.p("extra.weight"))
        W.set_meta(m.p("extra.weight"), "Float32")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 1, r.describe())
        self.assertIn("No space left", r.errtext)
        self.assertTrue(m.mounted(), "must stay mounted")
        self.assertIntact("ckpt umount on a full disk")
        self.assertEqual(W.read_bytes(m.p("extra.weight")), big.tobytes())
        os.unlink(m.p("block1.weight"))
        os.unlink(m.p("block2.weight"))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertFalse(m.mounted())
        W.check_ckpt(self, self.path, [
            self.base[0], W.param("extra.weight", "Float32", (MIB // 4,),
                                  big)])

    def test_unmount_disk_full_recovery_in_tmpdir(self):
        staging = os.path.join(self.work, "staging")
        tmpdir = os.path.join(self.work, "tmpdir")
        os.mkdir(staging)
        os.mkdir(tmpdir)
        with W.environ(TMPDIR=tmpdir):
            m = M.mount(self, self.path, "-o", "staging=" + staging)
        big = blob(MIB, 4)
        big.tofile(m.p("extra.weight"))
        W.set_meta(m.p("extra.weight"), "Float32", "[1024, 256]")
        ones = np.ones(100 * 1024, dtype="<f4")
        W.pwrite_file(m.p("block1.weight"), ones.tobytes(), 0)
        pid = m.pid
        m.unmount()   # commit fails: ENOSPC; recovery beside fails too
        self.assertIntact("unmount on a full disk")
        rec = glob.glob(os.path.join(tmpdir, NAME + ".recovery-*.ckpt"))
        self.assertEqual(len(rec), 1, "expected the recovery checkpoint in "
                         "$TMPDIR=%s: %s" % (tmpdir, os.listdir(tmpdir)))
        W.check_ckpt(self, rec[0], [
            self.base[0],
            W.param("block1.weight", "Float32", (100, 1024), ones),
            self.base[2],
            W.param("extra.weight", "Float32", (1024, 256), big)],
            exact=False)
        st = M.take_status(pid)
        self.assertIsNotNone(st, "no status file for the failed commit")
        self.assertIn(rec[0], st)


if __name__ == "__main__":
    unittest.main()
