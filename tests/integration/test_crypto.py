#!/usr/bin/python3
"""Encrypted checkpoints, checked against an independent implementation.

The oracle is cryptref.py (MindSpore's block layout written with struct,
ciphers from python3-cryptography) together with the reference reader /
writer tests/ref/ckref.py.  Both directions are tested:

* files cryptref encrypts (plaintext from ckref.dumps or a fixture) are
  read by 'ckpt verify/cat' and mounted by ckptfs; every parameter must be
  what ckref shows for the plaintext, byte for byte, with its dtype / shape
  xattrs;
* files ckptfs writes (commit through an encrypted mount) and 'ckpt convert'
  writes are decrypted by cryptref, parsed by ckref and compared with the
  expected stream byte for byte; and every block must be exactly what
  cryptref produces for that plaintext with the IV the block carries
  (layout, tag, padding, 64 MiB split), IVs fresh and distinct.

Covered: all three modes and every allowed key length (AES 16/24/32, SM4
16); keyfile=PATH, keyfile=- (a pipe) and keyfd=N; multi-block files (small
blocks from cryptref; one 150 MiB tensor; a plaintext of exactly 64 MiB
and 64 MiB + 1); empty checkpoints (0-byte files); the worked examples of
the format document (exact bytes); the legacy 1.3-1.6 layout (GCM and CBC,
with the warning); refusals (wrong key, wrong mode, tampered ciphertext /
tag / IV / magic, truncation at many offsets, lying block headers, bad key
lengths, no key, a key for a plain file) by both 'ckpt verify' and ckptfs,
leaving nothing mounted; 'ckpt info' of an encrypted file; no plaintext of
an encrypted mount on any disk (staging dir, target dir, $TMPDIR, new files
in the system temp dir, and the daemon's open files, which include unnamed
O_TMPFILEs) before, during and after a commit, and a recovery checkpoint of
a failed commit encrypted with the mount's key; a control shows that the
scan does find the staged plaintext of a plain mount.

Run:  /usr/bin/python3 -m unittest -v test_crypto   (in tests/integration)
"""

import errno
import hashlib
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402  (puts tests/ref on sys.path)
import mounting as M  # noqa: E402
from wbutil import first_diff, param, read_bytes, tempdir  # noqa: E402
import ckref  # noqa: E402
import cryptref  # noqa: E402
from wire import varint  # noqa: E402

BLOCK = cryptref.BLOCK
MODES = cryptref.MODES
COMBOS = [(m, n) for m in MODES for n in cryptref.KEY_LENGTHS[m]]
TIMEOUT = common.TIMEOUT
escape_name = ckref.escape_name
shape_str = ckref.shape_str


