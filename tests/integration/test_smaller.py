#!/usr/bin/python3
"""The smaller items of issue 13 (spec section 8), each with a clear
error at the point of the mistake:

  * a user.shape whose byte count overflows 64 bits: EINVAL at setxattr
    (a large shape that does not overflow is still accepted);
  * XATTR_CREATE on user.dtype / user.shape (they always exist): EEXIST,
    XATTR_REPLACE works;
  * new names (create, rename target) that are not valid UTF-8: EINVAL;
    existing non-UTF-8 names (a checkpoint framed by hand, as in
    test_names) are still shown, readable, writable and kept by a commit;
  * a checkpoint holding one name twice, not adjacent: the mount warns on
    stderr naming the parameter; the later record is shown and kept
    (adjacent slices of one parameter, and a clean file, give no warning);
  * stray `.BASE.ckptfs-*` files (regular, ours) beside the checkpoint are
    removed by the next read-write mount; unrelated files (other BASE,
    another owner, symlinks, directories, other prefixes) are left alone;
  * `-o output=` into a directory without write bits: the message names
    that directory;
  * keyfile= with keyfd= (ckptfs) and --keyfile with --keyfd (ckpt):
    refused, saying they exclude each other.
"""

import errno
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import scratchutil as S  # noqa: E402
import cryptref  # noqa: E402
import ckref  # noqa: E402


def f32(*v):
    return np.array(v, dtype="<f4").tobytes()


class TestXattrs(S.LenetCase):

    def test_shape_overflow_einval_at_setxattr(self):
        before = W.file_state(self.src)
        m = self.mount()
        p = m.p("fc3.bias")   # Float32
        for shape in ("[4294967296,4294967296,4294967296]",  # elements
                      "[2147483648,2147483648,4]",           # 2^64 elements
                      "[4611686018427387904]",   # 2^62 * 4 bytes = 2^64
                      "[1152921504606846976,16]",  # 2^64 elements
                      "18446744073709551615"):   # bytes overflow
            with self.subTest(shape=shape):
                try:
                    self.assertOSError(errno.EINVAL, W.set_meta, p, None,
                                       shape,
                                       what="setfattr user.shape=" + shape)
                    self.assertEqual(W.getx(p, "user.shape"), "[10]",
                                     "a refused shape was stored")
                finally:
                    W.set_meta(p, shape="[10]")  # for the next case
        # also for a one-byte dtype after a dtype change
        W.set_meta(m.p("fc2.bias"), "UInt8", "[336]")
        self.assertOSError(errno.EINVAL, W.set_meta, m.p("fc2.bias"), None,
                           "[4294967296,4294967296]",
                           what="UInt8 with 2^64 elements")
        W.set_meta(m.p("fc2.bias"), "Float32", "[84]")
        # control: a large shape that does not overflow is accepted at
        # setxattr (it fails only at commit)
        W.set_meta(p, shape="[1048576,1048576]")
        self.assertEqual(W.getx(p, "user.shape"), "[1048576,1048576]")
        W.set_meta(p, shape="[10]")
        self.assertCommitOK(m)
        self.assertUmountOK(m)
        # the accepted changes were undone, the refused ones never made:
        # the committed parameters are the original ones (a dtype set and
        # set back still counts as a change, so the file is rewritten)
        W.check_ckpt(self, self.src, W.lenet_params())
        del before

    def test_xattr_create_eexist(self):
        m = self.mount()
        W.write_file(m.p("added"), f32(1, 2))
        for name in ("fc1.bias", "added"):
            p = m.p(name)
            dt, shape = W.getx(p, "user.dtype"), W.getx(p, "user.shape")
            for attr, val in (("user.dtype", b"Float32"),
                              ("user.dtype", b"Int8"),
                              ("user.shape", b"[120]"),
                              ("user.shape", b"[2,4]")):
                with self.subTest(name=name, attr=attr, value=val):
                    try:
                        self.assertOSError(errno.EEXIST, os.setxattr, p,
                                           attr, val, os.XATTR_CREATE,
                                           what="XATTR_CREATE %s" % attr)
                        self.assertEqual((W.getx(p, "user.dtype"),
                                          W.getx(p, "user.shape")),
                                         (dt, shape))
                    finally:
                        W.set_meta(p, dt, shape)  # for the next case
        # an inferred shape (after removexattr) still exists
        os.removexattr(m.p("added"), "user.shape")
        self.assertOSError(errno.EEXIST, os.setxattr, m.p("added"),
                           "user.shape", b"[8]", os.XATTR_CREATE,
                           what="XATTR_CREATE on an inferred shape")
        # XATTR_REPLACE works
        os.setxattr(m.p("added"), "user.dtype", b"Float32", os.XATTR_REPLACE)
        os.setxattr(m.p("added"), "user.shape", b"[2]", os.XATTR_REPLACE)
        self.assertEqual(W.getx(m.p("added"), "user.dtype"), "Float32")
        self.assertUmountOK(m)
        W.check_ckpt(self, self.src, self.base + [
            W.param("added", "Float32", (2,), f32(1, 2))])


