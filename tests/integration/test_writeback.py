#!/usr/bin/python3
"""Write-back through a ckptfs mount, checked with the reference reader.

Every test works on a fresh copy of the LeNet example written by
examples/make_lenet.py into a temporary directory (examples/lenet.ckpt
itself is never mounted).  That file is what MindSpore >= 2.3 writes
(ckref.write, scalars without dims), so after any edit the whole committed
file must equal ckref.dumps(expected parameters) byte for byte, and
ckref.load must show the expected names, order, dtypes, shapes and data.

Covered: the seed scenarios (delete conv1.weight, add conv2.weight as
zeros, change a bias to ones, change learning_rate / epoch_num, rename all
moments.*, build a new checkpoint with -o create from numpy tofile +
setfattr), no change no write, atomic replacement, -o output, commit on
fsync of a file or the directory, shape/dtype mismatches and empty
parameters (EINVAL, file untouched, mount still usable), setxattr
parsing, EPERM for mkdir/link/symlink, chmod/touch, cp -a between two
mounts, mv replacing, np.memmap r+, truncate/append/replace (what the
page cache and the disk see of writes and commits: test_diskio), 'ckpt umount'
success and failure, the recovery checkpoint of a failed unmount commit,
-o ro, [0] scalars of older files, read-only files/directories, file
mode, symlinked and relative paths, stale temporaries, commits racing
with writes (snapshots), CRC trailers, an open file that is unlinked, and
for every valid fixture (real and generated): adding a parameter keeps the
others (records byte for byte) and editing every tensor is written back
exactly.  With CKPT_BIG=1 (default) a 512 MiB + 1 KiB parameter checks
slicing (and edits across the slice boundary).
"""

import errno
import glob
import os
import random
import subprocess
import sys
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402


def f32(*v):
    return np.array(v, dtype="<f4").tobytes()


class WritebackBase(W.LenetBase):
    def setUp(self):
        super().setUp()
        # the generator and the reference agree (sanity of the oracle)
        W.check_ckpt(self, self.src, self.base, label="fresh lenet")

    def assertCommitFails(self, m, err=errno.EINVAL, path=None,
                          what="commit"):
        e = m.commit(path)
        self.assertEqual(W.errno_name(e), W.errno_name(err),
                         "%s: fsync must fail with %s" % (
                             what, W.errno_name(err)))
        return m.error()

    def assertMountShows(self, m, expected):
        """Listing order, sizes, xattrs and data of the mount."""
        self.assertEqual(m.names(), [W.escape_name(p["name"])
                                     for p in expected], "mount listing")
        for p in expected:
            fp = m.p(p["name"])
            self.assertEqual(W.read_bytes(fp), p["data"],
                             "data of %r in the mount" % p["name"])
            self.assertEqual(W.getx(fp, "user.dtype"), p["dtype"],
                             "user.dtype of %r" % p["name"])
            self.assertEqual(W.getx(fp, "user.shape"),
                             W.shape_str(p["shape"]),
                             "user.shape of %r" % p["name"])


