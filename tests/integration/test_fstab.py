#!/usr/bin/python3
"""ckptfs through mount(8) and /etc/fstab (mount.fuse3), for real.

'mount -t fuse.ckptfs SRC MNT -o OPTS' and 'mount --fstab FILE MNT' (a
fuse.ckptfs line in a file of our own: /etc/fstab is not touched) run
/sbin/mount.fuse3, which runs 'ckptfs' through /bin/sh.  mount(8) removes
PATH from its helpers' environment, so the shell looks in its default
PATH, whose first directory is /usr/local/sbin: the suite runs in a mount
namespace of its own (unshare(CLONE_NEWNS), / made private) in which a
directory holding only the symlink ckptfs -> CKPTFS_BIN is bind-mounted
over /usr/local/sbin.  Nothing outside this process sees that, nor the
mounts made here; the copies of other suites' FUSE mounts that the new
namespace starts with are detached from it at once, so that it never
keeps their daemons alive.  Every mount made here checks that the daemon
serving it is the binary under test.

Checked: the mount is live when mount(8) returns, and mount returns
although its stdout and stderr are pipes (the daemon keeps neither);
every parameter of the example reads as the reference reader (ckref)
shows it; -o ro makes writes fail with EROFS; generic options (noauto,
nofail, _netdev, x-*, comment=, user, defaults, nodev, nosuid, noexec)
are accepted and the kernel's ones are in force; an fstab line with rw,
a path holding a space and a quote, and an edit committed by 'ckpt
umount'; encrypted checkpoints (made by cryptref) with keyfile= and
enc_mode=; keyfd= and keyfile=- refused with ckptfs's message (and the
same keyfd= works on ckptfs's own command line); drop_privileges refused;
a bad checkpoint and a wrong key make mount fail with ckptfs's message
and leave nothing mounted; on ckptfs's command line the generic options
are accepted too and the last of ro and rw counts.

Run:  /usr/bin/python3 -m unittest -v test_fstab   (in tests/integration)
"""

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402  (puts tests/ref on sys.path)
import mounting as M  # noqa: E402
from wbutil import check_ckpt, from_ref, read_bytes, replace  # noqa: E402
import ckref  # noqa: E402
import cryptref  # noqa: E402

MOUNT_HELPER = "/sbin/mount.fuse3"
SHELL_PATH_DIR = "/usr/local/sbin"  # first in dash's default PATH
CLONE_NEWNS = 0x00020000
MNT_DETACH = 2
EXAMPLE = common.EXAMPLE
TIMEOUT = common.TIMEOUT

_libc = ctypes.CDLL(None, use_errno=True)
_bindir = None


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def _detach_fuse_mounts():
    """Detaches (in this namespace only) every FUSE mount it started with."""
    for e in reversed(M.mountinfo()):
        if e["fstype"].startswith("fuse"):
            _libc.umount2(os.fsencode(e["mnt"]), MNT_DETACH)


def setUpModule():
    global _bindir
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (mount(8), bind mounts)")
    for path in (MOUNT_HELPER, "/dev/fuse", SHELL_PATH_DIR):
        if not os.path.exists(path):
            raise AssertionError("%s is missing (scripts/install-deps.sh "
                                 "installs fuse3)" % path)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True,
                   stdin=subprocess.DEVNULL)
    _detach_fuse_mounts()
    _bindir = tempfile.mkdtemp(prefix="ckptfs_fstab_bin_")
    os.symlink(common.CKPTFS_BIN, os.path.join(_bindir, "ckptfs"))
    subprocess.run(["mount", "--bind", _bindir, SHELL_PATH_DIR], check=True,
                   stdin=subprocess.DEVNULL)


def tearDownModule():
    if _bindir:
        subprocess.run(["umount", SHELL_PATH_DIR], stdin=subprocess.DEVNULL)
        shutil.rmtree(_bindir, True)


def make_key(n, salt=0):
    return hashlib.sha256(b"fstab key %d %d" % (n, salt)).digest()[:n]