class TestNonUtf8Names(unittest.TestCase):

    PARAMS = [(b"plain", "Float32", (2,), f32(1, 2)),
              (b"caf\xe9", "Float32", (2,), f32(3, 4)),
              (b"\xff\xfe", "Int32", (1,), np.array([5], "<i4").tobytes()),
              (b"tail", "Float32", (1,), f32(6))]

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, "ckptfs_utf8_")
        self.src = S.write_raw(os.path.join(self.dir, "n.ckpt"),
                               self.PARAMS)
        got = [(p.name.encode("utf-8", "surrogateescape"), p.dtype, p.shape,
                p.data) for p in ckref.load(self.src)]
        self.assertEqual(got, self.PARAMS, "fixture")

    def assertErrno(self, err, fn, *args, what=""):
        with self.assertRaises(OSError, msg=what) as cm:
            fn(*args)
        self.assertEqual(W.errno_name(cm.exception.errno),
                         W.errno_name(err), "%s: %s" % (what, cm.exception))

    def test_new_names_must_be_utf8(self):
        m = M.mount(self, self.src, **S.LIMITS)
        mnt = os.fsencode(m.mnt)

        def create(name):
            fd = os.open(mnt + b"/" + name, os.O_WRONLY | os.O_CREAT |
                         os.O_EXCL, 0o644)
            os.close(fd)
        # Assumption: "valid UTF-8" is strict UTF-8 (RFC 3629), as the
        # protobuf runtime checks it: overlong forms and surrogates are
        # not valid either.
        bad = [b"caf\xe9x", b"\xff", b"\xc3\x28", b"ok%2F\x80",
               b"\xc3%25\xa9", b"\xc0\xaf", b"\xed\xa0\x80",
               b"\xf4\x90\x80\x80", b"trunc\xe2\x82"]
        for name in bad:
            with self.subTest(create=name):
                self.assertErrno(errno.EINVAL, create, name,
                                 what="create %r" % name)
                self.assertErrno(errno.EINVAL, os.rename, mnt + b"/plain",
                                 mnt + b"/" + name,
                                 what="rename plain -> %r" % name)
                self.assertTrue(os.path.exists(mnt + b"/plain"))
        # renaming an existing non-UTF-8 parameter to a new bad name
        self.assertErrno(errno.EINVAL, os.rename, mnt + b"/caf\xe9",
                         mnt + b"/caf\xe9\xe9", what="rename caf\\xe9")
        listing = sorted(os.listdir(mnt))
        self.assertEqual(listing, sorted(p[0] for p in self.PARAMS),
                         "nothing was created")
        # controls: valid UTF-8 is fine, for create and rename (the new
        # file gets a byte: an empty parameter cannot be committed)
        create("caf\u00e9".encode())
        with open(mnt + b"/" + "caf\u00e9".encode(), "wb") as f:
            f.write(b"\x07")
        os.rename(mnt + b"/tail", mnt + b"/" + "\u20acuro".encode())
        self.umount_ok(m)
        names = [p.name.encode("utf-8", "surrogateescape")
                 for p in ckref.load(self.src)]
        self.assertEqual(names, [b"plain", b"caf\xe9", b"\xff\xfe",
                                 "\u20acuro".encode(), "caf\u00e9".encode()])

    def umount_ok(self, m):
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())

    def test_existing_non_utf8_names_still_work(self):
        m = M.mount(self, self.src, **S.LIMITS)
        mnt = os.fsencode(m.mnt)
        self.assertEqual(os.listdir(mnt), [p[0] for p in self.PARAMS])
        for name, dt, shape, data in self.PARAMS:
            p = mnt + b"/" + name
            self.assertEqual(W.read_bytes(p), data)
            self.assertEqual(W.getx(p, "user.dtype"), dt)
        # write into one (open without O_CREAT), rewrite the other with
        # open('wb') (O_CREAT|O_TRUNC of an existing name)
        W.pwrite_file(mnt + b"/caf\xe9", f32(-4), 4)
        W.write_file(mnt + b"/\xff\xfe", np.array([-5], "<i4").tobytes())
        self.assertEqual(m.commit(), 0, m.error())
        want = [(b"plain", "Float32", (2,), f32(1, 2)),
                (b"caf\xe9", "Float32", (2,), f32(3, -4)),
                (b"\xff\xfe", "Int32", (1,),
                 np.array([-5], "<i4").tobytes()),
                (b"tail", "Float32", (1,), f32(6))]
        got = [(p.name.encode("utf-8", "surrogateescape"), p.dtype, p.shape,
                p.data) for p in ckref.load(self.src)]
        self.assertEqual(got, want, "non-UTF-8 names kept by the commit")
        self.assertEqual(os.listdir(mnt), [p[0] for p in want])
        self.umount_ok(m)


