#!/usr/bin/python3
"""The `ckpt` CLI against the reference reader, for every valid fixture.

  ckpt ls FILE        one escaped name per line
  ckpt ls -l FILE     dtype, shape, bytes, name per line
  ckpt cat FILE NAME...  raw bytes (NAME as shown by ls; maps: NAME/keys
                         ...); several names: the concatenation
  ckpt info FILE      exit 0 and mentions the parameter count
  ckpt verify FILE    exit 0 for valid files

Maps in ls / ls -l are accepted either as one line (the map name) or as
three lines NAME/keys, NAME/values, NAME/status.

The per-fixture checks run through ckpt_batch (batch.py: the ckpt command
line, one process for all calls); every 16th call (64th under ASan) also
runs the real binary, which must answer exactly the same.  TestCliMisc and
TestCliBig run the binary itself.
"""

import hashlib
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
from batch import Batch, Sampled  # noqa: E402
from common import escape_name, shape_str  # noqa: E402

LS_L = re.compile(r"^(\S+)\s+(\[[0-9,]*\])\s+(\d+)\s+(.+)$")
MAX_CATS = 60   # per file; files with more parameters are sampled
BATCH = Batch()
CKPT = Sampled(BATCH)


def lines_of(res):
    text = res.text
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


def fold_maps(names, params):
    """Replaces NAME/keys, NAME/values, NAME/status lines by NAME."""
    names = list(names)
    for p in params:
        if p.kind != "map":
            continue
        e = escape_name(p.name)
        subs = [e + "/" + s for s in common.ckref.MAP_NAMES]
        if all(s in names for s in subs):
            for s in subs:
                names.remove(s)
            names.append(e)
    return names


class CliChecks(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPT_BIN)

    def ok(self, res, what):
        common.assert_not_signal(self, res, what)
        if res.rc != 0:
            self.fail("%s failed\n%s" % (what, res.describe()))

    def ckpt(self, *args):
        return CKPT.ckpt(self, *args)

    def check_cli(self, path):
        params = common.ref(path)
        base = os.path.basename(path)

        # verify
        self.ok(self.ckpt("verify", path), "ckpt verify " + base)

        # ls
        res = self.ckpt("ls", path)
        self.ok(res, "ckpt ls " + base)
        got = fold_maps(lines_of(res), params)
        self.assertEqual(sorted(got), sorted(escape_name(p.name)
                                             for p in params),
                         "%s: ckpt ls" % base)

        # ls -l
        res = self.ckpt("ls", "-l", path)
        self.ok(res, "ckpt ls -l " + base)
        rows = {}
        for line in lines_of(res):
            m = LS_L.match(line)
            self.assertIsNotNone(m, "%s: ckpt ls -l line %r does not match "
                                 "'dtype shape bytes name'" % (base, line))
            rows[m.group(4)] = (m.group(1), m.group(2), int(m.group(3)))
        expect = {}
        for p in params:
            e = escape_name(p.name)
            if p.kind == "map":
                if e in rows:          # one line for the whole map
                    expect[e] = rows[e]
                else:
                    for s in p.map:
                        expect[e + "/" + s.name] = (
                            s.dtype, shape_str(s.shape), len(s.data))
            else:
                expect[e] = (p.dtype, shape_str(p.shape), len(p.data))
        self.assertEqual(rows, expect, "%s: ckpt ls -l" % base)

        # cat
        items = common.tensors_of(params)
        if len(items) > MAX_CATS:
            items = random.Random(base).sample(items, MAX_CATS)
        for shown, t in items:
            res = self.ckpt("cat", path, shown)
            self.ok(res, "ckpt cat %s %s" % (base, shown))
            if res.out != t.data:
                self.fail("%s: ckpt cat %r: %d bytes, expected %d (content "
                          "differs)" % (base, shown, len(res.out),
                                        len(t.data)))

        # cat of every name at once: the concatenation, in argument order
        items = common.tensors_of(params)[::-1]
        if items:
            res = self.ckpt("cat", path, *[s for s, _ in items])
            self.ok(res, "ckpt cat %s (all %d names)" % (base, len(items)))
            self.assertTrue(res.out == b"".join(t.data for _, t in items),
                            "%s: ckpt cat of all names: %d bytes, expected "
                            "the concatenation" % (base, len(res.out)))

        # cat of a missing name fails, and writes nothing even when the
        # names before it exist
        for names in (["no such parameter"],
                      [s for s, _ in items[:1]] + ["no such parameter"]):
            res = self.ckpt("cat", path, *names)
            common.assert_not_signal(self, res, "ckpt cat missing")
            self.assertEqual(res.rc, 1, "ckpt cat of a missing name must "
                             "fail")
            self.assertEqual(res.out, b"", "ckpt cat %r wrote output" %
                             names)
            self.assertIn("no such parameter", res.errtext)

        # info
        res = self.ckpt("info", path)
        self.ok(res, "ckpt info " + base)
        self.assertRegex(res.text, r"(?<![0-9.])%d(?![0-9.])" % len(params),
                         "%s: ckpt info does not mention the parameter "
                         "count %d" % (base, len(params)))


