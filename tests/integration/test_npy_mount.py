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
  stand-ins np.load then np.save back of every dtype (Int4, Float8,
            HiFloat8, str, ...; some headers written in pieces) keeps the
            MindSpore dtype, shape and bytes; a refusal's reason is in the
            daemon's log
  metadata  setfattr user.shape changes what np.load shows at once, also
            when the header grows (no stale size or page)
  rename    a.npy -> b.npy renames the parameter
  -o tree   (TreeNpyMount) with -o tree,npy the leaves are LEAF.npy: the
            walk of real .ckpt fixtures, a safetensors fixture and a file
            with a map, a parameter that is also a prefix (fc1/%self.npy)
            and odd names is exactly the reference reader's names as
            paths + .npy, each file what 'ckpt cat --npy' writes and what
            np.load must give; np.save into mkdir -p directories, over a
            leaf and over %self.npy, r+b, truncate, renames of leaves and
            of a prefix, refusals (Fortran order, names without .npy, a
            refused new file leaves its directory empty), a raw scratch
            file; ckref after 'ckpt umount'
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
import stref  # noqa: E402
import test_npy as TN  # noqa: E402
import test_tree as TT  # noqa: E402


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

    def test_stand_ins_saved_back(self):
        """np.save of what np.load gives keeps the MindSpore dtype of
        every stand-in (Int4, the Float8 types, HiFloat8, str, ...) and of
        every other dtype, also with the header written in pieces; a
        refusal is logged with its reason."""
        path = os.path.join(self.tmp, "every.ckpt")
        TN.every_dtype_ckpt(path)
        m = M.mount(self, path, "-o", "npy", foreground=True)
        files = [n for n in m.names()
                 if n.endswith(".1.npy") or n.startswith("str%2F")]
        self.assertGreater(len(files), 20)
        for i, f in enumerate(files):
            data = saved(np.load(os.path.join(m.mnt, f)))
            fd = os.open(os.path.join(m.mnt, "copy_" + f),
                         os.O_WRONLY | os.O_CREAT, 0o644)
            try:  # every third in three writes: 10 bytes, the header, data
                cuts = [0, 10, 64, len(data)] if i % 3 == 0 else \
                    [0, len(data)]
                for lo, hi in zip(cuts, cuts[1:]):
                    os.write(fd, data[lo:hi])
            finally:
                os.close(fd)
        self.refused(os.path.join(m.mnt, "fortran.npy"),
                     saved(np.asfortranarray(np.ones((2, 3), "<f4"))))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        self.assertRegex(m.log_text(), "refused: .*[Ff]ortran")
        got = ckref.load_dict(path)
        for f in files:
            name = f[:-len(".npy")].replace("%2F", "/")
            a, b = got[name], got["copy_" + name]
            self.assertEqual((b.dtype, b.shape, b.data),
                             (a.dtype, a.shape, a.data), f)

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


def tree_npy_files(params):
    """{path of the file in a -o tree,npy mount (bytes): (the name 'ckpt cat'
    takes, the Param)} for params (ckref): each leaf LEAF.npy, a map
    parameter a directory of keys.npy, values.npy, status.npy."""
    byname = {os.fsencode(p.name): p for p in params}
    out = {}
    for path, name in TT.tree_paths(byname).items():
        p = byname[name]
        flat = ckref.escape_name(p.name)
        if p.kind == "map":
            for s in p.map:
                out[path + b"/" + os.fsencode(s.name) + b".npy"] = \
                    (flat + "/" + s.name, s)
        else:
            out[path + b".npy"] = (flat, p)
    return out


def st_shown(path):
    """A safetensors file as ckref-like parameters, dtypes as shown."""
    with stref.read(path) as f:
        return [ckref.Param(t.name, stref.shown_dtype(t.dtype, t.name,
                                                      f.metadata),
                            t.shape, t.data) for t in f.tensors]


