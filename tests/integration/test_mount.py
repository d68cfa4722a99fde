#!/usr/bin/python3
"""Mount every valid checkpoint with ckptfs and compare it with ckref.

For each real (non-NEG) fixture, each generated fixture and the bundled
example: directory listing, and for every parameter the file type, size,
full content, user.dtype / user.shape xattrs, listxattr, random preads,
a repeated read and an np.memmap of one file.  The 600 MiB case
(CKPT_BIG=1, default) is read back in 64 MiB chunks.
"""

import errno
import os
import random
import stat
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
from common import escape_name, shape_str  # noqa: E402

PREAD_PARAMS = 40     # params per file that get random preads
PREADS_EACH = 8


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


class MountChecks(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)

    def check_xattrs(self, fp, t, label):
        try:
            dt = os.getxattr(fp, "user.dtype")
            sh = os.getxattr(fp, "user.shape")
            names = os.listxattr(fp)
        except OSError as e:
            self.fail("%s: xattr access failed: %s" % (label, e))
        self.assertEqual(dt, t.dtype.encode(), "%s: user.dtype" % label)
        self.assertEqual(sh, shape_str(t.shape).encode(),
                         "%s: user.shape" % label)
        self.assertIn("user.dtype", names, "%s: listxattr" % label)
        self.assertIn("user.shape", names, "%s: listxattr" % label)

    def check_file(self, fp, t, label, rng, do_preads):
        st = os.stat(fp)
        self.assertTrue(stat.S_ISREG(st.st_mode), "%s: not a regular file"
                        % label)
        self.assertEqual(st.st_size, len(t.data), "%s: st_size" % label)
        first = read_all(fp)
        if first != t.data:
            self.fail("%s: content differs from the reference (%d bytes "
                      "read, %d expected; first difference at %s)" % (
                          label, len(first), len(t.data),
                          next((i for i, (a, b) in enumerate(
                              zip(first, t.data)) if a != b),
                              min(len(first), len(t.data)))))
        self.check_xattrs(fp, t, label)
        if do_preads:
            n = len(t.data)
            fd = os.open(fp, os.O_RDONLY)
            try:
                for _ in range(PREADS_EACH):
                    off = rng.randrange(0, n + 16)
                    size = rng.randrange(0, max(2, 2 * n))
                    got = os.pread(fd, size, off)
                    self.assertEqual(got, t.data[off:off + size],
                                     "%s: pread(size=%d, off=%d)" % (
                                         label, size, off))
                # past the end
                self.assertEqual(os.pread(fd, 10, n + 1000), b"")
            finally:
                os.close(fd)
            self.assertEqual(read_all(fp), first, "%s: second read" % label)

    def check_mount(self, path):
        params = common.ref(path)
        copy = common.private_copy(self, path)
        m = M.mount(self, copy)
        mnt = m.mnt
        base = os.path.basename(path)
        self.assertTrue(os.path.isdir(mnt))
        listing = sorted(os.listdir(mnt))
        self.assertEqual(listing, sorted(escape_name(p.name) for p in params),
                         "%s: directory listing" % base)
        rng = random.Random(base)
        pread_set = set(rng.sample(range(len(params)),
                                   min(PREAD_PARAMS, len(params))))
        biggest = None
        for i, p in enumerate(params):
            fp = os.path.join(mnt, escape_name(p.name))
            label = "%s: %r" % (base, p.name)
            if p.kind == "map":
                self.assertTrue(os.path.isdir(fp), "%s: map is not a "
                                "directory" % label)
                self.assertEqual(sorted(os.listdir(fp)),
                                 ["keys", "status", "values"], label)
                for s in p.map:
                    self.check_file(os.path.join(fp, s.name), s,
                                    label + "/" + s.name, rng, True)
                continue
            self.check_file(fp, p, label, rng, i in pread_set)
            if biggest is None or len(p.data) > len(biggest[1].data):
                biggest = (fp, p)
        if biggest and len(biggest[1].data):
            fp, p = biggest
            mm = np.memmap(fp, dtype=np.uint8, mode="r")
            try:
                self.assertTrue(np.array_equal(
                    mm, np.frombuffer(p.data, dtype=np.uint8)),
                    "%s: np.memmap of %r differs" % (base, p.name))
            finally:
                del mm
        # a name that is not there
        self.assertFalse(os.path.exists(os.path.join(mnt, "no such param")))
        # only reads happened: the checkpoint must be left as it was
        m.unmount()
        self.assertFalse(M.is_mounted(mnt))
        self.assertEqual(common.sha256_file(copy), common.sha256_file(path),
                         "%s: the checkpoint changed although the mount was "
                         "only read" % base)


def _add_tests(cls, files):
    for path in files:
        def t(self, path=path):
            self.check_mount(path)
        t.__doc__ = "mount %s" % os.path.basename(path)
        setattr(cls, "test_" + common.test_id(path), t)


class TestMountReal(MountChecks):
    """Real MindSpore checkpoints."""