def _add_tests(cls, files):
    for path in files:
        def t(self, path=path):
            self.check_cli(path)
        t.__doc__ = "ckpt CLI on %s" % os.path.basename(path)
        setattr(cls, "test_" + common.test_id(path), t)


class TestCliReal(CliChecks):
    pass


class TestCliGenerated(CliChecks):
    pass


_add_tests(TestCliReal, common.real_files())
_add_tests(TestCliGenerated, common.generated_files())


class TestCliMisc(CliChecks):
    def test_missing_file(self):
        res = M.ckpt("verify", "/nonexistent/dir/x.ckpt")
        common.assert_not_signal(self, res, "ckpt verify missing file")
        self.assertNotEqual(res.rc, 0)
        self.assertTrue(res.err.strip(), "no message on stderr")

    def test_no_arguments(self):
        res = M.ckpt()
        common.assert_not_signal(self, res, "ckpt without arguments")
        self.assertNotEqual(res.rc, 0)

    def test_version(self):
        """Both programs print the project's version (CMakeLists.txt) and
        the libraries they run with: libfuse as pkg-config knows it (ckptfs
        only), OpenSSL, jansson, what computes the CRC-32 (ISA-L, or the
        portable code in a -DCKPT_ISAL=OFF build), and that protobuf-c is
        not linked."""
        with open(os.path.join(common.REPO, "CMakeLists.txt")) as f:
            version = re.search(r"project\(ckptfs VERSION (\S+)",
                                f.read()).group(1)
        fuse = subprocess.run(["pkg-config", "--modversion", "fuse3"],
                              capture_output=True, text=True).stdout.strip()
        cache = os.path.join(os.path.dirname(common.CKPT_BIN), "CMakeCache.txt")
        with open(cache) as f:
            isal = re.search(r"(?m)^CKPT_ISAL:BOOL=(\S+)", f.read()).group(1)
        crc = (r"(?m)^crc32: ISA-L 2\.\d+\.\d+ \(crc32_gzip_refl\)$"
               if isal == "ON" else r"(?m)^crc32: portable slice-by-8 ")
        for prog, binary in (("ckpt", common.CKPT_BIN),
                             ("ckptfs", common.CKPTFS_BIN)):
            with self.subTest(prog):
                res = M.run([binary, "--version"])
                self.ok(res, prog + " --version")
                lines = res.text.splitlines()
                self.assertEqual(lines[0], "%s %s" % (prog, version))
                self.assertIn("libfuse: " + (
                    fuse if prog == "ckptfs" else "not linked"), res.text)
                self.assertRegex(res.text, r"(?m)^crypto: OpenSSL 3\.")
                self.assertRegex(res.text, r"(?m)^protobuf-c: not linked")
                self.assertRegex(res.text, r"(?m)^json: jansson 2\.\d+")
                self.assertRegex(res.text, crc)


@unittest.skipUnless(common.BIG, "CKPT_BIG=0")
class TestCliBig(CliChecks):
    def test_big_600MiB(self):
        common.ensure_generated(big=True)
        path = common.BIG_FILE
        p = common.ref(path)[0]
        self.ok(M.ckpt("verify", path), "ckpt verify big")
        res = M.ckpt("ls", "-l", path)
        self.ok(res, "ckpt ls -l big")
        m = LS_L.match(lines_of(res)[0])
        self.assertIsNotNone(m)
        self.assertEqual((m.group(1), m.group(2), int(m.group(3)),
                          m.group(4)),
                         ("Float32", shape_str(p.shape), common.BIG_SIZE,
                          escape_name(p.name)))
        want = hashlib.sha256(p.data).hexdigest()
        del p
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "cat.bin")
            res = M.ckpt("cat", path,
                              escape_name(common.gen_fixtures.BIG_PARAM),
                              out_path=out)
            self.ok(res, "ckpt cat big")
            self.assertEqual(os.path.getsize(out), common.BIG_SIZE)
            h = hashlib.sha256()
            with open(out, "rb") as f:
                for chunk in iter(lambda: f.read(64 << 20), b""):
                    h.update(chunk)
            self.assertEqual(h.hexdigest(), want, "ckpt cat big: content")


def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    BATCH.close()
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