class TestDuplicateNames(unittest.TestCase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        self.dir = W.tempdir(self, "ckptfs_dup_")

    def test_non_adjacent_duplicate_warns(self):
        src = os.path.join(self.dir, "dup.ckpt")
        ckref.write(src, [
            W.param("dup.weight", "Float32", (2,), f32(1, 2)),
            W.param("mid", "Float32", (1,), f32(5)),
            W.param("dup.weight", "Float32", (3,), f32(7, 8, 9)),
            W.param("tail", "Float32", (1,), f32(6))])
        res, m = M.try_mount(self, src, **S.LIMITS)
        self.assertIsNotNone(m, res.describe())
        # Assumption: the warning contains the word "warning" and the
        # parameter's name (its wording is not fixed by the spec)
        self.assertRegex(res.errtext, r"(?i)warning",
                         "no warning on stderr: %r" % res.errtext)
        self.assertIn("dup.weight", res.errtext)
        names = m.names()
        self.assertEqual(names.count("dup.weight"), 1, names)
        # the later record is shown
        self.assertEqual(W.read_bytes(m.p("dup.weight")), f32(7, 8, 9))
        self.assertEqual(W.getx(m.p("dup.weight"), "user.shape"), "[3]")
        W.pwrite_file(m.p("tail"), f32(60), 0)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        got = ckref.load(src)
        # Assumption: the spec does not say where the kept record goes in
        # the order; only that it is kept once, with the later data, and
        # the other parameters keep their order.
        self.assertEqual([p.name for p in got].count("dup.weight"), 1)
        self.assertEqual([p.name for p in got if p.name != "dup.weight"],
                         ["mid", "tail"])
        d = {p.name: p for p in got}
        self.assertEqual((d["dup.weight"].shape, d["dup.weight"].data),
                         ((3,), f32(7, 8, 9)))
        self.assertEqual(d["tail"].data, f32(60))
        # the file is valid for the reference: one record per name now
        raw = W.read_bytes(src)
        self.assertEqual(raw.count(b"dup.weight"), 1)

    def test_no_warning_without_duplicates(self):
        # slices of one parameter are adjacent records with one name: not
        # a duplicate
        src = os.path.join(self.dir, "sliced.ckpt")
        ckref.write(src, [
            W.param("big", "Float32", (8,), f32(*range(8))),
            W.param("small", "Float32", (1,), f32(1))], slice_size=8)
        self.assertEqual([p.nslices for p in ckref.load(src)], [4, 1])
        lenet = W.make_lenet(os.path.join(self.dir, "lenet.ckpt"))
        for path in (src, lenet):
            with self.subTest(path=os.path.basename(path)):
                res, m = M.try_mount(self, path, **S.LIMITS)
                self.assertIsNotNone(m, res.describe())
                self.assertNotRegex(res.errtext, r"(?i)warning")
                m.unmount()


class TestStrayTemporaries(S.LenetCase):

    def test_stray_temporaries_removed_by_rw_mount(self):
        full = W.read_bytes(self.src)
        stray = [".lenet.ckpt.ckptfs-tmp-AbCdEfGh",
                 ".lenet.ckpt.ckptfs-tmp-00000000",
                 ".lenet.ckpt.ckptfs-12345-0",
                 ".lenet.ckpt.ckptfs-x"]
        for n in stray:
            W.write_file(os.path.join(self.dir, n), full)
        # left alone: another checkpoint's, another owner's, not regular,
        # other prefixes
        target = os.path.join(self.dir, "target")
        W.write_file(target, b"link target")
        keep = {".other.ckpt.ckptfs-tmp-AbCdEfGh": b"other base",
                "lenet.ckpt.ckptfs-tmp-AbCdEfGh": b"no dot",
                ".lenet.ckptfs-tmp-AbCdEfGh": b"other prefix",
                ".lenet.ckpt.bak": b"backup",
                ".lenet.ckpt.ckptfs-nobody": b"not ours"}
        for n, d in keep.items():
            W.write_file(os.path.join(self.dir, n), d)
        os.chown(os.path.join(self.dir, ".lenet.ckpt.ckptfs-nobody"),
                 S.NOBODY, S.NOBODY)
        os.symlink(target, os.path.join(self.dir, ".lenet.ckpt.ckptfs-link"))
        os.mkdir(os.path.join(self.dir, ".lenet.ckpt.ckptfs-dir"))
        W.make_lenet(os.path.join(self.dir, "other.ckpt"))
        src_before = W.file_state(self.src)
        kept_names = sorted(set(os.listdir(self.dir)) - set(stray))
        state = S.tree_state(self.dir)
        kept_before = {n: state[n] for n in kept_names}
        # Assumption: a read-only mount writes nothing, so it removes
        # nothing ("removed by the next read-write mount")
        m = self.mount("-o", "ro")
        self.assertUmountOK(m)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(kept_names + stray),
                         "a read-only mount changed the directory")
        m = self.mount()
        gone = common.wait_until(lambda: not any(
            os.path.lexists(os.path.join(self.dir, n)) for n in stray),
            timeout=S.STEP)
        left = [n for n in stray if os.path.lexists(os.path.join(self.dir,
                                                                 n))]
        self.assertTrue(gone, "stray temporaries not removed by the "
                        "read-write mount: %s" % left)
        state = S.tree_state(self.dir)
        self.assertEqual({n: state.get(n) for n in kept_names}, kept_before,
                         "an unrelated file was touched")
        self.assertUmountOK(m)
        self.assertUntouched(src_before, what="mount without edits")