def make_key(n, salt=0):
    """A fixed key of n bytes (different salts give different keys)."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(b"key %d %d %d" % (n, salt, len(out))).digest()
    return out[:n]


def fixed_ivs(n, salt=0):
    return [bytes((i * 13 + k * 7 + salt * 29 + 1) & 0xFF
                  for i in range(16)) for k in range(n)]


# --------------------------------------------------------------------------
# files

def write_bytes(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def key_file(d, key, name=None):
    name = name or "key_%d_%s" % (len(key), hashlib.sha1(key).hexdigest()[:8])
    return write_bytes(os.path.join(d, name), key, 0o600)


def mixed_params(seed=1):
    """A small checkpoint with many dtypes, a scalar, odd names, a map."""
    rng = np.random.default_rng(seed)
    return [
        param("conv1.weight", "Float32", (6, 1, 5, 5),
              rng.standard_normal((6, 1, 5, 5)).astype("<f4")),
        param("fc.bias", "Float32", (10,), rng.standard_normal(10)
              .astype("<f4")),
        param("layer/0%x.half", "Float16", (3, 4),
              rng.standard_normal((3, 4)).astype("<f2")),
        param("bf16", "BFloat16", (8,), rng.integers(0, 65535, 8, "<u2")),
        param("to_delete", "Int8", (7,), rng.integers(-128, 127, 7, "i1")),
        param("mask", "Bool", (5,), np.array([1, 0, 1, 1, 0], "u1")),
        param("global_step", "Int32", (1,), np.array([7], "<i4")),
        param("epoch_num", "Int64", (), np.array([3], "<i8")),
        dict(name="emb.map", kind="map", map=[
            param("keys", "Int64", (3,), np.array([1, 5, 9], "<i8")),
            param("values", "Float32", (3, 2), np.arange(6, dtype="<f4")),
            param("status", "Int32", (3,), np.zeros(3, "<i4"))]),
        param("bytes.u8", "UInt8", (300,), rng.integers(0, 255, 300, "u1")),
    ]


def tensor_params(params):
    return [p for p in params if p.get("kind", "tensor") == "tensor"]


def replace_data(params, name, data):
    out = []
    for p in params:
        if p["name"] == name:
            p = dict(p, data=bytes(data))
        out.append(p)
    return out


def remove_param(params, name):
    out = [p for p in params if p["name"] != name]
    assert len(out) == len(params) - 1, name
    return out


# --------------------------------------------------------------------------
# keys

class KeyPass:
    """How a key reaches the program: a path, '-' (stdin pipe) or an fd."""

    def __init__(self, how, mode, key, path):
        self.how, self.mode, self.key, self.path = how, mode, key, path
        self._fd = None

    def __repr__(self):
        return "KeyPass(%s, %s, %d bytes)" % (self.how, self.mode,
                                              len(self.key))

    def _open(self):
        # a fresh descriptor at offset 0 for every run
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def cli(self):
        """(args, run-kwargs) for ckpt."""
        if self.how == "file":
            return ["--enc-mode", self.mode, "--keyfile", self.path], {}
        if self.how == "stdin":
            return ["--enc-mode", self.mode, "--keyfile", "-"], \
                dict(stdin_data=self.key)
        fd = self._open()
        return ["--enc-mode", self.mode, "--keyfd", str(fd)], \
            dict(pass_fds=(fd,))

    def mount_opts(self):
        """(-o string, run-kwargs) for ckptfs."""
        if self.how == "file":
            return "enc_mode=%s,keyfile=%s" % (self.mode, self.path), {}
        if self.how == "stdin":
            return "enc_mode=%s,keyfile=-" % self.mode, \
                dict(stdin_data=self.key)
        fd = self._open()
        return "enc_mode=%s,keyfd=%d" % (self.mode, fd), dict(pass_fds=(fd,))


def keypass(tc, d, mode, key, how="file"):
    kp = KeyPass(how, mode, key, key_file(d, key))
    tc.addCleanup(kp.close)
    return kp


def ckpt_k(kp, cmd, *args, extra=()):
    """ckpt CMD [key options of kp] [extra] ARGS."""
    kargs, kw = kp.cli() if kp is not None else ([], {})
    return M.ckpt(cmd, *(kargs + list(extra) + list(args)), **kw)


# --------------------------------------------------------------------------
# mounts

def mount_k(tc, source, kp, *opts):
    """Mounts source with the key of kp (None: no key) and -o opts."""
    return M.mount(tc, source, *(["-o", ",".join(opts)] if opts else []),
                   key=kp)


# --------------------------------------------------------------------------
# checks

def assert_mount_shows(tc, mnt, params, label=""):
    """Listing, bytes and xattrs of every parameter (ckref.Param list)."""
    want = sorted(escape_name(p.name) for p in params)
    tc.assertEqual(sorted(os.listdir(mnt)), want, "%s: listing" % label)
    for path, t in common.tensors_of(params):
        fp = os.path.join(mnt, path)
        got = read_bytes(fp)
        if got != t.data:
            tc.fail("%s: %r: %d bytes read, %d expected, first difference "
                    "at %d" % (label, path, len(got), len(t.data),
                               first_diff(got, t.data)))
        tc.assertEqual(os.getxattr(fp, "user.dtype").decode(), t.dtype,
                       "%s: user.dtype of %r" % (label, path))
        tc.assertEqual(os.getxattr(fp, "user.shape").decode(),
                       shape_str(t.shape), "%s: user.shape of %r"
                       % (label, path))


def check_our_file(tc, raw, key, mode, plain, src_ivs=(), label=""):
    """raw (a file ckptfs or ckpt wrote) must decrypt with the independent
    implementation to exactly `plain`, in blocks of 64 MiB (the last one
    shorter), each block exactly cryptref's encryption of its plaintext
    with the IV it carries; IVs distinct and none taken from src_ivs."""
    if not plain:
        tc.assertEqual(raw, b"", "%s: an encrypted empty checkpoint is a "
                       "0-byte file" % label)
        return []
    try:
        blocks = cryptref.decrypt_blocks(raw, key, mode)
    except cryptref.CryptError as e:
        tc.fail("%s: the independent implementation cannot decrypt the "
                "file (%s, %d-byte key): %s" % (label, mode, len(key), e))
    got = b"".join(pt for _, pt in blocks)
    if got != plain:
        tc.fail("%s: decrypted stream differs from the expected one (%d "
                "bytes, expected %d, first difference at %d)" % (
                    label, len(got), len(plain), first_diff(got, plain)))
    sizes = [len(pt) for _, pt in blocks]
    want_sizes = [min(BLOCK, len(plain) - o)
                  for o in range(0, len(plain), BLOCK)]
    tc.assertEqual(sizes, want_sizes, "%s: plaintext per block" % label)
    ivs = [b.iv for b, _ in blocks]
    tc.assertEqual(len(set(ivs)), len(ivs), "%s: IV reused across blocks"
                   % label)
    tc.assertFalse(set(ivs) & set(src_ivs), "%s: an IV of the source file "
                   "was reused (a fresh random IV per block is required)"
                   % label)
    want = cryptref.encrypt(plain, key, mode, iv=ivs)
    if raw != want:
        tc.fail("%s: file is not the exact %s encryption of its plaintext "
                "with its own IVs (first difference at %d)" % (
                    label, mode, first_diff(raw, want)))
    try:
        ckref.loads(got)
    except ckref.CheckpointError as e:
        tc.fail("%s: the reference reader rejects the plaintext: %s"
                % (label, e))
    return blocks


def ivs_of(raw):
    try:
        return [b.iv for b in cryptref.parse_blocks(raw)]
    except cryptref.CryptError:
        return []


# --------------------------------------------------------------------------
# tests

class TestReference(unittest.TestCase):
    """The oracle itself (no binaries)."""

    def test_worked_examples_exact(self):
        self.assertEqual(ckref.dumps([param(
            "global_step", "Int32", (1,), b"\x07\0\0\0")]),
            cryptref.EXAMPLE_PLAIN, "§1 global_step example")
        for mode, want in cryptref.EXAMPLE_CIPHER.items():
            self.assertEqual(len(want), 80)
            got = cryptref.encrypt(cryptref.EXAMPLE_PLAIN,
                                   cryptref.EXAMPLE_KEY, mode,
                                   iv=cryptref.EXAMPLE_IV)
            self.assertEqual(got.hex(), want.hex(), mode)
            self.assertEqual(cryptref.decrypt(want, cryptref.EXAMPLE_KEY,
                                              mode), cryptref.EXAMPLE_PLAIN)

    def test_roundtrip_all_modes_and_lengths(self):
        plain = os.urandom(100001)
        for mode, n in COMBOS:
            key = make_key(n)
            enc = cryptref.encrypt(plain, key, mode, block=30000)
            blocks = cryptref.parse_blocks(enc)
            self.assertEqual(len(blocks), 4)
            self.assertEqual(cryptref.decrypt(enc, key, mode), plain)
            with self.assertRaises(cryptref.CryptError):
                cryptref.decrypt(enc, make_key(n, 9), mode)
        self.assertEqual(cryptref.encrypt(b"", make_key(16), "AES-GCM"), b"")

    def test_legacy_gcm_is_gcm_with_12_byte_iv(self):
        from cryptography.hazmat.primitives.ciphers import (Cipher,
                                                            algorithms,
                                                            modes)
        key, iv, pt = make_key(32), fixed_ivs(1)[0], os.urandom(777)
        enc = Cipher(algorithms.AES(key), modes.GCM(iv[:12])).encryptor()
        ct = enc.update(pt)
        leg = cryptref.legacy_encrypt(pt, key, "AES-GCM", iv=iv)
        self.assertEqual(leg[32:], ct)
        self.assertEqual(struct.unpack_from("<III", leg, 0),
                         (0x7F3A5ED8, 24 + 777, 16))
        self.assertEqual(cryptref.legacy_decrypt(leg, key, "AES-GCM"), pt)


class CryptoBase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = tempdir(self, "ckptfs_crypt_")

    def path(self, name):
        return os.path.join(self.dir, name)

    def kp(self, mode, key, how="file"):
        return keypass(self, self.dir, mode, key, how)

    def assertOK(self, res, what=""):
        common.assert_not_signal(self, res, what)
        self.assertEqual(res.rc, 0, "%s\n%s" % (what, res.describe()))

    def verify_ok(self, path, kp, what=""):
        r = ckpt_k(kp, "verify", path)
        self.assertOK(r, "ckpt verify %s" % what)
        self.assertIn("OK", r.text, what)
        return r


class TestWorkedExamples(CryptoBase):
    """The exact bytes of the format document, §6.2."""

    def test_read_document_examples(self):
        for mode, data in cryptref.EXAMPLE_CIPHER.items():
            with self.subTest(mode=mode):
                src = write_bytes(self.path("ex_%s.ckpt" % mode), data)
                kp = self.kp(mode, cryptref.EXAMPLE_KEY)
                r = self.verify_ok(src, kp, mode)
                if mode == "AES-GCM":
                    self.assertIn("authenticated", r.text)
                r = ckpt_k(kp, "cat", src, "global_step")
                self.assertOK(r, "ckpt cat")
                self.assertEqual(r.out, b"\x07\0\0\0")
                m = mount_k(self, src, kp, "ro")
                assert_mount_shows(self, m.mnt, ckref.loads(
                    cryptref.EXAMPLE_PLAIN), mode)
                m.unmount()
                self.assertEqual(read_bytes(src), data)

    def test_write_document_examples(self):
        """ckpt convert of the 32-byte plaintext gives the example's layout;
        with the IV it chose, the exact bytes of cryptref's encryption."""
        src = write_bytes(self.path("plain.ckpt"), cryptref.EXAMPLE_PLAIN)
        for mode, ex in cryptref.EXAMPLE_CIPHER.items():
            with self.subTest(mode=mode):
                out = self.path("out_%s.ckpt" % mode)
                kp = self.kp(mode, cryptref.EXAMPLE_KEY)
                r = M.ckpt("convert", "-q", src, out, "--out-enc-mode", mode,
                         "--out-keyfile", kp.path)
                self.assertOK(r, "convert to %s" % mode)
                raw = read_bytes(out)
                self.assertEqual(len(raw), 80)
                p = 20 if mode == "AES-GCM" else 4
                self.assertEqual(raw[:4], ex[:4], "magic")
                self.assertEqual(raw[p:p + 8], ex[p:p + 8],
                                 "block_size, iv_len")
                self.assertEqual(raw[p + 24:p + 28], ex[p + 24:p + 28],
                                 "cipher_len")
                check_our_file(self, raw, cryptref.EXAMPLE_KEY, mode,
                               cryptref.EXAMPLE_PLAIN, label=mode)
                self.assertNotEqual(raw[p + 8:p + 24], cryptref.EXAMPLE_IV)


class TestFixturesEncryptedByReference(CryptoBase):
    """Every valid fixture, encrypted by cryptref (modes, key lengths, block
    sizes and ways to pass the key in rotation), reads like its plaintext:
    'ckpt verify' and every parameter of a read-only mount."""

    BLOCKS = (BLOCK, 4099, 65536)
    HOWS = ("file", "stdin", "fd")

    def check_fixture(self, i, fixture):
        mode, n = COMBOS[i % len(COMBOS)]
        blk = self.BLOCKS[i % len(self.BLOCKS)]
        key = make_key(n, i)
        plain = read_bytes(fixture)
        ref = ckref.loads(plain)
        enc = cryptref.encrypt(plain, key, mode, block=blk)
        src = write_bytes(self.path("enc.ckpt"), enc)
        label = "%s as %s/%d-byte key/%d-byte blocks" % (
            os.path.basename(fixture), mode, n, blk)
        vk = self.kp(mode, key, self.HOWS[i % 3])
        self.verify_ok(src, vk, label)
        mk = self.kp(mode, key, self.HOWS[(i + 1) % 3])
        m = mount_k(self, src, mk, "ro")
        assert_mount_shows(self, m.mnt, ref, label)
        m.unmount()
        self.assertEqual(read_bytes(src), enc, "%s: file changed" % label)


