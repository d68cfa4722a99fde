#!/usr/bin/python3
"""ckpt cat/get/put --npy against numpy: every parameter of every real
.ckpt and safetensors fixture, and of two generated files with every dtype
(ckref and stref write them), written as a .npy file and read back with
np.load; .npy files put back into checkpoints.

  values       np.load gives the reference reader's bytes, with the
               dtype and shape docs/npy.md promises (numpy's own dtypes,
               the stand-ins for the others, packed F4/F6 as bytes)
  layout       the data starts at a multiple of 64; np.load with
               mmap_mode='r' maps the saved file
  round trip   np.save(np.load(x)) writes x again, byte for byte
  usage        one NAME with --npy (else exit 2), --npy only for cat,
               get and put, a missing NAME or a tensor numpy cannot hold:
               exit 1, no output
  get, put     get --npy is cat --npy; put --npy (and put NAME PATH npy
               in an edit list) of every such .npy makes a parameter
               whose .npy is the same bytes again, with the dtype, shape
               and bytes the reference reader finds; what np.save writes
               for numpy's dtypes goes in as the MindSpore dtype, and
               what MindSpore cannot hold (Fortran order, objects,
               big-endian, datetimes, data cut short or too long) is
               refused, the file unchanged

The calls go through ckpt_batch (batch.py, Sampled: a sample through the
binary too).
"""

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
import stref  # noqa: E402
from batch import Batch, Sampled  # noqa: E402

BATCH = Batch()
CKPT = Sampled(BATCH)

# docs/npy.md, written out again: numpy's own dtypes ...
NATIVE = {"Bool": "|b1", "Int8": "|i1", "UInt8": "|u1", "Int16": "<i2",
          "UInt16": "<u2", "Int32": "<i4", "UInt32": "<u4", "Int64": "<i8",
          "UInt64": "<u8", "Float16": "<f2", "Float32": "<f4",
          "Float64": "<f8", "Complex64": "<c8", "Complex128": "<c16",
          "BFloat16": "|V2"}
# ... and the one field of the structured stand-ins (named in lower case)
FIELD = {"Int4": "|i1", "Float8E4M3FN": "|u1", "Float8E5M2": "|u1",
         "HiFloat8": "|u1", "F8_E8M0": "|u1", "F8_E4M3FNUZ": "|u1",
         "F8_E5M2FNUZ": "|u1", "F4": "|u1", "F6_E2M3": "|u1",
         "F6_E3M2": "|u1"}
PACKED_BITS = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
# map tensors keep their type as stored: numpy's names
STORED = {"bool": "Bool", "int8": "Int8", "uint8": "UInt8",
          "int16": "Int16", "uint16": "UInt16", "int32": "Int32",
          "uint32": "UInt32", "int64": "Int64", "uint64": "UInt64",
          "float16": "Float16", "float32": "Float32", "float64": "Float64",
          "bfloat16": "BFloat16", "complex64": "Complex64",
          "complex128": "Complex128"}


def cli(test, *args):
    return CKPT.ckpt(test, *args)