class TestOutputDirNotWritable(S.LenetCase):

    def test_message_names_the_output_directory(self):
        outdir = W.tempdir(self, "ckptfs_outdir_")
        os.chmod(outdir, 0o555)
        self.addCleanup(os.chmod, outdir, 0o755)
        out = os.path.join(outdir, "new.ckpt")
        before = W.file_state(self.src)
        res, m = M.try_mount(self, self.src, "-o", "output=" + out,
                             **S.LIMITS)
        if m is not None:
            # Assumption: refusing the mount or mounting read-only are
            # both acceptable; a mount must then be read-only
            with self.assertRaises(OSError) as cm:
                W.write_file(m.p("new_param"), b"x")
            self.assertEqual(W.errno_name(cm.exception.errno), "EROFS")
            m.unmount()
        self.assertIn(outdir, res.errtext, "the message must name the "
                      "output's directory: %r" % res.errtext)
        self.assertRegex(res.errtext, r"not writable")
        self.assertIn("output", res.errtext)
        self.assertFalse(os.path.exists(out))
        self.assertUntouched(before)


class TestKeyOptions(S.LenetCase):

    def setUp(self):
        super().setUp()
        self.key = bytes(range(1, 17))
        self.kf = os.path.join(self.dir, "key")
        fd = os.open(self.kf, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, self.key)
        os.close(fd)
        self.enc = os.path.join(self.dir, "enc.ckpt")
        W.write_file(self.enc, cryptref.encrypt(W.read_bytes(self.src),
                                                self.key, "AES-GCM"))

    def keyfd(self):
        fd = os.open(self.kf, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        return fd

    def assertExclusive(self, res, what):
        self.assertNotEqual(res.rc, 0, what + ": " + res.describe())
        self.assertGreater(res.rc, 0, what + ": killed by a signal")
        # Assumption: "a message saying they exclude each other" names both
        # options and says "exclude"/"exclusive"
        for word in ("keyfile", "keyfd"):
            self.assertIn(word, res.errtext, what + ": " + res.errtext)
        self.assertRegex(res.errtext, r"(?i)exclu", what + ": " +
                         res.errtext)

    def test_ckptfs_keyfile_with_keyfd_refused(self):
        # control: each alone mounts
        res, m = M.try_mount(self, self.enc, "-o",
                             "enc_mode=AES-GCM,keyfile=" + self.kf,
                             **S.LIMITS)
        self.assertIsNotNone(m, res.describe())
        m.unmount()
        fd = self.keyfd()
        res, m = M.try_mount(self, self.enc, "-o",
                             "enc_mode=AES-GCM,keyfd=%d" % fd,
                             pass_fds=(fd,), **S.LIMITS)
        self.assertIsNotNone(m, res.describe())
        m.unmount()
        before = W.file_state(self.enc)
        for opts in ("enc_mode=AES-GCM,keyfile=%s,keyfd=%d",
                     "enc_mode=AES-GCM,keyfd=%d,keyfile=%s",
                     "enc_mode=AES-GCM,keyfile=-,keyfd=%d"):
            fd = self.keyfd()
            if opts.count("%") == 2:
                o = opts % ((self.kf, fd) if "keyfile=%s," in opts
                            else (fd, self.kf))
            else:
                o = opts % fd
            with self.subTest(opts=o):
                res, m = M.try_mount(self, self.enc, "-o", o,
                                     pass_fds=(fd,), stdin_data=self.key,
                                     **S.LIMITS)
                self.assertIsNone(m, o + ": mounted")
                self.assertExclusive(res, "ckptfs -o " + o)
        self.assertUntouched(before, path=self.enc)

    def test_ckpt_keyfile_with_keyfd_refused(self):
        r = M.run([common.CKPT_BIN, "ls", "--enc-mode", "AES-GCM",
                   "--keyfile", self.kf, self.enc], timeout=S.TOOL)
        self.assertEqual(r.rc, 0, "control: " + r.describe())
        for order in ("file-fd", "fd-file"):
            fd = self.keyfd()
            k = ["--keyfile", self.kf]
            f = ["--keyfd", str(fd)]
            args = k + f if order == "file-fd" else f + k
            for cmd in (["ls"], ["verify"], ["cat"]):
                with self.subTest(cmd=cmd[0], order=order):
                    extra = ["fc1.bias"] if cmd == ["cat"] else []
                    r = M.run([common.CKPT_BIN] + cmd + ["--enc-mode",
                                                         "AES-GCM"] +
                              args + [self.enc] + extra, pass_fds=(fd,),
                              timeout=S.TOOL)
                    self.assertExclusive(r, "ckpt %s %s" % (cmd[0], order))
                    self.assertEqual(r.out, b"", "output despite the "
                                     "refusal")


if __name__ == "__main__":
    unittest.main()
