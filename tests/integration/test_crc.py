#!/usr/bin/python3
"""The crc_num trailer (format document §5), checked with zlib.crc32.

Covered: a file with a valid trailer mounts and 'ckpt verify' / 'ckpt info'
say the CRC is valid (also an empty checkpoint that is only a trailer); a
mismatch (data byte, CRC byte, high bytes of the 10-byte number) is refused
by 'ckpt verify' (even with --ignore-crc), ls/cat/convert and ckptfs, with
nothing left mounted; -o ignore_crc mounts such a file read-only with a
warning and shows the data; a commit of a CRC file writes a fresh valid
trailer (unmount, fsync, -o output); -o crc adds one to a plain file and
never doubles an existing one; 'ckpt convert' keeps, adds (--crc) and drops
(--no-crc) it; CRC and encryption together are refused (ckptfs -o crc with
a key, convert --crc to or from an encrypted file) and never written (a
CRC file converted to an encrypted one drops the trailer); a CRC trailer
inside the encrypted plaintext is checked; MindSpore's broken "trailer
after the ciphertext" file is refused; a file truncated and rewritten in
place over and over while 'ckpt verify' checks it (the CRC is computed
over a mapping) never kills ckpt: every run exits 0, 1 or 2.

Run:  /usr/bin/python3 -m unittest -v test_crc   (in tests/integration)
"""

import errno
import os
import random
import sys
import threading
import time
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
from test_crypto import (  # noqa: E402
    assert_mount_shows, first_diff, key_file, keypass, make_key,
    mixed_params, mount_k, param, read_bytes, remove_param, replace_data,
    tempdir, write_bytes)

MARK = b"crc_num"


def trailer(body):
    return MARK + zlib.crc32(body).to_bytes(10, "big")


class CrcBase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = tempdir(self, "ckptfs_crc_")
        self.base = mixed_params(40)
        self.body = ckref.dumps(self.base)
        self.crcfile = self.body + trailer(self.body)
        # the reference writer agrees with zlib
        self.assertEqual(ckref.dumps(self.base, crc=True), self.crcfile)

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertOK(self, res, what=""):
        common.assert_not_signal(self, res, what)
        self.assertEqual(res.rc, 0, "%s\n%s" % (what, res.describe()))

    def assertCrcFile(self, raw, body, what):
        """raw == body + a valid trailer, checked with zlib directly."""
        self.assertGreaterEqual(len(raw), 17, what)
        self.assertEqual(raw[-17:-10], MARK, "%s: no crc_num trailer" % what)
        self.assertEqual(raw[-10:-4], b"\0" * 6, "%s: high bytes" % what)
        self.assertEqual(int.from_bytes(raw[-10:], "big"),
                         zlib.crc32(raw[:-17]),
                         "%s: the trailer does not match the data" % what)
        if raw[:-17] != body:
            self.fail("%s: data before the trailer differs from the "
                      "expected stream (first difference at %d)"
                      % (what, first_diff(raw[:-17], body)))
        self.assertNotEqual(raw[-34:-27], MARK, "%s: two trailers" % what)

    def edit(self, m):
        """Changes fc.bias, deletes to_delete; returns the new params."""
        nb = np.linspace(-1, 1, 10, dtype="<f4").tobytes()
        with open(m.p("fc.bias"), "r+b") as f:
            f.write(nb)
        os.unlink(m.p("to_delete"))
        return remove_param(replace_data(self.base, "fc.bias", nb),
                            "to_delete")


