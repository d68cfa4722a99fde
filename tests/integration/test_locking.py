#!/usr/bin/python3
"""One writer per checkpoint (issue 13, spec section 2).

A read-write mount holds an OFD write lock on the file at its commit
target (with -o output=PATH: on PATH if it exists); after a commit the lock
is on the new file.  A second read-write mount of that file is refused
(ckptfs exits non-zero, nothing is mounted, stderr says "another" and
"-o ro"), a read-only mount works, 'ckpt convert IN OUT' into a file that
is mounted read-write is refused (exit 1, the same words), and the lock is
gone once the mount is unmounted.

The lock is observed from outside with F_OFD_GETLK (a read-lock probe: only
a write lock conflicts; an OFD lock reports l_pid -1), and by what ckptfs
and ckpt do.  Every test works on a fresh LeNet (examples/make_lenet.py)
in a temporary directory.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import pinutil as P  # noqa: E402

EDIT = P.f32(0.25, 0.75)


class LockBase(unittest.TestCase):
    maxDiff = 6000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, prefix="ckptfs_lock_")
        self.src = W.make_lenet(os.path.join(self.dir, "lenet.ckpt"))
        self.base = W.lenet_params()

    def edit(self, m, want, data=EDIT):
        W.pwrite_file(m.p("fc3.bias"), data, 0)
        old = W.find(want, "fc3.bias")["data"]
        return W.replace(want, "fc3.bias", data=data + old[len(data):])

    def assertWriteLocked(self, path, what):
        ltype, pid = P.ofd_getlk(path)
        self.assertEqual(P.LOCK_NAMES.get(ltype, ltype), "F_WRLCK",
                         "%s: %s must carry a write lock" % (what, path))
        self.assertEqual(pid, -1, "%s: the lock on %s must be an OFD lock "
                         "(l_pid -1), not a process lock" % (what, path))

    def assertNotLocked(self, path, what):
        ltype, _ = P.ofd_getlk(path)
        self.assertEqual(P.LOCK_NAMES.get(ltype, ltype), "F_UNLCK",
                         "%s: %s must carry no write lock" % (what, path))

    def assertRefused(self, res, m, mnt, what):
        """A second read-write mount was refused as the spec says."""
        self.assertIsNone(m, "%s: the second read-write mount must be "
                          "refused\n%s" % (what, res.describe()))
        self.assertNotEqual(res.rc, 0, "%s: ckptfs must exit non-zero" % what)
        self.assertFalse(M.is_mounted(mnt), "%s: nothing may be "
                         "mounted" % what)
        self.assertIn("another", res.errtext.lower(), "%s: the message must "
                      "say that another mount holds the file\n%s" % (
                          what, res.describe()))
        self.assertIn("-o ro", res.errtext, "%s: the message must suggest "
                      "-o ro\n%s" % (what, res.describe()))

    def assertCommitOK(self, m, what):
        e = m.commit()
        self.assertEqual(e, 0, "%s: fsync failed with %s: %s" % (
            what, W.errno_name(e), m.error_text()))


class TestTwoMounts(LockBase):

    def test_second_rw_mount_refused(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m, self.base)
        res, m2 = M.try_mount(self, self.src, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "same path")
        # the first mount is unaffected
        self.assertCommitOK(m, "first mount after the refusal")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        W.check_ckpt(self, self.src, want)

    def test_second_rw_mount_via_hard_link_refused(self):
        # the lock is on the file, not on the name
        link = os.path.join(self.dir, "hard.ckpt")
        os.link(self.src, link)
        m = M.mount(self, self.src, **P.LIMITS)
        res, m2 = M.try_mount(self, link, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "hard link")
        self.assertTrue(m.mounted())

    def test_second_rw_mount_via_symlink_refused(self):
        # a symlink the caller owns is followed (spec 3): same file
        link = os.path.join(self.dir, "soft.ckpt")
        os.symlink("lenet.ckpt", link)
        m = M.mount(self, self.src, **P.LIMITS)
        res, m2 = M.try_mount(self, link, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "symlink")
        self.assertTrue(m.mounted())

    def test_ro_mount_of_rw_mounted_file_allowed(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m, self.base)
        res, ro = M.try_mount(self, self.src, "-o", "ro", **P.LIMITS)
        self.assertIsNotNone(ro, "-o ro of a file mounted read-write must "
                             "work\n%s" % res.describe())
        for p in self.base:
            self.assertEqual(W.read_bytes(ro.p(p["name"])), p["data"],
                             "read-only mount: %s" % p["name"])
        # the writer commits while the read-only mount exists
        self.assertCommitOK(m, "read-write mount beside a read-only one")
        W.check_ckpt(self, self.src, want)
        r = ro.ckpt_umount()
        self.assertEqual(r.rc, 0, "read-only mount: %s" % r.describe())
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        W.check_ckpt(self, self.src, want)

    def test_rw_mount_after_ro_mount_allowed(self):
        # Assumption: only read-write mounts lock (spec: "A read-write mount
        # holds an OFD write lock"), so a read-only mount does not keep a
        # later read-write mount out.
        ro = M.mount(self, self.src, "-o", "ro", **P.LIMITS)
        res, m = M.try_mount(self, self.src, **P.LIMITS)
        self.assertIsNotNone(m, "a read-write mount beside a read-only "
                             "one must work\n%s" % res.describe())
        self.assertWriteLocked(self.src, "read-write mount")
        want = self.edit(m, self.base)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        W.check_ckpt(self, self.src, want)
        self.assertTrue(ro.mounted())


class TestLockLifetime(LockBase):

    def test_rw_mount_holds_ofd_write_lock(self):
        self.assertNotLocked(self.src, "before mounting")
        M.mount(self, self.src, **P.LIMITS)
        self.assertWriteLocked(self.src, "while mounted read-write")

    def test_ro_mount_holds_no_write_lock(self):
        M.mount(self, self.src, "-o", "ro", **P.LIMITS)
        self.assertNotLocked(self.src, "while mounted read-only")

    def test_lock_follows_commit(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.base
        for i in range(2):
            ino = os.stat(self.src).st_ino
            want = self.edit(m, want, P.f32(i + 10.0))
            self.assertCommitOK(m, "commit %d" % i)
            self.assertNotEqual(os.stat(self.src).st_ino, ino, "a commit "
                                "writes a new file")
            W.check_ckpt(self, self.src, want)
            self.assertWriteLocked(self.src, "after commit %d (new inode)"
                                   % i)
            res, m2 = M.try_mount(self, self.src, **P.LIMITS)
            self.assertRefused(res, m2, res.mnt, "after commit %d" % i)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        W.check_ckpt(self, self.src, want)

    def test_lock_released_at_ckpt_umount(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m, self.base)
        self.assertWriteLocked(self.src, "while mounted")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertNotLocked(self.src, "after ckpt umount")
        # a new read-write mount works
        m2 = M.mount(self, self.src, **P.LIMITS)
        self.assertWriteLocked(self.src, "the new mount")
        want = self.edit(m2, want, P.f32(3.5))
        self.assertCommitOK(m2, "new mount")
        W.check_ckpt(self, self.src, want)

    def test_lock_released_at_plain_unmount(self):
        m = M.mount(self, self.src, **P.LIMITS)
        self.assertWriteLocked(self.src, "while mounted")
        m.unmount()   # fusermount3 -u, waits for the daemon
        self.assertNotLocked(self.src, "after fusermount3 -u")
        m2 = M.mount(self, self.src, **P.LIMITS)
        self.assertTrue(m2.mounted())

    def test_lock_released_after_refused_mount(self):
        # a refused second mount leaves nothing behind: once the first one
        # is gone, a new read-write mount works
        m = M.mount(self, self.src, **P.LIMITS)
        res, m2 = M.try_mount(self, self.src, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "second mount")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertNotLocked(self.src, "after both")
        m3 = M.mount(self, self.src, **P.LIMITS)
        self.assertWriteLocked(self.src, "third mount")
        self.assertTrue(m3.mounted())


class TestOutput(LockBase):

    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.dir, "out.ckpt")

    def test_existing_output_locked(self):
        W.make_lenet(self.out)
        before = W.file_state(self.out)
        m = M.mount(self, self.src, "-o", "output=" + self.out, **P.LIMITS)
        self.assertWriteLocked(self.out, "-o output= (existing)")
        res, m2 = M.try_mount(self, self.out, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "rw mount of the output")
        res, ro = M.try_mount(self, self.out, "-o", "ro", **P.LIMITS)
        self.assertIsNotNone(ro, "-o ro of the output must work\n%s"
                             % res.describe())
        self.assertEqual(W.file_state(self.out), before)
        want = self.edit(m, self.base)
        self.assertCommitOK(m, "-o output=")
        W.check_ckpt(self, self.out, want)
        self.assertWriteLocked(self.out, "-o output= after the commit")

    def test_output_source_not_locked(self):
        # Assumption: with -o output=PATH only PATH (the commit target) is
        # locked, so the source can still be mounted read-write.
        W.make_lenet(self.out)
        M.mount(self, self.src, "-o", "output=" + self.out, **P.LIMITS)
        self.assertNotLocked(self.src, "the source of -o output=")
        res, m2 = M.try_mount(self, self.src, **P.LIMITS)
        self.assertIsNotNone(m2, "the source of an -o output= mount is not "
                             "its commit target\n%s" % res.describe())

    def test_new_output_locked_after_commit(self):
        # Assumption: "after a commit the lock moves to the new file" also
        # when -o output= named no file at mount time.
        m = M.mount(self, self.src, "-o", "output=" + self.out, **P.LIMITS)
        self.assertFalse(os.path.exists(self.out))
        want = self.edit(m, self.base)
        self.assertCommitOK(m, "-o output= (new file)")
        W.check_ckpt(self, self.out, want)
        self.assertWriteLocked(self.out, "the output after the commit")
        res, m2 = M.try_mount(self, self.out, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "rw mount of the new output")

    def test_output_into_rw_mounted_file_refused(self):
        # Assumption: a mount whose -o output= names a file mounted
        # read-write elsewhere needs that file's lock and is refused the
        # same way.
        W.make_lenet(self.out)
        m1 = M.mount(self, self.out, **P.LIMITS)
        res, m2 = M.try_mount(self, self.src, "-o",
                                    "output=" + self.out, **P.LIMITS)
        self.assertRefused(res, m2, res.mnt, "-o output= into a mounted file")
        self.assertTrue(m1.mounted())


class TestConvert(LockBase):

    def test_convert_into_rw_mounted_file_refused(self):
        other = W.make_lenet(os.path.join(self.dir, "in.ckpt"))
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m, self.base)
        before = W.file_state(self.src)
        r = M.ckpt("convert", "--crc", other, self.src,
                        timeout=P.DEADLINE)
        self.assertEqual(r.rc, 1, "ckpt convert into a file mounted "
                         "read-write must exit 1\n%s" % r.describe())
        self.assertIn("another", r.errtext.lower(), r.describe())
        self.assertIn("-o ro", r.errtext, r.describe())
        self.assertEqual(W.file_state(self.src), before, "ckpt convert "
                         "touched the mounted file")
        # the mount is unaffected and still holds the lock
        self.assertWriteLocked(self.src, "after the refused convert")
        self.assertCommitOK(m, "after the refused convert")
        W.check_ckpt(self, self.src, want)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        # unmounted: convert works again
        r = M.ckpt("convert", "--crc", other, self.src,
                        timeout=P.DEADLINE)
        self.assertEqual(r.rc, 0, "convert after unmount\n%s" % r.describe())
        r = M.ckpt("verify", self.src, timeout=P.DEADLINE)
        self.assertEqual(r.rc, 0, r.describe())

    def test_convert_into_ro_mounted_file_allowed(self):
        # Assumption: only a read-write mount locks, so a read-only mount
        # does not keep ckpt convert out.
        other = W.make_lenet(os.path.join(self.dir, "in.ckpt"))
        M.mount(self, self.src, "-o", "ro", **P.LIMITS)
        r = M.ckpt("convert", "--crc", other, self.src,
                        timeout=P.DEADLINE)
        self.assertEqual(r.rc, 0, r.describe())


if __name__ == "__main__":
    unittest.main()
