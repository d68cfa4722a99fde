#!/usr/bin/python3
"""Selecting and renaming parameters, checked with the reference reader.

  ckpt convert --include/--exclude GLOB   only the selected parameters, in
                                          their order, bytes unchanged
  ckpt convert --rename s/RE/REPL/[g]     sed-style (ERE, & and \\1..\\9,
               --name-map FILE.json       any delimiter); the name map
                                          first, then the renames in order
  collisions                              exit 1, both parameters and the
                                          name in the message, no OUT
  bad regex / name map / option use       exit 2, no OUT
  ckpt ls / info --include/--exclude      the selected ones only
  ckptfs -o include=, -o exclude=         hidden parameters: not listed,
                                          not found, their names taken
                                          (EEXIST), kept byte for byte
                                          (the very records) by commits

Expected results are computed here with Python's fnmatch.fnmatchcase and
re (the globs and regexes used mean the same in both).  Quick: about 5 s.

Run:  /usr/bin/python3 -m unittest -v test_select   (in tests/integration)
"""

import errno
import fnmatch
import json
import os
import re
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402
from wbutil import param, read_bytes, tempdir  # noqa: E402

LENET = os.path.join(common.FIXTURES, "ict2021_checkpoint_lenet-1_1875.ckpt")


def keep(name, include=(), exclude=()):
    """The selection rule, as the C side must apply it."""
    if include and not any(fnmatch.fnmatchcase(name, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(name, g) for g in exclude)


def summary(params):
    """What a parameter is, for comparisons: name, dtype, shape, bytes."""
    out = []
    for p in params:
        if p.kind == "map":
            out.append((p.name, "map", tuple((s.dtype, s.shape, s.data)
                                             for s in p.map)))
        else:
            out.append((p.name, p.dtype, p.shape, p.data))
    return out


def sed_g(pattern, repl, s):
    """sed's s/pattern/repl/g: unlike re.sub, no empty match right after
    a match."""
    rx, out, pos, after = re.compile(pattern), "", 0, False
    while True:
        m = rx.search(s, pos)
        if not m:
            break
        so, eo = m.span()
        if so == eo == pos and after:
            if pos == len(s):
                break
            out, pos, after = out + s[pos], pos + 1, False
            continue
        out += s[pos:so] + m.expand(repl)
        if so < eo:
            pos, after = eo, True
            continue
        if so == len(s):
            pos = so
            break
        out, pos, after = out + s[so], so + 1, False
    return out + s[pos:]


def renamed(params, fn):
    """summary() of params with every name passed through fn."""
    return [(fn(s[0]),) + s[1:] for s in summary(params)]


def mixed():
    """Tensors, a hidden-to-be map, optimizer moments, a name with '/'."""
    rng = np.random.default_rng(16)
    return [
        param("net/conv.weight", "Float32", (2, 3),
              rng.standard_normal((2, 3)).astype("<f4")),
        param("net.bias", "Float16", (4,), rng.standard_normal(4)
              .astype("<f2")),
        param("moments.net/conv.weight", "Float32", (2, 3),
              rng.standard_normal((2, 3)).astype("<f4")),
        dict(name="moments.emb", kind="map", map=[
            param("keys", "Int64", (3,), np.array([1, 5, 9], "<i8")),
            param("values", "Float32", (3, 2), np.arange(6, dtype="<f4")),
            param("status", "Int32", (3,), np.zeros(3, "<i4"))]),
        param("global_step", "Int32", (), np.array([7], "<i4")),
        param("moments.net.bias", "Float16", (4,), rng.standard_normal(4)
              .astype("<f2")),
        param("learning_rate", "Float32", (), np.array([0.1], "<f4")),
    ]


class SelectBase(unittest.TestCase):
    maxDiff = 6000

    def setUp(self):
        common.require_bin(self, common.CKPT_BIN)
        self.dir = tempdir(self, "ckptfs_select_")

    def path(self, name):
        return os.path.join(self.dir, name)

    def ckpt(self, *args, rc=0):
        res = M.ckpt(*args)
        common.assert_not_signal(self, res, "ckpt " + " ".join(args))
        if rc is not None and res.rc != rc:
            self.fail("expected exit %d\n%s" % (rc, res.describe()))
        return res

    def convert(self, src, *opts, rc=0):
        out = self.path("out.ckpt")
        if os.path.exists(out):
            os.unlink(out)
        res = self.ckpt("convert", *opts, src, out, rc=rc)
        if rc:
            self.assertFalse(os.path.exists(out), "OUT written after a "
                             "failure\n" + res.describe())
            return res
        ckref.load(out)  # valid for the reference
        return out


class ConvertSelect(SelectBase):
    def test_exclude_moments_keeps_the_network(self):
        src = common.ref(LENET)
        out = self.convert(LENET, "--exclude", "moments.*")
        want = [p for p in src if not p.name.startswith("moments.")]
        self.assertEqual(len(want), 10)
        self.assertEqual(summary(ckref.load(out)), summary(want))

    def test_include_exclude_on_every_fixture(self):
        inc, exc = ("*weight*", "*bias*", "[a-f]*"), ("moments.*", "*.fc?.*")
        opts = []
        for g in inc:
            opts += ["--include", g]
        for g in exc:
            opts += ["--exclude", g]
        files = common.real_files()
        self.assertGreater(len(files), 10)
        for f in files:
            with self.subTest(f=os.path.basename(f)):
                out = self.convert(f, *opts)
                want = [p for p in common.ref(f) if keep(p.name, inc, exc)]
                self.assertEqual(summary(ckref.load(out)), summary(want))

    def test_nothing_selected(self):
        out = self.convert(LENET, "--include", "no such parameter")
        self.assertEqual(ckref.load(out), [])

    def test_map_and_slash_names(self):
        src = self.path("mixed.ckpt")
        ckref.write(src, mixed())
        ref = ckref.load(src)
        for inc, exc in [((), ("moments.*",)), (("*/*",), ()),
                         (("moments.*",), ("*bias",))]:
            opts = sum((["--include", g] for g in inc), []) + \
                sum((["--exclude", g] for g in exc), [])
            with self.subTest(opts=opts):
                out = self.convert(src, *opts)
                self.assertEqual(
                    summary(ckref.load(out)),
                    summary([p for p in ref if keep(p.name, inc, exc)]))

    def test_crc_and_selection(self):
        out = self.convert(LENET, "--crc", "--exclude", "moments.*",
                           "--rename", "s/^/net./")
        self.assertEqual(read_bytes(out)[-17:-10], b"crc_num")
        self.ckpt("verify", out)
        self.assertEqual([p.name for p in ckref.load(out)],
                         ["net." + p.name for p in common.ref(LENET)
                          if not p.name.startswith("moments.")])


class ConvertRename(SelectBase):
    def check_renamed(self, src, opts, fn, include=(), exclude=()):
        out = self.convert(src, *opts)
        want = [p for p in common.ref(src) if keep(p.name, include, exclude)]
        self.assertEqual(summary(ckref.load(out)), renamed(want, fn))
        return out

    def test_sed_renames_in_order(self):
        # group references, a global flag, another delimiter, &
        def fn(n):
            n = re.sub(r"^(conv|fc)([0-9])\.", r"layer\2.\1.", n, count=1)
            n = n.replace(".", "_")
            return re.sub(r"weight", r"<weight>", n, count=1)
        self.check_renamed(
            LENET, ["--exclude", "moments.*",
                    "--rename", r"s/^(conv|fc)([0-9])\./layer\2.\1./",
                    "--rename", r"s/\./_/g",
                    "--rename", "s|weight|<&>|"],
            fn, exclude=("moments.*",))

    def test_first_match_and_global(self):
        self.check_renamed(LENET, ["--rename", "s/[0-9]/&&/"],
                           lambda n: re.sub("([0-9])", r"\1\1", n, count=1))
        self.check_renamed(LENET, ["--rename", "s/[0-9e]/<&>/g"],
                           lambda n: re.sub("([0-9e])", r"<\1>", n))
        # \& and \\ are themselves, \n a newline (shown as %0A)
        self.check_renamed(LENET, ["--rename", r"s/\./\&\\\n/g"],
                           lambda n: n.replace(".", "&\\\n"))

    def test_escaped_delimiter_and_empty_matches(self):
        # \/ is a '/' in REGEX and in REPL; x* matches empty everywhere,
        # but not right after a match (sed's rule)
        src = self.path("mixed.ckpt")
        ckref.write(src, mixed())
        self.check_renamed(src, ["--rename", r"s/\//\/\//g"],
                           lambda n: n.replace("/", "//"))
        self.check_renamed(src, ["--rename", "s/l*/-/g",
                                 "--exclude", "moments.emb"],
                           lambda n: sed_g("l*", "-", n),
                           exclude=("moments.emb",))

    def test_name_map_then_rename(self):
        mp = self.path("map.json")
        names = {"fc1.weight": "dense1.kernel", "fc1.bias": "dense1.bias",
                 "moments.fc1.weight": "moments.dense1.kernel",
                 "not.in.the.file": "whatever"}
        with open(mp, "w") as f:
            json.dump(names, f)

        def fn(n):
            return re.sub(r"^dense", "Dense", names.get(n, n), count=1)
        self.check_renamed(LENET, ["--name-map", mp,
                                   "--rename", "s/^dense/Dense/"], fn)

    def test_name_map_unicode(self):
        mp = self.path("map.json")
        with open(mp, "w", encoding="utf-8") as f:
            f.write('{"fc3.bias": "\\u00e9t\\u00e9/b\\u00efas", '
                    '"learning_rate": "lr"}')
        self.check_renamed(
            LENET, ["--name-map", mp],
            lambda n: {"fc3.bias": "\u00e9t\u00e9/b\u00efas",
                       "learning_rate": "lr"}.get(n, n))

    def test_swap_is_no_collision(self):
        mp = self.path("swap.json")
        with open(mp, "w") as f:
            json.dump({"fc1.bias": "fc2.bias", "fc2.bias": "fc1.bias"}, f)
        self.check_renamed(
            LENET, ["--name-map", mp],
            lambda n: {"fc1.bias": "fc2.bias", "fc2.bias": "fc1.bias"}
            .get(n, n))

    def test_collision_names_both(self):
        res = self.convert(LENET, "--rename", r"s/^moments\.//", rc=1)
        self.assertIn("'conv1.weight'", res.errtext)
        self.assertIn("'moments.conv1.weight'", res.errtext)
        self.assertIn("same name 'conv1.weight'", res.errtext)
        # two renamed ones
        res = self.convert(LENET, "--rename", r"s/^(fc|conv)[0-9]/x/",
                           "--exclude", "moments.*", rc=1)
        self.assertIn("'conv1.weight' and 'conv2.weight'", res.errtext)
        self.assertIn("'x.weight'", res.errtext)
        # with the name map
        mp = self.path("map.json")
        with open(mp, "w") as f:
            json.dump({"fc1.bias": "momentum"}, f)
        res = self.convert(LENET, "--name-map", mp, rc=1)
        self.assertIn("'fc1.bias' and 'momentum'", res.errtext)

    def test_collision_with_an_excluded_name_is_none(self):
        # the excluded parameter is not written: its name is free
        self.check_renamed(LENET, ["--exclude", "moments.*",
                                   "--rename", r"s/^fc1\./moments.fc1./"],
                           lambda n: re.sub(r"^fc1\.", "moments.fc1.", n),
                           exclude=("moments.*",))

    def test_bad_usage_is_exit_2(self):
        mp = self.path("bad.json")
        for text, what in [('{"a": 1}', '"a"'), ('{"a": "x", "a": "y"}',
                                                   "duplicate"),
                           ('["a"]', "JSON object"), ('{"a": ', "line 1")]:
            with open(mp, "w") as f:
                f.write(text)
            with self.subTest(json=text):
                res = self.convert(LENET, "--name-map", mp, rc=2)
                self.assertIn(what, res.errtext)
        res = self.convert(LENET, "--name-map", self.path("none.json"), rc=2)
        self.assertIn("none.json", res.errtext)
        for sed, what in [("s/(/x/", "s/(/x/"), ("s/a/\\1/", "group \\1"),
                          ("s/a/b", "delimiter"), ("s/a/b/x", "flag"),
                          ("y/a/b/", "substitution"), ("s//x/", "empty"),
                          ("sxaxbx", "substitution")]:
            with self.subTest(rename=sed):
                res = self.convert(LENET, "--rename", sed, rc=2)
                self.assertIn(what, res.errtext)
        res = self.ckpt("ls", "--rename", "s/a/b/", LENET, rc=2)
        self.assertIn("'convert'", res.errtext)
        res = self.ckpt("cat", "--include", "a", LENET, "fc1.bias", rc=2)
        self.assertIn("'ls', 'info' and 'convert'", res.errtext)
        self.assertEqual(res.out, b"")


class ReadSelect(SelectBase):
    def test_ls_include_exclude(self):
        src = common.ref(LENET)
        res = self.ckpt("ls", "--include", "*.weight", "--include",
                        "learning_rate", "--exclude", "*conv*", LENET)
        self.assertEqual(res.text.splitlines(),
                         [p.name for p in src
                          if keep(p.name, ("*.weight", "learning_rate"),
                                  ("*conv*",))])
        res = self.ckpt("ls", "-l", "--exclude", "moments.*", LENET)
        self.assertEqual(len(res.text.splitlines()), 10)

    def test_ls_map_and_escaped(self):
        src = self.path("mixed.ckpt")
        ckref.write(src, mixed())
        res = self.ckpt("ls", "--include", "*/*", src)
        self.assertEqual(res.text.splitlines(),
                         ["net%2Fconv.weight", "moments.net%2Fconv.weight"])
        res = self.ckpt("ls", "--include", "moments.e*", src)
        self.assertEqual(res.text.splitlines(), ["moments.emb/" + s for s in
                                                 ckref.MAP_NAMES])

    def test_info_counts_the_selection(self):
        src = common.ref(LENET)
        res = self.ckpt("info", "--exclude", "moments.*", LENET)
        want = [p for p in src if not p.name.startswith("moments.")]
        self.assertIn("selected:    10 of 18 parameters", res.text)
        self.assertRegex(res.text, r"(?m)^parameters:  10 \(")
        self.assertRegex(res.text, r"(?m)^data:        %d bytes$"
                         % sum(len(p.data) for p in want))
        self.assertIn("Float32 x10", res.text)
        plain = self.ckpt("info", LENET)
        self.assertNotIn("selected:", plain.text)
        self.assertRegex(plain.text, r"(?m)^parameters:  18 \(")


class MountSelect(SelectBase):
    def setUp(self):
        super().setUp()
        common.require_bin(self, common.CKPTFS_BIN)

    def test_hidden_parameters(self):
        src = self.path("mixed.ckpt")
        params = mixed()
        ckref.write(src, params)
        before = read_bytes(src)
        ref = ckref.load(src)
        hidden = [p for p in ref if p.name.startswith("moments.")]
        shown = [p for p in ref if not p.name.startswith("moments.")]
        m = M.mount(self, src, "-o", "exclude=moments.*",
                    "-o", "exclude=no.such.one")
        self.assertEqual(sorted(m.names()),
                         sorted(ckref.escape_name(p.name) for p in shown))
        st = os.statvfs(m.mnt)
        self.assertEqual(st.f_files, len(shown) + 1)
        for p in hidden:
            path = m.p(p.name)
            with self.subTest(hidden=p.name):
                self.assertFalse(os.path.exists(path))
                with self.assertRaises(OSError) as cm:
                    os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                self.assertEqual(cm.exception.errno, errno.EEXIST)
                with self.assertRaises(OSError) as cm:
                    os.rename(m.p("learning_rate"), path)
                self.assertEqual(cm.exception.errno, errno.EEXIST)
                with self.assertRaises(OSError) as cm:
                    os.unlink(path)
                self.assertEqual(cm.exception.errno, errno.ENOENT)
        # an edit, a deletion, a new parameter; then a commit
        new_bias = np.arange(4, dtype="<f2").tobytes()
        with open(m.p("net.bias"), "r+b") as f:
            f.write(new_bias)
        os.unlink(m.p("global_step"))
        with open(m.p("extra"), "wb") as f:
            f.write(b"\x01\x02\x03")
        self.assertEqual(m.commit(), 0)
        after = ckref.load(src)
        want = [p for p in params if p["name"] != "global_step"]
        want = [dict(p, data=new_bias) if p["name"] == "net.bias" else p
                for p in want]
        want.append(param("extra", "UInt8", (3,), b"\x01\x02\x03"))
        self.assertEqual(summary(after), summary(ckref.loads(
            ckref.dumps(want))))
        # the hidden ones: their very records, in their places
        data = read_bytes(src)
        for p in params:
            if p["name"].startswith("moments."):
                rec = ckref.dumps([p])
                self.assertIn(rec, before)
                self.assertIn(rec, data, p["name"])
        # still hidden after the commit; a second commit keeps them too
        self.assertEqual(sorted(m.names()), sorted(
            ["net%2Fconv.weight", "net.bias", "learning_rate", "extra"]))
        os.rename(m.p("net.bias"), m.p("bias"))
        m.unmount()
        final = ckref.load(src)
        self.assertEqual([p.name for p in final],
                         ["net/conv.weight", "bias", "moments.net/conv.weight",
                          "moments.emb", "moments.net.bias", "learning_rate",
                          "extra"])
        self.assertEqual(summary([p for p in final if p.name in
                                  {h.name for h in hidden}]),
                         summary(hidden))

    def test_include_and_escaped_comma(self):
        src = common.private_copy(self, LENET)
        m = M.mount(self, src, "-o", "include=fc[1\\,2].*",
                    "-o", "include=momentum", "-o", "ro")
        want = [p.name for p in common.ref(LENET)
                if keep(p.name, ("fc[1,2].*", "momentum"))]
        self.assertEqual(len(want), 5)
        self.assertEqual(sorted(m.names()), sorted(want))
        for name in want:
            with open(m.p(name), "rb") as f:
                self.assertEqual(f.read(), [p.data for p in common.ref(LENET)
                                            if p.name == name][0])
        m.unmount()
        self.assertEqual(read_bytes(src), read_bytes(LENET))


if __name__ == "__main__":
    unittest.main()
