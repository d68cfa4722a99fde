#!/usr/bin/python3
"""safetensors with ckptfs and ckpt, checked against the independent
reference tests/ref/stref.py (itself checked by test_stref).

Files: the real fixtures of tests/fixtures/safetensors (also the sharded
set), the files of tests/ref/gen_safetensors.py (every dtype incl. BF16,
F8, F4, F6, C64, an Int4 marker, 0-d and zero-element tensors; odd names;
MindSpore 2.4 / 2.5 / 2.7 style, with and without crc_num; lenient files
HF's loader accepts), its corrupt variants, 100,000 tensors and a sparse
file with a tensor over 4 GiB.

Covered:
* every valid file mounts (rw and -o ro) and shows, in data order, one
  file per tensor named as ckpt_name_escape does, its bytes, user.dtype
  (MindSpore's spelling, Int4 for a marked I8), user.shape, and the root's
  user.metadata.<key> (markers not listed); an unchanged rw mount writes
  nothing; ckpt ls / ls -l / cat / info / verify agree;
* every corrupt variant (and the NEG_ fixture) is refused by ckpt verify
  (exit 1, the file named; through ckpt_batch, a sample through the
  binary too) and, for the NEG_ fixture and a sample of the variants, by
  ckptfs, without a crash;
* edits on a rw mount (dd, pwrite, truncate + user.shape, user.dtype in
  three spellings, Int4, new files, rm, mv, user.metadata.* set / add /
  remove) committed by fsync of the root or 'ckpt commit', then 'ckpt
  umount': the file must be exactly stref.serialize(expected tensors,
  expected metadata), loadable by MindSpore 2.7 when its dtypes are;
  crc_num recomputed in place (the 0-d integer quirk), -o crc appends one;
  -o include= / exclude= keep hidden tensors; EPERM for crc_num and
  markers, ENOTSUP for user.metadata.* on a ckpt mount;
* a wrong crc_num is refused (mount, verify), -o ignore_crc mounts it
  read-only; encryption options are refused; -o format= / --format force
  the format, detection is by content;
* ckpt convert: ckpt -> safetensors for every real ckpt fixture (=
  stref.mindspore_save of ckref's parameters), safetensors -> ckpt (name
  order, ckref.dumps), both round trips, str / map parameters (error or
  --skip-unrepresentable), --include / --exclude / --rename / --name-map
  and collisions, the output format's choice;
* 100,000 tensors (mount + listdir, ls, a commit) and a tensor over 4 GiB
  (64-bit offsets: its last bytes and the tensor after it).

Run:  /usr/bin/python3 -m unittest -v test_safetensors   (in
tests/integration, with the environment of docs/testing.md)
"""

import errno
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from collections import OrderedDict as OD

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402  (common put tests/ref on sys.path)
import stref  # noqa: E402
import gen_safetensors as G  # noqa: E402
from batch import Batch  # noqa: E402

escape_name = common.escape_name
shape_str = stref.shape_str
ST_FIXTURES = os.path.join(common.REPO, "tests", "fixtures", "safetensors")
LS_L = re.compile(r"^(\S+)\s+(\[[0-9,]*\])\s+(\d+)\s+(.+)$")
MAX_CATS = 40
MANY = common.count("CKPT_ST_MANY", 100000, 100000, 20000)
MANY_OPEN_LIMIT = 15.0 if common.SANITIZED else 5.0   # seconds, loosely
DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)
# `ckpt` calls of the read-only checks go through one ckpt_batch process;
# every BINARY_EVERY-th also through the binary, which must agree (as in
# test_corrupt).  The refused files are also offered to ckptfs: every one
# of the NEG_ fixtures, every MOUNT_EVERY-th corrupt variant (the library
# that refuses them is the same; a mount under ASan costs a second).
BINARY_EVERY = 32 if common.SANITIZED else 8
MOUNT_EVERY = 8 if common.SANITIZED else 2
BATCH = Batch()
_CALLS = [0, 0]  # ckpt calls, refused files


def cli(test, *args):
    """`ckpt ARGS` for a check that only reads: through the batch driver,
    every BINARY_EVERY-th call through the binary too."""
    if not BATCH.available():
        return M.ckpt(*args)
    _CALLS[0] += 1
    if _CALLS[0] % BINARY_EVERY == 1:
        return BATCH.compare_with_binary(test, *args)
    return BATCH.ckpt(*args)


# --------------------------------------------------------------------------
# files

def st_fixtures():
    files = glob.glob(os.path.join(ST_FIXTURES, "*.safetensors")) + \
        glob.glob(os.path.join(ST_FIXTURES, "*", "*.safetensors"))
    return sorted(p for p in files
                  if not os.path.basename(p).startswith("NEG_"))


def st_neg():
    return sorted(glob.glob(os.path.join(ST_FIXTURES, "**", "NEG_*"),
                            recursive=True))


_GEN = {}


def gen_dir():
    """The generated files (all but the 100,000 and the 4 GiB ones),
    written once per run into a temporary directory."""
    if "dir" not in _GEN:
        d = tempfile.mkdtemp(prefix="ckptfs_stgen_")
        G.write_all(d, many_n=0)
        _GEN["dir"] = d
    return _GEN["dir"]


GEN_NAMES = ["all_dtypes", "odd_names", "ms_crc", "ms_plain", "ms_v25_crc",
             "ms_v24"] + ["lenient_" + label for label, _ in
                          G.lenient_variants()]


def gen_file(name):
    return os.path.join(gen_dir(), name + ".safetensors")


def valid_files():
    """[(id, path)] of every valid safetensors file."""
    out = []
    for p in st_fixtures():
        rel = os.path.relpath(p, ST_FIXTURES)
        out.append(("real_" + re.sub(r"[^0-9A-Za-z_]", "_",
                                     rel[:-len(".safetensors")]), p))
    for n in GEN_NAMES:
        out.append(("gen_" + re.sub(r"[^0-9A-Za-z_]", "_", n), n))
    return out


def resolve(p):
    """A path, or the name of a generated file."""
    return p if os.path.isabs(p) else gen_file(p)


def read_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def write_bytes(p, b):
    with open(p, "wb") as f:
        f.write(b)
    return p


def is_marker(key, value, st):
    """An Int4 marker: a metadata key naming an I8 tensor, value "Int4"."""
    return value == "Int4" and any(t.name == key and t.dtype == "I8"
                                   for t in st.tensors)


def meta_text(v):
    """A metadata value as ckptfs shows it: the string, or compact JSON."""
    return v if isinstance(v, str) else stref.json_value(v)


def detected_st(raw):
    """What ckptfs detects as safetensors (spec16): an 8-byte length, then
    after optional JSON whitespace a "{"."""
    return len(raw) > 8 and raw[8:].lstrip(b" \t\n\r")[:1] == b"{"


def ms_loadable(tensors, meta):
    if any(t[1] not in stref.MS_DTYPE_SIZE for t in tensors):
        return False
    names = {t[0] for t in tensors}
    return not any(k in names and v != "Int4"
                   for k, v in (meta or {}).items())


# --------------------------------------------------------------------------
# the expected state of a file

class Expect:
    """Tensors [name, dtype (safetensors), shape, data] and metadata of
    what a commit must write (stref.serialize does the ordering)."""

    def __init__(self, tensors, meta):
        self.t = [[n, d, tuple(s), bytes(b)] for n, d, s, b in tensors]
        self.meta = None if meta is None else OD(meta)

    @classmethod
    def of(cls, path):
        with stref.read(path) as st:
            return cls([(t.name, t.dtype, t.shape, t.data)
                        for t in st.tensors], st.metadata)

    def find(self, name):
        for t in self.t:
            if t[0] == name:
                return t
        raise KeyError(name)

    def set(self, name, dtype=None, shape=None, data=None):
        t = self.find(name)
        if dtype is not None:
            t[1] = dtype
        if shape is not None:
            t[2] = tuple(shape)
        if data is not None:
            t[3] = bytes(data)
        return self

    def remove(self, name):
        self.t.remove(self.find(name))
        return self

    def add(self, name, dtype, shape, data):
        self.t.append([name, dtype, tuple(shape), bytes(data)])
        return self

    def rename(self, old, new):
        self.find(old)[0] = new
        return self

    def bytes(self):
        if not self.t:
            return stref.EMPTY_FILE
        return stref.serialize([tuple(t) for t in self.t], self.meta)

    def with_crc(self):
        """crc_num recomputed (in place when present, else appended)."""
        self.meta = OD(self.meta or ())
        self.meta["crc_num"] = str(stref.crc_num([tuple(t)
                                                  for t in self.t]))
        return self