class TestSeedScenarios(WritebackBase):
    """The scenarios of the issue, each committed at unmount."""

    def test_delete_conv1_weight(self):
        m = self.mount()
        os.unlink(m.p("conv1.weight"))
        self.assertFalse(os.path.exists(m.p("conv1.weight")))
        m.unmount()
        W.check_ckpt(self, self.src, W.remove(self.base, "conv1.weight"))

    def test_add_conv2_weight_zeros_after_delete(self):
        m = self.mount()
        os.unlink(m.p("conv2.weight"))
        z = np.zeros((16, 6, 5, 5), dtype="<f4")
        z.tofile(m.p("conv2.weight"))
        # deleted and created again before a commit (rm + cp, tar): the
        # new file takes the old one's place, dtype and shape, as its
        # bytes fit them (docs/editing.md, "Replacing a parameter")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.dtype"),
                         "Float32")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.shape"),
                         "[16,6,5,5]")
        m.unmount()
        W.check_ckpt(self, self.src,
                     W.replace(self.base, "conv2.weight", data=z))

    def test_recreated_parameter_that_does_not_fit_is_bytes(self):
        m = self.mount()
        os.unlink(m.p("conv2.weight"))
        W.write_file(m.p("conv2.weight"), b"\x01\x02\x03")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.dtype"), "UInt8")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.shape"), "[3]")
        m.unmount()
        W.check_ckpt(self, self.src, W.replace(
            self.base, "conv2.weight", dtype="UInt8", shape=(3,),
            data=b"\x01\x02\x03"))

    def test_add_zeros_as_new_name(self):
        m = self.mount()
        z = np.zeros((16, 6, 5, 5), dtype="<f4")
        z.tofile(m.p("conv2.weight_zero"))
        W.set_meta(m.p("conv2.weight_zero"), "Float32", "[16, 6, 5, 5]")
        m.unmount()
        W.check_ckpt(self, self.src, self.base + [
            W.param("conv2.weight_zero", "Float32", (16, 6, 5, 5), z)])

    def test_overwrite_conv2_weight_with_zeros_in_place(self):
        m = self.mount()
        z = np.zeros((16, 6, 5, 5), dtype="<f4")
        with open(m.p("conv2.weight"), "r+b") as f:
            f.write(z.tobytes())
        m.unmount()
        W.check_ckpt(self, self.src, W.replace(self.base, "conv2.weight",
                                               data=z.tobytes()))

    def test_bias_to_ones(self):
        # this LeNet has no conv biases: fc2.bias is changed in place and a
        # conv2.bias of ones is added
        m = self.mount()
        ones84 = np.ones(84, dtype="<f4")
        with open(m.p("fc2.bias"), "r+b") as f:
            f.write(ones84.tobytes())
        ones16 = np.ones(16, dtype="<f4")
        ones16.tofile(m.p("conv2.bias"))
        W.set_meta(m.p("conv2.bias"), "float32")  # numpy alias, shape inferred
        self.assertEqual(W.getx(m.p("conv2.bias"), "user.shape"), "[16]")
        self.assertEqual(W.getx(m.p("conv2.bias"), "user.dtype"), "Float32")
        m.unmount()
        want = W.replace(self.base, "fc2.bias", data=ones84.tobytes())
        want.append(W.param("conv2.bias", "Float32", (16,), ones16))
        W.check_ckpt(self, self.src, want)

    def test_learning_rate_and_epoch_num(self):
        m = self.mount()
        lr = f32(0.001)
        tmp = os.path.join(self.dir, "lr.bin")
        W.write_file(tmp, lr)
        r = subprocess.run(["dd", "if=" + tmp, "of=" + m.p("learning_rate"),
                            "conv=notrunc", "status=none"],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        ep = np.int64(7).tobytes()
        with open(m.p("epoch_num"), "wb") as f:  # "> epoch_num"
            f.write(ep)
        self.assertEqual(W.getx(m.p("epoch_num"), "user.shape"), "[]")
        self.assertEqual(W.read_bytes(m.p("learning_rate")), lr)
        m.unmount()
        want = W.replace(self.base, "learning_rate", data=lr)
        want = W.replace(want, "epoch_num", data=ep)
        W.check_ckpt(self, self.src, want)

    def test_rename_all_moments(self):
        m = self.mount()
        names = [n for n in m.names() if n.startswith("moments.")]
        self.assertEqual(len(names), 8)
        for n in names:
            r = subprocess.run(["mv", os.path.join(m.mnt, n),
                                os.path.join(m.mnt, "momentum_buf." +
                                             n[len("moments."):])],
                               stderr=subprocess.PIPE)
            self.assertEqual(r.returncode, 0, r.stderr)
        m.unmount()
        want = []
        for p in self.base:
            q = dict(p)
            if q["name"].startswith("moments."):
                q["name"] = "momentum_buf." + q["name"][len("moments."):]
            want.append(q)
        W.check_ckpt(self, self.src, want)  # renamed: same positions

    def test_create_new_checkpoint(self):
        out = os.path.join(self.dir, "new.ckpt")
        m = self.mount("-o", "create", source=out)
        self.assertEqual(m.names(), [])
        rng = np.random.default_rng(5)
        w = rng.standard_normal((4, 3, 2)).astype("<f4")
        b = np.arange(5, dtype="<i8")
        h = rng.standard_normal(6).astype("<f2")
        lr = np.float32(0.25)
        raw = np.arange(7, dtype=np.uint8)
        w.tofile(m.p("layer.weight"))
        b.tofile(m.p("layer.index"))
        h.tofile(m.p("half/precision"))   # name with '/': file half%2Fprecision
        np.array(lr).tofile(m.p("lr"))
        raw.tofile(m.p("raw"))
        outside = os.path.join(self.dir, "ids.bin")
        ids = np.array([3, 1, 4, 1, 5, 9], dtype="<i4")
        ids.tofile(outside)
        subprocess.run(["cp", outside, m.p("ids")], check=True)
        W.set_meta(m.p("ids"), "Int32", "[2,3]")
        self.assertIn("half%2Fprecision", m.names())
        subprocess.run(["setfattr", "-n", "user.dtype", "-v", "Float32",
                        m.p("layer.weight")], check=True)
        subprocess.run(["setfattr", "-n", "user.shape", "-v", "4,3,2",
                        m.p("layer.weight")], check=True)
        W.set_meta(m.p("layer.index"), "int64")          # inferred [5]
        W.set_meta(m.p("half/precision"), "Float16", "[2, 3]")
        W.set_meta(m.p("lr"), "Float32", "[]")
        m.unmount()
        W.check_ckpt(self, out, [
            W.param("layer.weight", "Float32", (4, 3, 2), w),
            W.param("layer.index", "Int64", (5,), b),
            W.param("half/precision", "Float16", (2, 3), h),
            W.param("lr", "Float32", (), np.array(lr)),
            W.param("raw", "UInt8", (7,), raw),
            W.param("ids", "Int32", (2, 3), ids),
        ])


class TestCommitSemantics(WritebackBase):

    def test_no_change_no_write(self):
        before = W.file_state(self.src)
        m = self.mount()
        self.assertMountShows(m, self.base)
        os.listdir(m.mnt)
        os.stat(m.p("fc1.weight"))
        os.listxattr(m.p("fc1.weight"))
        # opening for writing without writing, and setting the current
        # dtype / shape, change nothing
        with open(m.p("fc1.bias"), "r+b"):
            pass
        W.set_meta(m.p("fc1.bias"), "Float32", "[120]")
        self.assertCommitOK(m)
        self.assertUntouched(before, what="fsync without changes")
        m.unmount()
        self.assertUntouched(before, what="unmount without changes")
        # and with 'ckpt umount'
        m = self.mount()
        W.read_bytes(m.p("conv1.weight"))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertUntouched(before, what="ckpt umount without changes")

    def test_recommit_unchanged_tree_identical_bytes(self):
        m = self.mount()
        z = np.full(10, 3.0, dtype="<f4")
        with open(m.p("fc3.bias"), "r+b") as f:
            f.write(z.tobytes())
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc3.bias", data=z.tobytes())
        W.check_ckpt(self, self.src, want)
        first = W.file_state(self.src)
        # setting a dtype to its current value: nothing to write
        W.set_meta(m.p("fc3.bias"), "Float32")
        W.set_meta(m.p("conv1.weight"), "float32", "6,1,5,5")
        self.assertCommitOK(m)
        self.assertEqual(W.file_state(self.src)[2:], first[2:],
                         "re-commit of an unchanged tree changed the bytes")
        # rewriting the same bytes is a change, but the output is the same
        with open(m.p("fc3.bias"), "r+b") as f:
            f.write(z.tobytes())
        self.assertCommitOK(m)
        self.assertEqual(W.file_state(self.src)[2:], first[2:],
                         "rewriting identical data changed the bytes")
        m.unmount()
        self.assertEqual(W.file_state(self.src)[2:], first[2:])

    def test_atomic_replace_new_inode(self):
        old = W.read_bytes(self.src)
        old_ino = os.stat(self.src).st_ino
        keep = open(self.src, "rb")
        self.addCleanup(keep.close)
        m = self.mount()
        os.unlink(m.p("fc3.bias"))
        self.assertCommitOK(m)
        self.assertNotEqual(os.stat(self.src).st_ino, old_ino,
                            "a commit must replace the file (new inode)")
        keep.seek(0)
        self.assertEqual(keep.read(), old, "the old inode was modified in "
                         "place instead of being replaced")
        W.check_ckpt(self, self.src, W.remove(self.base, "fc3.bias"))
        self.assertEqual(W.stray_files(self.dir, ["lenet.ckpt"]), [],
                         "temporary files left beside the checkpoint")
        m.unmount()

    def test_output_option(self):
        before = W.file_state(self.src)
        out = os.path.join(self.dir, "out.ckpt")
        m = self.mount("-o", "output=" + out)
        os.unlink(m.p("conv1.weight"))
        self.assertCommitOK(m)
        self.assertUntouched(before, what="-o output")
        want = W.remove(self.base, "conv1.weight")
        W.check_ckpt(self, out, want)
        # further commits go to the output too
        W.write_file(m.p("extra"), b"\x01\x02\x03")
        m.unmount()
        self.assertUntouched(before, what="-o output after unmount")
        W.check_ckpt(self, out, want + [W.param("extra", "UInt8", (3,),
                                                b"\x01\x02\x03")])

    def test_commit_on_fsync_of_file(self):
        m = self.mount()
        ones = np.ones(10, dtype="<f4").tobytes()
        fd = os.open(m.p("fc3.bias"), os.O_WRONLY)
        try:
            os.write(fd, ones)
            os.fsync(fd)
        finally:
            os.close(fd)
        want = W.replace(self.base, "fc3.bias", data=ones)
        W.check_ckpt(self, self.src, want, label="after fsync(file)")
        # fsync of an unrelated, read-only file commits the whole tree
        os.unlink(m.p("fc2.bias"))
        want = W.remove(want, "fc2.bias")
        self.assertCommitOK(m, m.p("fc1.bias"))
        W.check_ckpt(self, self.src, want, label="after fsync(other file)")
        m.unmount()
        W.check_ckpt(self, self.src, want)

    def test_commit_on_fsync_of_dir_and_continue(self):
        m = self.mount()
        want = self.base
        # several commits in a row; the mount continues on the new file
        for i in range(4):
            v = np.full(10, float(i), dtype="<f4").tobytes()
            W.pwrite_file(m.p("fc3.bias"), v, 0)
            W.write_file(m.p("step%d" % i), bytes([i]) * (i + 1))
            want = W.replace(want, "fc3.bias", data=v)
            want = want + [W.param("step%d" % i, "UInt8", (i + 1,),
                                   bytes([i]) * (i + 1))]
            ino = os.stat(self.src).st_ino
            self.assertCommitOK(m, what="commit %d" % i)
            self.assertNotEqual(os.stat(self.src).st_ino, ino)
            W.check_ckpt(self, self.src, want, label="commit %d" % i)
            self.assertMountShows(m, want)
        os.rename(m.p("step0"), m.p("step0.renamed"))
        want = [dict(p, name="step0.renamed") if p["name"] == "step0" else p
                for p in want]
        self.assertCommitOK(m)
        W.check_ckpt(self, self.src, want, label="rename after commits")
        m.unmount()
        W.check_ckpt(self, self.src, want)

    def test_shape_mismatch_einval_then_fix(self):
        before = W.file_state(self.src)
        m = self.mount()
        W.set_meta(m.p("conv1.weight"), shape="6,1,5,4")
        ones = np.ones(10, dtype="<f4").tobytes()
        W.pwrite_file(m.p("fc3.bias"), ones, 0)
        msg = self.assertCommitFails(m)
        for part in ("conv1.weight", "[6,1,5,4]", "Float32", "600"):
            self.assertIn(part, msg, "commit error must name the parameter, "
                          "shape, dtype and byte count: %r" % msg)
        self.assertUntouched(before, what="failed commit")
        # the mount is still usable, with all edits
        self.assertEqual(W.getx(m.p("conv1.weight"), "user.shape"),
                         "[6,1,5,4]")
        self.assertEqual(W.read_bytes(m.p("fc3.bias")), ones)
        self.assertEqual(W.read_bytes(m.p("conv1.weight")),
                         W.find(self.base, "conv1.weight")["data"])
        # fsync of a file fails the same way
        self.assertCommitFails(m, path=m.p("fc3.bias"))
        self.assertUntouched(before, what="second failed commit")
        W.set_meta(m.p("conv1.weight"), shape="[150]")
        self.assertCommitOK(m)
        self.assertEqual(m.error(), "", "error cleared after a good commit")
        want = W.replace(self.base, "conv1.weight", shape=(150,))
        want = W.replace(want, "fc3.bias", data=ones)
        W.check_ckpt(self, self.src, want)
        m.unmount()
        W.check_ckpt(self, self.src, want)

    def test_overflowing_shape(self):
        before = W.file_state(self.src)
        m = self.mount()
        big = "[4294967296,4294967296,4294967296]"
        # refused where the mistake is made, not at the commit
        self.assertOSError(errno.EINVAL, os.setxattr, m.p("fc3.bias"),
                           "user.shape", big.encode(),
                           what="setxattr of an overflowing shape")
        self.assertEqual(W.getx(m.p("fc3.bias"), "user.shape"), "[10]")
        # and a dtype that would make the current shape overflow
        W.set_meta(m.p("fc3.bias"), shape="[2305843009213693952]")  # 2^63 B
        self.assertOSError(errno.EINVAL, os.setxattr, m.p("fc3.bias"),
                           "user.dtype", b"Float64",
                           what="setxattr of a dtype that overflows")
        self.assertEqual(W.getx(m.p("fc3.bias"), "user.dtype"), "Float32")
        os.removexattr(m.p("fc3.bias"), "user.shape")
        self.assertCommitOK(m)
        m.unmount()
        W.check_ckpt(self, self.src, self.base)

    def test_dtype_change_makes_mismatch(self):
        before = W.file_state(self.src)
        m = self.mount()
        # a stored parameter's shape is explicit: Float16 [10] is 20 bytes
        W.set_meta(m.p("fc3.bias"), "Float16")
        self.assertEqual(W.getx(m.p("fc3.bias"), "user.shape"), "[10]")
        msg = self.assertCommitFails(m)
        self.assertIn("fc3.bias", msg)
        self.assertUntouched(before)
        W.set_meta(m.p("fc3.bias"), shape="[20]")
        self.assertCommitOK(m)
        m.unmount()
        W.check_ckpt(self, self.src, W.replace(
            self.base, "fc3.bias", dtype="Float16", shape=(20,)))

    def test_empty_new_parameter_fails(self):
        before = W.file_state(self.src)
        m = self.mount()
        subprocess.run(["touch", m.p("empty")], check=True)
        self.assertEqual(os.path.getsize(m.p("empty")), 0)
        msg = self.assertCommitFails(m)
        self.assertIn("empty", msg)
        self.assertUntouched(before)
        # also with a dtype set
        W.set_meta(m.p("empty"), "Float32")
        self.assertCommitFails(m)
        self.assertUntouched(before)
        W.write_file(m.p("empty"), f32(1.5, 2.5))
        self.assertCommitOK(m)
        m.unmount()
        W.check_ckpt(self, self.src, self.base + [
            W.param("empty", "Float32", (2,), f32(1.5, 2.5))])

    def test_empty_str_parameter_fails(self):
        # MindSpore writes at least 4 bytes for a str (an empty string is
        # one NUL code point); 0 bytes cannot be loaded (ckref refuses it)
        before = W.file_state(self.src)
        m = self.mount()
        W.write_file(m.p("note"), b"")
        W.set_meta(m.p("note"), "str")
        self.assertCommitFails(m, what="commit with an empty str parameter")
        self.assertUntouched(before)
        W.write_file(m.p("note"), "hi".encode("utf-32-le"))
        self.assertCommitOK(m)
        m.unmount()
        W.check_ckpt(self, self.src, self.base + [
            W.param("note", "str", (), "hi".encode("utf-32-le"))],
            exact=True)


class TestXattrs(WritebackBase):

    def test_setxattr_parsing(self):
        m = self.mount()
        fp = m.p("conv1.weight")
        for v in ("6,1,5,5", "[6, 1, 5, 5]", "[6,1,5,5]", " 6, 1,5 ,5 "):
            W.set_meta(fp, shape=v)
            self.assertEqual(W.getx(fp, "user.shape"), "[6,1,5,5]", v)
        W.set_meta(fp, shape="150")
        self.assertEqual(W.getx(fp, "user.shape"), "[150]")
        for v in ("Float32", "float32"):
            W.set_meta(fp, dtype=v)
            self.assertEqual(W.getx(fp, "user.dtype"), "Float32")
        for bad in ("Float33", "float", "", "FLOAT32", "Float32x", "int",
                    "f4", "Int 32"):
            self.assertOSError(errno.EINVAL, W.setx, fp, "user.dtype", bad,
                               what="setxattr user.dtype=%r" % bad)
            self.assertEqual(W.getx(fp, "user.dtype"), "Float32")
        for bad in ("6,,1", "[6,1", "6,1]", "6 1", "abc", "-1", "1.5",
                    "[6,1]]", "", "[0]", "6;1", "[[6]]",
                    "99999999999999999999"):
            self.assertOSError(errno.EINVAL, W.setx, fp, "user.shape", bad,
                               what="setxattr user.shape=%r" % bad)
            self.assertEqual(W.getx(fp, "user.shape"), "[150]")
        # "[]" for a scalar
        W.set_meta(m.p("fc3.bias"), shape="[]")
        self.assertEqual(W.getx(m.p("fc3.bias"), "user.shape"), "[]")
        W.set_meta(m.p("fc3.bias"), shape="[10]")
        # aliases for other dtypes
        for alias, name in (("int64", "Int64"), ("uint8", "UInt8"),
                            ("float16", "Float16"), ("bool", "Bool"),
                            ("Int32", "Int32"), ("BFloat16", "BFloat16")):
            W.set_meta(m.p("epoch_num"), dtype=alias)
            self.assertEqual(W.getx(m.p("epoch_num"), "user.dtype"), name)
        W.set_meta(m.p("epoch_num"), dtype="Int64")
        # removexattr user.shape: inferred again
        os.removexattr(m.p("conv2.weight"), "user.shape")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.shape"), "[2400]")
        W.set_meta(m.p("conv2.weight"), dtype="Float16")
        self.assertEqual(W.getx(m.p("conv2.weight"), "user.shape"), "[4800]")
        W.set_meta(m.p("conv2.weight"), dtype="Float32")
        m.unmount()
        want = W.replace(self.base, "conv1.weight", shape=(150,))
        want = W.replace(want, "conv2.weight", shape=(2400,))
        W.check_ckpt(self, self.src, want)

    def test_new_file_inferred_shape(self):
        m = self.mount()
        fp = m.p("fresh")
        W.write_file(fp, bytes(range(24)))
        self.assertEqual(W.getx(fp, "user.dtype"), "UInt8")
        self.assertEqual(W.getx(fp, "user.shape"), "[24]")
        self.assertIn("user.dtype", os.listxattr(fp))
        W.set_meta(fp, dtype="Float32")
        self.assertEqual(W.getx(fp, "user.shape"), "[6]")
        W.set_meta(fp, dtype="Int16")
        self.assertEqual(W.getx(fp, "user.shape"), "[12]")
        with open(fp, "ab") as f:
            f.write(b"\0\0\0\0")
        self.assertEqual(W.getx(fp, "user.shape"), "[14]")
        W.set_meta(fp, shape="7,2")
        os.removexattr(fp, "user.shape")
        self.assertEqual(W.getx(fp, "user.shape"), "[14]")
        W.set_meta(fp, dtype="Float64")
        # 28 bytes are not a whole number of Float64
        self.assertCommitFails(m)
        W.set_meta(fp, dtype="Int32")
        self.assertCommitOK(m)
        m.unmount()
        W.check_ckpt(self, self.src, self.base + [
            W.param("fresh", "Int32", (7,), bytes(range(24)) + b"\0" * 4)])


class TestNamespaceOps(WritebackBase):

    def test_mkdir_link_symlink_eperm(self):
        before = W.file_state(self.src)
        m = self.mount()
        self.assertOSError(errno.EPERM, os.mkdir, os.path.join(m.mnt, "d"),
                           what="mkdir")
        self.assertOSError(errno.EPERM, os.link, m.p("fc1.bias"),
                           os.path.join(m.mnt, "hard"), what="link")
        self.assertOSError(errno.EPERM, os.symlink, "fc1.bias",
                           os.path.join(m.mnt, "soft"), what="symlink")
        self.assertEqual(m.names(), [p["name"] for p in self.base])
        m.unmount()
        self.assertUntouched(before)

    def test_chmod_touch_succeed(self):
        before = W.file_state(self.src)
        m = self.mount()
        os.chmod(m.p("fc1.bias"), 0o600)
        os.chmod(m.mnt, 0o700)
        os.utime(m.p("fc1.bias"), (1000000, 1000000))
        subprocess.run(["touch", m.p("fc2.bias")], check=True)
        subprocess.run(["chmod", "a+r", m.p("fc2.bias")], check=True)
        self.assertEqual(W.read_bytes(m.p("fc1.bias")),
                         W.find(self.base, "fc1.bias")["data"])
        m.unmount()
        self.assertUntouched(before, what="chmod/touch only")

    def test_cp_a_between_mounts(self):
        other = W.make_lenet(os.path.join(self.dir, "other.ckpt"))
        a = self.mount()
        b = self.mount(source=other)
        # give a parameter of A a shape that differs from the inferred one
        W.set_meta(a.p("fc1.weight"), shape="[400, 120]")
        for src, dst in (("fc1.weight", "copied.fc1.weight"),
                         ("learning_rate", "copied.lr"),
                         ("global_step", "copied.step")):
            r = subprocess.run(["cp", "-a", a.p(src), b.p(dst)],
                               stderr=subprocess.PIPE)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(W.getx(b.p("copied.fc1.weight"), "user.shape"),
                         "[400,120]")
        self.assertEqual(W.getx(b.p("copied.fc1.weight"), "user.dtype"),
                         "Float32")
        self.assertEqual(W.getx(b.p("copied.lr"), "user.shape"), "[]")
        self.assertEqual(W.getx(b.p("copied.step"), "user.dtype"), "Int32")
        b.unmount()
        base = {p["name"]: p for p in self.base}
        W.check_ckpt(self, other, self.base + [
            W.param("copied.fc1.weight", "Float32", (400, 120),
                    base["fc1.weight"]["data"]),
            W.param("copied.lr", "Float32", (),
                    base["learning_rate"]["data"]),
            W.param("copied.step", "Int32", (1,),
                    base["global_step"]["data"]),
        ])
        a.unmount()
        W.check_ckpt(self, self.src, W.replace(self.base, "fc1.weight",
                                               shape=(400, 120)))

    def test_mv_replaces(self):
        m = self.mount()
        r = subprocess.run(["mv", m.p("fc1.bias"), m.p("fc2.bias")],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(m.p("fc1.bias")))
        self.assertEqual(os.path.getsize(m.p("fc2.bias")), 480)
        self.assertEqual(W.getx(m.p("fc2.bias"), "user.shape"), "[120]")
        # os.rename over an existing new file too
        W.write_file(m.p("tmpname"), f32(9, 9))
        os.rename(m.p("tmpname"), m.p("fc3.bias"))
        m.unmount()
        want = []
        b = {p["name"]: p for p in self.base}
        for p in self.base:
            if p["name"] == "fc1.bias":   # moved away
                continue
            elif p["name"] == "fc2.bias":  # replaced in its place
                want.append(dict(b["fc1.bias"], name="fc2.bias"))
            elif p["name"] == "fc3.bias":  # 8 bytes do not fit [10]
                want.append(W.param("fc3.bias", "UInt8", (8,), f32(9, 9)))
            else:
                want.append(p)
        self.assertEqual(b["fc1.bias"]["data"], W.find(want, "fc2.bias")
                         ["data"])
        W.check_ckpt(self, self.src, want)

    def test_rename_errors_and_escaped_names(self):
        m = self.mount()
        self.assertOSError(errno.ENOENT, os.rename,
                           os.path.join(m.mnt, "nope"), m.p("x"))
        # the "%" escape must be valid
        self.assertOSError(errno.EINVAL, os.rename, m.p("fc3.bias"),
                           os.path.join(m.mnt, "bad%zz"),
                           what="rename to an invalid escaped name")
        os.rename(m.p("fc3.bias"), m.p("fc3/bias%"))  # -> fc3%2Fbias%25
        self.assertIn("fc3%2Fbias%25", m.names())
        m.unmount()
        want = [dict(p, name="fc3/bias%") if p["name"] == "fc3.bias" else p
                for p in self.base]
        W.check_ckpt(self, self.src, want)


class TestDataOps(WritebackBase):

    def test_memmap_r_plus(self):
        m = self.mount()
        mm = np.memmap(m.p("fc1.weight"), dtype="<f4", mode="r+",
                       shape=(120, 400))
        mm[3, :] = 1.0
        mm[:, 7] = -2.0
        mm.flush()
        expect = np.array(mm)
        del mm
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc1.weight", data=expect.tobytes())
        W.check_ckpt(self, self.src, want)
        m.unmount()
        W.check_ckpt(self, self.src, want)

    def test_truncating_write_coherent_with_readers_and_maps(self):
        """A write-only truncating open bypasses the page cache (direct_io
        on kernels >= 6.6); readers and shared maps opened before must still
        see every byte it writes."""
        import mmap
        m = self.mount()
        p = m.p("fc1.weight")
        n = os.path.getsize(p)
        r = os.open(p, os.O_RDONLY)
        try:
            self.assertEqual(os.pread(r, n, 0),
                             W.find(self.base, "fc1.weight")["data"])
            mm = mmap.mmap(r, n, mmap.MAP_SHARED, mmap.PROT_READ)
            a = np.arange(n // 4, dtype="<f4").tobytes()
            b = bytes(range(256)) * 32
            w = os.open(p, os.O_WRONLY | os.O_TRUNC)
            try:
                self.assertEqual(os.write(w, a), n)
                self.assertEqual(os.pread(r, n, 0), a, "reader after write")
                self.assertEqual(mm[:], a, "shared map after write")
                os.pwrite(w, b, 4096 + 3)
                want = a[:4099] + b + a[4099 + len(b):]
                self.assertEqual(os.pread(r, n, 0), want, "reader, rewrite")
                self.assertEqual(mm[:], want, "shared map, rewrite")
            finally:
                os.close(w)
            self.assertEqual(W.read_bytes(p), want, "a new open")
            mm.close()
        finally:
            os.close(r)
        self.assertCommitOK(m)
        W.check_ckpt(self, self.src,
                     W.replace(self.base, "fc1.weight", data=want))

    def test_truncate_append_replace(self):
        m = self.mount()
        b = {p["name"]: p for p in self.base}
        # truncate: the shape stays explicit -> mismatch until fixed
        subprocess.run(["truncate", "-s", "20", m.p("fc3.bias")], check=True)
        self.assertEqual(os.path.getsize(m.p("fc3.bias")), 20)
        self.assertCommitFails(m)
        W.set_meta(m.p("fc3.bias"), shape="5")
        # append
        with open(m.p("fc2.bias"), "ab") as f:
            f.write(f32(*range(10)))
        W.set_meta(m.p("fc2.bias"), shape="[94]")
        # zero-extend with truncate
        os.truncate(m.p("fc1.bias"), 960)
        os.removexattr(m.p("fc1.bias"), "user.shape")
        # replace content with "> file" and a different size
        with open(m.p("global_step"), "wb") as f:
            f.write(np.array([1, 2, 3], dtype="<i4").tobytes())
        W.set_meta(m.p("global_step"), shape="3")
        # cp from outside over an existing parameter (same size)
        src = os.path.join(self.dir, "bias.bin")
        np.arange(84, dtype="<f4").tofile(src)
        subprocess.run(["cp", src, m.p("moments.fc2.bias")], check=True)
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc3.bias", shape=(5,),
                         data=b["fc3.bias"]["data"][:20])
        want = W.replace(want, "fc2.bias", shape=(94,),
                         data=b["fc2.bias"]["data"] + f32(*range(10)))
        want = W.replace(want, "fc1.bias", shape=(240,),
                         data=b["fc1.bias"]["data"] + bytes(480))
        want = W.replace(want, "global_step", shape=(3,),
                         data=np.array([1, 2, 3], dtype="<i4").tobytes())
        want = W.replace(want, "moments.fc2.bias",
                         data=np.arange(84, dtype="<f4").tobytes())
        W.check_ckpt(self, self.src, want)
        self.assertMountShows(m, want)
        # truncate to 0: an empty parameter cannot be committed
        os.truncate(m.p("fc3.bias"), 0)
        self.assertCommitFails(m)
        os.unlink(m.p("fc3.bias"))
        want = W.remove(want, "fc3.bias")
        m.unmount()
        W.check_ckpt(self, self.src, want)

    def test_ro_option_erofs(self):
        before = W.file_state(self.src)
        m = self.mount("-o", "ro")
        fp = m.p("fc1.bias")
        self.assertEqual(W.read_bytes(fp), W.find(self.base,
                                                  "fc1.bias")["data"])

        def open_w():
            os.close(os.open(fp, os.O_WRONLY))
        self.assertOSError(errno.EROFS, open_w, what="open for writing")
        self.assertOSError(errno.EROFS, W.write_file,
                           os.path.join(m.mnt, "new"), b"x", what="create")
        self.assertOSError(errno.EROFS, os.truncate, fp, 0, what="truncate")
        self.assertOSError(errno.EROFS, os.unlink, fp, what="unlink")
        self.assertOSError(errno.EROFS, os.rename, fp, m.p("x"),
                           what="rename")
        self.assertOSError(errno.EROFS, W.setx, fp, "user.dtype", "Int8",
                           what="setxattr")
        self.assertEqual(m.commit(), 0, "fsync of a read-only mount")
        m.unmount()
        self.assertUntouched(before, what="-o ro")


class TestUnmount(WritebackBase):

    def test_ckpt_umount_success(self):
        m = self.mount()
        os.unlink(m.p("conv1.weight"))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertFalse(m.mounted())
        self.assertFalse(M.pid_alive(m.pid), "ckpt umount returned before "
                         "the daemon exited")
        W.check_ckpt(self, self.src, W.remove(self.base, "conv1.weight"))

    def test_ckpt_umount_failure_then_retry(self):
        before = W.file_state(self.src)
        m = self.mount()
        W.set_meta(m.p("fc2.weight"), shape="84,121")
        z = np.zeros(10, dtype="<f4").tobytes()
        W.pwrite_file(m.p("fc3.bias"), z, 0)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 1, r.describe())
        self.assertIn("fc2.weight", r.errtext)
        self.assertIn("[84,121]", r.errtext)
        self.assertTrue(m.mounted(), "a failed 'ckpt umount' must leave "
                        "the mount in place")
        self.assertTrue(M.pid_alive(m.pid))
        self.assertUntouched(before, what="failed ckpt umount")
        self.assertEqual(W.read_bytes(m.p("fc3.bias")), z)
        self.assertEqual(W.getx(m.p("fc2.weight"), "user.shape"), "[84,121]")
        self.assertIn("fc2.weight", m.error())
        W.set_meta(m.p("fc2.weight"), shape="[84, 120]")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertFalse(m.mounted())
        W.check_ckpt(self, self.src, W.replace(self.base, "fc3.bias",
                                               data=z))

    def test_recovery_checkpoint_at_unmount(self):
        before = W.file_state(self.src)
        m = self.mount()
        W.set_meta(m.p("conv1.weight"), shape="[6,1,5,4]")
        z = np.zeros(10, dtype="<f4").tobytes()
        W.pwrite_file(m.p("fc3.bias"), z, 0)
        W.write_file(m.p("added"), f32(1, 2, 3))
        W.set_meta(m.p("added"), "Float32")
        os.unlink(m.p("fc1.bias"))
        pid = m.pid
        m.unmount()   # plain fusermount3 -u: the commit fails
        self.assertUntouched(before, what="failed commit at unmount")
        rec = glob.glob(glob.escape(self.src) + ".recovery-*.ckpt")
        self.assertEqual(len(rec), 1, "expected one recovery checkpoint "
                         "beside the target, found %s in %s" % (
                             rec, os.listdir(self.dir)))
        self.assertRegex(os.path.basename(rec[0]),
                         r"^lenet\.ckpt\.recovery-\d{8}-\d{6}-[0-9a-z]{8}"
                         r"\.ckpt$")
        got = ckref.load(rec[0])
        got = {p.name: p for p in got}
        want = W.remove(W.replace(self.base, "fc3.bias", data=z), "fc1.bias")
        want.append(W.param("added", "Float32", (3,), f32(1, 2, 3)))
        self.assertEqual(sorted(got), sorted(p["name"] for p in want))
        for p in want:
            self.assertEqual(got[p["name"]].data, p["data"], p["name"])
            if p["name"] != "conv1.weight":
                self.assertEqual(got[p["name"]].dtype, p["dtype"])
                self.assertEqual(got[p["name"]].shape, p["shape"])
        self.assertEqual(got["conv1.weight"].dtype, "Float32")
        # the daemon leaves a status file for 'ckpt umount'; nobody read it
        st = M.take_status(pid)
        self.assertIsNotNone(st, "no status file for the failed commit")
        self.assertIn(os.path.basename(rec[0]), st)


    def test_recovery_never_replaces_an_existing_file(self):
        # two failed unmounts within one second must not lose the first
        # recovery checkpoint: files already named like the recovery of
        # this second (and the next ones) must survive
        tmpdir = os.path.join(self.dir, "tmpdir")
        os.mkdir(tmpdir)
        now = time.time()
        sentinels = {}
        for dt in range(-2, 60):
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + dt))
            p = "%s.recovery-%s.ckpt" % (self.src, stamp)
            sentinels[p] = b"earlier recovery " + stamp.encode()
            W.write_file(p, sentinels[p])
        with W.environ(TMPDIR=tmpdir):
            m = self.mount()
        W.set_meta(m.p("conv1.weight"), shape="[6,1,5,4]")
        W.write_file(m.p("added"), b"\x01\x02")
        pid = m.pid
        m.unmount()
        M.take_status(pid)
        for p, data in sentinels.items():
            if W.read_bytes(p) != data:
                self.fail("an earlier recovery checkpoint (%s) was replaced "
                          "by the new one" % os.path.basename(p))
        new = [p for p in glob.glob(os.path.join(self.dir, "*.recovery-*"))
               + glob.glob(os.path.join(tmpdir, "*.recovery-*"))
               if p not in sentinels]
        self.assertEqual(len(new), 1, "expected one new recovery "
                         "checkpoint: %s" % new)
        got = {p.name: p for p in ckref.load(new[0])}
        self.assertEqual(got["added"].data, b"\x01\x02")

