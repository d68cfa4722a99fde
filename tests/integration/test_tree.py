#!/usr/bin/python3
"""ckptfs -o tree: dotted names as directories (docs/tree-view.md),
checked against the reference readers (ckref for .ckpt, stref for
safetensors) and an independent spelling of the rules (tree_paths below).

Checks:
  * real .ckpt fixtures, a real safetensors fixture and a generated
    safetensors file with dotted names: os.walk of the mount gives exactly
    the paths the rules give for the reference reader's names (a map
    parameter: a directory of keys, values, status), every file holds the
    reference tensor's bytes and stats its size, du -sb of a directory is
    the bytes of the parameters below it, nlink of a directory is 2 + its
    subdirectories, lookups of paths no name has fail with ENOENT.
  * names that are a parameter and a prefix (fc1, fc1.weight: fc1/%self),
    empty components and dots ("", ".", "..", "a..b", ".x.y", "y.", names
    holding '%', '/', control bytes, NUL): the walk, the bytes, unlinking
    and re-creating fc1/%self; a file name holding '.' cannot be created
    (EINVAL); a prefix holding NUL cannot move (EINVAL), others can.
  * mkdir + a file written inside + commit: the stored name is dotted;
    mkdir of an existing name EEXIST; the empty directory is gone after a
    remount (it lives only in the mount).
  * mv of a directory: every parameter under the prefix renamed in one
    step, in place, the rest byte-identical (ckref after the commit);
    onto a non-empty directory ENOTEMPTY, onto a file ENOTDIR, a file onto
    a directory EISDIR, into itself EINVAL, onto an empty directory works.
  * rm -r of a subtree (shutil.rmtree, rm -r; unlinks while listing
    1000 files skip nothing) and rmdir of empty and non-empty directories
    (ENOTEMPTY); a directory emptied by unlinks stays until rmdir.
  * a map parameter is a read-only directory of its tensors; moving a
    prefix that holds one is refused whole (ENOTSUP).
  * without -o tree the mount is flat, mkdir refused.

Run:  /usr/bin/python3 -m unittest -v test_tree   (in tests/integration)
"""

import errno
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import stref  # noqa: E402

REAL = ["sciai_example_net_10000_adam.ckpt", "contrib_zero_dcepp_epoch99.ckpt",
        "mindformers_golden_sequential_mlp.ckpt",
        "goldenstick_linears_woq_fp32.ckpt"]
ST_REAL = os.path.join(common.REPO, "tests", "fixtures", "safetensors",
                       "fluxml_model.safetensors")
SELF = b"%self"


# --------------------------------------------------------------------------
# the rules, spelled independently of the C code

def tree_path(name):
    """The path of the stored name (bytes) in the tree view."""
    if name == b"":
        return b"%"
    out = bytearray()
    n = len(name)
    for i, c in enumerate(name):
        if c == 0x2e and 0 < i < n - 1 and name[i - 1] != 0x2e and \
                name[i + 1] != 0x2e:
            out += b"/"
        elif c in b"%/." or c < 0x20 or c == 0x7f:
            out += b"%%%02X" % c
        else:
            out.append(c)
    return bytes(out)


def tree_paths(names):
    """{shown path: name} for stored names (bytes): a name that is also a
    prefix of another is dir/%self."""
    paths = {tree_path(n): n for n in names}
    dirs = set()
    for p in paths:
        parts = p.split(b"/")
        for k in range(1, len(parts)):
            dirs.add(b"/".join(parts[:k]))
    return {(p + b"/" + SELF if p in dirs else p): n
            for p, n in paths.items()}


def expected_files(params):
    """{path: bytes} of the files a mount of params (ckref) shows."""
    byname = {os.fsencode(p.name): p for p in params}
    out = {}
    for path, name in tree_paths(byname).items():
        p = byname[name]
        if p.kind == "map":
            for s in p.map:
                out[path + b"/" + os.fsencode(s.name)] = s.data
        else:
            out[path] = p.data
    return out


def walk(mnt):
    """{path relative to mnt: bytes} of every file; the set of
    directories."""
    files, dirs = {}, set()
    root = os.fsencode(mnt)
    for d, subdirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel != b".":
            dirs.add(rel)
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                files[os.path.normpath(os.path.join(rel, n))] = f.read()
    return files, dirs


def st_params(path):
    """The safetensors file as ckref-like parameters (name, data)."""
    with stref.read(path) as f:
        return [ckref.Param(t.name, t.dtype, t.shape, t.data)
                for t in f.tensors]


