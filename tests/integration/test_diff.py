#!/usr/bin/python3
"""ckpt diff A B against numpy: pairs of checkpoints written with the
reference writers (tests/ref: ckref for .ckpt, stref for safetensors),
the differences computed again with numpy.isclose on the same arrays.

  what         parameters only in A / only in B, dtype or shape changed,
               values that differ (count, max abs, max rel)
  tolerances   --atol/--rtol as numpy.isclose(a, b, rtol, atol); NaN;
               --equal-nan; infinities
  formats      a .ckpt and its safetensors conversion are the same; two
               safetensors files (written by stref) differ as the same
               tensors in .ckpt files do; encrypted A and B (cryptref),
               each with its own key
  output       text lines, --json (the documented fields), --quiet,
               --param; exit 0 same, 1 different, 2 trouble
  memory       the peak RSS comparing two 64 MiB files stays small
"""

import json
import os
import subprocess
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
from wire import raw_record as record  # noqa: E402
import ckref  # noqa: E402
import cryptref  # noqa: E402
import stref  # noqa: E402

ST = {"Float32": "F32", "Float64": "F64", "Float16": "F16", "Int64": "I64",
      "Int32": "I32", "UInt8": "U8", "Bool": "BOOL"}
NP = {"Float32": "<f4", "Float64": "<f8", "Float16": "<f2", "Int64": "<i8",
      "Int32": "<i4", "UInt8": "u1", "Bool": "?", "Complex64": "<c8"}


def param(name, dtype, values):
    a = np.asarray(values, dtype=NP[dtype])
    return {"name": name, "dtype": dtype, "shape": a.shape,
            "data": a.tobytes()}


def numpy_diff(pa, pb, atol=0.0, rtol=0.0, equal_nan=False):
    """(differing elements, max abs, max rel) as the test expects them."""
    a = np.frombuffer(pa["data"], NP[pa["dtype"]]).astype(np.complex128
                                                          if pa["dtype"] ==
                                                          "Complex64"
                                                          else np.float64)
    b = np.frombuffer(pb["data"], NP[pb["dtype"]]).astype(a.dtype)
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    bad = ~close
    nan = np.isnan(a) | np.isnan(b)
    num = bad & ~nan
    d = np.abs(a[num] - b[num])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(b[num]) == 0, np.inf, d / np.abs(b[num]))
    return (int(bad.sum()), float(d.max()) if d.size else 0.0,
            float(rel.max()) if rel.size else 0.0)