class TestScalarForms(unittest.TestCase):
    """An older file whose scalars are written with dims [0]."""

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        self.dir = W.tempdir(self)
        self.base = W.lenet_params()
        self.src = os.path.join(self.dir, "old.ckpt")
        ckref.write(self.src, self.base, scalar_form="[0]")

    def expected(self, params, changed):
        return b"".join(ckref.dumps([p], scalar_form="[]" if p["name"] in
                                    changed else "[0]") for p in params)

    def test_untouched_zero_form_scalars_kept(self):
        m = M.mount(self, self.src)
        ones = np.ones(10, dtype="<f4").tobytes()
        W.pwrite_file(m.p("fc3.bias"), ones, 0)
        m.unmount()
        want = W.replace(self.base, "fc3.bias", data=ones)
        W.check_ckpt(self, self.src, want, exact=False)
        raw = W.read_bytes(self.src)
        exp = self.expected(want, {"fc3.bias"})
        if raw != exp:
            self.fail("untouched [0] scalars must keep their bytes (first "
                      "difference at %d)" % W.first_diff(raw, exp))

    def test_changed_scalar_written_as_mindspore_23(self):
        m = M.mount(self, self.src)
        lr = f32(0.5)
        W.pwrite_file(m.p("learning_rate"), lr, 0)
        m.unmount()
        want = W.replace(self.base, "learning_rate", data=lr)
        W.check_ckpt(self, self.src, want, exact=False)
        raw = W.read_bytes(self.src)
        exp = self.expected(want, {"learning_rate"})
        if raw != exp:
            self.fail("a changed scalar must be written as MindSpore >= 2.3 "
                      "does (dims []), untouched ones keep [0] (first "
                      "difference at %d: %r / expected %r)" % (
                          W.first_diff(raw, exp),
                          raw[W.first_diff(raw, exp) - 20:][:40],
                          exp[W.first_diff(raw, exp) - 20:][:40]))



    def check_zero_form(self, want, changed):
        W.check_ckpt(self, self.src, want, exact=False)
        raw = W.read_bytes(self.src)
        exp = self.expected(want, changed)
        if raw != exp:
            i = W.first_diff(raw, exp)
            self.fail("changed scalars %s must be written as MindSpore >= "
                      "2.3 does (dims []), untouched ones keep [0] (first "
                      "difference at %d: %r / expected %r)" % (
                          sorted(changed), i, raw[max(0, i - 20):][:40],
                          exp[max(0, i - 20):][:40]))

    def test_renamed_scalar_written_as_mindspore_23(self):
        m = M.mount(self, self.src)
        os.rename(m.p("momentum"), m.p("momentum.renamed"))
        m.unmount()
        want = [dict(p, name="momentum.renamed") if p["name"] == "momentum"
                else p for p in self.base]
        self.check_zero_form(want, {"momentum.renamed"})

    def test_retyped_scalar_written_as_mindspore_23(self):
        m = M.mount(self, self.src)
        W.set_meta(m.p("epoch_num"), "UInt64")
        m.unmount()
        self.check_zero_form(W.replace(self.base, "epoch_num",
                                       dtype="UInt64"), {"epoch_num"})