def _add_fixture_tests():
    for i, path in enumerate(common.all_valid_files()):
        def t(self, i=i, path=path):
            self.check_fixture(i, path)
        t.__doc__ = "encrypted %s" % os.path.basename(path)
        setattr(TestFixturesEncryptedByReference,
                "test_" + common.test_id(path), t)


_add_fixture_tests()


class TestCommitThroughMount(CryptoBase):
    """Edits through an encrypted mount, committed at unmount and on fsync:
    the independent implementation decrypts exactly the expected stream."""

    CASES = (("AES-GCM", 24, "file"), ("AES-CBC", 32, "stdin"),
             ("SM4-CBC", 16, "fd"), ("AES-GCM", 16, "fd"),
             ("AES-GCM", 32, "stdin"), ("AES-CBC", 16, "file"),
             ("AES-CBC", 24, "fd"))

    def edit(self, m, base):
        new_bias = np.arange(10, dtype="<f4") * 0.5
        fd = os.open(m.p("fc.bias"), os.O_WRONLY)
        try:
            os.pwrite(fd, new_bias.tobytes(), 0)
        finally:
            os.close(fd)
        os.unlink(m.p("to_delete"))
        added = np.arange(6, dtype="<f4") - 2
        with open(m.p("added.w"), "wb") as f:
            f.write(added.tobytes())
        os.setxattr(m.p("added.w"), "user.dtype", b"Float32")
        os.setxattr(m.p("added.w"), "user.shape", b"[2,3]")
        want = remove_param(replace_data(base, "fc.bias", new_bias.tobytes()),
                            "to_delete")
        return want + [param("added.w", "Float32", (2, 3), added)]

    def test_commit_each_mode(self):
        base = mixed_params()
        plain = ckref.dumps(base)
        for mode, n, how in self.CASES:
            with self.subTest(mode=mode, key=n, how=how):
                key = make_key(n, 3)
                enc = cryptref.encrypt(plain, key, mode, block=1000)
                src = write_bytes(self.path("c_%s_%d.ckpt" % (mode, n)), enc)
                kp = self.kp(mode, key, how)
                m = mount_k(self, src, kp)
                assert_mount_shows(self, m.mnt, ckref.loads(plain), mode)
                want = self.edit(m, base)
                m.unmount()
                raw = read_bytes(src)
                check_our_file(self, raw, key, mode, ckref.dumps(want),
                               ivs_of(enc), "commit %s/%d" % (mode, n))
                # and it mounts again, showing the edits
                m = mount_k(self, src, self.kp(mode, key), "ro")
                assert_mount_shows(self, m.mnt, ckref.loads(
                    ckref.dumps(want)), "remount %s" % mode)
                m.unmount()

    def test_fsync_commit_then_more_edits(self):
        base = mixed_params(2)
        key = make_key(32, 4)
        mode = "AES-GCM"
        enc = cryptref.encrypt(ckref.dumps(base), key, mode)
        src = write_bytes(self.path("f.ckpt"), enc)
        kp = self.kp(mode, key)
        m = mount_k(self, src, kp)
        want = self.edit(m, base)
        self.assertEqual(m.commit(), 0, m.error(fallback=True))
        first = read_bytes(src)
        check_our_file(self, first, key, mode, ckref.dumps(want), ivs_of(enc),
                       "first commit (fsync)")
        # the mount goes on from the new file: same view
        assert_mount_shows(self, m.mnt, ckref.loads(ckref.dumps(want)),
                           "after the fsync commit")
        os.unlink(m.p("bf16"))
        want = remove_param(want, "bf16")
        m.unmount()
        check_our_file(self, read_bytes(src), key, mode, ckref.dumps(want),
                       ivs_of(enc) + ivs_of(first), "second commit")

    def test_after_commit_like_a_plain_mount(self):
        """An encrypted mount is not reopened after a commit, but it must
        behave as a plain one that is: an inferred shape becomes the one
        the commit wrote, so growing the file afterwards makes the next
        commit fail on the shape, on both."""
        base = mixed_params(4)
        key = make_key(16, 6)
        plain = ckref.dumps(base)
        for kp, data in ((None, plain),
                         (self.kp("AES-CBC", key),
                          cryptref.encrypt(plain, key, "AES-CBC"))):
            with self.subTest(encrypted=kp is not None):
                src = write_bytes(self.path("s.ckpt"), data)
                m = mount_k(self, src, kp)
                with open(m.p("d"), "wb") as f:
                    f.write(np.arange(10, dtype="<f4").tobytes())
                os.setxattr(m.p("d"), "user.dtype", b"Float32")
                self.assertEqual(os.getxattr(m.p("d"), "user.shape"),
                                 b"[10]")
                self.assertEqual(m.commit(), 0, m.error(fallback=True))
                with open(m.p("d"), "ab") as f:
                    f.write(b"\0" * 8)
                self.assertEqual(os.getxattr(m.p("d"), "user.shape"),
                                 b"[10]", "the committed shape is kept")
                rc = m.commit()
                self.assertEqual(rc, errno.EINVAL, "commit with 48 bytes "
                                 "for shape [10] Float32 must fail")
                self.assertRegex(m.error(fallback=True), r"'d'")
                os.truncate(m.p("d"), 40)
                self.assertEqual(m.commit(), 0, m.error(fallback=True))
                m.unmount()

    def test_output_option_keeps_encryption(self):
        base = mixed_params(3)
        key = make_key(16, 5)
        mode = "SM4-CBC"
        enc = cryptref.encrypt(ckref.dumps(base), key, mode)
        src = write_bytes(self.path("o.ckpt"), enc)
        out = self.path("o_out.ckpt")
        m = mount_k(self, src, self.kp(mode, key), "output=" + out)
        want = self.edit(m, base)
        m.unmount()
        self.assertEqual(read_bytes(src), enc, "source must be untouched")
        check_our_file(self, read_bytes(out), key, mode, ckref.dumps(want),
                       ivs_of(enc), "-o output")


class TestConvert(CryptoBase):
    """ckpt convert: encrypt, decrypt, re-key, change mode, keep."""

    def setUp(self):
        super().setUp()
        self.base = mixed_params(5)
        self.plain = ckref.dumps(self.base)
        self.src = write_bytes(self.path("plain.ckpt"), self.plain)

    def convert(self, src, out, *args, **kw):
        r = M.ckpt("convert", "-q", src, out, *args, **kw)
        self.assertOK(r, "ckpt convert %s" % " ".join(args))
        return read_bytes(out)

    def test_encrypt_every_mode_and_key_length(self):
        for mode, n in COMBOS:
            with self.subTest(mode=mode, key=n):
                kp = self.kp(mode, make_key(n, 6))
                raw = self.convert(self.src, self.path("e.ckpt"),
                                   "--out-enc-mode", mode,
                                   "--out-keyfile", kp.path)
                check_our_file(self, raw, kp.key, mode, self.plain,
                               label="convert to %s/%d" % (mode, n))

    def test_encrypt_key_from_fd_and_stdin(self):
        key = make_key(24, 7)
        kf = key_file(self.dir, key)
        fd = os.open(kf, os.O_RDONLY)
        try:
            raw = self.convert(self.src, self.path("fd.ckpt"),
                               "--out-enc-mode", "AES-CBC",
                               "--out-keyfd", str(fd), pass_fds=(fd,))
        finally:
            os.close(fd)
        check_our_file(self, raw, key, "AES-CBC", self.plain,
                       label="--out-keyfd")
        raw = self.convert(self.src, self.path("stdin.ckpt"),
                           "--out-enc-mode", "AES-GCM", "--out-keyfile", "-",
                           stdin_data=key)
        check_our_file(self, raw, key, "AES-GCM", self.plain,
                       label="--out-keyfile -")

    def test_rekey_and_change_mode(self):
        k1, k2 = make_key(16, 8), make_key(32, 9)
        enc = cryptref.encrypt(self.plain, k1, "AES-GCM", block=777)
        src = write_bytes(self.path("g.ckpt"), enc)
        kp1 = self.kp("AES-GCM", k1, "stdin")
        kp2 = self.kp("AES-CBC", k2)
        raw = self.convert(src, self.path("c.ckpt"),
                           *(kp1.cli()[0] + ["--out-enc-mode", "AES-CBC",
                                             "--out-keyfile", kp2.path]),
                           **kp1.cli()[1])
        check_our_file(self, raw, k2, "AES-CBC", self.plain, ivs_of(enc),
                       "GCM/16 -> CBC/32")
        kp3 = self.kp("SM4-CBC", make_key(16, 10))
        raw2 = self.convert(self.path("c.ckpt"), self.path("s.ckpt"),
                            "--enc-mode", "AES-CBC", "--keyfile", kp2.path,
                            "--out-enc-mode", "SM4-CBC", "--out-keyfile",
                            kp3.path)
        check_our_file(self, raw2, kp3.key, "SM4-CBC", self.plain,
                       ivs_of(raw), "CBC/32 -> SM4")

    def test_default_keeps_encryption(self):
        for mode, n in (("SM4-CBC", 16), ("AES-GCM", 24), ("AES-CBC", 16)):
            with self.subTest(mode=mode):
                key = make_key(n, 11)
                enc = cryptref.encrypt(self.plain, key, mode, block=2000)
                src = write_bytes(self.path("k.ckpt"), enc)
                raw = self.convert(src, self.path("k_out.ckpt"),
                                   "--enc-mode", mode, "--keyfile",
                                   key_file(self.dir, key))
                check_our_file(self, raw, key, mode, self.plain, ivs_of(enc),
                               "convert keeping %s" % mode)

    def test_decrypt(self):
        for mode, n in COMBOS:
            with self.subTest(mode=mode, key=n):
                key = make_key(n, 12)
                src = write_bytes(self.path("d.ckpt"), cryptref.encrypt(
                    self.plain, key, mode, block=3000))
                raw = self.convert(src, self.path("d_out.ckpt"),
                                   "--enc-mode", mode, "--keyfile",
                                   key_file(self.dir, key), "--decrypt")
                self.assertEqual(raw, self.plain, "--decrypt of %s" % mode)

    def test_decrypt_and_out_mode_exclude(self):
        kp = self.kp("AES-GCM", make_key(16))
        r = M.ckpt("convert", self.src, self.path("x.ckpt"), "--decrypt",
                 "--out-enc-mode", "AES-GCM", "--out-keyfile", kp.path)
        self.assertEqual(r.rc, 2, r.describe())
        self.assertFalse(os.path.exists(self.path("x.ckpt")))