class TestMountGenerated(MountChecks):
    """Generated checkpoints (tests/ref/gen_fixtures.py) and the example."""


_add_tests(TestMountReal, common.real_files())
_add_tests(TestMountGenerated, common.generated_files())


class TestMountReadOnly(MountChecks):
    """With -o ro (a generic FUSE option) every modification must fail and
    the checkpoint must stay byte-identical."""

    def check_ro(self, path):
        params = common.ref(path)
        copy = common.private_copy(self, path)
        m = M.mount(self, copy, "-o", "ro")
        mnt = m.mnt
        items = common.tensors_of(params)
        denied = (errno.EROFS, errno.EACCES, errno.EPERM)

        def must_fail(what, fn, *args):
            with self.assertRaises(OSError, msg=what + " must fail") as cm:
                fn(*args)
            self.assertIn(cm.exception.errno, denied,
                          "%s: unexpected error %s" % (what, cm.exception))

        def create():
            with open(os.path.join(mnt, "new_file_by_test"), "wb") as f:
                f.write(b"x")

        def write(fp):
            fd = os.open(fp, os.O_WRONLY)
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)

        must_fail("create", create)
        must_fail("mkdir", os.mkdir, os.path.join(mnt, "new_dir_by_test"))
        if items:
            fp = os.path.join(mnt, items[0][0])
            must_fail("open for writing", write, fp)
            must_fail("truncate", os.truncate, fp, 0)
            must_fail("unlink", os.unlink, fp)
            must_fail("rename", os.rename, fp,
                      os.path.join(mnt, "renamed_by_test"))
            must_fail("setxattr", os.setxattr, fp, "user.dtype", b"Int8")
            self.assertEqual(read_all(fp), items[0][1].data)
        self.assertEqual(sorted(os.listdir(mnt)),
                         sorted(escape_name(p.name) for p in params))
        m.unmount()
        self.assertEqual(common.sha256_file(copy), common.sha256_file(path),
                         "the checkpoint changed under a read-only mount")

    def test_ro_real_lenet(self):
        self.check_ro(os.path.join(common.FIXTURES,
                                   "serving_lenet_ascend_v111_int32_scalars.ckpt"))

    def test_ro_generated_map(self):
        common.ensure_generated()
        self.check_ro(os.path.join(common.GEN_DIR, "map.ckpt"))

    def test_ro_generated_odd_names(self):
        common.ensure_generated()
        self.check_ro(os.path.join(common.GEN_DIR, "odd_names.ckpt"))


class TestMountMisc(MountChecks):
    def test_fixture_dir_present(self):
        self.assertTrue(common.real_files(), "no real fixtures found in %s"
                        % common.FIXTURES)

    def test_two_mounts_at_once(self):
        path = os.path.join(common.FIXTURES, "mindformers_golden_router.ckpt")
        m1 = M.mount(self, common.private_copy(self, path)).mnt
        m2 = M.mount(self, common.private_copy(self, path)).mnt
        self.assertEqual(sorted(os.listdir(m1)), sorted(os.listdir(m2)))

    def test_unmount_then_gone(self):
        path = os.path.join(common.FIXTURES, "nsu2022_LinearNet_1_step_64B.ckpt")
        m = M.mount(self, common.private_copy(self, path))
        self.assertTrue(os.listdir(m.mnt))
        m.unmount()
        self.assertFalse(M.is_mounted(m.mnt))


@unittest.skipUnless(common.BIG, "CKPT_BIG=0")
class TestMountBig(MountChecks):
    """The 600 MiB parameter stored in two slices (512 MiB + 88 MiB)."""

    CHUNK = 64 << 20

    def test_big_600MiB(self):
        common.ensure_generated(big=True)
        path = common.BIG_FILE
        params = common.ref(path)
        self.assertEqual(len(params), 1)
        p = params[0]
        self.assertEqual(len(p.data), common.BIG_SIZE)
        mnt = M.mount(self, common.private_copy(self, path)).mnt
        fp = os.path.join(mnt, escape_name(p.name))
        self.assertEqual(os.listdir(mnt), [escape_name(p.name)])
        self.assertEqual(os.stat(fp).st_size, common.BIG_SIZE)
        self.check_xattrs(fp, p, "big")
        ref = memoryview(p.data)
        with open(fp, "rb", buffering=0) as f:
            off = 0
            while True:
                chunk = f.read(self.CHUNK)
                if not chunk:
                    break
                if chunk != ref[off:off + len(chunk)]:
                    self.fail("big: chunk at offset %d differs" % off)
                off += len(chunk)
            self.assertEqual(off, common.BIG_SIZE)
            # reads across the slice boundary at 512 MiB and near the end
            for o, n in ((536870912 - 3, 10), (536870912 - 4096, 8192),
                         (0, 4096), (common.BIG_SIZE - 5, 100),
                         (123456789, 1 << 20)):
                self.assertEqual(os.pread(f.fileno(), n, o),
                                 ref[o:o + n].tobytes(),
                                 "big: pread(%d, %d)" % (n, o))


def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