class TestValidTrailer(CrcBase):

    def test_mount_and_verify(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        r = M.ckpt("verify", src)
        self.assertOK(r, "ckpt verify")
        self.assertRegex(r.text, r"OK.*crc valid")
        r = M.ckpt("info", src)
        self.assertOK(r, "ckpt info")
        self.assertRegex(r.text, r"crc:\s+present, 0x%08x, valid"
                         % zlib.crc32(self.body))
        m = mount_k(self, src, None)
        assert_mount_shows(self, m.mnt, ckref.loads(self.crcfile), "crc")
        m.unmount()
        self.assertEqual(read_bytes(src), self.crcfile,
                         "no edit, no change")

    def test_ls_and_cat(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        r = M.ckpt("ls", src)
        self.assertOK(r, "ckpt ls")
        self.assertIn("fc.bias", r.text.split())
        r = M.ckpt("cat", src, "fc.bias")
        self.assertOK(r, "ckpt cat")
        self.assertEqual(r.out, [p for p in self.base
                                 if p["name"] == "fc.bias"][0]["data"])

    def test_empty_checkpoint_with_trailer(self):
        src = write_bytes(self.path("e.ckpt"), trailer(b""))
        self.assertEqual(len(read_bytes(src)), 17)
        r = M.ckpt("verify", src)
        self.assertOK(r, "verify of a trailer-only file")
        self.assertRegex(r.text, r"0 parameters.*crc valid")
        m = mount_k(self, src, None)
        self.assertEqual(os.listdir(m.mnt), [])
        m.unmount()

    def test_ignore_crc_on_valid_file_stays_writable(self):
        src = write_bytes(self.path("v.ckpt"), self.crcfile)
        m = mount_k(self, src, None, "ignore_crc")
        want = self.edit(m)
        m.unmount()
        self.assertCrcFile(read_bytes(src), ckref.dumps(want),
                           "-o ignore_crc on a valid file, then an edit")


class TestMismatch(CrcBase):
    """A trailer that does not match: refused everywhere unless ignored."""

    def cases(self):
        body = bytearray(self.body)
        i = self.body.index(b"fc.bias") + 40
        body[i] ^= 0x01
        bad_data = bytes(body) + trailer(self.body)
        crc = bytearray(self.crcfile)
        crc[-1] ^= 0x80
        high = bytearray(self.crcfile)
        high[-10] = 0x01   # a number wider than 32 bits
        return {"data byte flipped": bad_data, "crc byte flipped":
                bytes(crc), "high byte of the 10-byte number": bytes(high)}

    def test_refused(self):
        for what, data in self.cases().items():
            with self.subTest(what):
                src = write_bytes(self.path("bad.ckpt"), data)
                for extra in ([], ["--ignore-crc"]):
                    r = M.ckpt("verify", *(extra + [src]))
                    common.assert_not_signal(self, r, what)
                    self.assertEqual(r.rc, 1, "ckpt verify %s: %s\n%s" % (
                        " ".join(extra), what, r.describe()))
                    self.assertNotIn("OK", r.text)
                    self.assertRegex(r.errtext, r"(?i)crc", what)
                for cmd in (["ls", src], ["cat", src, "fc.bias"]):
                    r = M.ckpt(*cmd)
                    self.assertEqual(r.rc, 1, "ckpt %s: %s\n%s" % (
                        cmd[0], what, r.describe()))
                out = self.path("out.ckpt")
                r = M.ckpt("convert", "-q", src, out)
                self.assertEqual(r.rc, 1, "convert: " + r.describe())
                self.assertFalse(os.path.exists(out), "convert wrote OUT")
                res, m = M.try_mount(self, src)
                self.assertIsNone(m, "ckptfs mounted: %s" % what)
                self.assertNotEqual(res.rc, 0)
                self.assertFalse(M.is_mounted(res.mnt))
                self.assertRegex(res.errtext, r"(?i)crc", what)
                if "high byte" not in what:
                    self.assertIn("ignore_crc", res.errtext,
                                  "the message should name -o ignore_crc")
                self.assertEqual(read_bytes(src), data)

    def test_cli_ignore_crc(self):
        data = self.cases()["data byte flipped"]
        src = write_bytes(self.path("bad.ckpt"), data)
        r = M.ckpt("ls", "--ignore-crc", src)
        self.assertOK(r, "ckpt ls --ignore-crc")
        r = M.ckpt("cat", "--ignore-crc", src, "conv1.weight")
        self.assertOK(r, "ckpt cat --ignore-crc")
        want = [p for p in ckref.loads(data[:-17])
                if p.name == "conv1.weight"][0].data
        self.assertEqual(r.out, want)

    def test_ignore_crc_mounts_read_only_with_warning(self):
        for what in ("data byte flipped", "crc byte flipped"):
            with self.subTest(what):
                data = self.cases()[what]
                src = write_bytes(self.path("bad.ckpt"), data)
                m = mount_k(self, src, None, "ignore_crc")
                self.assertRegex(m.res.errtext, r"(?i)warning.*crc",
                                 "ckptfs -o ignore_crc must warn")
                self.assertRegex(m.res.errtext, r"(?i)read-only")
                assert_mount_shows(self, m.mnt, ckref.loads(data[:-17]),
                                   "ignore_crc")
                self.assertTrue(os.statvfs(m.mnt).f_flag & os.ST_RDONLY,
                                "the mount must be read-only")
                for desc, fn in (
                        ("open for writing",
                         lambda: open(m.p("fc.bias"), "r+b").close()),
                        ("create", lambda: open(m.p("new"), "wb").close()),
                        ("unlink", lambda: os.unlink(m.p("mask"))),
                        ("setxattr", lambda: os.setxattr(
                            m.p("mask"), "user.dtype", b"UInt8"))):
                    with self.assertRaises(OSError, msg=desc) as cm:
                        fn()
                    self.assertIn(cm.exception.errno,
                                  (errno.EROFS, errno.EACCES, errno.EPERM),
                                  "%s: %s" % (desc, cm.exception))
                m.unmount()
                self.assertEqual(read_bytes(src), data, "file changed")


class TestWideTrailer(CrcBase):
    """A trailer whose 10-byte number has non-zero high bytes can never
    match a CRC-32: a mismatch like any other.  MindSpore's default load
    (crc_check=False) strips any trailer unchecked, so --ignore-crc /
    -o ignore_crc should open it like any other mismatch."""

    def test_ignore_crc_wide_number(self):
        data = TestMismatch.cases(self)["high byte of the 10-byte number"]
        src = write_bytes(self.path("wide.ckpt"), data)
        r = M.ckpt("ls", "--ignore-crc", src)
        self.assertOK(r, "ckpt ls --ignore-crc of a wide trailer")
        res, m = M.try_mount(self, src, "-o", "ignore_crc")
        self.assertIsNotNone(m, "-o ignore_crc of a wide trailer must "
                             "mount read-only\n" + res.describe())
        assert_mount_shows(self, m.mnt, ckref.loads(data[:-17]), "wide")
        self.assertTrue(os.statvfs(m.mnt).f_flag & os.ST_RDONLY)
        m.unmount()


class TestCommit(CrcBase):
    """Commits write a fresh trailer that matches the new data."""

    def test_commit_at_unmount(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        m = mount_k(self, src, None)
        want = self.edit(m)
        m.unmount()
        raw = read_bytes(src)
        self.assertCrcFile(raw, ckref.dumps(want), "commit at unmount")
        self.assertEqual(raw, ckref.dumps(want, crc=True))
        r = M.ckpt("verify", src)
        self.assertOK(r, "verify after commit")
        self.assertIn("crc valid", r.text)

    def test_fsync_commits(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        m = mount_k(self, src, None)
        want = self.edit(m)
        self.assertEqual(m.commit(), 0, m.error(fallback=True))
        self.assertCrcFile(read_bytes(src), ckref.dumps(want), "fsync 1")
        add = np.arange(3, dtype="<i2").tobytes()
        with open(m.p("added"), "wb") as f:
            f.write(add)
        os.setxattr(m.p("added"), "user.dtype", b"Int16")
        want = want + [param("added", "Int16", (3,), add)]
        self.assertEqual(m.commit(), 0, m.error(fallback=True))
        self.assertCrcFile(read_bytes(src), ckref.dumps(want), "fsync 2")
        m.unmount()
        self.assertCrcFile(read_bytes(src), ckref.dumps(want), "unmount")

    def test_output_option(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        out = self.path("out.ckpt")
        m = mount_k(self, src, None, "output=" + out)
        want = self.edit(m)
        m.unmount()
        self.assertEqual(read_bytes(src), self.crcfile)
        self.assertCrcFile(read_bytes(out), ckref.dumps(want), "-o output")

    def test_crc_option_adds_trailer(self):
        src = write_bytes(self.path("p.ckpt"), self.body)
        m = mount_k(self, src, None, "crc")
        want = self.edit(m)
        m.unmount()
        self.assertCrcFile(read_bytes(src), ckref.dumps(want), "-o crc")

    def test_crc_option_on_crc_file_one_trailer(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        m = mount_k(self, src, None, "crc")
        want = self.edit(m)
        m.unmount()
        self.assertCrcFile(read_bytes(src), ckref.dumps(want),
                           "-o crc on a CRC file")

    def test_delete_everything_keeps_trailer(self):
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        m = mount_k(self, src, None)
        for n in os.listdir(m.mnt):
            p = os.path.join(m.mnt, n)
            if os.path.isdir(p):
                continue
            os.unlink(p)
        want = [p for p in self.base if p.get("kind") == "map"]
        m.unmount()
        self.assertCrcFile(read_bytes(src), ckref.dumps(want),
                           "after deleting every tensor")


class TestConvert(CrcBase):

    def convert(self, data, *args):
        src = write_bytes(self.path("in.ckpt"), data)
        out = self.path("out.ckpt")
        if os.path.exists(out):
            os.unlink(out)
        r = M.ckpt("convert", "-q", src, out, *args)
        self.assertOK(r, "convert %s" % " ".join(args))
        return read_bytes(out)

    def test_add_drop_keep(self):
        self.assertCrcFile(self.convert(self.body, "--crc"), self.body,
                           "plain --crc")
        self.assertEqual(self.convert(self.crcfile, "--no-crc"), self.body,
                         "--no-crc drops the trailer")
        self.assertEqual(self.convert(self.crcfile), self.crcfile,
                         "default keeps the trailer")
        self.assertEqual(self.convert(self.body), self.body,
                         "default adds none")
        self.assertCrcFile(self.convert(self.crcfile, "--crc"), self.body,
                           "--crc on a CRC file")
        self.assertEqual(self.convert(b"", "--crc"), trailer(b""),
                         "empty --crc")

    def test_ignore_crc_convert_no_crc(self):
        """--ignore-crc --no-crc gets the data out of a damaged file."""
        bad = bytearray(self.crcfile)
        bad[-1] ^= 1
        self.assertEqual(self.convert(bytes(bad), "--ignore-crc",
                                      "--no-crc"), self.body)


class TestCrcAndEncryption(CrcBase):
    """Never both: MindSpore cannot read such a file (§5)."""

    def test_mount_crc_with_key_refused(self):
        key = make_key(16, 50)
        kp = keypass(self, self.dir, "AES-GCM", key)
        src = write_bytes(self.path("e.ckpt"),
                          cryptref.encrypt(self.body, key, "AES-GCM"))
        before = read_bytes(src)
        res, m = M.try_mount(self, src, "-o", "crc," + kp.mount_opts()[0])
        self.assertIsNone(m, "-o crc with encryption must be refused")
        self.assertNotEqual(res.rc, 0)
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertRegex(res.errtext, r"(?i)crc.*(encrypt|combin)")
        self.assertEqual(read_bytes(src), before)

    def test_convert_crc_with_encryption_refused(self):
        key = make_key(32, 51)
        kf = key_file(self.dir, key)
        plain = write_bytes(self.path("p.ckpt"), self.body)
        enc = write_bytes(self.path("e.ckpt"),
                          cryptref.encrypt(self.body, key, "AES-CBC"))
        for args in (
                [plain, "--crc", "--out-enc-mode", "AES-CBC",
                 "--out-keyfile", kf],
                [enc, "--enc-mode", "AES-CBC", "--keyfile", kf, "--crc"],
                [enc, "--enc-mode", "AES-CBC", "--keyfile", kf, "--crc",
                 "--out-enc-mode", "SM4-CBC", "--out-keyfile",
                 key_file(self.dir, make_key(16, 52))]):
            with self.subTest(args=args[1:]):
                out = self.path("out.ckpt")
                r = M.ckpt("convert", "-q", args[0], out, *args[1:])
                common.assert_not_signal(self, r)
                self.assertIn(r.rc, (1, 2), r.describe())
                self.assertRegex(r.errtext, r"(?i)crc")
                self.assertFalse(os.path.exists(out), "OUT was written")

    def test_crc_file_to_encrypted_drops_trailer(self):
        key = make_key(16, 53)
        kf = key_file(self.dir, key)
        src = write_bytes(self.path("c.ckpt"), self.crcfile)
        out = self.path("e.ckpt")
        r = M.ckpt("convert", "-q", src, out, "--out-enc-mode", "SM4-CBC",
                 "--out-keyfile", kf)
        self.assertOK(r, "convert CRC file -> SM4")
        raw = read_bytes(out)
        self.assertNotEqual(raw[-17:-10], MARK, "trailer after ciphertext")
        self.assertEqual(cryptref.decrypt(raw, key, "SM4-CBC"), self.body,
                         "the encrypted stream must not carry the trailer")

    def test_trailer_inside_encrypted_plaintext(self):
        """Decrypt first, then the trailer rule (MindSpore 2.3+ load)."""
        key = make_key(24, 54)
        kp = keypass(self, self.dir, "AES-GCM", key)
        src = write_bytes(self.path("e.ckpt"), cryptref.encrypt(
            self.crcfile, key, "AES-GCM", block=500))
        r = M.ckpt("verify", "--enc-mode", "AES-GCM", "--keyfile", kp.path, src)
        self.assertOK(r, "verify")
        self.assertIn("crc valid", r.text)
        m = mount_k(self, src, kp)
        assert_mount_shows(self, m.mnt, ckref.loads(self.crcfile), "enc+crc")
        want = self.edit(m)
        m.unmount()
        raw = read_bytes(src)
        plain = cryptref.decrypt(raw, key, "AES-GCM")
        ckref.loads(plain)  # parses; a trailer, if kept, matches
        body = plain[:-17] if plain[-17:-10] == MARK else plain
        self.assertEqual(body, ckref.dumps(want))
        # a mismatching trailer inside the encryption is refused
        bad = bytearray(self.crcfile)
        bad[-1] ^= 1
        write_bytes(src, cryptref.encrypt(bytes(bad), key, "AES-GCM"))
        r = M.ckpt("verify", "--enc-mode", "AES-GCM", "--keyfile", kp.path, src)
        self.assertEqual(r.rc, 1, r.describe())
        self.assertRegex(r.errtext, r"(?i)crc")
        res, m = M.try_mount(self, src, "-o", kp.mount_opts()[0])
        self.assertIsNone(m)
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertRegex(res.errtext, r"(?i)crc")

    def test_mindspore_trailer_after_ciphertext_refused(self):
        """save_checkpoint(enc_key=..., crc_check=True) appends a zero
        trailer after the blocks; MindSpore cannot load it either."""
        key = make_key(16, 55)
        kp = keypass(self, self.dir, "AES-GCM", key)
        src = write_bytes(self.path("ms.ckpt"), cryptref.encrypt(
            self.body, key, "AES-GCM") + MARK + bytes(10))
        r = M.ckpt("verify", "--enc-mode", "AES-GCM", "--keyfile", kp.path, src)
        self.assertEqual(r.rc, 1, r.describe())
        self.assertTrue(r.errtext.strip())
        res, m = M.try_mount(self, src, "-o", kp.mount_opts()[0])
        self.assertIsNone(m)
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertTrue(res.errtext.strip())


class TestShrinkUnderneath(CrcBase):
    """The trailer check maps the file: a truncation underneath is a SIGBUS
    that must become an error message, never a crash."""

    def test_verify_never_killed(self):
        big = [param("w", "Float32", (16 << 20,),
                     np.arange(16 << 20, dtype="<f4"))]
        body = ckref.dumps(big)
        data = body + trailer(body)
        src = write_bytes(self.path("big.ckpt"), data)
        stop = threading.Event()
        rng = random.Random(7)

        def rewrite():   # in place: same inode, shorter for a moment
            fd = os.open(src, os.O_WRONLY)
            try:
                while not stop.is_set():
                    os.ftruncate(fd, 4096)
                    os.pwrite(fd, data, 0)
                    # whole for a while: verify's scan passes, and the
                    # next truncation may land in its CRC pass
                    stop.wait(rng.uniform(0, 0.01))
            finally:
                os.close(fd)

        t = threading.Thread(target=rewrite, daemon=True)
        t.start()
        self.addCleanup(t.join, 10)
        self.addCleanup(stop.set)
        runs, in_check, end = 0, 0, time.monotonic() + 8
        while time.monotonic() < end and (runs < 20 or in_check < 3):
            r = M.ckpt("verify", src)
            runs += 1
            common.assert_not_signal(self, r, "ckpt verify (run %d)" % runs)
            self.assertIn(r.rc, (0, 1, 2), r.describe())
            if r.rc != 0:
                self.assertTrue(r.errtext.strip(), "an error says why")
            if "while checking the CRC" in r.errtext:
                in_check += 1
        stop.set()
        print("\nverify while rewritten in place: %d runs, %d failed in "
              "the CRC pass" % (runs, in_check), file=sys.stderr)
        self.assertGreater(in_check, 0, "no run was caught by the rewrite "
                           "during its CRC pass: the test did not test")


def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