class TestEmpty(CryptoBase):
    """An encrypted checkpoint without parameters is a 0-byte file."""

    def test_zero_byte_file_every_mode(self):
        for mode, n in COMBOS:
            with self.subTest(mode=mode, key=n):
                src = write_bytes(self.path("empty.ckpt"), b"")
                kp = self.kp(mode, make_key(n))
                r = self.verify_ok(src, kp, "empty %s" % mode)
                self.assertIn("0 parameters", r.text)
                m = mount_k(self, src, kp)
                self.assertEqual(os.listdir(m.mnt), [])
                m.unmount()
                self.assertEqual(read_bytes(src), b"")

    def test_add_to_empty_and_delete_all(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                key = make_key(16, 13)
                src = write_bytes(self.path("e_%s.ckpt" % mode), b"")
                kp = self.kp(mode, key)
                m = mount_k(self, src, kp)
                data = np.arange(5, dtype="<i4").tobytes()
                with open(m.p("only"), "wb") as f:
                    f.write(data)
                os.setxattr(m.p("only"), "user.dtype", b"Int32")
                m.unmount()
                want = ckref.dumps([param("only", "Int32", (5,), data)])
                check_our_file(self, read_bytes(src), key, mode, want,
                               label="add to empty %s" % mode)
                m = mount_k(self, src, kp)
                os.unlink(m.p("only"))
                m.unmount()
                self.assertEqual(read_bytes(src), b"", "deleting every "
                                 "parameter of an encrypted checkpoint must "
                                 "leave a 0-byte file (%s)" % mode)

    def test_convert_empty(self):
        src = write_bytes(self.path("p.ckpt"), b"")
        kp = self.kp("AES-GCM", make_key(32))
        out = self.path("o.ckpt")
        r = M.ckpt("convert", "-q", src, out, "--out-enc-mode", "AES-GCM",
                 "--out-keyfile", kp.path)
        self.assertOK(r, "convert empty -> GCM")
        self.assertEqual(read_bytes(out), b"")
        out2 = self.path("o2.ckpt")
        r = M.ckpt("convert", "-q", out, out2, "--enc-mode", "AES-GCM",
                 "--keyfile", kp.path, "--decrypt")
        self.assertOK(r, "convert empty GCM --decrypt")
        self.assertEqual(read_bytes(out2), b"")

    def test_create_encrypted(self):
        src = self.path("new.ckpt")
        key = make_key(24, 14)
        kp = self.kp("AES-CBC", key)
        m = mount_k(self, src, kp, "create")
        data = np.ones(4, dtype="<f8").tobytes()
        with open(m.p("w"), "wb") as f:
            f.write(data)
        os.setxattr(m.p("w"), "user.dtype", b"Float64")
        m.unmount()
        check_our_file(self, read_bytes(src), key, "AES-CBC",
                       ckref.dumps([param("w", "Float64", (4,), data)]),
                       label="-o create")


def _inner_len(name, n):
    # TensorProto: dims (08 varint n), tensor_type (12 05 "UInt8"),
    # content (1a varint(n) data)
    return 1 + len(varint(n)) + 2 + 5 + 1 + len(varint(n)) + n


def _value_len(name, n):
    t = _inner_len(name, n)
    return 1 + len(varint(len(name))) + len(name) + 1 + len(varint(t)) + t


def _fill(n):
    pat = np.frombuffer(hashlib.sha256(b"fill").digest() * 4, "u1")
    return np.resize(pat, n).tobytes()


def exact_plain(target, name="blk"):
    """A single-UInt8-tensor checkpoint stream of exactly target bytes."""
    for n in range(target - 40, target):
        vlen = _value_len(name, n)
        total = 1 + len(varint(vlen)) + vlen
        if total == target:
            plain = ckref.dumps([param(name, "UInt8", (n,), _fill(n))])
            assert len(plain) == target, (len(plain), target)
            return plain
    raise AssertionError("no size gives %d bytes" % target)


class TestMultiBlock(CryptoBase):
    """Files of several 64 MiB blocks (kept few: they are big)."""

    def test_150MiB_gcm_mount_commit_convert(self):
        # the plain pass (under ASan, test_exactly_64MiB_and_one_more has
        # the files of more than one block)
        if not common.BIG:
            self.skipTest("CKPT_BIG=0")
        key = make_key(32, 15)
        big = np.arange(150 << 18, dtype="<u4")          # 150 MiB
        base = [param("head", "Float32", (4,), np.ones(4, "<f4")),
                param("big.weight", "Float32", (150 << 10, 256), big),
                param("tail", "Int64", (), np.array([42], "<i8"))]
        plain = ckref.dumps(base)
        self.assertGreater(len(plain), 2 * BLOCK)
        enc = cryptref.encrypt(plain, key, "AES-GCM")
        self.assertEqual(len(cryptref.parse_blocks(enc)), 3)
        src = write_bytes(self.path("big.ckpt"), enc)
        del enc
        kp = self.kp("AES-GCM", key)
        m = mount_k(self, src, kp)
        with open(m.p("big.weight"), "rb") as f:
            got = f.read()
        self.assertEqual(len(got), len(big.tobytes()))
        if got != big.tobytes():
            self.fail("big.weight differs at %d" % first_diff(
                got, big.tobytes()))
        # a read across the first block boundary of the plaintext
        off = BLOCK - plain.index(big.tobytes()[:64]) - 100
        with open(m.p("big.weight"), "rb") as f:
            self.assertEqual(os.pread(f.fileno(), 4096, off),
                             big.tobytes()[off:off + 4096])
        del got
        tail = np.array([43], "<i8").tobytes()
        with open(m.p("tail"), "r+b") as f:
            f.write(tail)
        src_ivs = ivs_of(read_bytes(src))
        m.unmount()
        want = ckref.dumps(replace_data(base, "tail", tail))
        raw = read_bytes(src)
        blocks = check_our_file(self, raw, key, "AES-GCM", want, src_ivs,
                                "150 MiB commit")
        self.assertEqual(len(blocks), 3)
        del raw, blocks
        # convert the committed file to SM4-CBC (multi-block CBC output)
        kp2 = self.kp("SM4-CBC", make_key(16, 16))
        out = self.path("big_sm4.ckpt")
        r = M.ckpt("convert", "-q", src, out, "--enc-mode", "AES-GCM",
                 "--keyfile", kp.path, "--out-enc-mode", "SM4-CBC",
                 "--out-keyfile", kp2.path)
        self.assertOK(r, "convert 150 MiB GCM -> SM4")
        check_our_file(self, read_bytes(out), kp2.key, "SM4-CBC", want,
                       label="150 MiB convert to SM4-CBC")

    def test_exactly_64MiB_and_one_more(self):
        """A plaintext of exactly 64 MiB is one block (CBC: cipher_len
        64 MiB + 16, what MindSpore writes); 64 MiB + 1 is two."""
        key = make_key(24, 17)
        plain = exact_plain(BLOCK)
        enc = cryptref.encrypt(plain, key, "AES-CBC")
        blocks = cryptref.parse_blocks(enc)
        self.assertEqual([b.cipher_len for b in blocks], [BLOCK + 16])
        src = write_bytes(self.path("b64.ckpt"), enc)
        del enc
        kp = self.kp("AES-CBC", key)
        self.verify_ok(src, kp, "exactly 64 MiB, one CBC block")
        m = mount_k(self, src, kp, "ro")
        assert_mount_shows(self, m.mnt, ckref.loads(plain), "64 MiB")
        m.unmount()
        out = self.path("b64_gcm.ckpt")
        r = M.ckpt("convert", "-q", src, out, "--enc-mode", "AES-CBC",
                 "--keyfile", kp.path, "--out-enc-mode", "AES-GCM",
                 "--out-keyfile", kp.path)
        self.assertOK(r, "convert 64 MiB CBC -> GCM")
        check_our_file(self, read_bytes(out), key, "AES-GCM", plain,
                       label="64 MiB to GCM")
        plain1 = exact_plain(BLOCK + 1)
        src1 = write_bytes(self.path("b64p1.ckpt"), plain1)
        out1 = self.path("b64p1_cbc.ckpt")
        r = M.ckpt("convert", "-q", src1, out1, "--out-enc-mode", "AES-CBC",
                 "--out-keyfile", kp.path)
        self.assertOK(r, "convert 64 MiB + 1 -> CBC")
        blocks = check_our_file(self, read_bytes(out1), key, "AES-CBC",
                                plain1, label="64 MiB + 1 to CBC")
        self.assertEqual([b.cipher_len for b, _ in blocks], [BLOCK + 16, 16])


class TestThreads(CryptoBase):
    """Blocks are decrypted and encrypted on several threads
    (CKPT_CRYPTO_THREADS); neither the result nor the error may depend on
    how many, or on which block a thread happened to finish first."""

    def run_t(self, threads, kp, *args):
        kargs, kw = kp.cli()
        env = dict(os.environ, CKPT_CRYPTO_THREADS=str(threads))
        return M.ckpt(args[0], *(kargs + list(args[1:])), env=env, **kw)

    def setUp(self):
        super().setUp()
        # 20 MiB: enough for several threads (one takes 4 MiB at least)
        self.plain = ckref.dumps(mixed_params(31) + [
            param("big", "UInt8", (20 << 20,),
                  np.frombuffer(np.random.default_rng(5).bytes(20 << 20),
                                "u1"))])

    def test_same_plaintext_any_thread_count(self):
        for i, mode in enumerate(MODES):
            key = make_key(32 if mode != "SM4-CBC" else 16, 40 + i)
            enc = cryptref.encrypt(self.plain, key, mode,
                                   block=(500 << 10) + 7 * i)
            self.assertGreater(len(cryptref.parse_blocks(enc)), 25)
            src = write_bytes(self.path("t_%d.ckpt" % i), enc)
            kp = self.kp(mode, key)
            for threads in (1, 2, 5):
                with self.subTest(mode=mode, threads=threads):
                    r = self.run_t(threads, kp, "cat", src, "big")
                    self.assertOK(r, "cat with %d threads" % threads)
                    want = ckref.loads(self.plain)[-1]["data"]
                    self.assertEqual(r.out, want)

    def test_first_bad_block_is_reported(self):
        key = make_key(16, 50)
        enc = cryptref.encrypt(self.plain, key, "AES-GCM", block=500 << 10)
        blocks = cryptref.parse_blocks(enc)
        self.assertGreater(len(blocks), 25)
        kp = self.kp("AES-GCM", key)
        many = enc
        for k in (7, 8, 9, 10, 11, 20):   # in flight together
            many = flip(many, (blocks[k].cipher_off + blocks[k].end) // 2)
        cases = {
            "blocks 7-11 and 20 tampered": (many, 7),
            "block 3 tampered, block 22 cut short": (
                flip(enc[:blocks[22].cipher_off + 10],
                     blocks[3].cipher_off), 3),
            "only the last block tampered": (
                flip(enc, len(enc) - 1), len(blocks) - 1),
        }
        for what, (data, bad) in cases.items():
            src = write_bytes(self.path("bad.ckpt"), data)
            # which thread fails first varies from run to run: repeat
            for threads in (1, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2):
                with self.subTest(what, threads=threads):
                    r = self.run_t(threads, kp, "verify", src)
                    self.assertEqual(r.rc, 1, r.describe())
                    self.assertIn("offset %d:" % blocks[bad].off,
                                  r.errtext, what)
                    self.assertRegex(r.errtext, r"(?i)authenticat")

    def test_convert_any_thread_count(self):
        """More blocks than threads and the other way round: a 150 MiB
        stream is three blocks."""
        if not common.BIG:
            self.skipTest("CKPT_BIG=0")
        big = np.arange(150 << 18, dtype="<u4")
        plain = ckref.dumps([param("big", "Float32", (150 << 18,), big)])
        src = write_bytes(self.path("p.ckpt"), plain)
        # every mode with every count under --long; else each count once
        runs = [(m, t) for m in MODES for t in (1, 2, 7)] if common.LONG \
            else list(zip(MODES, (1, 2, 7)))
        for mode, threads in runs:
            key = make_key(16, 60)
            kp = self.kp(mode, key)
            with self.subTest(mode=mode, threads=threads):
                out = self.path("o.ckpt")
                r = M.ckpt("convert", "-q", src, out, "--out-enc-mode",
                         mode, "--out-keyfile", kp.path,
                         env=dict(os.environ,
                                  CKPT_CRYPTO_THREADS=str(threads)))
                self.assertOK(r, "convert with %d threads" % threads)
                blocks = check_our_file(self, read_bytes(out), key,
                                        mode, plain,
                                        label="%d threads" % threads)
                self.assertEqual(len(blocks), 3)


class TestInfo(CryptoBase):
    """ckpt info of an encrypted file."""

    def test_info_reports_encryption(self):
        plain = ckref.dumps(mixed_params(6))
        for mode, n in (("AES-CBC", 24), ("SM4-CBC", 16), ("AES-GCM", 32)):
            with self.subTest(mode=mode):
                key = make_key(n, 31)
                enc = cryptref.encrypt(plain, key, mode, block=700)
                nblocks = len(cryptref.parse_blocks(enc))
                src = write_bytes(self.path("i.ckpt"), enc)
                r = ckpt_k(self.kp(mode, key), "info", src)
                self.assertOK(r, "ckpt info")
                self.assertRegex(r.text, r"encryption:\s+%s, %d block"
                                 % (mode, nblocks))
                self.assertRegex(r.text, r"parameters:\s+10\b")
                size = re.search(r"(?m)^size:\s+(\d+) bytes", r.text)
                self.assertTrue(size, r.text)
                self.assertEqual(int(size.group(1)), len(enc),
                                 "ckpt info 'size:' of an encrypted file "
                                 "should be its size on disk (%d), not the "
                                 "plaintext's (%d):\n%s" % (
                                     len(enc), len(plain), r.text))


class TestLegacy(CryptoBase):
    """MindSpore 1.3-1.6 layout: readable, with a warning."""

    WARN = re.compile(r"warn.*(not authenticated|unauthenticated)",
                      re.I | re.S)

    def legacy_file(self, mode, n, block=cryptref.LEGACY_BLOCK, seed=18):
        base = mixed_params(seed)
        plain = ckref.dumps(base)
        key = make_key(n, seed)
        enc = cryptref.legacy_encrypt(plain, key, mode, block=block)
        return plain, key, write_bytes(self.path("leg_%s_%d.ckpt" % (
            mode, n)), enc)

    def test_cli_reads_with_warning(self):
        for mode, n in (("AES-GCM", 16), ("AES-GCM", 32), ("AES-CBC", 24)):
            with self.subTest(mode=mode, key=n):
                plain, key, src = self.legacy_file(mode, n, block=1500)
                kp = self.kp(mode, key)
                r = self.verify_ok(src, kp, "legacy %s" % mode)
                self.assertNotIn("authenticated", r.text.replace(
                    "unauthenticated", ""), "a legacy GCM file must not "
                    "be called authenticated")
                self.assertRegex(r.errtext, self.WARN,
                                 "ckpt verify: legacy warning")
                ref = ckref.loads(plain)
                for p in tensor_params(ref):
                    r = ckpt_k(kp, "cat", src, escape_name(p.name))
                    self.assertOK(r, "ckpt cat %r" % p.name)
                    self.assertEqual(r.out, p.data, p.name)
                self.assertRegex(r.errtext, self.WARN, "ckpt cat: warning")

    def test_mount_reads_with_warning(self):
        for mode, n in (("AES-GCM", 24), ("AES-CBC", 32)):
            with self.subTest(mode=mode, key=n):
                plain, key, src = self.legacy_file(mode, n, block=999)
                m = mount_k(self, src, self.kp(mode, key), "ro")
                assert_mount_shows(self, m.mnt, ckref.loads(plain),
                                   "legacy %s" % mode)
                m.unmount()
                self.assertRegex(m.res.errtext, self.WARN,
                                 "ckptfs must warn that a legacy %s file "
                                 "is not authenticated (stderr was %r)"
                                 % (mode, m.res.errtext))

    def test_big_legacy_block_and_commit(self):
        """Legacy blocks may hold up to 512 MiB; a commit rewrites the file
        in the current layout."""
        key = make_key(16, 19)
        big = np.frombuffer(os.urandom(1 << 20), "u1")
        data = np.tile(big, 70)                          # 70 MiB
        base = [param("w", "UInt8", (len(data),), data),
                param("b", "Float32", (2,), np.ones(2, "<f4"))]
        plain = ckref.dumps(base)
        enc = cryptref.legacy_encrypt(plain, key, "AES-GCM")
        self.assertEqual(len(cryptref.parse_blocks(enc, legacy=True)), 1)
        src = write_bytes(self.path("leg_big.ckpt"), enc)
        del enc
        kp = self.kp("AES-GCM", key)
        m = mount_k(self, src, kp)
        with open(m.p("w"), "rb") as f:
            self.assertTrue(f.read() == data.tobytes(), "70 MiB legacy "
                            "block content")
        nb = np.array([2, 3], "<f4").tobytes()
        with open(m.p("b"), "r+b") as f:
            f.write(nb)
        m.unmount()
        check_our_file(self, read_bytes(src), key, "AES-GCM",
                       ckref.dumps(replace_data(base, "b", nb)),
                       label="commit of a legacy file")


# --------------------------------------------------------------------------
# refusals

def setbytes(data, off, new):
    b = bytearray(data)
    b[off:off + len(new)] = new
    return bytes(b)


def flip(data, off):
    b = bytearray(data)
    b[off] ^= 0x5A
    return bytes(b)


def le32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


class TestRefused(CryptoBase):
    """Bad keys, wrong modes, damaged files: 'ckpt verify' exits 1 with a
    message, ckptfs refuses to mount and nothing stays mounted."""

    @classmethod
    def setUpClass(cls):
        cls.plain = ckref.dumps(mixed_params(20))
        half = len(cls.plain) // 2 + 3
        cls.keys = {"AES-GCM": make_key(16, 21), "AES-CBC": make_key(24, 22),
                    "SM4-CBC": make_key(16, 23)}
        cls.enc = {m: cryptref.encrypt(cls.plain, cls.keys[m], m,
                                       iv=fixed_ivs(2, i), block=half)
                   for i, m in enumerate(MODES)}
        for m in MODES:
            assert len(cryptref.parse_blocks(cls.enc[m])) == 2

    def refused(self, data, mode, key, pattern, what, how="file",
                key_raw=None, verify_rc=(1,), extra_opts=()):
        """data: file bytes (or a path); mode/key: what is given (None: no
        key options); pattern: regex the messages must match."""
        src = data if isinstance(data, str) else \
            write_bytes(self.path("bad.ckpt"), data)
        before = read_bytes(src)
        kp = None
        if mode is not None:
            kp = KeyPass(how, mode, key, key_file(self.dir, key, "k.bin"))
            self.addCleanup(kp.close)
        r = ckpt_k(kp, "verify", src)
        common.assert_not_signal(self, r, "ckpt verify (%s)" % what)
        self.assertIn(r.rc, verify_rc, "ckpt verify must fail: %s\n%s"
                      % (what, r.describe()))
        self.assertNotIn("OK", r.text, what)
        self.assertRegex(r.errtext, pattern, "ckpt verify message (%s)"
                         % what)
        o, kw = kp.mount_opts() if kp else (None, {})
        opts = ",".join(x for x in [o] + list(extra_opts) if x)
        res, m = M.try_mount(self, src, *(["-o", opts] if opts else []),
                             **kw)
        common.assert_not_signal(self, res, "ckptfs (%s)" % what)
        self.assertIsNone(m, "ckptfs mounted a bad file: %s" % what)
        self.assertNotEqual(res.rc, 0, what)
        self.assertFalse(M.is_mounted(res.mnt), "left mounted: %s" % what)
        self.assertRegex(res.errtext, pattern, "ckptfs message (%s)" % what)
        self.assertEqual(read_bytes(src), before, "file changed: %s" % what)
        return r.errtext, res.errtext

    # -- keys and modes -----------------------------------------------------

    def test_wrong_key(self):
        for mode in MODES:
            for n in cryptref.KEY_LENGTHS[mode]:
                wrong = make_key(n, 99)
                for how in ("file", "stdin"):
                    with self.subTest(mode=mode, key=n, how=how):
                        self.refused(self.enc[mode], mode, wrong,
                                     r"(?i)key", "wrong %d-byte key for %s"
                                     % (n, mode), how=how)

    def test_wrong_mode(self):
        for fmode in MODES:
            for gmode in MODES:
                if fmode == gmode:
                    continue
                with self.subTest(file=fmode, given=gmode):
                    key = self.keys[fmode][:16]
                    e1, e2 = self.refused(
                        self.enc[fmode], gmode, key, r"(?i)mode",
                        "%s file opened as %s" % (fmode, gmode))
                    self.assertIn(fmode, e1, "the message should name the "
                                  "file's mode")

    def test_no_key(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.refused(self.enc[mode], None, None,
                             r"(?i)encrypted.*%s" % mode,
                             "%s file without a key" % mode)

    def test_key_for_plain_file(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.refused(self.plain, mode, self.keys[mode][:16],
                             r"(?i)not encrypted", "key for a plain file")

    def test_key_file_bad_length(self):
        cases = [(m, n) for m in ("AES-GCM", "AES-CBC")
                 for n in (0, 1, 15, 17, 23, 31, 33, 64, 65, 100)]
        cases += [("SM4-CBC", n) for n in (0, 8, 15, 17, 24, 32)]
        for mode, n in cases:
            with self.subTest(mode=mode, key=n):
                self.refused(self.enc[mode], mode, make_key(n, 5),
                             r"(?i)(\d+ bytes|longer)",
                             "%d-byte key for %s" % (n, mode),
                             verify_rc=(1, 2))
        # the classic mistake: a key written with echo (trailing newline)
        key = self.keys["AES-GCM"] + b"\n"
        self.refused(self.enc["AES-GCM"], "AES-GCM", key, r"17 bytes",
                     "key with a newline")

    def test_bad_key_options(self):
        src = write_bytes(self.path("g.ckpt"), self.enc["AES-GCM"])
        kf = key_file(self.dir, self.keys["AES-GCM"])
        r = M.ckpt("verify", "--enc-mode", "AES-ECB", "--keyfile", kf, src)
        self.assertEqual(r.rc, 2, r.describe())
        r = M.ckpt("verify", "--keyfile", kf, src)
        self.assertEqual(r.rc, 2, r.describe())
        r = M.ckpt("verify", "--enc-mode", "AES-GCM", src)
        self.assertEqual(r.rc, 2, r.describe())
        r = M.ckpt("verify", "--enc-mode", "AES-GCM", "--keyfile",
                 self.path("missing"), src)
        self.assertEqual(r.rc, 1, r.describe())
        for opts in ("enc_mode=AES-ECB,keyfile=" + kf, "keyfile=" + kf,
                     "enc_mode=AES-GCM", "enc_mode=AES-GCM,keyfile=" +
                     self.path("missing"), "enc_mode=AES-GCM,keyfd=57"):
            with self.subTest(opts=opts):
                res, m = M.try_mount(self, src, "-o", opts)
                self.assertIsNone(m, opts)
                self.assertNotEqual(res.rc, 0, opts)
                self.assertFalse(M.is_mounted(res.mnt))
                self.assertTrue(res.errtext.strip(), "no message: " + opts)

    # -- damaged files -------------------------------------------------------

    def test_tampered_gcm(self):
        enc, key = self.enc["AES-GCM"], self.keys["AES-GCM"]
        b0, b1 = cryptref.parse_blocks(enc)
        auth = r"(?i)authenticat"
        cases = {
            "ciphertext first byte block 0": flip(enc, b0.cipher_off),
            "ciphertext middle block 0": flip(enc, (b0.cipher_off + b0.end)
                                              // 2),
            "ciphertext last byte block 0": flip(enc, b0.end - 1),
            "ciphertext first byte block 1": flip(enc, b1.cipher_off),
            "ciphertext last byte of file": flip(enc, len(enc) - 1),
            "tag first byte block 0": flip(enc, b0.tag_off),
            "tag last byte block 0": flip(enc, b0.tag_off + 15),
            "tag byte block 1": flip(enc, b1.tag_off + 7),
            "IV byte block 0": flip(enc, b0.iv_off + 3),
            "IV byte block 1": flip(enc, b1.iv_off + 15),
        }
        for what, data in cases.items():
            with self.subTest(what):
                self.refused(data, "AES-GCM", key, auth, "GCM " + what)

    def test_tampered_cbc(self):
        for mode in ("AES-CBC", "SM4-CBC"):
            enc, key = self.enc[mode], self.keys[mode]
            b0, b1 = cryptref.parse_blocks(enc)
            for what, data in (("last ciphertext byte", flip(enc,
                                                             len(enc) - 1)),
                               ("last byte block 0", flip(enc, b0.end - 1)),
                               ("IV byte block 0", flip(enc, b0.iv_off))):
                with self.subTest(mode=mode, what=what):
                    self.refused(data, mode, key, r"\S",
                                 "%s %s" % (mode, what))

    def test_bad_magic(self):
        enc = self.enc["AES-GCM"]
        b0, b1 = cryptref.parse_blocks(enc)
        self.refused(flip(enc, b1.off + 1), "AES-GCM",
                     self.keys["AES-GCM"], r"(?i)magic|damaged",
                     "second block magic")
        self.refused(setbytes(enc, b1.off, le32(0x7F3A5ED9)), "AES-GCM",
                     self.keys["AES-GCM"], r"(?i)mode|magic",
                     "second block claims CBC")

    def test_truncated(self):
        for mode in MODES:
            enc, key = self.enc[mode], self.keys[mode]
            b0, b1 = cryptref.parse_blocks(enc)
            hdr = b0.cipher_off
            offs = {4, 5, 19, 20, 23, hdr - 1, hdr, hdr + 1,
                    b0.end - 1, b0.end + 1, b0.end + 4, b0.end + 30,
                    b1.cipher_off, b1.cipher_off + 16, len(enc) - 16,
                    len(enc) - 1}
            for cut in sorted(o for o in offs if 0 < o < len(enc)):
                with self.subTest(mode=mode, cut=cut):
                    self.refused(enc[:cut], mode, key,
                                 r"(?i)truncat|damaged|past the end",
                                 "%s truncated to %d bytes" % (mode, cut))
            # cut at the block boundary: the blocks decrypt, but the
            # stream ends inside a record
            with self.subTest(mode=mode, cut="block boundary"):
                self.refused(enc[:b0.end], mode, key, r"\S",
                             "%s cut after block 0" % mode)

    def test_truncated_inside_magic(self):
        """1-3 bytes left of an encrypted file: a prefix of a block magic.
        Refused; the message should say the file is truncated / damaged,
        not that it 'is not encrypted'."""
        for mode in MODES:
            enc, key = self.enc[mode], self.keys[mode]
            for cut in (1, 2, 3):
                with self.subTest(mode=mode, cut=cut):
                    self.refused(enc[:cut], mode, key,
                                 r"(?i)truncat|damaged|too short",
                                 "%s truncated to %d bytes" % (mode, cut))

    def test_wrong_key_cbc_valid_padding(self):
        """A wrong CBC key whose garbage happens to end in valid padding
        (about 1 in 256 keys): the protobuf parse fails; since the file was
        decrypted, the message should still point at the key."""
        for mode in ("AES-CBC", "SM4-CBC"):
            key = self.keys[mode]
            enc = cryptref.encrypt(self.plain, key, mode,
                                   iv=fixed_ivs(1, 40))
            for salt in range(100, 5000):
                wrong = make_key(len(key), salt)
                try:
                    cryptref.decrypt(enc, wrong, mode)
                except cryptref.CryptError:
                    continue
                break
            else:
                self.fail("no wrong key with valid padding found")
            with self.subTest(mode=mode):
                self.refused(enc, mode, wrong, r"(?i)key",
                             "wrong %s key, padding valid by chance" % mode)

    def test_lying_headers(self):
        for mode in MODES:
            enc, key = self.enc[mode], self.keys[mode]
            b0, b1 = cryptref.parse_blocks(enc)
            bs, cl, ivl = b0.block_size_off, b0.cipher_len_off, \
                b0.block_size_off + 4
            cases = {
                "block_size + 1": setbytes(enc, bs, le32(b0.block_size + 1)),
                "block_size - 1": setbytes(enc, bs, le32(b0.block_size - 1)),
                "block_size huge": setbytes(enc, bs, le32(0x7FFFFFF0)),
                "cipher_len 0": setbytes(setbytes(enc, cl, le32(0)), bs,
                                         le32(24)),
                "cipher_len 0, block_size kept": setbytes(enc, cl, le32(0)),
                "cipher_len + 16 (consistent)": setbytes(setbytes(
                    enc, cl, le32(b0.cipher_len + 16)), bs,
                    le32(b0.block_size + 16)),
                "cipher_len - 16 (consistent)": setbytes(setbytes(
                    enc, cl, le32(b0.cipher_len - 16)), bs,
                    le32(b0.block_size - 16)),
                "cipher_len past EOF (consistent)": setbytes(setbytes(
                    enc, cl, le32(len(enc))), bs, le32(len(enc) + 24)),
                "cipher_len 2 GiB (consistent)": setbytes(setbytes(
                    enc, cl, le32(0x7FFFFF00)), bs, le32(0x7FFFFF18)),
                "cipher_len 4 GiB - 16, block_size wraps": setbytes(setbytes(
                    enc, cl, le32(0xFFFFFFF0)), bs, le32(0xFFFFFFF0 + 24)),
                "iv_len 12": setbytes(enc, ivl, le32(12)),
                "last block cipher_len + 16": setbytes(setbytes(
                    enc, b1.cipher_len_off, le32(b1.cipher_len + 16)),
                    b1.block_size_off, le32(b1.block_size + 16)),
            }
            for what, data in cases.items():
                with self.subTest(mode=mode, what=what):
                    self.refused(data, mode, key, r"\S",
                                 "%s: %s" % (mode, what))

    def test_block_over_64MiB_refused(self):
        """One self-consistent GCM block of 64 MiB + 4 KiB plaintext:
        MindSpore's reader has a 64 MiB + 50 byte buffer, a writer must
        never produce it, a reader must refuse it."""
        key = self.keys["AES-GCM"]
        plain = exact_plain(BLOCK + 4096)
        enc = cryptref.encrypt(plain, key, "AES-GCM", block=BLOCK + 4096)
        self.assertEqual(len(cryptref.parse_blocks(enc)), 1)
        self.refused(enc, "AES-GCM", key, r"(?i)block|damaged",
                     "GCM block of 64 MiB + 4 KiB")


# --------------------------------------------------------------------------
# no plaintext on disk

CHUNK = 8 << 20


def file_hits(path, markers, opener=None):
    """Names of the markers found in the file at path."""
    found = set()
    tail = b""
    keep = max(len(m) for m in markers.values()) - 1
    try:
        with (opener or open)(path, "rb") as f:
            while True:
                buf = f.read(CHUNK)
                if not buf:
                    break
                hay = tail + buf
                for k, m in markers.items():
                    if k not in found and m in hay:
                        found.add(k)
                tail = hay[-keep:]
    except OSError:
        pass
    return found


def mount_points():
    out = set()
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4:
                    out.add(M.unescape_mountinfo(parts[4]))
    except OSError:
        pass
    return out


def walk_files(top, since=None):
    """Regular files under top on top's filesystem (mount points are
    skipped without being touched: another test's daemon may be busy)."""
    try:
        dev = os.stat(top).st_dev
    except OSError:
        return
    mounts = mount_points()
    for d, dirs, files in os.walk(top):
        keep = []
        for x in dirs:
            p = os.path.join(d, x)
            if p in mounts:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_dev == dev and stat.S_ISDIR(st.st_mode):
                keep.append(x)
        dirs[:] = keep
        for x in files:
            p = os.path.join(d, x)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_dev != dev:
                continue
            if since is not None and max(st.st_mtime, st.st_ctime) < since:
                continue
            yield p


def daemon_disk_files(pid):
    """(description, /proc path) of every regular file on a disk the
    daemon holds open (unnamed O_TMPFILEs and unlinked files included;
    memfds excluded)."""
    out = []
    fddir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fddir)
    except OSError:
        return out
    for fd in fds:
        p = os.path.join(fddir, fd)
        try:
            target = os.readlink(p)
            st = os.stat(p)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or target.startswith("/memfd:") \
                or not target.startswith("/"):
            continue
        out.append(("fd %s of ckptfs -> %s" % (fd, target), p))
    return out


class TestNoPlaintextOnDisk(CryptoBase):
    """Decrypted data of an encrypted mount never reaches a disk."""

    def setUp(self):
        super().setUp()
        self.t0 = time.time() - 2
        tag = os.urandom(8).hex()
        self.name1 = "ptmark.%s.secret" % tag
        self.name2 = "ptmark.%s.added" % tag
        self.pat1, self.pat2 = os.urandom(64), os.urandom(64)
        self.markers = {"name1": self.name1.encode(),
                        "name2": self.name2.encode(),
                        "pattern1": self.pat1, "pattern2": self.pat2}
        self.target_dir = os.path.join(self.dir, "target")
        self.staging = os.path.join(self.dir, "staging")
        self.tmp = os.path.join(self.dir, "tmp")
        for d in (self.target_dir, self.staging, self.tmp):
            os.mkdir(d)
        filler = np.frombuffer(os.urandom(1 << 20), "u1")
        self.base = [
            param(self.name1, "UInt8", (64 * 4096,), self.pat1 * 4096),
            param("filler", "UInt8", (24 << 20,), np.tile(filler, 24)),
        ]

    def scan(self, pid, what):
        """Marker hits on disk: the three directories, new files in the
        system temp dir, and the daemon's open disk files."""
        hits = []
        for top, since in ((self.target_dir, None), (self.staging, None),
                           (self.tmp, None),
                           (tempfile.gettempdir(), self.t0)):
            for p in walk_files(top, since):
                if since is not None and p.startswith(self.dir + os.sep):
                    continue  # our own dirs are scanned fully above
                if os.path.basename(p).startswith("key_"):
                    continue
                f = file_hits(p, self.markers)
                if f:
                    hits.append("%s: %s (%s)" % (p, sorted(f), what))
        if pid:
            for desc, p in daemon_disk_files(pid):
                f = file_hits(p, self.markers)
                if f:
                    hits.append("%s: %s (%s)" % (desc, sorted(f), what))
        return hits

    def run_scenario(self, kp):
        """Mounts, edits, commits (scanning while the commit runs),
        unmounts.  Returns (hits, target path)."""
        plain = ckref.dumps(self.base)
        src = os.path.join(self.target_dir, "model.ckpt")
        if kp:
            write_bytes(src, cryptref.encrypt(plain, kp.key, kp.mode))
        else:
            write_bytes(src, plain)
        del plain
        o, kw = kp.mount_opts() if kp else (None, {})
        opts = ",".join(x for x in (o, "staging=" + self.staging) if x)
        env = dict(os.environ, TMPDIR=self.tmp)
        res, m = M.try_mount(self, src, "-o", opts, env=env, **kw)
        if m is None:
            self.fail("mount failed\n" + res.describe())
        hits = []
        # the decrypted view really holds the markers
        with open(m.p(self.name1), "rb") as f:
            self.assertEqual(f.read(), self.pat1 * 4096)
        # edits: a new parameter and a change of the big one
        with open(m.p(self.name2), "wb") as f:
            f.write(self.pat2 * 2048)
        os.setxattr(m.p(self.name2), "user.dtype", b"UInt8")
        fd = os.open(m.p("filler"), os.O_WRONLY)
        try:
            for off in range(0, 24 << 20, 1 << 20):
                os.pwrite(fd, self.pat2, off + 1000)
        finally:
            os.close(fd)
        hits += self.scan(m.pid, "staged, before the commit")
        box = {}
        th = threading.Thread(target=lambda: box.setdefault(
            "rc", M.fsync_path(m.mnt)), daemon=True)
        th.start()
        scans = 0
        while th.is_alive() or scans == 0:
            hits += self.scan(m.pid, "during the commit")
            scans += 1
            if time.time() - self.t0 > TIMEOUT:
                break
        th.join(TIMEOUT)
        self.assertEqual(box.get("rc"), 0, "commit: " + m.error(fallback=True))
        hits += self.scan(m.pid, "after the commit")
        m.unmount()
        hits += self.scan(None, "after unmount")
        return hits, src

    def test_encrypted_mount_leaves_no_plaintext(self):
        key = make_key(32, 30)
        kp = self.kp("AES-GCM", key)
        hits, src = self.run_scenario(kp)
        self.assertEqual(hits, [], "plaintext of an encrypted mount found "
                         "on disk")
        # the scan had something to find: the committed file decrypts to
        # a stream holding every marker
        plain = cryptref.decrypt(read_bytes(src), key, "AES-GCM")
        for k, mk in self.markers.items():
            self.assertIn(mk, plain, k)

    def test_recovery_checkpoint_is_encrypted(self):
        """A commit that fails at unmount saves a recovery checkpoint: it
        must be encrypted with the mount's key, like the target."""
        import glob
        key = make_key(16, 32)
        kp = self.kp("AES-CBC", key)
        plain = ckref.dumps(self.base)
        src = write_bytes(os.path.join(self.target_dir, "model.ckpt"),
                          cryptref.encrypt(plain, key, "AES-CBC"))
        del plain
        env = dict(os.environ, TMPDIR=self.tmp)
        o, kw = kp.mount_opts()
        res, m = M.try_mount(self, src, "-o", o + ",staging=" +
                             self.staging, env=env, **kw)
        self.assertIsNotNone(m, res.describe())
        with open(m.p(self.name2), "wb") as f:
            f.write(self.pat2 * 16)
        os.setxattr(m.p(self.name2), "user.dtype", b"UInt8")
        # a shape that does not fit the bytes: the commit at unmount fails
        os.setxattr(m.p(self.name1), "user.shape", b"[5,7]")
        before = read_bytes(src)
        pid = m.pid
        m.unmount()
        self.addCleanup(lambda: [os.unlink(p) for p in glob.glob(
            "%s/ckptfs-status-%d-%d" % (os.environ.get("XDG_RUNTIME_DIR")
                                        or "/tmp", os.getuid(), pid))])
        self.assertEqual(read_bytes(src), before, "the failed commit "
                         "changed the target")
        rec = glob.glob(os.path.join(self.target_dir, "*.recovery-*")) + \
            glob.glob(os.path.join(self.tmp, "*.recovery-*"))
        self.assertEqual(len(rec), 1, "one recovery checkpoint expected: "
                         "%s" % rec)
        hits = self.scan(None, "after the failed commit")
        self.assertEqual(hits, [], "plaintext on disk after a failed "
                         "commit of an encrypted mount")
        try:
            got = cryptref.decrypt(read_bytes(rec[0]), key, "AES-CBC")
        except cryptref.CryptError as e:
            self.fail("the recovery checkpoint is not encrypted with the "
                      "mount's key and mode: %s" % e)
        names = [p.name for p in ckref.loads(got)]
        self.assertIn(self.name2, names)
        self.assertIn(self.pat2 * 16, got)

    def test_control_scan_finds_plain_staging(self):
        """The same scenario on a plain checkpoint: the scan must find the
        staged plaintext (else it would prove nothing)."""
        hits, src = self.run_scenario(None)
        self.assertTrue(any("fd " in h and "pattern2" in h for h in hits),
                        "the scan did not see the plain staging file: %s"
                        % hits)
        self.assertTrue(any(h.startswith(src) for h in hits), hits)


def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