def first_diff(a, b):
    return W.first_diff(a, b)


# --------------------------------------------------------------------------
# base class

class StBase(unittest.TestCase):
    maxDiff = 6000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, "ckptfs_st_")

    def copy(self, src, name=None):
        """A private copy of a file (path or generated name) in self.dir."""
        src = resolve(src)
        dst = os.path.join(self.dir, name or os.path.basename(src))
        shutil.copyfile(src, dst)
        return dst

    def put(self, name, data):
        return write_bytes(os.path.join(self.dir, name), data)

    def ok(self, res, what):
        common.assert_not_signal(self, res, what)
        if res.rc != 0:
            self.fail("%s failed\n%s" % (what, res.describe()))

    def refused(self, res, what, rc=1):
        common.assert_not_signal(self, res, what)
        if rc is None:
            self.assertNotEqual(res.rc, 0, "%s must fail\n%s"
                                % (what, res.describe()))
        else:
            self.assertEqual(res.rc, rc, "%s must fail with exit %d\n%s"
                             % (what, rc, res.describe()))

    def commit(self, m, what="commit"):
        e = m.commit()
        if e:
            self.fail("%s: fsync of the root failed with %s: %s" % (
                what, W.errno_name(e), m.error(fallback=True)))

    def assertFileIs(self, path, exp, label=""):
        """path == exp.bytes() byte for byte; readable by HF's rules and,
        when its dtypes are MindSpore's, by MindSpore 2.7's reader."""
        label = label or os.path.basename(path)
        raw = read_bytes(path)
        want = exp.bytes()
        if raw != want:
            try:
                st = stref.read(raw)
                got = "%s; metadata %r" % (
                    [(t.name, t.dtype, t.shape, t.nbytes)
                     for t in st.tensors][:20], st.metadata)
            except stref.StError as e:
                got = "invalid: %s" % e
            self.fail("%s: the file is not what the serializer writes for "
                      "the expected tensors (%d bytes, expected %d, first "
                      "difference at %d)\n got: %s\nwant: %s; metadata %r"
                      % (label, len(raw), len(want), first_diff(raw, want),
                         got, [(t[0], t[1], t[2], len(t[3]))
                               for t in exp.t][:20], exp.meta))
        try:
            stref.read(raw, "hf").close()
            if ms_loadable(exp.t, exp.meta):
                stref.read(raw, "ms").close()
        except stref.StError as e:
            self.fail("%s: the reference refuses the committed file: %s"
                      % (label, e))

    def mount(self, path, *opts, **kw):
        return M.mount(self, path, *opts, **kw)

    def assertMountShows(self, m, st_or_exp, label="", ordered=True):
        """Listing (in data order unless not ordered: after a commit the
        order of the listing is not specified), bytes, user.dtype,
        user.shape."""
        if isinstance(st_or_exp, Expect):
            raw = st_or_exp.bytes()
            st = stref.read(raw)
        else:
            st = st_or_exp
        want = [escape_name(t.name) for t in st.tensors]
        got = m.names()
        if not ordered:
            got, want = sorted(got), sorted(want)
        self.assertEqual(got, want, "%s: listing (data order)" % label)
        for t in st.tensors:
            fp = os.path.join(m.mnt, escape_name(t.name))
            what = "%s: %r" % (label, t.name)
            self.assertEqual(os.stat(fp).st_size, t.nbytes, what + " size")
            self.assertEqual(read_bytes(fp), t.data, what + " bytes")
            self.assertEqual(W.getx(fp, "user.dtype"),
                             stref.shown_dtype(t.dtype, t.name, st.metadata),
                             what + " user.dtype")
            self.assertEqual(W.getx(fp, "user.shape"), shape_str(t.shape),
                             what + " user.shape")

    def root_meta(self, m):
        """{key: value} of the root's user.metadata.* (listed ones)."""
        out = OD()
        for x in m.step(lambda: os.listxattr(m.mnt), "listxattr(root)"):
            if x.startswith("user.metadata."):
                out[x[len("user.metadata."):]] = os.getxattr(
                    m.mnt, x).decode("utf-8", "surrogateescape")
        return out

    def assertRootMeta(self, m, meta, st, label=""):
        want = OD((k, meta_text(v)) for k, v in (meta or {}).items()
                  if not is_marker(k, v, st))
        got = self.root_meta(m)
        self.assertEqual(dict(got), dict(want), "%s: user.metadata.* of the "
                         "root" % label)
        for k, v in want.items():
            self.assertEqual(os.getxattr(m.mnt, "user.metadata." + k),
                             v.encode("utf-8", "surrogateescape"), k)


# --------------------------------------------------------------------------
# every valid file: mount, CLI