def expected(dtype, shape, data):
    """The array the .npy of a tensor must hold (docs/npy.md)."""
    dtype = STORED.get(dtype, dtype)
    if dtype == "str":
        return np.frombuffer(data, "<U%d" % (len(data) // 4)).reshape(())
    if dtype in NATIVE:
        return np.frombuffer(data, NATIVE[dtype]).reshape(shape)
    dt = np.dtype([(dtype.lower(), FIELD[dtype])])
    bits = PACKED_BITS.get(dtype)
    if bits:  # the last dim in bytes if whole, else the bytes 1-D
        if shape and shape[-1] * bits % 8 == 0:
            shape = tuple(shape[:-1]) + (shape[-1] * bits // 8,)
        else:
            shape = (len(data),)
    return np.frombuffer(data, dt).reshape(shape)


def saved(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def st_tensors(path):
    """[(shown name, shown dtype, shape, bytes)] of a safetensors file."""
    st = stref.read(path)
    try:
        return [(ckref.escape_name(t.name),
                 stref.shown_dtype(t.dtype, t.name, st.metadata), t.shape,
                 t.data) for t in st.tensors]
    finally:
        st.close()


def ckpt_tensors(path):
    return [(name, p.dtype, p.shape, p.data)
            for name, p in common.tensors_of(ckref.load(path))]


def every_dtype_ckpt(path):
    """Every tensor_type MindSpore writes, in several shapes; a map; str;
    BFloat16 stored as float32 (2.2.10-2.2.14)."""
    rng = np.random.default_rng(17)
    params = []
    for dtype, size in ckref.ITEMSIZE.items():
        if dtype == "str":
            continue
        for i, shape in enumerate([(), (5,), (2, 3, 1, 2), (0, 3), (3, 0)]):
            n = int(np.prod(shape, dtype=np.int64)) * size
            params.append({"name": "%s.%d" % (dtype, i), "dtype": dtype,
                           "shape": shape,
                           "data": rng.bytes(n)})
    for s in ("", "x", "héllo wörld 世界 🎉", "y" * 300):
        params.append({"name": "str/%d" % len(s), "dtype": "str",
                       "shape": (), "data": ckref.str_content(s)})
    params.append({"name": "bf16.old", "dtype": "BFloat16", "shape": (3,),
                   "data": np.float32([1.5, -2, 3e5]).tobytes()})
    params.append({"name": "emb", "kind": "map", "map": [
        {"name": "keys", "dtype": "int64", "shape": (3,),
         "data": np.int64([4, 8, 15]).tobytes()},
        {"name": "values", "dtype": "float32", "shape": (3, 2),
         "data": rng.standard_normal((3, 2)).astype("<f4").tobytes()},
        {"name": "status", "dtype": "Int32", "shape": (3,),
         "data": np.int32([0, 1, 2]).tobytes()}]})
    ckref.write(path, params)


def every_dtype_safetensors(path):
    """Every safetensors dtype (the 8-bit floats, packed F4 and F6 whose
    last dim is whole bytes and whose is not), Int4 by its marker."""
    rng = np.random.default_rng(16)
    tensors = []
    for dtype, bits in stref.DTYPE_BITS.items():
        if bits % 8:
            shapes = [(8,), (2, 4), (3, 4, 8), (0, 4),
                      (2, 3) if bits == 4 else (4, 2)]
        else:
            shapes = [(), (7,), (2, 1, 3), (4, 0)]
        for i, shape in enumerate(shapes):
            tensors.append(("%s.%d" % (dtype, i), dtype, shape,
                            rng.bytes(stref.tensor_nbytes(dtype, shape))))
    tensors.append(("q", "I8", (2, 2), rng.bytes(4)))
    stref.write(path, tensors, metadata={"q": "Int4"})


class Npy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ckptfs-npy-")
        cls.gen_ckpt = os.path.join(cls.tmp, "every_dtype.ckpt")
        cls.gen_st = os.path.join(cls.tmp, "every_dtype.safetensors")
        every_dtype_ckpt(cls.gen_ckpt)
        every_dtype_safetensors(cls.gen_st)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_file(self, path, tensors):
        """cat --npy of every tensor against the reference's; returns the
        dtypes seen."""
        seen = set()
        npy = os.path.join(self.tmp, "t.npy")
        for name, dtype, shape, data in tensors:
            what = "%s: %s (%s %s)" % (os.path.basename(path), name, dtype,
                                       list(shape))
            r = cli(self, "cat", "--npy", path, name)
            self.assertEqual(r.rc, 0, what + ": " + r.err.decode())
            x = r.out
            a = np.load(io.BytesIO(x), allow_pickle=False)
            want = expected(dtype, shape, data)
            self.assertEqual(a.dtype, want.dtype, what)
            self.assertEqual(a.shape, want.shape, what)
            self.assertEqual(a.tobytes(), data, what)
            # the header, then the data, which starts 64-byte aligned
            hl = len(x) - len(data)
            self.assertEqual(hl % 64, 0, what)
            self.assertEqual(x[hl:], data, what)
            # np.save writes it again byte for byte: header and all
            self.assertEqual(saved(a), x, what)
            self.assertEqual(saved(want), x, what)
            with open(npy, "wb") as f:
                f.write(x)
            m = np.load(npy, mmap_mode="r")
            self.assertEqual((m.dtype, m.shape), (want.dtype, want.shape),
                             what)
            if m.size:
                self.assertIsInstance(m, np.memmap, what)
                self.assertEqual(m.offset, hl, what)
            self.assertEqual(m.tobytes(), data, what)
            del m
            seen.add(STORED.get(dtype, dtype))
        return seen

    def test_real_fixtures(self):
        files = common.real_files()
        self.assertGreater(len(files), 10)
        for path in files:
            self.check_file(path, ckpt_tensors(path))

    def test_safetensors_fixtures(self):
        d = os.path.join(common.REPO, "tests", "fixtures", "safetensors")
        files = sorted(p for p in glob.glob(os.path.join(d, "*.safetensors"))
                       + glob.glob(os.path.join(d, "*", "*.safetensors"))
                       if not os.path.basename(p).startswith("NEG_"))
        self.assertGreater(len(files), 5)
        for path in files:
            self.check_file(path, st_tensors(path))

    def test_every_dtype(self):
        seen = self.check_file(self.gen_ckpt, ckpt_tensors(self.gen_ckpt))
        seen |= self.check_file(self.gen_st, st_tensors(self.gen_st))
        self.assertEqual(seen, set(NATIVE) | set(FIELD) | {"str"})

    def test_str_is_a_numpy_string(self):
        s = "héllo wörld 世界 🎉"
        r = cli(self, "cat", "--npy", self.gen_ckpt, "str%%2F%d" % len(s))
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(np.load(io.BytesIO(r.out))[()], s)

    def test_usage(self):
        r = cli(self, "cat", "--npy", self.gen_ckpt, "Int8.1", "Int8.2")
        self.assertEqual((r.rc, r.out), (2, b""))
        self.assertIn(b"one NAME", r.err)
        r = cli(self, "ls", "--npy", self.gen_ckpt)
        self.assertEqual((r.rc, r.out), (2, b""))
        self.assertIn(b"--npy is an option of 'cat', 'get' and 'put'", r.err)
        r = cli(self, "cat", "--npy", self.gen_ckpt, "nothing.here")
        self.assertEqual((r.rc, r.out), (1, b""))
        self.assertIn(b"no parameter named 'nothing.here'", r.err)
        # without --npy, cat is unchanged: the raw bytes
        r = cli(self, "cat", self.gen_ckpt, "emb/keys")
        self.assertEqual((r.rc, r.out), (0, np.int64([4, 8, 15]).tobytes()))

    def test_too_many_dims(self):
        """numpy arrays have at most 32 dims: no .npy, exit 1, no output."""
        path = os.path.join(self.tmp, "dims.ckpt")
        ckref.write(path, [
            {"name": "d32", "dtype": "Float32", "shape": (1,) * 32,
             "data": b"\0\0\x80?"},
            {"name": "d33", "dtype": "Float32", "shape": (1,) * 33,
             "data": b"\0\0\x80?"}])
        r = cli(self, "cat", "--npy", path, "d32")
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(np.load(io.BytesIO(r.out)).shape, (1,) * 32)
        r = cli(self, "cat", "--npy", path, "d33")
        self.assertEqual((r.rc, r.out), (1, b""))
        self.assertIn(b"d33: a tensor of 33 dims has no .npy form", r.err)


class PutGet(unittest.TestCase):
    """get --npy and put --npy (the binary itself: put reads stdin)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptfs-npyput-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def round_trip(self, src, tensors):
        """get --npy of every tensor (equal to cat --npy), then all of
        them put back under new names by one edit list: the new
        parameters' .npy are the same bytes, and the reference finds the
        dtype, shape and bytes of the originals."""
        dst = self.path("dst" + os.path.splitext(src)[1])
        shutil.copy(src, dst)
        lines, want = [], {}
        for i, (name, dtype, shape, data) in enumerate(tensors):
            if "/" in name:     # map tensors: not parameters of their own
                continue
            r = M.ckpt("get", "--npy", src, name)
            self.assertEqual(r.rc, 0, r.describe())
            self.assertEqual(r.out, cli(self, "cat", "--npy", src, name).out,
                             name)
            f = self.path("%d.npy" % i)
            with open(f, "wb") as out:
                out.write(r.out)
            lines.append("put copy.%d %s npy" % (i, f))
            want["copy.%d" % i] = (name, r.out)
        r = M.ckpt("edit", dst, stdin_data="\n".join(lines).encode())
        self.assertEqual(r.rc, 0, r.describe())
        for new, (name, npy) in want.items():
            got = cli(self, "get", "--npy", dst, new)
            self.assertEqual((got.rc, got.out), (0, npy), name)
        return dst, want

    def test_round_trip_every_dtype_ckpt(self):
        src = self.path("every.ckpt")
        every_dtype_ckpt(src)
        dst, want = self.round_trip(src, ckpt_tensors(src))
        orig = {n: (d, s, b) for n, d, s, b in ckpt_tensors(src)}
        got = {p.name: p for p in ckref.load(dst)}
        for new, (name, _) in want.items():
            d, s, b = orig[name]
            self.assertEqual((got[new].dtype, got[new].shape, got[new].data),
                             (d, tuple(s), b), name)

    def test_round_trip_every_dtype_safetensors(self):
        src = self.path("every.safetensors")
        every_dtype_safetensors(src)
        dst, want = self.round_trip(src, st_tensors(src))
        orig = {n: (d, s, b) for n, d, s, b in st_tensors(src)}
        got = {n: (d, s, b) for n, d, s, b in st_tensors(dst)}
        for new, (name, _) in want.items():
            d, s, b = orig[name]
            packed = PACKED_BITS.get(d)
            if packed and not (s and s[-1] * packed % 8 == 0):
                s = (len(b) * 8 // packed,)   # the 1-D fallback
            self.assertEqual(got[new], (d, tuple(s), b), name)

    def test_put_what_numpy_saves(self):
        path = self.path("m.ckpt")
        ckref.write(path, [{"name": "w", "dtype": "Float32", "shape": (2,),
                            "data": np.float32([1, 2]).tobytes()}])
        arrays = {
            "f32": np.arange(12, dtype="<f4").reshape(3, 4),
            "i64": np.array(7, dtype="<i8"),
            "b": np.array([True, False]),
            "c64": np.array([1 + 2j], dtype="<c8"),
            "u16": np.arange(5, dtype="<u2"),
            "bf16": np.arange(6, dtype="<u2").view("V2").reshape(2, 3),
            "w": np.float64([0.5, 1.5, 2.5]),     # replaces w
        }
        names = {"f32": "Float32", "i64": "Int64", "b": "Bool",
                 "c64": "Complex64", "u16": "UInt16", "bf16": "BFloat16",
                 "w": "Float64"}
        for name, a in arrays.items():
            r = M.ckpt("put", "--npy", path, name, stdin_data=saved(a))
            self.assertEqual(r.rc, 0, r.describe())
        got = {p.name: p for p in ckref.load(path)}
        self.assertEqual(list(got), ["w"] + [n for n in arrays if n != "w"])
        for name, a in arrays.items():
            self.assertEqual((got[name].dtype, got[name].shape,
                              got[name].data),
                             (names[name], a.shape, a.tobytes()), name)

    def test_put_refuses_what_mindspore_cannot_hold(self):
        path = self.path("r.ckpt")
        ckref.write(path, [{"name": "w", "dtype": "Float32", "shape": (2,),
                            "data": np.float32([1, 2]).tobytes()}])
        with open(path, "rb") as f:
            before = f.read()
        good = saved(np.arange(6, dtype="<f4").reshape(2, 3))
        cases = {
            "Fortran order": (saved(np.asfortranarray(
                np.arange(6, dtype="<f4").reshape(2, 3))), b"fortran"),
            "big-endian": (saved(np.arange(3, dtype=">f4")), b"endian"),
            "datetime": (saved(np.array(["2020-01-01"], "M8[D]")),
                         b"datetime"),
            "cut short": (good[:-1], b"cut short"),
            "bytes appended": (good + b"x", b"appended"),
            "not a .npy": (b"\x93NUMPY junk", b"not a .npy"),
            "empty": (b"", b"not a .npy"),
        }
        obj = io.BytesIO()
        np.save(obj, np.array([{}, 1], dtype=object), allow_pickle=True)
        cases["object"] = (obj.getvalue(), b"object")
        for what, (data, msg) in cases.items():
            with self.subTest(what):
                r = M.ckpt("put", "--npy", path, "x", stdin_data=data)
                self.assertEqual(r.rc, 1, r.describe())
                self.assertIn(msg, r.err.lower(), r.describe())
                self.assertIn(b"nothing was committed", r.err)
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), before, what)
        r = M.ckpt("put", "--npy", "--dtype", "Int8", path, "x",
                   stdin_data=good)
        self.assertEqual(r.rc, 2, r.describe())
        r = M.ckpt("edit", path, stdin_data=b"put x /dev/null npy shape=[]")
        self.assertEqual(r.rc, 2, r.describe())
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)


def tearDownModule():
    BATCH.close()


if __name__ == "__main__":
    unittest.main()
