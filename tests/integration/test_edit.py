#!/usr/bin/python3
"""Editing without FUSE: ckpt rm, mv, set, put, get and edit.

Every verb runs against a copy of a real .ckpt fixture and of a
safetensors fixture; the result is read with the independent readers
(ckref: the protobuf runtime; stref: the Python safetensors reader) and
compared with a model of the edit computed here, and the same edit made
through a real mount (unlink, rename, setxattr, open/write) must give a
byte-identical file.  Also:

  * an edit list (ckpt edit) with comments, blank lines, tabs, CRLF and
    %20 in names equals the same edits through one mount; an error on
    line 3 (malformed, or a missing name) commits nothing: the file's
    bytes are unchanged, also when earlier lines were fine;
  * an encrypted file edited with its key stays encrypted in the same
    mode and decrypts (cryptref) to the plaintext the mount commits;
    without the key nothing is written; --keyfile - is refused for put
    and edit (stdin is their data);
  * --crc adds the trailer (zlib.crc32), the default keeps it, --no-crc
    drops it;
  * a mounted checkpoint is refused (the writer lock), and stays as it
    was; get still reads it;
  * failures leave the file untouched: rm of a missing name (also after
    a good one), mv onto an existing name without --force, a shape that
    does not fit, set without --dtype/--shape, options of other commands;
  * put of a 64 MiB tensor from a pipe works without holding it in
    memory (peak RSS of ckpt well under 64 MiB).

Quick: a few seconds.

Run:  /usr/bin/python3 -m unittest -v test_edit   (in tests/integration)
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402
import cryptref  # noqa: E402
import stref  # noqa: E402
from common import escape_name  # noqa: E402

CKPT_FIXTURE = os.path.join(common.FIXTURES,
                            "mindformers_golden_sequential_mlp.ckpt")
ST_FIXTURE = os.path.join(common.REPO, "tests", "fixtures", "safetensors",
                          "fluxml_model.safetensors")
BIG = 64 << 20
CRC_MARK = b"crc_num"


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def digest(path):
    return hashlib.sha256(read_bytes(path)).hexdigest()


# --------------------------------------------------------------------------
# the model: [(name, dtype, shape, data)] in file order

def model_of_ckpt(buf):
    return [(p.name, p.dtype, tuple(p.shape), bytes(p.data))
            for p in ckref.loads(buf)]


def model_of_st(path):
    st = stref.read(path)
    return [(t.name, stref.shown_dtype(t.dtype, t.name, st.metadata),
             tuple(t.shape), bytes(t.data)) for t in st.tensors]


def shape_of(s):
    return tuple(int(d) for d in s.strip("[]").split(",") if d.strip())


def find(model, name):
    return next(i for i, e in enumerate(model) if e[0] == name)


SPELLING = {"int32": "Int32", "F32": "Float32", "I32": "Int32"}


def apply_model(model, ops):
    """What ops (tuples as ckpt_cases() makes them) make of model, as
    docs/editing.md says."""
    ops = [tuple(SPELLING.get(x, x) if isinstance(x, str) else x
                 for x in op) for op in ops]
    m = list(model)
    for op in ops:
        if op[0] == "rm":
            del m[find(m, op[1])]
        elif op[0] == "mv":
            i = find(m, op[1])
            e = (op[2],) + m[i][1:]
            if any(x[0] == op[2] for x in m):  # takes the place of NEW
                j = find(m, op[2])
                m[j] = e
                del m[i]
            else:
                m[i] = e
        elif op[0] == "set":
            i = find(m, op[1])
            name, dt, sh, data = m[i]
            m[i] = (name, op[2] or dt, shape_of(op[3]) if op[3] else sh,
                    data)
        else:  # put
            _, name, data, dt, sh = op
            if any(x[0] == name for x in m):
                i = find(m, name)
                old = m[i]
                m[i] = (name, dt or old[1],
                        shape_of(sh) if sh else old[2], data)
            else:
                m.append((name, dt or "UInt8",
                          shape_of(sh) if sh else (len(data),), data))
    return m


# --------------------------------------------------------------------------
# doing edits: through the mount, with ckpt

def mount_apply(tc, path, ops, *opts):
    """Makes ops through a real mount of path and unmounts (commit)."""
    m = M.mount(tc, path, *opts)
    try:
        for op in ops:
            if op[0] == "rm":
                os.unlink(m.p(op[1]))
            elif op[0] == "mv":
                os.rename(m.p(op[1]), m.p(op[2]))
            elif op[0] == "set":
                if op[2]:
                    os.setxattr(m.p(op[1]), "user.dtype", op[2].encode())
                if op[3]:
                    os.setxattr(m.p(op[1]), "user.shape", op[3].encode())
            else:
                _, name, data, dt, sh = op
                with open(m.p(name), "wb") as f:
                    f.write(data)
                if dt:
                    os.setxattr(m.p(name), "user.dtype", dt.encode())
                if sh:
                    os.setxattr(m.p(name), "user.shape", sh.encode())
    finally:
        m.unmount()
        m.forget()


def ckpt(*args, **kw):
    return M.ckpt(*args, **kw)


def cli_one(path, op, extra=()):
    """The one command of op; a Result."""
    e = list(extra)
    if op[0] == "rm":
        return ckpt("rm", *e, path, escape_name(op[1]))
    if op[0] == "mv":
        return ckpt("mv", "--force", *e, path, escape_name(op[1]),
                    escape_name(op[2]))
    meta = (["--dtype", op[-2]] if op[-2] else []) + \
        (["--shape", op[-1]] if op[-1] else [])
    if op[0] == "set":
        return ckpt("set", *e, *meta, path, escape_name(op[1]))
    return ckpt("put", *e, *meta, path, escape_name(op[1]),
                stdin_data=op[2])


def edit_list(ops, d):
    """The edit list of ops (put data in files under d)."""
    lines = []
    for k, op in enumerate(ops):
        if op[0] == "rm":
            lines.append("rm %s" % escape_name(op[1]).replace(" ", "%20"))
        elif op[0] == "mv":
            lines.append("mv\t%s  %s" % tuple(
                escape_name(n).replace(" ", "%20") for n in op[1:3]))
        else:
            words = [op[0], escape_name(op[1]).replace(" ", "%20")]
            if op[0] == "put":
                p = os.path.join(d, "data %d.bin" % k)
                with open(p, "wb") as f:
                    f.write(op[2])
                words.append(p.replace("%", "%25").replace(" ", "%20"))
            if op[-2]:
                words.append("dtype=" + op[-2])
            if op[-1]:
                words.append("shape=" + op[-1])
            lines.append(" ".join(words))
    return ("# made by test_edit\n\n" + "\r\n".join(lines) + "\n").encode()


class EditBase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPT_BIN)
        self.dir = tempfile.mkdtemp(prefix="ckptfs_edit_")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def copy(self, src, name=None):
        dst = os.path.join(self.dir, name or os.path.basename(src))
        shutil.copyfile(src, dst)
        return dst

    def ok(self, res):
        self.assertEqual(res.rc, 0, res.describe())
        return res

    def refused(self, res, path, before, rc=1, says=None):
        """res failed with rc and path still holds the bytes before."""
        self.assertEqual(res.rc, rc, res.describe())
        self.assertEqual(digest(path), before, "the file changed")
        if says:
            self.assertIn(says, res.errtext)


# one case per verb; names are parameter names, data bytes
def ckpt_cases():
    rng = np.random.default_rng(17)
    f32 = rng.standard_normal(64).astype("<f4").tobytes()
    return {
        "rm": [("rm", "1.w2.weight")],
        "mv": [("mv", "0.w1.weight", "renamed/w 1%")],
        "mv_replace": [("mv", "0.w1.weight", "3.w3.weight")],
        "set": [("set", "2.w2.weight", "Int32", "8,8")],
        "set_dtype": [("set", "2.w3.weight", "int32", None)],
        "put_replace": [("put", "1.w1.weight", f32, None, None)],
        "put_retype": [("put", "1.w3.weight", f32[:128], "Float16",
                        "[8, 8]")],
        "put_new": [("put", "extra.bias", f32[:40], "Float32", "10")],
        "put_new_default": [("put", "raw", b"\x01\x02\x03", None, None)],
    }


def st_cases():
    rng = np.random.default_rng(18)
    i32 = rng.integers(-9, 9, 15, "<i4").tobytes()
    return {
        "rm": [("rm", "int64_35")],
        "mv": [("mv", "float32_3", "a/b c")],
        "set": [("set", "int32_35", "F32", "5,3")],
        "put_replace": [("put", "int32_35", i32, None, None)],
        "put_new": [("put", "new", i32, "I32", "3,5")],
    }


class Verbs(EditBase):
    """Each verb against the readers and the mount."""

    def check_verbs(self, fixture, cases, model_of, ordered=True):
        common.require_bin(self, common.CKPTFS_BIN)
        base = model_of(fixture)
        for label, ops in cases.items():
            with self.subTest(label):
                cli = self.copy(fixture, label + "_cli" +
                                os.path.splitext(fixture)[1])
                mnt = self.copy(fixture, label + "_mnt" +
                                os.path.splitext(fixture)[1])
                for op in ops:
                    self.ok(cli_one(cli, op))
                got, want = model_of(cli), apply_model(base, ops)
                if not ordered:
                    got, want = sorted(got), sorted(want)
                self.assertEqual(got, want)
                mount_apply(self, mnt, ops)
                self.assertEqual(read_bytes(cli), read_bytes(mnt),
                                 "ckpt %s and the mount differ" % label)

    def test_ckpt_verbs(self):
        self.check_verbs(CKPT_FIXTURE, ckpt_cases(),
                         lambda p: model_of_ckpt(read_bytes(p)))

    def test_safetensors_verbs(self):
        # the writer orders a safetensors file's data itself
        self.check_verbs(ST_FIXTURE, st_cases(), model_of_st, False)

    def test_get(self):
        for fixture, model_of in ((CKPT_FIXTURE,
                                   lambda p: model_of_ckpt(read_bytes(p))),
                                  (ST_FIXTURE, model_of_st)):
            for name, _, _, data in model_of(fixture):
                r = self.ok(ckpt("get", fixture, escape_name(name)))
                self.assertEqual(r.out, data, name)
            r = ckpt("get", fixture, "no.such")
            self.assertEqual((r.rc, r.out), (1, b""), r.describe())
            self.assertIn("no parameter named", r.errtext)

    def test_names_as_typed(self):
        """%2F and %25 as ls shows them, and %20 / a space alike."""
        path = self.copy(CKPT_FIXTURE)
        self.ok(ckpt("mv", path, "0.w1.weight", "a%2Fb%25c%20d"))
        self.ok(ckpt("mv", path, "0.w2.weight", "e f"))
        names = [p.name for p in ckref.load(path)]
        self.assertIn("a/b%c d", names)
        self.assertIn("e f", names)
        self.assertEqual(
            self.ok(ckpt("get", path, "e%20f")).out,
            self.ok(ckpt("get", path, "e f")).out)
        self.assertIn("a%2Fb%25c d\n", self.ok(ckpt("ls", path)).text)
        before = digest(path)
        for bad in ("x%zz", "x%", "x%2"):
            self.refused(ckpt("rm", path, bad), path, before, 2,
                         "not a parameter name")


class Lists(EditBase):
    """ckpt edit: one commit, or none."""

    def ops(self):
        rng = np.random.default_rng(19)
        return [
            ("rm", "1.w2.weight"),
            ("mv", "0.w1.weight", "first layer"),
            ("set", "2.w2.weight", "Int32", "[8,8]"),
            ("put", "3.w1.weight", rng.bytes(256), None, None),
            ("put", "new one", rng.bytes(24), "Float16", "3,4"),
            ("rm", "new one"),
            ("put", "new one", rng.bytes(6), None, None),
            ("mv", "0.w3.weight", "2.w3.weight"),
        ]

    def test_list_equals_mount(self):
        common.require_bin(self, common.CKPTFS_BIN)
        ops = self.ops()
        cli = self.copy(CKPT_FIXTURE, "cli.ckpt")
        mnt = self.copy(CKPT_FIXTURE, "mnt.ckpt")
        self.ok(ckpt("edit", "--force", cli,
                     stdin_data=edit_list(ops, self.dir)))
        self.assertEqual(model_of_ckpt(read_bytes(cli)),
                         apply_model(model_of_ckpt(read_bytes(
                             CKPT_FIXTURE)), ops))
        mount_apply(self, mnt, ops)
        self.assertEqual(read_bytes(cli), read_bytes(mnt))

    def test_error_on_line_3_commits_nothing(self):
        path = self.copy(CKPT_FIXTURE)
        before = digest(path)
        good = b"rm 1.w2.weight\nmv 0.w1.weight x\n"
        after = b"rm 3.w1.weight\n"
        for line3, rc, says in (
                (b"frobnicate y\n", 2, "line 3: unknown operation"),
                (b"mv a\n", 2, "line 3: expected 'mv OLD NEW'"),
                (b"set x dtype=Float32 color=red\n", 2, "line 3: 'color"),
                (b"set x\n", 2, "line 3: expected"),
                (b"put x %s/no-such-file\n" % self.dir.encode(), 1,
                 "line 3: cannot open"),
                (b"rm no.such.param\n", 1, "line 3: %s: no parameter" % path),
                (b"mv x 3.w3.weight\n", 1, "line 3: %s: '3.w3.weight' "
                 "exists (--force" % path),
                (b"set x shape=3,3\n", 1, "needs 36 bytes"),
                (b"set x dtype=Float99\n", 1, "line 3: unknown dtype")):
            with self.subTest(line3):
                r = ckpt("edit", path, stdin_data=good + line3 + after)
                self.refused(r, path, before, rc, says)
                self.assertIn("nothing was committed", r.errtext)

    def test_empty_list(self):
        path = self.copy(CKPT_FIXTURE)
        before = digest(path)
        self.ok(ckpt("edit", path, stdin_data=b"# nothing\n\n   \n"))
        self.assertEqual(digest(path), before)


class Refusals(EditBase):
    """What fails leaves the file as it was."""

    def test_failures_change_nothing(self):
        path = self.copy(CKPT_FIXTURE)
        before = digest(path)
        self.refused(ckpt("rm", path, "no.such"), path, before, 1,
                     "no parameter named 'no.such'")
        self.refused(ckpt("rm", path, "0.w1.weight", "no.such"), path,
                     before, 1, "nothing was committed")
        self.refused(ckpt("mv", path, "0.w1.weight", "0.w2.weight"), path,
                     before, 1, "--force")
        self.refused(ckpt("mv", path, "no.such", "zz"), path, before, 1)
        self.refused(ckpt("set", path, "0.w1.weight"), path, before, 2)
        self.refused(ckpt("set", "--shape", "5,5", path, "0.w1.weight"),
                     path, before, 1, "needs 100 bytes")
        self.refused(ckpt("set", "--shape", "x", path, "0.w1.weight"),
                     path, before, 1, "malformed shape")
        self.refused(ckpt("put", path, "0.w1.weight", stdin_data=b"abc"),
                     path, before, 1)
        self.refused(ckpt("put", path, "empty", stdin_data=b""), path,
                     before, 1, "empty")
        self.refused(ckpt("rm", "--dtype", "F32", path, "0.w1.weight"),
                     path, before, 2)
        self.refused(ckpt("rm", "--force", path, "0.w1.weight"), path,
                     before, 2)
        self.refused(ckpt("put", "--keyfile", "-", "--enc-mode", "AES-GCM",
                          path, "x", stdin_data=b"0123456789abcdef"),
                     path, before, 2, "standard input")
        self.refused(ckpt("mv", path, "0.w1.weight"), path, before, 2)
        self.refused(ckpt("rm", path, "0.w1.weight", "--crc", "--no-crc"),
                     path, before, 2)
        for verb, args in (("rm", ["0.w1.weight"]),
                           ("mv", ["0.w1.weight", "zz"]),
                           ("set", ["--dtype", "Float16", "0.w1.weight"]),
                           ("put", ["0.w1.weight"]), ("edit", [])):
            with self.subTest(verb=verb):
                self.refused(ckpt(verb, "--ignore-crc", path, *args,
                                  stdin_data=b""),
                             path, before, 2, "fresh crc")

    def test_mounted_is_refused(self):
        common.require_bin(self, common.CKPTFS_BIN)
        path = self.copy(CKPT_FIXTURE)
        before = digest(path)
        m = M.mount(self, path)
        try:
            self.refused(ckpt("rm", path, "0.w1.weight"), path, before, 1,
                         "write lock")
            self.refused(ckpt("edit", path, stdin_data=b"rm 0.w1.weight\n"),
                         path, before, 1, "write lock")
            r = self.ok(ckpt("get", path, "0.w1.weight"))
            self.assertEqual(r.out, ckref.load(CKPT_FIXTURE)[0].data)
        finally:
            m.unmount()
            m.forget()
        self.assertEqual(digest(path), before)


class Encodings(EditBase):
    """Encryption and the CRC trailer survive edits."""

    def test_encrypted_keeps_its_key(self):
        common.require_bin(self, common.CKPTFS_BIN)
        plain = read_bytes(CKPT_FIXTURE)
        ops = [("rm", "1.w2.weight"), ("set", "0.w1.weight", "Int32", None)]
        for mode in ("AES-GCM", "SM4-CBC"):
            with self.subTest(mode):
                key = os.urandom(16)
                kf = os.path.join(self.dir, "key_" + mode)
                with open(kf, "wb") as f:
                    f.write(key)
                enc = cryptref.encrypt(plain, key, mode)
                cli = os.path.join(self.dir, mode + "_cli.ckpt")
                mnt = os.path.join(self.dir, mode + "_mnt.ckpt")
                for p in (cli, mnt):
                    with open(p, "wb") as f:
                        f.write(enc)
                before = digest(cli)
                self.refused(ckpt("rm", cli, "1.w2.weight"), cli, before, 1)
                kopt = ["--enc-mode", mode, "--keyfile", kf]
                for op in ops:
                    self.ok(cli_one(cli, op, kopt))
                got = read_bytes(cli)
                self.assertEqual(
                    cryptref.parse_blocks(got)[0].mode, mode)
                out = cryptref.decrypt(got, key, mode)
                self.assertEqual(model_of_ckpt(out),
                                 apply_model(model_of_ckpt(plain), ops))
                mount_apply(self, mnt, ops, "-o",
                            "enc_mode=%s,keyfile=%s" % (mode, kf))
                self.assertEqual(
                    out, cryptref.decrypt(read_bytes(mnt), key, mode))

    def test_crc(self):
        path = self.copy(CKPT_FIXTURE)
        self.assertNotEqual(read_bytes(path)[-17:-10], CRC_MARK)
        self.ok(ckpt("rm", "--crc", path, "1.w2.weight"))
        buf = read_bytes(path)
        self.assertEqual(buf[-17:-10], CRC_MARK)
        self.assertEqual(int.from_bytes(buf[-10:], "big"),
                         zlib.crc32(buf[:-17]))
        self.ok(ckpt("mv", path, "0.w1.weight", "w"))   # default: kept
        buf = read_bytes(path)
        self.assertEqual(buf[-17:-10], CRC_MARK)
        self.assertEqual(int.from_bytes(buf[-10:], "big"),
                         zlib.crc32(buf[:-17]))
        self.assertIn("w", [p.name for p in ckref.loads(buf)])
        self.ok(ckpt("set", "--no-crc", "--dtype", "Int32", path, "w"))
        buf = read_bytes(path)
        self.assertNotEqual(buf[-17:-10], CRC_MARK)
        self.assertEqual(ckref.loads(buf)[0].dtype, "Int32")


def vm_hwm(pid):
    """The peak resident set of process pid so far, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