class MountChecks(StBase):
    def check_mount(self, path, ro):
        base = os.path.basename(path)
        copy = self.copy(path)
        before = W.file_state(copy)
        st = stref.read(copy)
        self.addCleanup(st.close)
        m = self.mount(copy, *(("-o", "ro") if ro else ()))
        self.assertMountShows(m, st, base)
        self.assertRootMeta(m, st.metadata, st, base)
        self.assertFalse(os.path.exists(os.path.join(m.mnt, "no such")))
        if st.tensors:
            t = max(st.tensors, key=lambda t: t.nbytes)
            fp = os.path.join(m.mnt, escape_name(t.name))
            rng = random.Random(base)
            fd = os.open(fp, os.O_RDONLY)
            try:
                for _ in range(8):
                    off = rng.randrange(0, t.nbytes + 8)
                    n = rng.randrange(0, 2 * t.nbytes + 2)
                    self.assertEqual(os.pread(fd, n, off),
                                     t.data[off:off + n],
                                     "%s: pread(%d, %d)" % (t.name, n, off))
            finally:
                os.close(fd)
            if t.nbytes:
                mm = np.memmap(fp, dtype=np.uint8, mode="r")
                try:
                    self.assertEqual(mm.tobytes(), t.data, "np.memmap")
                finally:
                    del mm
        if ro:
            if st.tensors:
                fp = os.path.join(m.mnt, escape_name(st.tensors[0].name))
                with self.assertRaises(OSError) as cm:
                    os.truncate(fp, 0)
                self.assertIn(cm.exception.errno, DENIED)
            with self.assertRaises(OSError) as cm:
                os.setxattr(m.mnt, "user.metadata.x", b"y")
            self.assertIn(cm.exception.errno, DENIED)
        else:
            self.commit(m, "fsync of an unchanged mount")
        m.unmount()
        self.assertEqual(W.file_state(copy), before,
                         "%s: the file changed (inode, mtime, size, sha256) "
                         "although nothing was edited" % base)

    def check_edit(self, path):
        """A same-size edit of one byte is committed as the serializer's
        form of the file (for real fixtures: the original bytes, but for
        that byte)."""
        copy = self.copy(path)
        exp = Expect.of(copy)
        target = next((t for t in exp.t if len(t[3])), None)
        if target is None:
            self.skipTest("no tensor with data")
        m = self.mount(copy)
        data = bytearray(target[3])
        data[len(data) // 2] ^= 0xA5
        W.pwrite_file(m.p(target[0]), bytes(data[len(data) // 2:
                                                 len(data) // 2 + 1]),
                      len(data) // 2)
        exp.set(target[0], data=data)
        if exp.meta and "crc_num" in exp.meta:
            exp.with_crc()  # recomputed in place by every commit
        ino = os.stat(copy).st_ino
        self.commit(m)
        self.assertFileIs(copy, exp)
        self.assertNotEqual(os.stat(copy).st_ino, ino,
                            "a same-size edit must go through a new file "
                            "(never overwritten in place)")
        self.assertMountShows(m, exp, "after the commit", ordered=False)
        m.unmount()
        self.assertFileIs(copy, exp, "after unmount")

    def check_cli(self, path):
        base = os.path.basename(path)
        st = stref.read(path)
        self.addCleanup(st.close)
        res = cli(self, "verify", path)
        self.ok(res, "ckpt verify " + base)
        self.assertIn("OK", res.text)
        res = cli(self, "ls", path)
        self.ok(res, "ckpt ls " + base)
        self.assertEqual(res.text.splitlines(),
                         [escape_name(t.name) for t in st.tensors],
                         "ckpt ls (data order)")
        res = cli(self, "ls", "-l", path)
        self.ok(res, "ckpt ls -l " + base)
        rows = []
        for line in res.text.splitlines():
            mt = LS_L.match(line)
            self.assertIsNotNone(mt, "ckpt ls -l line %r" % line)
            rows.append((mt.group(1), mt.group(2), int(mt.group(3)),
                         mt.group(4)))
        self.assertEqual(rows, [(stref.shown_dtype(t.dtype, t.name,
                                                   st.metadata),
                                 shape_str(t.shape), t.nbytes,
                                 escape_name(t.name)) for t in st.tensors])
        items = list(st.tensors)
        if len(items) > MAX_CATS:
            items = random.Random(base).sample(items, MAX_CATS)
        for t in items:
            res = cli(self, "cat", path, escape_name(t.name))
            self.ok(res, "ckpt cat %s %r" % (base, t.name))
            self.assertEqual(res.out, t.data, "ckpt cat %r" % t.name)
        if st.tensors:
            rev = st.tensors[::-1]
            res = cli(self, "cat", path, *[escape_name(t.name) for t in rev])
            self.ok(res, "ckpt cat (all)")
            self.assertEqual(res.out, b"".join(t.data for t in rev))
        res = cli(self, "info", path)
        self.ok(res, "ckpt info " + base)
        self.assertRegex(res.text, r"(?m)^format:\s+safetensors$")
        self.assertRegex(res.text, r"(?m)^header:\s+%d bytes$"
                         % st.header_len)
        self.assertRegex(res.text, r"(?<![0-9.])%d(?![0-9.])"
                         % len(st.tensors), "the tensor count")
        for k, v in (st.metadata or {}).items():
            if is_marker(k, v, st):
                continue
            self.assertRegex(res.text, r"(?m)^metadata:\s+%s$" % re.escape(
                "%s=%s" % (k, meta_text(v))), "ckpt info: metadata %r" % k)


# lenient files whose edit has no single right answer (see the report of
# the reference): an empty or null __metadata__ after a commit
EDIT_SKIP = {"gen_lenient_metadata_empty", "gen_lenient_metadata_null"}


def _add_file_tests():
    for tid, p in valid_files():
        def t_rw(self, p=p):
            self.check_mount(resolve(p), ro=False)

        def t_ro(self, p=p):
            self.check_mount(resolve(p), ro=True)

        def t_cli(self, p=p):
            self.check_cli(resolve(p))

        def t_edit(self, p=p):
            self.check_edit(resolve(p))
        setattr(TestStMount, "test_rw_" + tid, t_rw)
        setattr(TestStMount, "test_ro_" + tid, t_ro)
        setattr(TestStCli, "test_" + tid, t_cli)
        if tid not in EDIT_SKIP:
            setattr(TestStEditEach, "test_" + tid, t_edit)


class TestStMount(MountChecks):
    """Every valid file mounted rw (no write when unchanged) and -o ro."""


class TestStCli(MountChecks):
    """ckpt verify / ls / ls -l / cat / info on every valid file."""


class TestStEditEach(MountChecks):
    """A one-byte edit of every valid file, committed."""


_add_file_tests()


# --------------------------------------------------------------------------
# refused files

class TestStRefused(StBase):
    """Corrupt variants and the NEG_ fixture: ckpt verify exits 1 naming the
    file, ckptfs does not mount (the NEG_ fixture and every MOUNT_EVERY-th
    variant are tried), nothing crashes."""

    def check_refused(self, path, neg=False):
        """Refused as safetensors (the format forced), and also when the
        format is detected -- unless the content is not detected as
        safetensors (fewer than 9 bytes, no "{" after the length) and is a
        valid .ckpt, as the empty file is."""
        base = os.path.basename(path)
        raw = read_bytes(path)
        self.assertFalse(stref.is_valid(raw), "the reference accepts %s"
                         % base)
        forced = [("--format", "safetensors"), ()]
        if not detected_st(raw):
            try:
                ckref.loads(raw)
                forced = forced[:1]
            except ckref.CheckpointError:
                pass
        _CALLS[1] += 1
        mount = neg or _CALLS[1] % MOUNT_EVERY == 1
        for fmt in forced:
            how = " ".join(fmt) or "detected"
            res = cli(self, "verify", *(fmt + (path,)))
            self.refused(res, "ckpt verify (%s) %s" % (how, base))
            self.assertIn(base, res.errtext, "the message names the file")
            if fmt:
                res = cli(self, "ls", *(fmt + (path,)))
                self.refused(res, "ckpt ls (%s) %s" % (how, base))
            if not mount:
                continue
            opts = ("-o", "ro") + (("-o", "format=safetensors")
                                   if fmt else ())
            res, m = M.try_mount(self, path, *opts)
            common.assert_not_signal(self, res, "ckptfs " + base)
            self.assertIsNone(m, "ckptfs (%s) mounted the invalid file %s"
                              % (how, base))
            self.assertNotEqual(res.rc, 0)
            self.assertIn(base, res.errtext, "ckptfs: the message names "
                          "the file")

    def test_neg_fixtures(self):
        files = st_neg()
        self.assertTrue(files)
        for p in files:
            with self.subTest(os.path.basename(p)):
                self.check_refused(self.copy(p), neg=True)

    def test_corrupt_variants_of_a_real_fixture(self):
        base = read_bytes(os.path.join(
            ST_FIXTURES, "fluxml_model_with_metadata.safetensors"))
        for label, raw in G.corrupt_variants(base):
            if not label.startswith(("truncated_", "flip")):
                continue
            with self.subTest(label):
                self.check_refused(self.put("fx_%s.safetensors" % label,
                                            raw))


def _add_corrupt_tests():
    for label, raw in G.corrupt_variants():
        def t(self, label=label, raw=raw):
            self.check_refused(self.put("c_%s.safetensors" % label, raw))
        setattr(TestStRefused, "test_" + re.sub(r"[^0-9A-Za-z_]", "_",
                                                label), t)


_add_corrupt_tests()


# --------------------------------------------------------------------------
# edits on a rw mount

class TestStEdits(StBase):
    """Edits of a MindSpore 2.7 file ({"format":"ms"} + an Int4 marker)."""

    SRC = "ms_plain"

    def setUp(self):
        super().setUp()
        self.src = self.copy(self.SRC, "model.safetensors")
        self.exp = Expect.of(self.src)

    def dd(self, m, name, data, seek):
        tmp = self.put("dd.bin", data)
        r = subprocess.run(["dd", "if=" + tmp, "of=" + m.p(name), "bs=1",
                            "seek=%d" % seek, "conv=notrunc", "status=none"],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)

    def finish(self, m, how="fsync"):
        """Commits (fsync of the root or ckpt commit), checks the file,
        unmounts with ckpt umount and checks it again."""
        if how == "fsync":
            self.commit(m)
        else:
            self.ok(M.ckpt("commit", m.mnt), "ckpt commit")
        self.assertFileIs(self.src, self.exp)
        self.assertMountShows(m, self.exp, "after the commit",
                              ordered=False)
        state = W.file_state(self.src)
        self.ok(m.ckpt_umount(), "ckpt umount")
        self.assertFalse(M.is_mounted(m.mnt))
        self.assertEqual(W.file_state(self.src), state,
                         "the unmount wrote again although nothing changed "
                         "since the commit")

    def test_dd_into_tensor(self):
        m = self.mount(self.src)
        data = bytearray(self.exp.find("conv1.weight")[3])
        pat = bytes(range(100, 116))
        self.dd(m, "conv1.weight", pat, 8)
        data[8:24] = pat
        self.exp.set("conv1.weight", data=data)
        self.finish(m)

    def test_pwrite_and_ckpt_commit(self):
        m = self.mount(self.src)
        W.pwrite_file(m.p("learning_rate"), np.float32(0.5).tobytes(), 0)
        self.exp.set("learning_rate", data=np.float32(0.5).tobytes())
        self.finish(m, how="ckpt commit")

    def test_truncate_and_reshape(self):
        m = self.mount(self.src)
        w = self.exp.find("conv1.weight")[3]
        os.truncate(m.p("conv1.weight"), 48)
        W.setx(m.p("conv1.weight"), "user.shape", "[4,3]")
        self.exp.set("conv1.weight", shape=(4, 3), data=w[:48])
        bigger = np.arange(8, dtype="<f4").tobytes()
        W.write_file(m.p("conv1.bias"), bigger)
        W.setx(m.p("conv1.bias"), "user.shape", "[2,4]")
        self.exp.set("conv1.bias", shape=(2, 4), data=bigger)
        self.finish(m)

    def test_retype_three_spellings(self):
        m = self.mount(self.src)
        W.setx(m.p("conv1.bias"), "user.dtype", "Int32")      # MindSpore
        W.setx(m.p("fc.weight"), "user.dtype", "bfloat16")    # numpy
        W.setx(m.p("ids"), "user.dtype", "I8")                # safetensors
        self.assertEqual(W.getx(m.p("conv1.bias"), "user.dtype"), "Int32")
        self.assertEqual(W.getx(m.p("fc.weight"), "user.dtype"), "BFloat16")
        self.assertEqual(W.getx(m.p("ids"), "user.dtype"), "Int8")
        self.exp.set("conv1.bias", dtype="I32")
        self.exp.set("fc.weight", dtype="BF16")
        self.exp.set("ids", dtype="I8")
        self.finish(m)

    def test_retype_to_int4_appends_marker(self):
        m = self.mount(self.src)
        W.setx(m.p("i8"), "user.dtype", "Int4")
        self.assertEqual(W.getx(m.p("i8"), "user.dtype"), "Int4")
        self.exp.meta["i8"] = "Int4"
        self.finish(m)

    def test_retype_int4_to_int8_drops_marker(self):
        m = self.mount(self.src)
        self.assertEqual(W.getx(m.p("quant.weight"), "user.dtype"), "Int4")
        W.setx(m.p("quant.weight"), "user.dtype", "Int8")
        del self.exp.meta["quant.weight"]
        self.finish(m)

    def test_new_files(self):
        m = self.mount(self.src)
        h = np.arange(6, dtype="<f2").tobytes()
        W.write_file(m.p("new.w"), h)
        W.set_meta(m.p("new.w"), "Float16", "[2,3]")
        W.write_file(m.p("raw.bytes"), b"\x01\x02\x03")    # UInt8 [3]
        self.assertEqual(W.getx(m.p("raw.bytes"), "user.dtype"), "UInt8")
        W.write_file(os.path.join(m.mnt, "sub%2Fdir.x"), b"\x09")
        self.exp.add("new.w", "F16", (2, 3), h)
        self.exp.add("raw.bytes", "U8", (3,), b"\x01\x02\x03")
        self.exp.add("sub/dir.x", "U8", (1,), b"\x09")
        self.finish(m)

    def test_cp_in(self):
        m = self.mount(self.src)
        src = self.put("x.bin", np.arange(4, dtype="<i8").tobytes())
        r = subprocess.run(["cp", src, m.p("copied")],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        W.set_meta(m.p("copied"), "int64", "[4]")
        self.exp.add("copied", "I64", (4,), read_bytes(src))
        self.finish(m)

    def test_rm(self):
        m = self.mount(self.src)
        os.unlink(m.p("fc.weight"))
        os.unlink(m.p("epoch_num"))
        self.exp.remove("fc.weight").remove("epoch_num")
        self.finish(m)

    def test_rm_int4_tensor_drops_marker(self):
        m = self.mount(self.src)
        os.unlink(m.p("quant.weight"))
        self.exp.remove("quant.weight")
        del self.exp.meta["quant.weight"]
        self.finish(m)

    def test_rm_everything_gives_the_empty_file(self):
        m = self.mount(self.src)
        for n in m.names():
            os.unlink(os.path.join(m.mnt, n))
        self.exp.t = []
        self.finish(m)
        self.assertEqual(read_bytes(self.src), stref.EMPTY_FILE)

    def test_names_safetensors_cannot_hold(self):
        """__metadata__ and a NUL byte (%00) cannot name a tensor: the
        file could not be read back.  EINVAL at create and rename, and the
        commit after it is the unchanged tensors'."""
        m = self.mount(self.src)
        for bad in ("__metadata__", "a%00b"):
            with self.subTest(bad):
                with self.assertRaises(OSError) as cm:
                    os.close(os.open(os.path.join(m.mnt, bad),
                                     os.O_WRONLY | os.O_CREAT, 0o644))
                self.assertEqual(cm.exception.errno, errno.EINVAL)
                with self.assertRaises(OSError) as cm:
                    os.rename(m.p("fc.weight"), os.path.join(m.mnt, bad))
                self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertIn("fc.weight", m.names())
        os.unlink(m.p("epoch_num"))
        self.exp.remove("epoch_num")
        self.finish(m)

    def test_mv(self):
        m = self.mount(self.src)
        os.rename(m.p("conv1.weight"), m.p("backbone.conv1.weight"))
        r = subprocess.run(["mv", m.p("ids"), os.path.join(m.mnt,
                                                           "a%2Fids")],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.exp.rename("conv1.weight", "backbone.conv1.weight")
        self.exp.rename("ids", "a/ids")
        self.finish(m)

    def test_mv_over_another(self):
        m = self.mount(self.src)
        os.replace(m.p("conv1.bias"), m.p("learning_rate"))
        self.exp.remove("learning_rate").rename("conv1.bias",
                                                "learning_rate")
        self.finish(m)

    def test_metadata_set_add_remove(self):
        m = self.mount(self.src)
        self.assertEqual(self.root_meta(m), OD(format="ms"))
        os.setxattr(m.mnt, "user.metadata.format", b"pt")
        os.setxattr(m.mnt, "user.metadata.note", b"hello world")
        os.setxattr(m.mnt, "user.metadata.zz", b"last")
        self.assertEqual(os.getxattr(m.mnt, "user.metadata.note"),
                         b"hello world")
        os.removexattr(m.mnt, "user.metadata.zz")
        with self.assertRaises(OSError) as cm:
            os.getxattr(m.mnt, "user.metadata.zz")
        self.assertEqual(cm.exception.errno, errno.ENODATA)
        self.exp.meta["format"] = "pt"
        self.exp.meta["note"] = "hello world"
        self.finish(m)

    @unittest.skipUnless(shutil.which("setfattr") and shutil.which(
        "getfattr"), "setfattr/getfattr not installed")
    def test_metadata_with_setfattr_getfattr(self):
        m = self.mount(self.src)
        r = m.run(["setfattr", "-n", "user.metadata.k", "-v", "v", m.mnt])
        self.ok(r, "setfattr -n")
        r = m.run(["getfattr", "-d", "--absolute-names", m.mnt])
        self.ok(r, "getfattr -d")
        self.assertIn('user.metadata.k="v"', r.text)
        self.assertIn('user.metadata.format="ms"', r.text)
        self.assertNotIn("quant.weight", r.text, "markers are not listed")
        r = m.run(["setfattr", "-x", "user.metadata.format", m.mnt])
        self.ok(r, "setfattr -x")
        del self.exp.meta["format"]
        self.exp.meta["k"] = "v"
        self.finish(m)

    def test_metadata_crc_and_markers_not_editable(self):
        src = self.copy("ms_crc", "crc.safetensors")
        before = W.file_state(src)
        m = self.mount(src)
        self.assertIn("crc_num", self.root_meta(m))
        self.assertNotIn("quant.weight", self.root_meta(m))
        for name in ("user.metadata.crc_num", "user.metadata.quant.weight"):
            with self.assertRaises(OSError, msg=name) as cm:
                os.setxattr(m.mnt, name, b"1")
            self.assertEqual(cm.exception.errno, errno.EPERM, name)
            with self.assertRaises(OSError, msg=name) as cm:
                os.removexattr(m.mnt, name)
            self.assertEqual(cm.exception.errno, errno.EPERM, name)
        m.unmount()
        self.assertEqual(W.file_state(src), before)

    def test_metadata_on_a_file_without(self):
        src = self.copy("ms_v24", "v24.safetensors")
        exp = Expect.of(src)
        self.assertIsNone(exp.meta)
        m = self.mount(src)
        self.assertEqual(self.root_meta(m), OD())
        os.setxattr(m.mnt, "user.metadata.k", b"v")
        self.commit(m)
        exp.meta = OD(k="v")
        self.assertFileIs(src, exp)
        m.unmount()

    def test_edit_without_metadata_writes_none(self):
        src = self.copy("ms_v24", "v24.safetensors")
        exp = Expect.of(src)
        m = self.mount(src)
        os.unlink(m.p("d64"))
        exp.remove("d64")
        self.commit(m)
        self.assertFileIs(src, exp)
        self.assertNotIn(b"__metadata__", read_bytes(src))
        m.unmount()

    def test_no_change_no_write(self):
        before = W.file_state(self.src)
        m = self.mount(self.src)
        for n in m.names():
            read_bytes(os.path.join(m.mnt, n))
            os.listxattr(os.path.join(m.mnt, n))
        self.root_meta(m)
        self.commit(m)
        self.ok(M.ckpt("commit", m.mnt), "ckpt commit")
        self.ok(m.ckpt_umount(), "ckpt umount")
        self.assertEqual(W.file_state(self.src), before)

    def test_several_commits(self):
        m = self.mount(self.src)
        W.pwrite_file(m.p("ids"), b"\x07", 1)
        self.exp.set("ids", data=b"\x01\x07\x03")
        self.commit(m)
        self.assertFileIs(self.src, self.exp)
        os.unlink(m.p("mask"))
        self.exp.remove("mask")
        self.commit(m)
        self.assertFileIs(self.src, self.exp)
        m.unmount()
        self.assertFileIs(self.src, self.exp)

    def test_output_option(self):
        out = os.path.join(self.dir, "out.safetensors")
        before = W.file_state(self.src)
        m = self.mount(self.src, "-o", "output=" + out)
        os.unlink(m.p("hist"))
        self.exp.remove("hist")
        m.unmount()
        self.assertEqual(W.file_state(self.src), before)
        self.assertFileIs(out, self.exp)

    def test_create_new_safetensors(self):
        """-o create with a .safetensors path: an empty checkpoint whose
        format follows the extension (assumption: spec16 names no other
        rule for a file that does not exist yet)."""
        out = os.path.join(self.dir, "new.safetensors")
        m = self.mount(out, "-o", "create")
        W.write_file(m.p("w"), np.ones(3, "<f4").tobytes())
        W.set_meta(m.p("w"), "Float32", "[3]")
        m.unmount()
        raw = read_bytes(out)
        self.assertTrue(stref.is_valid(raw), "not a safetensors file")
        st = stref.read(raw)
        self.assertEqual([(t.name, t.dtype, t.shape) for t in st.tensors],
                         [("w", "F32", (3,))])

    def test_include_exclude_mount(self):
        m = self.mount(self.src, "-o", "exclude=moments.*", "-o",
                       "exclude=fc.*")
        names = m.names()
        self.assertNotIn("moments.conv1.weight", names)
        self.assertNotIn("fc.weight", names)
        self.assertIn("conv1.weight", names)
        W.pwrite_file(m.p("conv1.bias"), bytes(4), 0)
        d = bytearray(self.exp.find("conv1.bias")[3])
        d[0:4] = bytes(4)
        self.exp.set("conv1.bias", data=d)
        self.commit(m)
        self.assertFileIs(self.src, self.exp)   # hidden ones kept
        m.unmount()
        m = self.mount(self.src, "-o", "include=conv1.*")
        self.assertEqual(sorted(m.names()), ["conv1.bias", "conv1.weight"])
        m.unmount()

    def test_ls_include_exclude(self):
        st = stref.read(self.src)
        res = M.ckpt("ls", "--include", "conv1.*", "--include", "fc.*",
                     "--exclude", "*.bias*", self.src)
        self.ok(res, "ckpt ls --include --exclude")
        self.assertEqual(res.text.splitlines(),
                         [t.name for t in st.tensors
                          if re.match(r"(conv1|fc)\.", t.name) and
                          ".bias" not in t.name])


class TestStCrc(StBase):
    def test_commit_recomputes_crc_in_place(self):
        src = self.copy("ms_crc", "m.safetensors")
        exp = Expect.of(src)
        self.assertEqual(list(exp.meta)[-1], "crc_num")
        m = self.mount(src)
        W.pwrite_file(m.p("conv1.bias"), b"\x00\x00\x80\x3f", 0)
        d = bytearray(exp.find("conv1.bias")[3])
        d[0:4] = b"\x00\x00\x80\x3f"
        exp.set("conv1.bias", data=d).with_crc()
        self.commit(m)
        self.assertFileIs(src, exp)
        self.assertTrue(stref.check_crc(src, "ms"))
        m.unmount()

    def test_crc_of_a_0d_integer(self):
        """epoch_num changed to 9: the crc hashes 9 zero bytes for it."""
        src = self.copy("ms_crc", "m.safetensors")
        exp = Expect.of(src)
        m = self.mount(src)
        W.write_file(m.p("epoch_num"), np.int64(9).tobytes())
        exp.set("epoch_num", data=np.int64(9).tobytes()).with_crc()
        m.unmount()
        self.assertFileIs(src, exp)
        self.assertTrue(stref.check_crc(src))

    def test_crc_key_position_kept(self):
        """A file whose crc_num is not the last key keeps it in place."""
        t = [("a", "F32", (2,), np.ones(2, "<f4").tobytes()),
             ("n", "I64", (), np.int64(3).tobytes())]
        meta = OD([("crc_num", str(stref.crc_num(t))), ("format", "ms")])
        src = self.put("c.safetensors", stref.serialize(t, meta))
        exp = Expect.of(src)
        m = self.mount(src)
        W.write_file(m.p("n"), np.int64(4).tobytes())
        exp.set("n", data=np.int64(4).tobytes()).with_crc()
        self.assertEqual(list(exp.meta), ["crc_num", "format"])
        m.unmount()
        self.assertFileIs(src, exp)

    def test_o_crc_appends(self):
        src = self.copy("ms_plain", "p.safetensors")
        exp = Expect.of(src)
        m = self.mount(src, "-o", "crc")
        os.unlink(m.p("hist"))
        exp.remove("hist").with_crc()
        self.assertEqual(list(exp.meta)[-1], "crc_num")
        m.unmount()
        self.assertFileIs(src, exp)
        self.assertTrue(stref.check_crc(src))

    def test_valid_crc_verify_and_info(self):
        src = self.copy("ms_crc")
        res = M.ckpt("verify", src)
        self.ok(res, "ckpt verify")
        self.assertIn("valid", res.text)
        self.ok(M.ckpt("verify", self.copy("ms_v25_crc")), "verify v2.5")

    def wrong_crc_files(self):
        raw = G.mindspore_style(crc=True)
        st = stref.read(raw)
        good = st.metadata["crc_num"]
        bad = str((int(good) + 1) % 10 ** len(good)).zfill(len(good))
        if bad[0] == "0":
            bad = "1" + bad[1:]
        b1 = raw.replace(('"crc_num":"%s"' % good).encode(),
                         ('"crc_num":"%s"' % bad).encode())
        b2 = bytearray(raw)
        b2[-1] ^= 0x40
        out = []
        for label, b in (("crc_value", b1), ("data_byte", bytes(b2))):
            stref.read(b)
            self.assertIs(stref.check_crc(b), False)
            out.append(self.put("bad_%s.safetensors" % label, b))
        return out

    def test_wrong_crc_refused(self):
        for p in self.wrong_crc_files():
            with self.subTest(os.path.basename(p)):
                res = M.ckpt("verify", p)
                self.refused(res, "ckpt verify")
                res = M.ckpt("verify", "--ignore-crc", p)
                self.refused(res, "ckpt verify --ignore-crc")
                res = M.ckpt("ls", p)
                self.refused(res, "ckpt ls")
                self.assertIn("--ignore-crc", res.errtext)
                self.ok(M.ckpt("ls", "--ignore-crc", p), "ls --ignore-crc")
                res, m = M.try_mount(self, p)
                common.assert_not_signal(self, res, "ckptfs")
                self.assertIsNone(m, "mounted a file with a wrong crc_num")
                self.assertIn("ignore_crc", res.errtext)

    def test_ignore_crc_mounts_read_only(self):
        p = self.wrong_crc_files()[0]
        before = W.file_state(p)
        m = self.mount(p, "-o", "ignore_crc")
        st = stref.read(p)
        self.assertMountShows(m, st, "ignore_crc")
        with self.assertRaises(OSError) as cm:
            W.pwrite_file(m.p("ids"), b"x", 0)
        self.assertIn(cm.exception.errno, DENIED)
        with self.assertRaises(OSError) as cm:
            os.setxattr(m.mnt, "user.metadata.k", b"v")
        self.assertIn(cm.exception.errno, DENIED)
        m.unmount()
        self.assertEqual(W.file_state(p), before)


class TestStOptions(StBase):
    def key(self):
        return self.put("key.bin", bytes(range(16)))

    def test_encryption_refused(self):
        src = self.copy("ms_plain")
        k = self.key()
        res, m = M.try_mount(self, src, "-o",
                             "enc_mode=AES-GCM,keyfile=" + k)
        common.assert_not_signal(self, res, "ckptfs enc_mode")
        self.assertIsNone(m)
        self.assertIn("safetensors", res.errtext)
        for cmd in ("verify", "ls", "info"):
            res = M.ckpt(cmd, "--enc-mode", "AES-GCM", "--keyfile", k, src)
            self.refused(res, "ckpt %s --enc-mode" % cmd)
            self.assertIn("safetensors", res.errtext)
        # an encrypted safetensors output
        ck = self.put("in.ckpt", ckref.dumps(
            [dict(name="w", dtype="Float32", shape=(2,), data=bytes(8))]))
        out = os.path.join(self.dir, "out.safetensors")
        res = M.ckpt("convert", "--out-enc-mode", "AES-GCM",
                     "--out-keyfile", k, ck, out)
        self.refused(res, "convert --out-enc-mode to safetensors",
                     rc=None)
        self.assertIn("safetensors", res.errtext)
        self.assertFalse(os.path.exists(out))

    def test_detection_by_content(self):
        st_named_ckpt = self.copy("ms_plain", "model.ckpt")
        st = stref.read(st_named_ckpt)
        m = self.mount(st_named_ckpt)
        self.assertMountShows(m, st, "safetensors named .ckpt")
        m.unmount()
        res = M.ckpt("info", st_named_ckpt)
        self.ok(res, "info")
        self.assertRegex(res.text, r"(?m)^format:\s+safetensors$")
        ck = os.path.join(self.dir, "ck.safetensors")
        params = [dict(name="w", dtype="Float32", shape=(2,),
                       data=np.ones(2, "<f4").tobytes())]
        ckref.write(ck, params)
        m = self.mount(ck)
        self.assertEqual(m.names(), ["w"])
        self.assertEqual(W.getx(m.p("w"), "user.dtype"), "Float32")
        m.unmount()
        res = M.ckpt("info", ck)
        self.ok(res, "info")
        self.assertRegex(res.text, r"(?m)^format:\s+ckpt$")

    def test_format_forcing(self):
        src = self.copy("ms_plain")
        ck = os.path.join(self.dir, "x.ckpt")
        ckref.write(ck, [dict(name="w", dtype="Float32", shape=(2,),
                              data=bytes(8))])
        # wrong format forced: fails as that format's scan would
        for path, fmt in ((src, "ckpt"), (ck, "safetensors")):
            with self.subTest(path=os.path.basename(path), fmt=fmt):
                res, m = M.try_mount(self, path, "-o", "format=" + fmt)
                common.assert_not_signal(self, res, "ckptfs format=")
                self.assertIsNone(m)
                self.assertNotEqual(res.rc, 0)
                for cmd in ("verify", "ls"):
                    self.refused(M.ckpt(cmd, "--format", fmt, path),
                                 "ckpt %s --format %s" % (cmd, fmt))
        # the right one forced: works
        m = self.mount(src, "-o", "format=safetensors")
        self.assertTrue(m.names())
        m.unmount()
        m = self.mount(ck, "-o", "format=ckpt")
        self.assertEqual(m.names(), ["w"])
        m.unmount()
        self.ok(M.ckpt("verify", "--format", "safetensors", src), "verify")
        self.ok(M.ckpt("ls", "--format", "ckpt", ck), "ls")
        res = M.ckpt("verify", "--format", "parquet", src)
        common.assert_not_signal(self, res, "unknown format")
        self.assertNotEqual(res.rc, 0)

    def test_ckpt_mount_has_no_metadata(self):
        ck = os.path.join(self.dir, "x.ckpt")
        ckref.write(ck, [dict(name="w", dtype="Float32", shape=(2,),
                              data=bytes(8))])
        m = self.mount(ck)
        with self.assertRaises(OSError) as cm:
            os.setxattr(m.mnt, "user.metadata.k", b"v")
        self.assertEqual(cm.exception.errno, errno.ENOTSUP)
        self.assertFalse([x for x in os.listxattr(m.mnt)
                          if x.startswith("user.metadata.")])
        m.unmount()


# --------------------------------------------------------------------------
# convert

def ckpt_params(path):
    return [p for p in ckref.load(path)]


def by_name(params):
    return sorted(params, key=lambda p: p["name"])


def summary(params):
    return [(p["name"], p["dtype"], tuple(p["shape"]), bytes(p["data"]))
            for p in params]


def sed_apply(expr, name):
    """s/REGEX/REPL/[g] with \\1..\\9 and & (Python re for the simple
    patterns used here)."""
    delim = expr[1]
    parts = re.split(r"(?<!\\)" + re.escape(delim), expr[2:])
    pat, repl, flags = parts[0], parts[1], parts[2]

    def rep(mt):
        out, i = [], 0
        while i < len(repl):
            c = repl[i]
            if c == "\\" and i + 1 < len(repl):
                n = repl[i + 1]
                out.append(mt.group(int(n)) or "" if n.isdigit() else n)
                i += 2
                continue
            out.append(mt.group(0) if c == "&" else c)
            i += 1
        return "".join(out)
    return re.sub(pat, rep, name, count=0 if "g" in flags else 1)


class TestStConvert(StBase):
    def convert(self, *args):
        res = M.ckpt("convert", *args)
        self.ok(res, "ckpt convert " + " ".join(args))
        return res

    def check_ckpt_to_st(self, ckpt):
        base = os.path.basename(ckpt)
        params = ckpt_params(ckpt)
        out = os.path.join(self.dir, base.replace(".ckpt", ".safetensors"))
        res = self.convert(ckpt, out)
        want = stref.mindspore_save(params)
        raw = read_bytes(out)
        if raw != want:
            self.fail("%s -> safetensors: not what MindSpore 2.7 writes "
                      "(first difference at %d of %d/%d bytes)" % (
                          base, first_diff(raw, want), len(raw), len(want)))
        stref.read(out, "ms").close()
        self.assertIn(b'"__metadata__":{"format":"ms"', raw)
        del res
        # back: parameters in name order
        back = os.path.join(self.dir, "back_" + base)
        self.convert(out, back)
        got = ckref.load(back)
        self.assertEqual(summary(got), summary(by_name(params)),
                         "%s: ckpt -> safetensors -> ckpt" % base)
        with stref.read(out) as st:
            self.assertEqual(read_bytes(back),
                             ckref.dumps(stref.to_ckpt_params(st)))
        orig = read_bytes(ckpt)
        if [p.name for p in params] == sorted(p.name for p in params) and \
                ckref.dumps(params) == orig:
            self.assertEqual(read_bytes(back), orig,
                             "%s: a file in name order comes back byte for "
                             "byte" % base)
        # and once more: safetensors -> ckpt -> safetensors is the same file
        again = os.path.join(self.dir, "again.safetensors")
        self.convert(back, again)
        self.assertEqual(read_bytes(again), raw)

    def test_round_trip_sorted_fixture_is_identical(self):
        p = os.path.join(common.FIXTURES, "mindformers_golden_router.ckpt")
        params = ckpt_params(p)
        self.assertEqual(ckref.dumps(params), read_bytes(p))
        self.check_ckpt_to_st(self.copy(p))

    def check_st_to_ckpt_to_st(self, name):
        src = self.copy(name, "src.safetensors")
        raw = read_bytes(src)
        ck = os.path.join(self.dir, "mid.ckpt")
        res = self.convert(src, ck)
        with stref.read(src) as st:
            want = ckref.dumps(stref.to_ckpt_params(st))
            names = sorted(t.name for t in st.tensors)
            dropped = [k for k, v in (st.metadata or {}).items()
                       if not is_marker(k, v, st)]
        self.assertEqual(read_bytes(ck), want)
        self.assertEqual([p.name for p in ckref.load(ck)], names)
        if dropped:
            self.assertTrue(res.errtext.strip(), "no note about the dropped "
                            "metadata %s" % dropped)
        out = os.path.join(self.dir, "out.safetensors")
        self.convert(ck, out)
        return raw, read_bytes(out)

    def test_st_ckpt_st_ms27_files(self):
        raw, back = self.check_st_to_ckpt_to_st("ms_plain")
        self.assertEqual(back, raw)
        self.assertIn(b'"quant.weight":"Int4"', raw)

    def test_st_to_ckpt_int4_and_scalars(self):
        src = self.copy("ms_plain")
        ck = os.path.join(self.dir, "x.ckpt")
        self.convert(src, ck)
        got = {p.name: p for p in ckref.load(ck)}
        self.assertEqual(got["quant.weight"].dtype, "Int4")
        self.assertEqual(got["epoch_num"].shape, ())
        self.assertEqual(got["fc.bias_bf16"].dtype, "BFloat16")

    def test_st_ckpt_st_other_styles(self):
        """2.4 (no metadata) and 2.5 (crc only) files come back as 2.7
        writes them: {"format":"ms"}, no crc."""
        for name in ("ms_v24", "ms_v25_crc", "ms_crc"):
            with self.subTest(name):
                raw, back = self.check_st_to_ckpt_to_st(name)
                st = stref.read(raw)
                meta = OD(format="ms")
                for k, v in (st.metadata or {}).items():
                    if is_marker(k, v, st):
                        meta[k] = v
                want = stref.serialize(st.tensors, meta)
                self.assertEqual(back, want)

    def test_unrepresentable(self):
        ok = [dict(name="w", dtype="Float32", shape=(2,),
                   data=np.ones(2, "<f4").tobytes()),
              dict(name="n", dtype="Int64", shape=(),
                   data=np.int64(5).tobytes())]
        note = dict(name="note", dtype="str", shape=(),
                    data=ckref.str_content("hello"))
        emb = dict(name="emb", kind="map", map=[
            dict(name="keys", dtype="Int64", shape=(2,),
                 data=np.arange(2, dtype="<i8").tobytes()),
            dict(name="values", dtype="Float32", shape=(2, 2),
                 data=bytes(16)),
            dict(name="status", dtype="Int32", shape=(2,), data=bytes(8))])
        ck = os.path.join(self.dir, "u.ckpt")
        ckref.write(ck, [ok[0], note, emb, ok[1]])
        out = os.path.join(self.dir, "u.safetensors")
        res = M.ckpt("convert", ck, out)
        self.refused(res, "convert with str and map parameters")
        self.assertIn("note", res.errtext)
        self.assertIn("emb", res.errtext)
        self.assertFalse(os.path.exists(out))
        res = self.convert("--skip-unrepresentable", ck, out)
        self.assertIn("note", res.errtext)
        self.assertIn("emb", res.errtext)
        self.assertEqual(read_bytes(out), stref.mindspore_save(ok))

    def lenet(self):
        return W.make_lenet(os.path.join(self.dir, "lenet.ckpt"))

    def test_include_exclude(self):
        ck = self.lenet()
        params = ckpt_params(ck)
        import fnmatch
        for args, keep in (
                (("--exclude", "moments.*"),
                 lambda n: not fnmatch.fnmatchcase(n, "moments.*")),
                (("--include", "conv*", "--include", "fc1.*"),
                 lambda n: fnmatch.fnmatchcase(n, "conv*") or
                 fnmatch.fnmatchcase(n, "fc1.*")),
                (("--include", "*weight*", "--exclude", "moments.*"),
                 lambda n: fnmatch.fnmatchcase(n, "*weight*") and
                 not fnmatch.fnmatchcase(n, "moments.*"))):
            with self.subTest(args):
                out = os.path.join(self.dir, "sel.safetensors")
                self.convert(*(args + (ck, out)))
                want = [p for p in params if keep(p.name)]
                self.assertTrue(want)
                self.assertEqual(read_bytes(out), stref.mindspore_save(want))
                os.unlink(out)
        # selection into ckpt too, and ls
        out = os.path.join(self.dir, "sel.ckpt")
        self.convert("--exclude", "moments.*", ck, out)
        self.assertEqual([p.name for p in ckref.load(out)],
                         [p.name for p in params
                          if not p.name.startswith("moments.")])
        res = M.ckpt("ls", "--exclude", "moments.*", ck)
        self.ok(res, "ls --exclude")
        self.assertEqual(res.text.splitlines(),
                         [escape_name(p.name) for p in params
                          if not p.name.startswith("moments.")])

    def renamed(self, params, mapping=None, seds=()):
        out = []
        for p in params:
            n = (mapping or {}).get(p.name, p.name)
            for s in seds:
                n = sed_apply(s, n)
            out.append(dict(name=n, dtype=p.dtype, shape=p.shape,
                            data=p.data))
        return out

    def test_rename_and_name_map(self):
        ck = self.lenet()
        params = ckpt_params(ck)
        cases = [
            (("--rename", r"s/^conv/backbone.conv/",),
             dict(seds=[r"s/^conv/backbone.conv/"])),
            (("--rename", r"s/\./_/g"), dict(seds=[r"s/\./_/g"])),
            (("--rename", r"s/^(moments)\.(.*)$/\2.\1/",
              "--rename", r"s/weight/[&]/"),
             dict(seds=[r"s/^(moments)\.(.*)$/\2.\1/", r"s/weight/[&]/"])),
        ]
        nm = os.path.join(self.dir, "map.json")
        mapping = {"conv1.weight": "model.c1", "fc3.bias": "head.b"}
        with open(nm, "w") as f:
            json.dump(mapping, f)
        cases.append((("--name-map", nm, "--rename", r"s/^model\./m./"),
                      dict(mapping=mapping, seds=[r"s/^model\./m./"])))
        for args, how in cases:
            with self.subTest(args):
                out = os.path.join(self.dir, "r.safetensors")
                self.convert(*(args + (ck, out)))
                self.assertEqual(read_bytes(out), stref.mindspore_save(
                    self.renamed(params, **how)))
                os.unlink(out)

    def test_rename_collision(self):
        ck = self.lenet()
        names = [p.name for p in ckpt_params(ck)]
        self.assertIn("fc1.bias", names)
        self.assertIn("fc2.bias", names)
        out = os.path.join(self.dir, "c.safetensors")
        res = M.ckpt("convert", "--rename", r"s/^fc[0-9]\./fc./", ck, out)
        self.refused(res, "convert with colliding renames")
        self.assertIn("fc1.", res.errtext)
        self.assertIn("fc2.", res.errtext)
        self.assertFalse(os.path.exists(out))
        nm = os.path.join(self.dir, "map.json")
        with open(nm, "w") as f:
            json.dump({"fc1.bias": "fc2.bias"}, f)
        res = M.ckpt("convert", "--name-map", nm, ck, out)
        self.refused(res, "convert with a colliding name map")
        self.assertIn("fc1.bias", res.errtext)
        self.assertIn("fc2.bias", res.errtext)
        self.assertFalse(os.path.exists(out))

    def test_output_format_choice(self):
        ck = os.path.join(self.dir, "a.ckpt")
        params = [dict(name="w", dtype="Float32", shape=(2,),
                       data=np.ones(2, "<f4").tobytes())]
        ckref.write(ck, params)
        want_st = stref.mindspore_save(params)
        # --format names the output's format, whatever the extension
        out = os.path.join(self.dir, "o.bin")
        self.convert("--format", "safetensors", ck, out)
        self.assertEqual(read_bytes(out), want_st)
        out2 = os.path.join(self.dir, "o2.safetensors")
        self.convert("--format", "ckpt", out, out2)
        self.assertEqual(read_bytes(out2), ckref.dumps(params))
        # no --format, no known extension: IN's format
        out3 = os.path.join(self.dir, "o3")
        self.convert(out, out3)
        self.assertEqual(stref.read(out3).names(), ["w"])
        out4 = os.path.join(self.dir, "o4")
        self.convert(ck, out4)
        self.assertEqual(summary(ckref.load(out4)), summary(params))


def _add_convert_tests():
    for p in common.real_files():
        def t(self, p=p):
            self.check_ckpt_to_st(self.copy(p))
        setattr(TestStConvert, "test_ckpt_to_st_" + common.test_id(p), t)


_add_convert_tests()


# --------------------------------------------------------------------------
# scale: 100,000 tensors, a tensor over 4 GiB

class TestStMany(StBase):
    def test_many_tensors(self):
        raw = G.many(MANY)
        src = self.put("many.safetensors", raw)
        st = stref.read(src)
        self.addCleanup(st.close)
        t0 = time.monotonic()
        m = self.mount(src)
        names = m.names()
        elapsed = time.monotonic() - t0
        self.assertEqual(names, [escape_name(t.name) for t in st.tensors])
        self.assertLess(elapsed, MANY_OPEN_LIMIT, "mount + listdir of %d "
                        "tensors took %.1f s" % (MANY, elapsed))
        rng = random.Random(7)
        for t in rng.sample(st.tensors, 50):
            fp = m.p(t.name)
            self.assertEqual(read_bytes(fp), t.data, t.name)
            self.assertEqual(W.getx(fp, "user.dtype"),
                             stref.shown_dtype(t.dtype))
        # an edit, committed: the whole header written again
        victim = st.tensors[len(st.tensors) // 2]
        W.pwrite_file(m.p(victim.name), b"\xff", 0)
        exp = Expect([(t.name, t.dtype, t.shape, t.data)
                      for t in st.tensors], st.metadata)
        exp.set(victim.name, data=b"\xff" + victim.data[1:])
        m.unmount()
        self.assertFileIs(src, exp)
        res = M.ckpt("ls", src)
        self.ok(res, "ckpt ls")
        self.assertEqual(len(res.text.splitlines()), MANY)


def _sparse_ok(d, need=64 << 20):
    """True if d has room and makes sparse files."""
    stv = os.statvfs(d)
    if stv.f_bavail * stv.f_frsize < need:
        return False
    p = os.path.join(d, "sparse_probe")
    try:
        with open(p, "wb") as f:
            f.truncate(1 << 30)
        return os.stat(p).st_blocks * 512 < (1 << 20)
    except OSError:
        return False
    finally:
        try:
            os.unlink(p)
        except OSError:
            pass


class TestStBig(StBase):
    def test_tensor_over_4GiB(self):
        if not _sparse_ok(self.dir):
            self.skipTest("no space or no sparse files in %s" % self.dir)
        path = os.path.join(self.dir, "big.safetensors")
        info = G.write_big(path)
        self.assertGreater(info["big_bytes"], 1 << 32)
        self.assertLess(os.stat(path).st_blocks * 512, 64 << 20,
                        "the file is not sparse")
        st = stref.read(path)
        self.addCleanup(st.close)
        self.assertEqual([(t.name, t.dtype, t.shape, t.begin, t.end)
                          for t in st.tensors], info["tensors"])
        m = self.mount(path, "-o", "ro")
        self.assertEqual(m.names(), ["head", "big", "tail"])
        fp = m.p("big")
        self.assertEqual(os.stat(fp).st_size, info["big_bytes"])
        fd = os.open(fp, os.O_RDONLY)
        try:
            n = info["big_bytes"]
            self.assertEqual(os.pread(fd, 64, n - 64), info["big_last"])
            self.assertEqual(os.pread(fd, 100, n - 32), info["big_last"][32:])
            # the 16 bytes before 4 GiB - 16 (big_last starts at 4 GiB)
            self.assertEqual(os.pread(fd, 16, (1 << 32) - 32), bytes(16))
            self.assertEqual(os.pread(fd, 16, (1 << 32) - 8),
                             bytes(8) + info["big_last"][:8])
            self.assertEqual(os.pread(fd, 8, 0), bytes(8))
        finally:
            os.close(fd)
        self.assertEqual(read_bytes(m.p("tail")), info["tail"])
        self.assertEqual(read_bytes(m.p("head")), info["head"])
        self.assertEqual(W.getx(fp, "user.shape"),
                         shape_str(info["tensors"][1][2]))
        m.unmount()
        res = M.ckpt("cat", path, "tail")
        self.ok(res, "ckpt cat tail")
        self.assertEqual(res.out, info["tail"])
        res = M.ckpt("ls", "-l", path)
        self.ok(res, "ckpt ls -l")
        rows = [LS_L.match(x).groups() for x in res.text.splitlines()]
        self.assertEqual(rows[1], ("Float32", shape_str(info["tensors"][1][2]),
                                   str(info["big_bytes"]), "big"))
        self.ok(M.ckpt("verify", path), "ckpt verify")


def setUpModule():
    common.snapshot_inputs()
    gen_dir()


def tearDownModule():
    BATCH.close()
    if "dir" in _GEN:
        shutil.rmtree(_GEN.pop("dir"), True)
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