class TestMoreSemantics(WritebackBase):

    def test_open_unlinked_file_survives_commit(self):
        # POSIX: an open file keeps its data after unlink, also across a
        # commit that drops it from the checkpoint
        data = W.find(self.base, "fc1.bias")["data"]
        m = self.mount()
        with open(m.p("fc1.bias"), "rb") as f:
            os.unlink(m.p("fc1.bias"))
            self.assertEqual(f.read(), data, "before the commit")
            self.assertCommitOK(m)
            f.seek(0)
            got = f.read()
            self.assertEqual(len(got), len(data), "an open, unlinked "
                             "parameter lost its data at the commit")
            self.assertEqual(got, data)
        m.unmount()
        W.check_ckpt(self, self.src, W.remove(self.base, "fc1.bias"))

    def test_crc_trailer_kept(self):
        src = os.path.join(self.dir, "crc.ckpt")
        ckref.write(src, self.base, crc=True)
        m = self.mount(source=src)
        ones = np.ones(10, dtype="<f4").tobytes()
        W.pwrite_file(m.p("fc3.bias"), ones, 0)
        m.unmount()
        want = W.replace(self.base, "fc3.bias", data=ones)
        W.check_ckpt(self, src, want, exact=False)  # ckref checks the crc
        raw = W.read_bytes(src)
        self.assertEqual(raw, ckref.dumps(want, crc=True),
                         "a checkpoint with a crc_num trailer must keep one")

    def test_crc_option(self):
        m = self.mount("-o", "crc")
        os.unlink(m.p("fc3.bias"))
        m.unmount()
        want = W.remove(self.base, "fc3.bias")
        W.check_ckpt(self, self.src, want, exact=False)
        self.assertEqual(W.read_bytes(self.src), ckref.dumps(want, crc=True))