class Big(EditBase):
    """A 64 MiB put from a pipe, streamed: the peak resident set of ckpt
    (VmHWM, which starts afresh at exec) once the data is written stays
    far below the data's size."""

    def test_put_64mib_from_a_pipe(self):
        path = self.copy(CKPT_FIXTURE)
        data = np.arange(BIG // 4, dtype="<u4").tobytes()
        proc = subprocess.Popen(
            [common.CKPT_BIN, "put", "--dtype", "UInt32", "--shape",
             "4096,4096", path, "big"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        errs = []
        reader = threading.Thread(target=lambda: errs.append(
            proc.stderr.read()))
        reader.start()
        view = memoryview(data)
        for off in range(0, BIG, 1 << 20):
            proc.stdin.write(view[off:off + (1 << 20)])
        proc.stdin.flush()
        hwm = vm_hwm(proc.pid)  # all but the last pipeful is staged
        proc.stdin.close()
        proc.wait()
        reader.join()
        proc.stderr.close()
        self.assertEqual(proc.returncode, 0, errs)
        if not common.SANITIZED:  # ASan's shadow memory counts too
            self.assertLess(hwm, BIG // 4,
                            "ckpt put holds the data in memory")
        params = ckref.load(path)
        self.assertEqual(params[-1].name, "big")
        self.assertEqual(params[-1].shape, (4096, 4096))
        self.assertEqual(params[-1].dtype, "UInt32")
        self.assertTrue(params[-1].data == data)
        self.assertEqual(len(params), len(ckref.load(CKPT_FIXTURE)) + 1)


if __name__ == "__main__":
    unittest.main()