def mount_opts(path):
    """The mount options (field 6) and super options of the mount at path."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if M.unescape_mountinfo(parts[4]) == path:
                sep = parts.index("-")
                return set(parts[5].split(",")), parts[sep + 1], \
                    set(parts[sep + 3].split(","))
    return None


class Fstab(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)

    def tmpdir(self, name="ckptfs_fstab_"):
        d = tempfile.mkdtemp(prefix=name)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def mnt_dir(self, parent=None, name="mnt"):
        d = os.path.join(parent or self.tmpdir(), name)
        os.mkdir(d)
        return d

    def run_mount(self, cmd, source, mnt, **kw):
        """Runs cmd (a mount(8) command line) for source at mnt, with
        mounting.py's cleanup registered first.  (Result, Mount or None)."""
        m = M.Mount(self, source, mnt, (), {})
        self.addCleanup(M.cleanup, m, False)   # the harness's own cleanup
        res = M.run(cmd, conns=lambda: M.fuse_conns(mnt), **kw)
        m.res = res
        if res.rc != 0 or not M.is_mounted(mnt):
            return res, None
        m.conns = M.fuse_conns(mnt)
        m.pid = int(m.step(lambda: os.getxattr(mnt, M.XATTR_PID),
                           "getxattr(%s)" % M.XATTR_PID))
        self.assertEqual(os.path.realpath("/proc/%d/exe" % m.pid),
                         os.path.realpath(common.CKPTFS_BIN),
                         "the daemon is not the ckptfs under test")
        return res, m

    def mount_t(self, source, mnt, opts, **kw):
        cmd = ["mount", "-t", "fuse.ckptfs", source, mnt]
        return self.run_mount(cmd + (["-o", opts] if opts else []), source,
                              mnt, **kw)

    def must_mount(self, source, mnt, opts, **kw):
        res, m = self.mount_t(source, mnt, opts, **kw)
        if m is None:
            self.fail("mount did not mount %s\n%s" % (source,
                                                      res.describe()))
        return m

    def must_fail(self, source, mnt, opts, want, **kw):
        """mount -t fuse.ckptfs must exit non-zero with ckptfs's message
        (want, a substring) on its stderr and leave nothing mounted."""
        res, m = self.mount_t(source, mnt, opts, **kw)
        self.assertIsNone(m, "mounted although it should not have")
        self.assertNotEqual(res.rc, 0, res.describe())
        self.assertIn("ckptfs: ", res.errtext, res.describe())
        self.assertIn(want, res.errtext, res.describe())
        return res

    def assert_shows(self, mnt, params, label):
        want = sorted(ckref.escape_name(p.name) for p in params)
        self.assertEqual(sorted(os.listdir(mnt)), want, "%s: listing" % label)
        for path, t in common.tensors_of(params):
            fp = os.path.join(mnt, path)
            self.assertEqual(read_bytes(fp), t.data, "%s: bytes of %r"
                             % (label, path))
            self.assertEqual(os.getxattr(fp, "user.dtype").decode(),
                             t.dtype, "%s: user.dtype of %r" % (label, path))
            self.assertEqual(os.getxattr(fp, "user.shape").decode(),
                             ckref.shape_str(t.shape),
                             "%s: user.shape of %r" % (label, path))

    def umount(self, m):
        r = M.ckpt("umount", m.mnt, timeout=m.tool_timeout,
                   conns=m.conns)
        self.assertEqual(r.rc, 0, r.describe())
        m.wait_exit()
        self.assertFalse(M.is_mounted(m.mnt))

    # ---- mount -t fuse.ckptfs ---------------------------------------------

    def test_mount_ro_reads_like_the_reference(self):
        src = common.private_copy(self, EXAMPLE)
        mnt = self.mnt_dir()
        opts = ("ro,noauto,nofail,_netdev,x-systemd.automount,comment=c,"
                "defaults,nodev,nosuid,noexec")
        m = M.Mount(self, src, mnt, (), {})
        self.addCleanup(M.cleanup, m, False)
        # pipes, as systemd gives mount: if the daemon kept one, this
        # would wait for the daemon's end
        try:
            p = subprocess.run(["mount", "-t", "fuse.ckptfs", src, mnt,
                                "-o", opts], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            M.abort_conns(M.fuse_conns(mnt))
            self.fail("mount did not return: the daemon holds its pipes")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(M.is_mounted(mnt), "not mounted when mount returned")
        m.conns = M.fuse_conns(mnt)
        m.pid = int(os.getxattr(mnt, M.XATTR_PID))
        self.assertEqual(os.path.realpath("/proc/%d/exe" % m.pid),
                         os.path.realpath(common.CKPTFS_BIN))
        flags, fstype, sup = mount_opts(mnt)
        self.assertEqual(fstype, "fuse.ckptfs")
        self.assertTrue({"ro", "nodev", "nosuid", "noexec"} <= flags, flags)
        self.assertIn("default_permissions", sup)
        self.assert_shows(mnt, common.ref(src), "mount -o ro")
        victim = os.path.join(mnt, os.listdir(mnt)[0])
        for how in (lambda: os.open(victim, os.O_WRONLY),
                    lambda: os.open(os.path.join(mnt, "new"),
                                    os.O_WRONLY | os.O_CREAT, 0o644),
                    lambda: os.unlink(victim)):
            with self.assertRaises(OSError) as cm:
                m.step(how, "a write in a ro mount")
            self.assertEqual(cm.exception.errno, errno.EROFS)
        self.umount(m)
        self.assertEqual(read_bytes(src), read_bytes(EXAMPLE))

    def test_fstab_line_rw_commits(self):
        top = self.tmpdir()
        d = os.path.join(top, "it's a dir")
        os.mkdir(d)
        src = os.path.join(d, "le net.ckpt")
        shutil.copyfile(EXAMPLE, src)
        mnt = self.mnt_dir(top, "mount point")
        fstab = os.path.join(top, "fstab")

        def esc(s):
            return s.replace("\\", "\\134").replace(" ", "\\040")
        with open(fstab, "w") as f:
            f.write("# a test fstab\n%s %s fuse.ckptfs "
                    "rw,noauto,user,nofail,_netdev,x-foo=bar 0 0\n"
                    % (esc(src), esc(mnt)))
        res, m = self.run_mount(["mount", "--fstab", fstab, mnt], src, mnt)
        if m is None:
            self.fail("mount --fstab failed\n%s" % res.describe())
        flags, _, _ = mount_opts(mnt)
        # 'user' implies noexec, nosuid, nodev (mount(8) adds them)
        self.assertTrue({"rw", "nodev", "nosuid", "noexec"} <= flags, flags)
        expected = from_ref(common.ref(EXAMPLE))
        name = expected[0]["name"]
        new = bytes(range(256)) * (len(expected[0]["data"]) // 256 + 1)
        new = new[:len(expected[0]["data"])]
        with open(m.p(name), "r+b") as f:
            f.write(new)
        self.umount(m)
        check_ckpt(self, src, replace(expected, name, data=new))

    def test_generic_options_reach_only_mount(self):
        # through mount.fuse3 directly: it does not drop defaults, x-*,
        # comment= or relatime, so ckptfs must accept them itself
        src = common.private_copy(self, EXAMPLE)
        mnt = self.mnt_dir()
        res, m = self.run_mount(
            [MOUNT_HELPER, src, mnt, "-t", "fuse.ckptfs", "-o",
             "defaults,x-a=b,X-mount.mkdir,comment=c,relatime,ro,auto"],
            src, mnt)
        if m is None:
            self.fail("mount.fuse3 failed\n%s" % res.describe())
        self.assertIn("ro", mount_opts(mnt)[0])
        self.assert_shows(mnt, common.ref(src), "mount.fuse3")
        self.umount(m)

    # ---- keys ------------------------------------------------------------

    def encrypted(self, mode, n):
        d = self.tmpdir()
        key = make_key(n)
        enc = os.path.join(d, "enc.ckpt")
        with open(enc, "wb") as f:
            f.write(cryptref.encrypt(read_bytes(EXAMPLE), key, mode))
        kf = os.path.join(d, "key")
        fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, key)
        os.close(fd)
        return enc, kf, key

    def test_encrypted_keyfile(self):
        want = common.ref(EXAMPLE)
        for mode, n in (("AES-GCM", 32), ("SM4-CBC", 16)):
            with self.subTest(mode=mode):
                enc, kf, _ = self.encrypted(mode, n)
                mnt = self.mnt_dir()
                m = self.must_mount(enc, mnt, "ro,keyfile=%s,enc_mode=%s"
                                    % (kf, mode))
                self.assert_shows(mnt, want, mode)
                self.umount(m)

    def test_wrong_key_fails_with_the_message(self):
        enc, kf, _ = self.encrypted("AES-GCM", 32)
        with open(kf, "wb") as f:
            f.write(make_key(32, salt=1))
        self.must_fail(enc, self.mnt_dir(), "keyfile=%s,enc_mode=AES-GCM"
                       % kf, "not mounted")

    def test_keyfd_and_stdin_key_refused(self):
        enc, kf, key = self.encrypted("AES-GCM", 32)
        fd = os.open(kf, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        mnt = self.mnt_dir()
        self.must_fail(enc, mnt, "keyfd=%d,enc_mode=AES-GCM" % fd,
                       "keyfd= cannot be used from mount(8)",
                       pass_fds=(fd,))
        self.must_fail(enc, mnt, "keyfile=-,enc_mode=AES-GCM",
                       "keyfile=- cannot be used from mount(8)",
                       stdin_data=key)
        # the control: the same descriptor on ckptfs's own command line
        os.lseek(fd, 0, os.SEEK_SET)
        m = M.mount(self, enc, "-o", "keyfd=%d,enc_mode=AES-GCM,ro" % fd,
                    pass_fds=(fd,))
        self.assert_shows(m.mnt, common.ref(EXAMPLE), "keyfd= directly")
        m.unmount()

    # ---- failures --------------------------------------------------------

    def test_bad_checkpoint_fails_with_the_message(self):
        d = self.tmpdir()
        bad = os.path.join(d, "bad.ckpt")
        with open(bad, "wb") as f:
            f.write(b"\xff" * 64)
        self.must_fail(bad, self.mnt_dir(), "ro", "not mounted; 'ckpt "
                       "verify %s' checks the file" % bad)
        self.must_fail(os.path.join(d, "missing.ckpt"), self.mnt_dir(),
                       None, "missing.ckpt")

    def test_drop_privileges_refused(self):
        src = common.private_copy(self, EXAMPLE)
        mnt = self.mnt_dir()
        res, m = self.mount_t(src, mnt, "ro,drop_privileges")
        self.assertIsNone(m)
        self.assertNotEqual(res.rc, 0, res.describe())
        self.assertIn("mount without drop_privileges", res.errtext,
                      res.describe())
        # mount.fuse3 mounted /dev/fuse itself; its dead mount stays
        M.lazy_unmount(mnt)

    # ---- the same options on ckptfs's command line -----------------------

    def test_command_line_takes_the_same_options(self):
        src = common.private_copy(self, EXAMPLE)
        name = ckref.escape_name(common.ref(EXAMPLE)[0].name)
        for opts, writable in (("ro,rw", True), ("rw,ro", False),
                               ("defaults,noauto,nofail,user,_netdev,"
                                "x-systemd.automount,comment=c,relatime,"
                                "nodev,suid,dev", True)):
            with self.subTest(opts=opts):
                m = M.mount(self, src, "-o", opts)
                self.assertEqual("ro" in mount_opts(m.mnt)[0], not writable)
                try:
                    m.step(lambda: os.close(os.open(m.p(name),
                                                    os.O_WRONLY)),
                           "open for writing")
                    err = 0
                except OSError as e:
                    err = e.errno
                self.assertEqual(err, 0 if writable else errno.EROFS)
                m.unmount()


if __name__ == "__main__":
    unittest.main()