class TestTargets(WritebackBase):
    """Where and how the new file is written."""

    def test_mode_preserved(self):
        os.chmod(self.src, 0o640)
        m = self.mount()
        os.unlink(m.p("fc3.bias"))
        self.assertCommitOK(m)
        self.assertEqual(os.stat(self.src).st_mode & 0o7777, 0o640,
                         "the commit changed the file mode")
        os.chmod(self.src, 0o600)
        m = m.remount()
        os.unlink(m.p("fc2.bias"))
        m.unmount()
        self.assertEqual(os.stat(self.src).st_mode & 0o7777, 0o600)
        W.check_ckpt(self, self.src, W.remove(W.remove(
            self.base, "fc3.bias"), "fc2.bias"))

    def check_mounted_ro(self, what):
        before = W.file_state(self.src)
        m = self.mount()
        self.assertEqual(W.read_bytes(m.p("fc1.bias")),
                         W.find(self.base, "fc1.bias")["data"])
        self.assertOSError(errno.EROFS, os.unlink, m.p("fc1.bias"),
                           what=what + ": unlink")
        self.assertOSError(errno.EROFS, W.write_file, m.p("new"), b"x",
                           what=what + ": create")
        m.unmount()
        self.assertUntouched(before, what=what)

    def test_file_without_write_bits_is_read_only(self):
        # MindSpore leaves its checkpoints 0400: mounted read-only, also
        # for root
        os.chmod(self.src, 0o400)
        self.check_mounted_ro("0400 checkpoint")

    def test_dir_without_write_bits_is_read_only(self):
        os.chmod(self.dir, 0o555)
        self.addCleanup(os.chmod, self.dir, 0o755)
        self.check_mounted_ro("checkpoint in a 0555 directory")

    def test_symlinked_checkpoint(self):
        link = os.path.join(self.dir, "link.ckpt")
        os.symlink("lenet.ckpt", link)
        m = self.mount(source=link)
        os.unlink(m.p("conv1.weight"))
        m.unmount()
        self.assertTrue(os.path.islink(link), "the symlink was replaced")
        W.check_ckpt(self, self.src, W.remove(self.base, "conv1.weight"))

    def test_relative_paths(self):
        os.mkdir(os.path.join(self.dir, "out"))
        m = self.mount("-o", "output=out/rel.ckpt", source="lenet.ckpt",
                       cwd=self.dir)
        os.unlink(m.p("conv1.weight"))
        self.assertCommitOK(m)
        out = os.path.join(self.dir, "out", "rel.ckpt")
        W.check_ckpt(self, out, W.remove(self.base, "conv1.weight"))
        os.unlink(m.p("conv2.weight"))
        m.unmount()
        W.check_ckpt(self, out, W.remove(W.remove(
            self.base, "conv1.weight"), "conv2.weight"))
        W.check_ckpt(self, self.src, self.base)

    def test_stale_temporaries_do_not_block(self):
        m = self.mount()
        stale = [".lenet.ckpt.ckptfs-%d-%d" % (m.pid, i) for i in range(3)]
        for n in stale:
            W.write_file(os.path.join(self.dir, n), b"stale")
        os.unlink(m.p("fc3.bias"))
        self.assertCommitOK(m)
        W.check_ckpt(self, self.src, W.remove(self.base, "fc3.bias"))
        for n in stale:
            self.assertEqual(W.read_bytes(os.path.join(self.dir, n)),
                             b"stale", "a file that is not ours changed")
        m.unmount()

    def test_commit_is_a_snapshot_under_concurrent_writes(self):
        m = self.mount()
        stop = threading.Event()
        errors = []
        last = [0]

        def writer():
            k = 0
            fd = os.open(m.p("fc1.bias"), os.O_WRONLY)
            try:
                while not stop.is_set():
                    k += 1
                    os.pwrite(fd, np.full(120, k, dtype="<f4").tobytes(), 0)
                    last[0] = k
            except OSError as e:
                errors.append(e)
            finally:
                os.close(fd)
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        try:
            seen = []
            for _ in range(15):
                self.assertCommitOK(m)
                got = W.find(W.from_ref(ckref.load(self.src)), "fc1.bias")
                if got["data"] == W.find(self.base, "fc1.bias")["data"]:
                    seen.append(0.0)   # before the first write
                    continue
                vals = np.frombuffer(got["data"], dtype="<f4")
                self.assertTrue((vals == vals[0]).all(), "torn write in a "
                                "committed snapshot: %s" % vals[:8])
                seen.append(float(vals[0]))
        finally:
            stop.set()
            th.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(seen, sorted(seen), "snapshots went back in time")
        k = last[0]
        m.unmount()
        W.check_ckpt(self, self.src, W.replace(
            self.base, "fc1.bias",
            data=np.full(120, k, dtype="<f4").tobytes()))