class TreeTest(unittest.TestCase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        self.dir = W.tempdir(self, "ckptfs_tree_")

    def mount(self, src, *opts):
        return M.mount(self, src, "-o", ",".join(("tree",) + opts))

    def copy(self, name):
        return common.private_copy(
            self, os.path.join(common.REPO, "tests", "fixtures", "real", name))

    def write_ckpt(self, params, name="t.ckpt"):
        path = os.path.join(self.dir, name)
        ckref.write(path, params)
        return path

    def check_walk(self, m, params):
        """The mount shows exactly params, byte for byte."""
        want = expected_files(params)
        files, dirs = m.step(lambda: walk(m.mnt), "walk")
        self.assertEqual(sorted(files), sorted(want))
        for path, data in want.items():
            self.assertEqual(files[path], data, path)
            st = os.stat(os.path.join(os.fsencode(m.mnt), path))
            self.assertEqual(st.st_size, len(data), path)
        for d in dirs:
            full = os.path.join(os.fsencode(m.mnt), d)
            subdirs = [e for e in os.scandir(full) if e.is_dir()]
            self.assertEqual(os.stat(full).st_nlink, 2 + len(subdirs), d)
        return dirs

    def commit(self, m):
        self.assertEqual(m.commit(), 0, m.error(fallback=True))

    # ---- reading -----------------------------------------------------

    def test_real_ckpt(self):
        for name in REAL:
            with self.subTest(name):
                src = self.copy(name)
                m = self.mount(src, "ro")
                dirs = self.check_walk(m, common.ref(src))
                self.assertTrue(dirs, "no directories in " + name)
                m.unmount()

    def test_real_safetensors(self):
        src = common.private_copy(self, ST_REAL)
        m = self.mount(src, "ro")
        self.check_walk(m, st_params(src))
        m.unmount()

    def test_du_sizes(self):
        src = self.copy("contrib_zero_dcepp_epoch99.ckpt")
        params = common.ref(src)
        m = self.mount(src, "ro")
        d = os.path.join(m.mnt, "e_conv1")
        res = m.run(["du", "-sb", d])
        self.assertEqual(res.rc, 0, res.describe())
        want = sum(len(p.data) for p in params
                   if p.name.startswith("e_conv1."))
        self.assertEqual(int(res.text.split()[0]), want)
        self.assertEqual(os.stat(d).st_size, 0)
        for bad in ("e_conv1.depth_conv.weight", "e_conv1/depth_conv.weight",
                    "e_conv1/%self", "e_conv1/depth_conv/nope"):
            with self.assertRaises(FileNotFoundError):
                os.stat(os.path.join(m.mnt, bad))
        m.unmount()

    def test_safetensors_dotted(self):
        rng = [bytes([i] * 8) for i in range(6)]
        tensors = [("model.embed.weight", "F32", (2,), rng[0]),
                   ("model.layers.0.wq", "F32", (2,), rng[1]),
                   ("model.layers.0.wk", "F16", (4,), rng[2]),
                   ("model.layers.1.wq", "F32", (2,), rng[3]),
                   ("fc1", "F32", (2,), rng[4]),
                   ("fc1.weight", "I8", (8,), rng[5])]
        src = os.path.join(self.dir, "m.safetensors")
        stref.write(src, tensors)
        m = self.mount(src)
        self.check_walk(m, st_params(src))
        self.assertEqual(sorted(os.listdir(os.path.join(m.mnt, "fc1"))),
                         ["%self", "weight"])
        os.rename(os.path.join(m.mnt, "model", "layers"),
                  os.path.join(m.mnt, "model", "blocks"))
        m.unmount()
        with stref.read(src) as f:
            got = {t.name: t.data for t in f.tensors}
        want = {n.replace("model.layers.", "model.blocks."): d
                for n, _, _, d in tensors}
        self.assertEqual(got, want)

    # ---- odd names -----------------------------------------------------

    ODD = ["fc1", "fc1.weight", "fc1.bias", "", ".", "..", "a..b", ".x.y",
           "y.", "p%q.r/s", "%self", "a.%self", "t.u\x01v", "n\x00m.k"]

    def odd_file(self):
        params = [W.param(n, "UInt8", (i + 1,), bytes([i + 1] * (i + 1)))
                  for i, n in enumerate(self.ODD)]
        return self.write_ckpt(params), params

    def test_odd_names(self):
        src, _ = self.odd_file()
        m = self.mount(src)
        self.check_walk(m, common.ref(src))
        top = sorted(os.listdir(m.mnt))
        self.assertEqual(top, sorted(["fc1", "%", "%2E", "%2E%2E",
                                      "a%2E%2Eb", "%2Ex", "y%2E", "p%25q",
                                      "%25self", "a", "t", "n%00m"]))
        self.assertEqual(sorted(os.listdir(os.path.join(m.mnt, "a"))),
                         ["%25self"])
        # no C string names a prefix with a NUL byte: not moved
        with self.assertRaises(OSError) as cm:
            os.rename(os.path.join(m.mnt, "n%00m"), os.path.join(m.mnt, "q"))
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        os.rename(os.path.join(m.mnt, "t"), os.path.join(m.mnt, "t2"))
        m.unmount()
        self.assertEqual([p.name for p in ckref.load(src)],
                         [("t2" + n[1:] if n.startswith("t.") else n)
                          for n in self.ODD])

    def test_self_unlink_create(self):
        src, params = self.odd_file()
        m = self.mount(src)
        fc1 = os.path.join(m.mnt, "fc1")
        os.unlink(os.path.join(fc1, "%self"))
        self.assertEqual(sorted(os.listdir(fc1)), ["bias", "weight"])
        with self.assertRaises(OSError) as cm:
            open(os.path.join(m.mnt, "x.y"), "wb").close()
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.commit(m)
        names = [p.name for p in ckref.load(src)]
        self.assertEqual(names, [n for n in self.ODD if n != "fc1"])
        with open(os.path.join(fc1, "%self"), "wb") as f:
            f.write(b"\x09\x08")
        self.assertEqual(sorted(os.listdir(fc1)), ["%self", "bias", "weight"])
        self.commit(m)
        got = {p.name: p.data for p in ckref.load(src)}
        self.assertEqual(got["fc1"], b"\x09\x08")
        # all of fc1 removed: the directory stays until rmdir
        for n in ("%self", "bias", "weight"):
            os.unlink(os.path.join(fc1, n))
        self.assertEqual(os.listdir(fc1), [])
        os.rmdir(fc1)
        self.assertNotIn("fc1", os.listdir(m.mnt))
        m.unmount()
        self.assertFalse([p.name for p in ckref.load(src)
                          if p.name.startswith("fc1")])

    # ---- changes -------------------------------------------------------

    def test_mkdir_create_commit(self):
        src = self.copy("goldenstick_linears_woq_fp32.ckpt")
        before = common.ref(src)
        m = self.mount(src)
        new = os.path.join(m.mnt, "new")
        os.mkdir(new)
        os.mkdir(os.path.join(new, "sub"))
        os.mkdir(os.path.join(m.mnt, "empty"))
        for bad in ("new", "linear1", "linear1/bias"):
            with self.assertRaises(FileExistsError):
                os.mkdir(os.path.join(m.mnt, bad))
        with open(os.path.join(new, "sub", "w"), "wb") as f:
            f.write(b"12345678")
        self.assertEqual(sorted(os.listdir(m.mnt)),
                         ["empty", "linear1", "linear2", "new"])
        self.commit(m)
        after = ckref.load(src)
        self.assertEqual([p.name for p in after],
                         [p.name for p in before] + ["new.sub.w"])
        self.assertEqual(after[-1].data, b"12345678")
        for a, b in zip(before, after):
            self.assertEqual((a.name, a.dtype, a.shape, a.data),
                             (b.name, b.dtype, b.shape, b.data))
        m.unmount()
        m = self.mount(src, "ro")
        self.assertEqual(sorted(os.listdir(m.mnt)),
                         ["linear1", "linear2", "new"])
        m.unmount()

    def test_move_prefix(self):
        src = self.copy("sciai_example_net_10000_adam.ckpt")
        before = common.ref(src)
        m = self.mount(src)
        opt = os.path.join(m.mnt, "optimizer")
        m1, m2 = os.path.join(opt, "moment1"), os.path.join(opt, "moment2")
        leaf = os.path.join(opt, "global_step")
        cases = [(m1, m2, errno.ENOTEMPTY),
                 (m1, leaf, errno.ENOTDIR),
                 (leaf, os.path.join(opt, "network"), errno.EISDIR),
                 (opt, os.path.join(opt, "network", "x"), errno.EINVAL)]
        for a, b, e in cases:
            with self.assertRaises(OSError) as cm:
                os.rename(a, b)
            self.assertEqual(cm.exception.errno, e, (a, b))
        os.mkdir(os.path.join(m.mnt, "adam"))
        os.rename(m1, os.path.join(m.mnt, "adam"))   # onto an empty one
        os.rename(opt, os.path.join(m.mnt, "model"))
        self.assertEqual(sorted(os.listdir(m.mnt)), ["adam", "model"])
        self.commit(m)
        after = ckref.load(src)

        def renamed(n):
            if n.startswith("optimizer.moment1."):
                return "adam." + n[len("optimizer.moment1."):]
            return "model." + n[len("optimizer."):]
        self.assertEqual([p.name for p in after],
                         [renamed(p.name) for p in before])
        for a, b in zip(before, after):
            self.assertEqual((a.dtype, a.shape, a.data),
                             (b.dtype, b.shape, b.data))
        self.check_walk(m, after)
        m.unmount()

    def test_rm_r_rmdir(self):
        src = self.copy("contrib_zero_dcepp_epoch99.ckpt")
        before = common.ref(src)
        m = self.mount(src)
        conv1 = os.path.join(m.mnt, "e_conv1")
        with self.assertRaises(OSError) as cm:
            os.rmdir(conv1)
        self.assertEqual(cm.exception.errno, errno.ENOTEMPTY)
        shutil.rmtree(os.path.join(conv1, "depth_conv"))
        self.assertEqual(os.listdir(conv1), ["point_conv"])
        res = m.run(["rm", "-r", os.path.join(m.mnt, "e_conv2")])
        self.assertEqual(res.rc, 0, res.describe())
        point = os.path.join(conv1, "point_conv")
        for n in os.listdir(point):
            os.unlink(os.path.join(point, n))
        self.assertEqual(os.listdir(point), [])   # stays until rmdir
        os.rmdir(point)
        os.rmdir(conv1)
        self.assertNotIn("e_conv1", os.listdir(m.mnt))
        self.commit(m)
        after = ckref.load(src)
        want = [p for p in before if not p.name.startswith(("e_conv1.",
                                                             "e_conv2."))]
        self.assertEqual([p.name for p in after], [p.name for p in want])
        for a, b in zip(want, after):
            self.assertEqual((a.dtype, a.shape, a.data),
                             (b.dtype, b.shape, b.data))
        m.unmount()

    def test_map_parameter(self):
        """A map parameter is a leaf: a read-only directory of its three
        tensors; a move of a prefix that holds one is refused whole."""
        def t(name, dtype, shape, data):
            return {"name": name, "dtype": dtype, "shape": shape,
                    "data": data}
        table = {"name": "emb.table", "kind": "map", "map": [
            t("keys", "int64", (2,), bytes(range(16))),
            t("values", "float32", (2, 2), bytes(range(16, 32))),
            t("status", "int32", (2,), bytes(range(32, 40)))]}
        src = self.write_ckpt([table, W.param("emb.w", "UInt8", (3,),
                                              b"abc")])
        m = self.mount(src)
        self.check_walk(m, common.ref(src))
        emb = os.path.join(m.mnt, "emb")
        with self.assertRaises(OSError) as cm:
            os.rename(emb, os.path.join(m.mnt, "e"))
        self.assertEqual(cm.exception.errno, errno.ENOTSUP)
        self.assertEqual(sorted(os.listdir(m.mnt)), ["emb"])
        with self.assertRaises(OSError) as cm:
            os.unlink(os.path.join(emb, "table", "keys"))
        self.assertEqual(cm.exception.errno, errno.EPERM)
        os.rename(os.path.join(emb, "w"), os.path.join(m.mnt, "w"))
        m.unmount()
        self.assertEqual([p.name for p in ckref.load(src)],
                         ["emb.table", "w"])

    def test_rm_r_many(self):
        """Deleting while listing a directory larger than many listing
        replies (and than glibc's buffer) skips nothing; then rm -r."""
        src = self.copy("goldenstick_linears_woq_fp32.ckpt")
        m = self.mount(src)
        big = os.path.join(m.mnt, "big")
        os.mkdir(big)
        n = 1000
        for i in range(n):
            with open(os.path.join(big, "param_with_a_long_name_%04d" % i),
                      "wb") as f:
                f.write(b"x")
        self.assertEqual(len(os.listdir(big)), n)
        seen = set()
        with os.scandir(big) as it:
            for e in it:
                seen.add(e.name)
                if len(seen) % 2:
                    os.unlink(e.path)
        self.assertEqual(len(seen), n)
        self.assertEqual(len(os.listdir(big)), n // 2)
        shutil.rmtree(big)
        self.assertEqual(sorted(os.listdir(m.mnt)), ["linear1", "linear2"])
        m.unmount()
        self.assertEqual([p.name for p in ckref.load(src)],
                         [p.name for p in common.ref(src)])

    def test_flat_without_option(self):
        src = self.copy("goldenstick_linears_woq_fp32.ckpt")
        m = M.mount(self, src, "-o", "ro")
        self.assertEqual(m.names(), [p.name for p in common.ref(src)])
        with self.assertRaises(OSError) as cm:
            os.mkdir(os.path.join(m.mnt, "d"))
        self.assertIn(cm.exception.errno, (errno.EPERM, errno.EROFS))
        m.unmount()


if __name__ == "__main__":
    unittest.main()