class TreeNpyMount(unittest.TestCase):
    """-o tree,npy: the tree view's leaves as LEAF.npy (docs/npy-mount.md,
    'With -o tree')."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptfs-treenpy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def check_mount(self, src, params):
        """The walk is exactly params' paths + .npy, every file is what
        'ckpt cat --npy' writes and np.load gives the reference tensor."""
        want = tree_npy_files(params)
        m = M.mount(self, src, "-o", "tree,npy,ro")
        files, dirs = m.step(lambda: TT.walk(m.mnt), "walk")
        self.assertEqual(sorted(files), sorted(want))
        self.assertFalse([d for d in dirs if d.endswith(b".npy")])
        for path, (flat, p) in sorted(want.items()):
            what = "%s: %s" % (os.path.basename(src), path)
            r = TN.cli(self, "cat", "--npy", src, flat)
            self.assertEqual(r.rc, 0, what)
            self.assertEqual(files[path], r.out, what)
            f = os.path.join(os.fsencode(m.mnt), path)
            self.assertEqual(os.stat(f).st_size, len(r.out), what)
            a = np.load(f)
            ref = TN.expected(p.dtype, p.shape, p.data)
            self.assertEqual((a.dtype, a.shape), (ref.dtype, ref.shape),
                             what)
            self.assertEqual(a.tobytes(), p.data, what)
            with self.assertRaises(FileNotFoundError, msg=what):
                os.stat(f[:-4])   # the leaf without .npy
        m.unmount()

    def odd_ckpt(self):
        """A map, a parameter that is also a prefix, odd names."""
        def t(name, dtype, shape, data):
            return {"name": name, "dtype": dtype, "shape": shape,
                    "data": data}
        table = {"name": "emb.table", "kind": "map", "map": [
            t("keys", "int64", (2,), np.int64([3, 5]).tobytes()),
            t("values", "float32", (2, 2), bytes(range(16))),
            t("status", "int32", (2,), np.int32([0, 1]).tobytes())]}
        path = os.path.join(self.tmp, "odd.ckpt")
        ckref.write(path, [
            table, t("emb.w", "UInt8", (3,), b"abc"),
            t("fc1", "Float32", (2,), np.float32([1, 2]).tobytes()),
            t("fc1.weight", "Int16", (2, 1), np.int16([7, 8]).tobytes()),
            t("a..b", "Int8", (1,), b"\x05"), t(".x.y", "Int8", (), b"\x06"),
            t("p%q.r/s", "Bool", (2,), b"\x01\x00")])
        return path

    def test_read(self):
        for name in ("sciai_example_net_10000_adam.ckpt",
                     "contrib_zero_dcepp_epoch99.ckpt"):
            src = common.private_copy(
                self, os.path.join(common.FIXTURES, name))
            self.check_mount(src, common.ref(src))
        src = common.private_copy(self, TT.ST_REAL)
        self.check_mount(src, st_shown(src))
        src = self.odd_ckpt()
        self.check_mount(src, common.ref(src))
        m = M.mount(self, src, "-o", "tree,npy,ro")
        fc1 = os.path.join(m.mnt, "fc1")
        self.assertEqual(sorted(os.listdir(fc1)),
                         ["%self.npy", "weight.npy"])
        self.assertEqual(sorted(os.listdir(os.path.join(m.mnt, "emb"))),
                         ["table", "w.npy"])
        self.assertTrue(os.path.isdir(os.path.join(m.mnt, "emb", "table")))
        for bad in ("fc1/%self", "fc1.npy", "emb/table.npy", "fc1/x.npy"):
            with self.assertRaises(FileNotFoundError, msg=bad):
                os.stat(os.path.join(m.mnt, bad))
        m.unmount()

    def make(self):
        path = os.path.join(self.tmp, "w.ckpt")
        ckref.write(path, [
            {"name": "model.layers.0.wq", "dtype": "Float32",
             "shape": (2, 2), "data": np.float32([1, 2, 3, 4]).tobytes()},
            {"name": "model.layers.0.wk", "dtype": "Int32", "shape": (3,),
             "data": np.int32([7, 8, 9]).tobytes()},
            {"name": "model.layers.1.wq", "dtype": "Float64",
             "shape": (4,), "data": np.float64([0, 1, 2, 3]).tobytes()},
            {"name": "fc1", "dtype": "Int8", "shape": (2,),
             "data": b"\x01\x02"},
            {"name": "fc1.weight", "dtype": "Int8", "shape": (1,),
             "data": b"\x03"},
            {"name": "keep.x", "dtype": "Float32", "shape": (2,),
             "data": np.float32([5, 6]).tobytes()},
            {"name": "cut", "dtype": "Float32", "shape": (2, 2),
             "data": np.float32([1, 2, 3, 4]).tobytes()}])
        return path

    def refused(self, f, a):
        with self.assertRaises(OSError, msg=f) as cm:
            np.save(f, a)
        self.assertEqual(cm.exception.errno, errno.EINVAL, f)

    def test_write(self):
        src = self.make()
        m = M.mount(self, src, "-o", "tree,npy")
        p = lambda n: os.path.join(m.mnt, n)  # noqa: E731
        rng = np.random.default_rng(9)
        x = rng.standard_normal((2, 3)).astype("<f4")
        os.makedirs(p("new/sub"))
        np.save(p("new/sub/x.npy"), x)
        with open(p("new/sub/x.npy"), "rb") as fh:
            self.assertEqual(fh.read(), saved(x))
        self.assertEqual(os.listdir(p("new")), ["sub"])
        over = np.arange(6, dtype="<u2").reshape(3, 2)
        np.save(p("model/layers/0/wq.npy"), over)
        np.save(p("fc1/%self.npy"), np.int64([4, 5, 6]))
        # r+b: the second float64 of model.layers.1.wq
        with open(p("model/layers/1/wq.npy"), "r+b") as fh:
            hl = len(saved(np.zeros(4))) - 32
            fh.seek(hl + 8)
            fh.write(np.float64([9]).tobytes())
        # truncate to the header and 8 data bytes, then the shape that
        # holds them
        hl = len(saved(np.zeros((2, 2), "<f4"))) - 16
        os.truncate(p("cut.npy"), hl + 8)
        self.assertEqual(os.path.getsize(p("cut.npy")),
                         len(saved(np.zeros(8, "u1"))))
        os.setxattr(p("cut.npy"), "user.shape", b"[2]")
        self.assertEqual(np.load(p("cut.npy")).tolist(), [1, 2])
        # refusals: over a parameter, as a new file (nothing left behind)
        keep = np.load(p("keep/x.npy"))
        fortran = np.asfortranarray(np.ones((2, 3), "<f4"))
        self.refused(p("keep/x.npy"), fortran)
        self.assertEqual(np.load(p("keep/x.npy")).tobytes(), keep.tobytes())
        os.mkdir(p("tmp"))
        self.refused(p("tmp/fresh.npy"), fortran)
        self.assertEqual(os.listdir(p("tmp")), [])
        for bad in ("tmp/plain", "tmp/a.b.npy", "tmp/x~.npy"):
            with self.assertRaises(OSError, msg=bad) as cm:
                open(p(bad), "wb").close()
            self.assertEqual(cm.exception.errno, errno.EINVAL, bad)
        # a scratch file is raw, cannot become a parameter, is not kept
        with open(p("tmp/notes~"), "wb") as fh:
            fh.write(b"raw bytes")
        self.assertEqual(os.listdir(p("tmp")), ["notes~"])
        with open(p("tmp/notes~"), "rb") as fh:
            self.assertEqual(fh.read(), b"raw bytes")
        with self.assertRaises(OSError) as cm:
            os.rename(p("tmp/notes~"), p("tmp/notes.npy"))
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        os.unlink(p("tmp/notes~"))
        os.rmdir(p("tmp"))
        # renames: a leaf in its directory and across, to no .npy, a prefix
        os.rename(p("keep/x.npy"), p("keep/y.npy"))
        os.rename(p("model/layers/0/wk.npy"), p("new/wk.npy"))
        with self.assertRaises(OSError) as cm:
            os.rename(p("new/wk.npy"), p("new/wk"))
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        os.rename(p("model/layers"), p("model/blocks"))
        self.assertEqual(sorted(os.listdir(p("model/blocks/0"))), ["wq.npy"])
        self.assertEqual(np.load(p("model/blocks/0/wq.npy")).tobytes(),
                         over.tobytes())
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        got = ckref.load_dict(src)
        self.assertEqual(sorted(got), sorted([
            "model.blocks.0.wq", "new.wk", "model.blocks.1.wq", "fc1",
            "fc1.weight", "keep.y", "cut", "new.sub.x"]))

        def check(name, dtype, shape, data):
            g = got[name]
            self.assertEqual((g.dtype, g.shape, g.data),
                             (dtype, shape, data), name)
        check("new.sub.x", "Float32", (2, 3), x.tobytes())
        check("model.blocks.0.wq", "UInt16", (3, 2), over.tobytes())
        check("fc1", "Int64", (3,), np.int64([4, 5, 6]).tobytes())
        check("fc1.weight", "Int8", (1,), b"\x03")
        check("model.blocks.1.wq", "Float64", (4,),
              np.float64([0, 9, 2, 3]).tobytes())
        check("new.wk", "Int32", (3,), np.int32([7, 8, 9]).tobytes())
        check("keep.y", "Float32", (2,), keep.tobytes())
        check("cut", "Float32", (2,), np.float32([1, 2]).tobytes())


if __name__ == "__main__":
    unittest.main()