class Diff(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptfs-diff-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        rng = np.random.default_rng(7)
        self.a = [param("w", "Float32", rng.normal(size=(64, 33))),
                  param("b", "Float64", rng.normal(size=100)),
                  param("h", "Float16", rng.normal(size=50)),
                  param("step", "Int64", [2 ** 60]),
                  param("mask", "Bool", [True, False, True]),
                  param("z", "Complex64", [1 + 2j, 3 - 4j]),
                  param("gone", "Int32", [1, 2, 3])]

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, params):
        p = self.path(name)
        ckref.write(p, params)
        return p

    def diff(self, *args, rc=None):
        res = M.ckpt("diff", *args)
        if rc is not None:
            self.assertEqual(res.rc, rc, res.describe())
        return res

    def diff_json(self, *args, rc=1):
        return json.loads(self.diff("--json", *args, rc=rc).outtext)

    def edited(self):
        """B: w with 3 changes, h with one, step + 1, gone deleted, new
        added, b retyped; the rest equal."""
        b = [dict(p) for p in self.a if p["name"] != "gone"]
        w = np.frombuffer(b[0]["data"], "<f4").copy()
        w[[0, 100, 2000]] += np.float32([1e-6, 0.5, -3.0])
        b[0]["data"] = w.tobytes()
        h = np.frombuffer(b[2]["data"], "<f2").copy()
        h[7] = np.float16(100.0)
        b[2]["data"] = h.tobytes()
        b[3] = param("step", "Int64", [2 ** 60 + 1])
        b[1] = dict(b[1], dtype="Int64")
        b.append(param("new", "UInt8", [1, 2]))
        return b

    def test_same_file_and_copy(self):
        a = self.write("a.ckpt", self.a)
        res = self.diff(a, a, rc=0)
        self.assertIn("same", res.outtext)
        shutil.copy(a, self.path("c.ckpt"))
        self.assertEqual(self.diff("-q", a, self.path("c.ckpt"), rc=0).out,
                         b"")

    def test_kinds_of_difference(self):
        b_params = self.edited()
        a, b = self.write("a.ckpt", self.a), self.write("b.ckpt", b_params)
        doc = self.diff_json(a, b)
        self.assertEqual(doc["only_in_a"], ["gone"])
        self.assertEqual(doc["only_in_b"], ["new"])
        self.assertEqual(doc["changed"], [{"name": "b",
                                           "dtype": ["Float64", "Int64"],
                                           "shape": ["[100]", "[100]"]}])
        self.assertFalse(doc["same"])
        self.assertEqual(doc["equal"], 2)  # mask, z
        differ = {d["name"]: d for d in doc["differ"]}
        self.assertEqual(sorted(differ), ["h", "step", "w"])
        by_name = {p["name"]: p for p in b_params}
        for name in ("w", "h"):
            want = numpy_diff({p["name"]: p for p in self.a}[name],
                              by_name[name])
            got = differ[name]
            self.assertEqual(got["differ"], want[0], name)
            self.assertAlmostEqual(got["max_abs"], want[1], places=6)
            self.assertAlmostEqual(got["max_rel"], want[2], places=6)
        self.assertEqual(differ["w"]["count"], 64 * 33)
        # 2^60 and 2^60 + 1 are the same float64, but not the same integer
        self.assertEqual((differ["step"]["differ"], differ["step"]["max_abs"]),
                         (1, 1.0))
        text = self.diff(a, b, rc=1).outtext
        for line in ("only in A: gone", "only in B: new",
                     "dtype: b: Float64 -> Int64",
                     "values: w: 3 of 2112 elements differ"):
            self.assertIn(line, text)

    def test_tolerances(self):
        b_params = self.edited()
        a, b = self.write("a.ckpt", self.a), self.write("b.ckpt", b_params)
        pa = {p["name"]: p for p in self.a}["w"]
        pb = b_params[0]
        for atol, rtol in ((1e-5, 0), (0, 1e-3), (1.0, 0), (0.6, 0.1),
                           (10, 0)):
            doc = self.diff_json("--param", "w", "--atol", str(atol),
                                 "--rtol", str(rtol), a, b,
                                 rc=None)
            want = numpy_diff(pa, pb, atol, rtol)[0]
            got = doc["differ"][0]["differ"] if doc["differ"] else 0
            self.assertEqual(got, want, (atol, rtol))
            self.assertEqual(doc["same"], want == 0)
        self.diff("--param", "w", "--atol", "10", a, b, rc=0)

    def test_nan_and_inf(self):
        a = self.write("a.ckpt", [param("x", "Float32",
                                        [np.nan, 1, np.inf, -np.inf, 0])])
        same = self.write("s.ckpt", [param("x", "Float32",
                                           [np.nan, 1, np.inf, -np.inf, -0.0])])
        other = self.write("o.ckpt", [param("x", "Float32",
                                            [1, np.nan, -np.inf, np.inf, 0])])
        doc = self.diff_json(a, same)
        self.assertEqual(doc["differ"][0]["differ"], 1)  # NaN != NaN
        self.assertEqual(doc["differ"][0]["nan_both"], 1)
        out = self.diff(a, same, rc=1).outtext
        self.assertIn("1 where both are NaN (equal with --equal-nan)", out)
        self.assertNotIn("max abs", out)
        self.diff("--equal-nan", a, same, rc=0)  # and -0.0 == 0.0
        doc = self.diff_json("--equal-nan", "--atol", "1e30", a, other)
        d = doc["differ"][0]
        self.assertEqual((d["differ"], d["nan_differ"]), (4, 2))
        self.assertIsNone(d["max_abs"])  # infinite: null in JSON

    def test_formats_compare_equal(self):
        params = [p for p in self.a if p["dtype"] != "Complex64"]
        a = self.write("a.ckpt", params)
        st = self.path("a.safetensors")
        M.ckpt("convert", a, st).describe()
        self.assertTrue(stref.is_valid(st))
        self.diff(a, st, rc=0)
        self.diff(st, a, rc=0)

    def without_names(self, doc):
        """doc without the paths, its lists in name order (a safetensors
        file holds its tensors in an order of its own)."""
        out = {k: v for k, v in doc.items() if k not in ("a", "b")}
        for k in ("only_in_a", "only_in_b"):
            out[k] = sorted(out[k])
        for k in ("changed", "differ"):
            out[k] = sorted(out[k], key=lambda d: d["name"])
        return out

    def test_safetensors_pair(self):
        """Two safetensors files differ as the same tensors in .ckpt
        files do, and a .ckpt compares with a safetensors file."""
        keep = [p for p in self.a if p["dtype"] in ST]
        b_params = [p for p in self.edited() if p["dtype"] in ST]

        def st(name, params):
            p = self.path(name)
            stref.write(p, [dict(q, dtype=ST[q["dtype"]]) for q in params])
            self.assertTrue(stref.is_valid(p))
            return p
        sa, sb = st("a.safetensors", keep), st("b.safetensors", b_params)
        ca, cb = self.write("a.ckpt", keep), self.write("b.ckpt", b_params)
        want = self.without_names(self.diff_json(ca, cb))
        self.assertFalse(want["same"])
        self.assertEqual(self.without_names(self.diff_json(sa, sb)), want)
        self.assertEqual(self.without_names(self.diff_json(ca, sb)), want)
        self.diff(sa, ca, rc=0)

    def test_quiet_when_different(self):
        a = self.write("a.ckpt", self.a)
        b = self.write("b.ckpt", self.edited())
        res = self.diff("-q", a, b, rc=1)
        self.assertEqual((res.out, res.err), (b"", b""))

    def test_encrypted_sides(self):
        """A and B encrypted with keys of their own compare as their
        plaintexts do; a wrong key is trouble (2)."""
        a = self.write("a.ckpt", self.a)
        b = self.write("b.ckpt", self.edited())
        want = self.without_names(self.diff_json(a, b))
        opts = []
        for side, path, mode, prefix in (("a", a, "AES-GCM", "--"),
                                         ("b", b, "SM4-CBC", "--out-")):
            key = os.urandom(16)
            kf = self.path("key_" + side)
            with open(kf, "wb") as f:
                f.write(key)
            with open(path, "rb") as f:
                enc = cryptref.encrypt(f.read(), key, mode)
            with open(self.path("enc_" + side + ".ckpt"), "wb") as f:
                f.write(enc)
            opts += [prefix + "enc-mode", mode, prefix + "keyfile", kf]
        ea, eb = self.path("enc_a.ckpt"), self.path("enc_b.ckpt")
        self.assertEqual(self.without_names(self.diff_json(*opts, ea, eb)),
                         want)
        res = self.diff(*opts[:4], ea, eb, rc=2)  # B with A's key
        self.assertIn("enc_b.ckpt", res.errtext)

    def peak_kib(self, a, b):
        """The peak RSS (KiB) of ckpt diff a b, which must say 1.  A small
        Python without numpy starts it and waits for it (the peak counts
        the pages the child had before exec: those of that Python, not
        of this process)."""
        waiter = ("import os, sys\n"
                  "pid = os.fork()\n"
                  "if pid == 0:\n"
                  "    fd = os.open(os.devnull, os.O_WRONLY)\n"
                  "    os.dup2(fd, 1)\n"
                  "    os.execv(sys.argv[1], sys.argv[1:])\n"
                  "_, st, ru = os.wait4(pid, 0)\n"
                  "print(os.waitstatus_to_exitcode(st), ru.ru_maxrss)\n")
        out = subprocess.run([sys.executable, "-S", "-c", waiter,
                              common.CKPT_BIN, "diff", a, b], check=True,
                             capture_output=True, text=True).stdout
        rc, kib = (int(x) for x in out.split())
        self.assertEqual(rc, 1)
        return kib

    def test_constant_memory(self):
        """Two 64 MiB checkpoints are compared in under 24 MiB, no more
        than two of 8 KiB take (within 8 MiB)."""
        def pair(name, n):
            rng = np.random.default_rng(3)
            a = self.write(name + "_a.ckpt",
                           [param("p%d" % i, "Float32",
                                  rng.normal(size=n).astype(np.float32))
                            for i in range(16)])
            b = self.path(name + "_b.ckpt")
            shutil.copy(a, b)
            with open(b, "r+b") as f:
                f.seek(-4, os.SEEK_END)
                f.write(b"\0\0\0\0")
            return a, b
        small, big = pair("small", 128), pair("big", 1 << 20)
        base, peak = self.peak_kib(*small), self.peak_kib(*big)
        self.assertLess(peak, 24 * 1024)
        self.assertLess(peak - base, 8 * 1024,
                        "ckpt diff of 2 x 64 MiB peaked at %d KiB, of "
                        "2 x 8 KiB at %d KiB" % (peak, base))

    def test_param_and_usage(self):
        a = self.write("a.ckpt", self.a)
        b = self.write("b.ckpt", self.edited())
        self.diff("--param", "mask", "--param", "z", a, b, rc=0)
        self.diff("--param", "w", a, b, rc=1)
        res = self.diff("--param", "nosuch", a, b, rc=2)
        self.assertIn("nosuch", res.errtext)
        self.diff(a, rc=2)
        self.diff("--atol", "-1", a, b, rc=2)
        self.diff("--atol", "x", a, b, rc=2)
        # diff's options are refused elsewhere (--json: ls and info take
        # it too, test_json)
        self.assertEqual(M.ckpt("ls", "--atol", "1", a).rc, 2)
        self.assertEqual(M.ckpt("cat", "--json", a, "w").rc, 2)

    def test_json_names_not_utf8(self):
        """Names that are not UTF-8 are in --json as ls --json shows them
        (the bytes outside UTF-8 as %XX), never dropped."""
        def body(names):
            return b"".join(record(n, "Int8", (2,), b"\x01\x02")
                            for n in names)
        a, b = self.path("a.ckpt"), self.path("b.ckpt")
        with open(a, "wb") as f:
            f.write(body([b"\xff\xfe.w", b"same", "权重".encode()]))
        with open(b, "wb") as f:
            f.write(body([b"same", b"x\xc3\x28"]))
        res = self.diff("--json", a, b, rc=1)
        self.assertTrue(res.out.isascii())
        doc = json.loads(res.out)
        self.assertEqual(doc["only_in_a"], ["%FF%FE.w", "权重"])
        self.assertEqual(doc["only_in_b"], ["x%C3("])

    def test_trouble_is_2(self):
        a = self.write("a.ckpt", self.a)
        bad = self.path("bad.ckpt")
        with open(a, "rb") as f:
            data = f.read()
        with open(bad, "wb") as f:
            f.write(data[:len(data) // 2])
        res = self.diff(a, bad, rc=2)
        self.assertIn("bad.ckpt", res.errtext)
        self.assertEqual(res.out, b"")
        self.diff(a, self.path("missing.ckpt"), rc=2)


if __name__ == "__main__":
    unittest.main()