SLICE = ckref.SLICE_SIZE


@unittest.skipUnless(common.BIG, "CKPT_BIG=0")
class TestSlicing(WritebackBase):
    """A parameter over 512 MiB is written as MindSpore >= 2.3 does: slices
    of exactly 536870912 bytes, each repeating the full dims; editing
    across the slice boundary of a stored sliced parameter works."""

    def files_equal(self, a, b):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            off = 0
            while True:
                x, y = fa.read(1 << 24), fb.read(1 << 24)
                if x != y:
                    self.fail("%s differs from %s near offset %d (%d / %d "
                              "bytes)" % (a, b, off + W.first_diff(x, y),
                                          os.path.getsize(a),
                                          os.path.getsize(b)))
                if not x:
                    return
                off += len(x)

    def test_sliced_parameter(self):
        n = (SLICE + 1024) // 4        # 512 MiB + 1 KiB of Float32
        big = np.arange(n, dtype="<u4").view("<f4")
        m = self.mount()
        big.tofile(m.p("huge.weight"))
        W.set_meta(m.p("huge.weight"), "Float32", [n // 256, 256])
        self.assertCommitOK(m)
        want = self.base + [W.param("huge.weight", "Float32",
                                    (n // 256, 256), b"")]
        exp = os.path.join(self.dir, "expected.ckpt")

        def write_expected(data):
            want[-1]["data"] = data
            ckref.write(exp, want)
            want[-1]["data"] = b""
            self.files_equal(self.src, exp)
            os.unlink(exp)
        write_expected(big)
        got = ckref.load(self.src)
        self.assertEqual(got[-1].nslices, 2, "expected 2 slices")
        self.assertEqual(got[-1].shape, (n // 256, 256))
        del got
        # edit across the boundary of the stored slices, after a remount
        m = m.remount()
        patch = np.full(8, -1.0, dtype="<f4").tobytes()
        W.pwrite_file(m.p("huge.weight"), patch, SLICE - 16)
        os.rename(m.p("huge.weight"), m.p("huge.renamed"))
        m.unmount()
        b = bytearray(big.tobytes())
        del big
        b[SLICE - 16:SLICE + 16] = patch
        want[-1]["name"] = "huge.renamed"
        write_expected(bytes(b))

ADDED = "ckptfs.wb/added%"     # shown as ckptfs.wb%2Fadded%25


class CarryOver(unittest.TestCase):
    """Every valid fixture: adding one parameter keeps all the others as
    the reference reads them, and their records byte for byte."""

    def check_carry(self, fixture):
        d = W.tempdir(self)
        src = os.path.join(d, "copy.ckpt")
        with open(fixture, "rb") as fi, open(src, "wb") as fo:
            fo.write(fi.read())
        orig = W.read_bytes(src)
        before = ckref.loads(orig)
        m = M.mount(self, src)
        W.write_file(m.p(ADDED), b"\x07\x08\x09")
        self.assertEqual(m.commit(), 0, m.error() if m.mounted() else "")
        m.unmount()
        raw = W.read_bytes(src)
        try:
            after = ckref.loads(raw)
        except ckref.CheckpointError as e:
            self.fail("the reference rejects the committed file: %s" % e)
        self.assertEqual([p.name for p in after],
                         [p.name for p in before] + [ADDED])
        for a, b in zip(after, before):
            self.assertEqual(a.kind, b.kind, a.name)
            if a.kind == "map":
                for x, y in zip(a.map, b.map):
                    self.assertEqual((x.dtype, x.shape, x.data),
                                     (y.dtype, y.shape, y.data),
                                     "%s/%s" % (a.name, x.name))
            else:
                self.assertEqual((a.dtype, a.shape), (b.dtype, b.shape),
                                 a.name)
                self.assertEqual(a.data, b.data, a.name)
        new = after[-1]
        self.assertEqual((new.dtype, new.shape, new.data),
                         ("UInt8", (3,), b"\x07\x08\x09"))
        # untouched records are copied: the old stream is a prefix
        had_crc = len(orig) >= 17 and orig[-17:-10] == b"crc_num"
        body = orig[:-17] if had_crc else orig
        if os.path.basename(fixture) not in REWRITTEN:
            self.assertTrue(raw.startswith(body), "the records of untouched "
                            "parameters changed (first difference at %d)"
                            % W.first_diff(raw, body))
        if had_crc:
            self.assertEqual(raw[-17:-10], b"crc_num", "crc trailer dropped")


    def check_edit_all(self, fixture):
        d = W.tempdir(self)
        src = os.path.join(d, "copy.ckpt")
        with open(fixture, "rb") as fi, open(src, "wb") as fo:
            fo.write(fi.read())
        before = ckref.load(src)
        tensors = [p for p in before if p.kind == "tensor" and p.data]
        if len(tensors) > 300:   # many_10000: a sample is enough
            tensors = random.Random(fixture).sample(tensors, 300)
        edited = {}
        m = M.mount(self, src)
        for p in tensors:
            new = bytes(b ^ 0xFF for b in p.data[:64]) + p.data[64:]
            with open(m.p(p.name), "r+b") as f:
                f.write(new[:64])
            edited[p.name] = new
        self.assertEqual(m.commit(), 0, m.error())
        for name, new in list(edited.items())[:50]:
            self.assertEqual(W.read_bytes(m.p(name)), new, name)
        m.unmount()
        try:
            after = ckref.load(src)
        except ckref.CheckpointError as e:
            self.fail("the reference rejects the committed file: %s" % e)
        self.assertEqual([p.name for p in after], [p.name for p in before])
        for a, b in zip(after, before):
            if a.kind == "map":
                for x, y in zip(a.map, b.map):
                    self.assertEqual((x.dtype, x.shape, x.data),
                                     (y.dtype, y.shape, y.data),
                                     "%s/%s" % (a.name, x.name))
                continue
            self.assertEqual((a.dtype, a.shape), (b.dtype, b.shape), a.name)
            self.assertEqual(a.data, edited.get(a.name, b.data), a.name)


# fixtures whose stream legitimately changes when rewritten: a v0.5
# model_type field after the values (dropped), a tag repeated
# non-contiguously (MindSpore keeps the later data at the first position)
REWRITTEN = {"v05_model_type.ckpt", "repeated_tag_noncontiguous.ckpt"}


def _add_carry_tests():
    for path in common.all_valid_files():
        def t(self, path=path):
            self.check_carry(path)
        t.__doc__ = "carry over %s" % os.path.basename(path)
        setattr(CarryOver, "test_" + common.test_id(path), t)

        def e(self, path=path):
            self.check_edit_all(path)
        e.__doc__ = "edit every tensor of %s" % os.path.basename(path)
        setattr(CarryOver, "test_edit_" + common.test_id(path), e)


_add_carry_tests()

if __name__ == "__main__":
    unittest.main()
