#!/usr/bin/python3
"""ckptfs -o npy (docs/npy-mount.md): every parameter as NAME.npy.

  read      every NAME.npy of the real .ckpt and safetensors fixtures
            (map tensors too: NAME/keys.npy ...) is byte for byte what
            'ckpt cat --npy' writes, np.load gives the reference reader's
            dtype, shape and bytes, np.load(mmap_mode='r') maps it; a
            name without .npy is ENOENT; user.dtype and user.shape stay
  write     np.save of new arrays (float32, int64, bool, a scalar, the
            '|V2' BFloat16 stand-in) and over an existing parameter, an
            r+b edit of data bytes, then 'ckpt umount': ckref finds the
            dtype, shape and bytes
  refusals  Fortran order, objects (allow_pickle), '>f4', datetime64,
            plain data: EINVAL, the parameter unchanged after the commit,
            a new name not left behind; names without .npy refused
  metadata  setfattr user.shape changes what np.load shows at once, also
            when the header grows (no stale size or page)
  rename    a.npy -> b.npy renames the parameter
"""

import errno
import glob
import io
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402
import test_npy as TN  # noqa: E402


def saved(a, **kw):
    b = io.BytesIO()
    np.save(b, a, **kw)
    return b.getvalue()


class NpyMount(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptfs-npym-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    # ---- read -----------------------------------------------------------
    def check_mount(self, path, tensors):
        m = M.mount(self, path, "-o", "npy,ro")
        shown = set()
        for name, dtype, shape, data in tensors:
            what = "%s: %s" % (os.path.basename(path), name)
            f = os.path.join(m.mnt, name + ".npy")
            shown.add(name.split("/")[0] + ("" if "/" in name else ".npy"))
            with open(f, "rb") as fh:
                x = fh.read()
            self.assertEqual(os.stat(f).st_size, len(x), what)
            r = TN.cli(self, "cat", "--npy", path, name)
            self.assertEqual(r.rc, 0, what)
            self.assertEqual(x, r.out, what)
            a = np.load(f)
            want = TN.expected(dtype, shape, data)
            self.assertEqual((a.dtype, a.shape), (want.dtype, want.shape),
                             what)
            self.assertEqual(a.tobytes(), data, what)
            mm = np.load(f, mmap_mode="r")
            if mm.size:
                self.assertIsInstance(mm, np.memmap, what)
                self.assertEqual(mm.offset, len(x) - len(data), what)
            self.assertEqual(mm.tobytes(), data, what)
            del mm
            if "/" not in name:
                self.assertTrue(os.getxattr(f, "user.dtype"), what)
                with self.assertRaises(FileNotFoundError, msg=what):
                    os.stat(os.path.join(m.mnt, name))
        self.assertEqual(set(m.names()), shown)
        m.unmount()

    def test_read_real_fixtures(self):
        files = common.real_files()
        self.assertGreater(len(files), 10)
        for path in files:
            self.check_mount(path, TN.ckpt_tensors(path))

    def test_read_safetensors_fixtures(self):
        d = os.path.join(common.REPO, "tests", "fixtures", "safetensors")
        files = sorted(p for p in glob.glob(os.path.join(d, "*.safetensors"))
                       + glob.glob(os.path.join(d, "*", "*.safetensors"))
                       if not os.path.basename(p).startswith("NEG_"))
        self.assertGreater(len(files), 5)
        for path in files:
            self.check_mount(path, TN.st_tensors(path))

    def test_read_every_dtype(self):
        path = os.path.join(self.tmp, "every.ckpt")
        TN.every_dtype_ckpt(path)
        self.check_mount(path, TN.ckpt_tensors(path))

    # ---- write ----------------------------------------------------------
    def make(self):
        path = os.path.join(self.tmp, "w.ckpt")
        ckref.write(path, [
            {"name": "keep", "dtype": "Float32", "shape": (2, 2),
             "data": np.float32([1, 2, 3, 4]).tobytes()},
            {"name": "over", "dtype": "Int32", "shape": (3,),
             "data": np.int32([7, 8, 9]).tobytes()},
            {"name": "edit", "dtype": "Float64", "shape": (4,),
             "data": np.float64([0, 1, 2, 3]).tobytes()},
            {"name": "a", "dtype": "Int8", "shape": (2,),
             "data": b"\x01\x02"}])
        return path

    def refused(self, f, data):
        with self.assertRaises(OSError) as cm:
            with open(f, "wb") as fh:
                fh.write(data)
        self.assertEqual(cm.exception.errno, errno.EINVAL, f)

    def test_write(self):
        path = self.make()
        m = M.mount(self, path, "-o", "npy")
        p = lambda n: os.path.join(m.mnt, n)  # noqa: E731
        rng = np.random.default_rng(5)
        new = {"f32": rng.standard_normal((2, 3)).astype("<f4"),
               "i64": np.arange(5, dtype="<i8"),
               "flag": np.array([True, False, True]),
               "scalar": np.float16(2.5).reshape(()),
               "bf16": np.frombuffer(rng.bytes(8), "V2").reshape(2, 2),
               "big": rng.standard_normal(50000).astype("<f4")}
        for name, a in new.items():
            np.save(p(name + ".npy"), a)
            with open(p(name + ".npy"), "rb") as fh:
                self.assertEqual(fh.read(), saved(a), name)
        np.save(p("over.npy"), np.arange(6, dtype="<u2").reshape(3, 2))
        # r+b: two data bytes
        with open(p("edit.npy"), "r+b") as fh:
            hl = len(saved(np.zeros(4))) - 32
            fh.seek(hl + 8)
            fh.write(np.float64([9]).tobytes())
        # refusals, over a parameter and as new files
        keep = np.load(p("keep.npy"))
        for data in (saved(np.asfortranarray(np.ones((2, 3), "<f4"))),
                     saved(np.array([1, "x"], dtype=object),
                           allow_pickle=True),
                     saved(np.ones(3, ">f4")),
                     saved(np.array(["2020-01-01"], "datetime64[D]")),
                     b"plain bytes, no header"):
            self.refused(p("keep.npy"), data)
            self.assertEqual(np.load(p("keep.npy")).tobytes(),
                             keep.tobytes())
            self.refused(p("fresh.npy"), data)
        self.assertNotIn("fresh.npy", m.names())
        # names that do not end in .npy
        with self.assertRaises(OSError) as cm:
            open(p("plain"), "wb").close()
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(OSError) as cm:
            os.rename(p("a.npy"), p("plain"))
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        os.rename(p("a.npy"), p("b.npy"))
        self.assertEqual(np.load(p("b.npy")).tobytes(), b"\x01\x02")
        self.assertFalse(os.path.exists(p("a.npy")))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        got = ckref.load_dict(path)
        for name, a in new.items():
            want = "BFloat16" if name == "bf16" else None
            self.assertEqual(got[name].shape, a.shape, name)
            self.assertEqual(got[name].data, a.tobytes(), name)
            if want:
                self.assertEqual(got[name].dtype, want)
        self.assertEqual(got["f32"].dtype, "Float32")
        self.assertEqual(got["i64"].dtype, "Int64")
        self.assertEqual(got["flag"].dtype, "Bool")
        self.assertEqual(got["scalar"].dtype, "Float16")
        self.assertEqual((got["over"].dtype, got["over"].shape),
                         ("UInt16", (3, 2)))
        self.assertEqual(got["over"].data,
                         np.arange(6, dtype="<u2").tobytes())
        self.assertEqual(got["edit"].data,
                         np.float64([0, 9, 2, 3]).tobytes())
        self.assertEqual((got["keep"].dtype, got["keep"].shape,
                          got["keep"].data),
                         ("Float32", (2, 2), keep.tobytes()))
        self.assertNotIn("fresh", got)
        self.assertNotIn("a", got)
        self.assertEqual(got["b"].data, b"\x01\x02")

    def test_setxattr_shape(self):
        path = self.make()
        m = M.mount(self, path, "-o", "npy")
        f = os.path.join(m.mnt, "over.npy")
        self.assertEqual(np.load(f).shape, (3,))
        mm = np.load(f, mmap_mode="r")  # pages and attributes cached
        self.assertEqual(mm.shape, (3,))
        del mm
        os.setxattr(f, "user.shape", b"[3,1]")
        self.assertEqual(np.load(f).shape, (3, 1))
        self.assertEqual(np.load(f, mmap_mode="r").shape, (3, 1))
        long = "[" + ",".join(["1"] * 24 + ["3"]) + "]"
        os.setxattr(f, "user.shape", long.encode())
        with open(f, "rb") as fh:
            x = fh.read()
        self.assertEqual(os.stat(f).st_size, len(x))
        self.assertEqual(len(x), len(saved(np.zeros((1,) * 24 + (3,),
                                                    "<i4"))))
        a = np.load(f)
        self.assertEqual(a.shape, (1,) * 24 + (3,))
        self.assertEqual(a.ravel().tolist(), [7, 8, 9])
        os.setxattr(f, "user.dtype", b"UInt32")
        self.assertEqual(np.load(f).dtype, np.dtype("<u4"))
        m.unmount()


if __name__ == "__main__":
    unittest.main()
