#!/usr/bin/python3
"""Privileges of a ckptfs mount (issue 13, spec sections 6 and 8).

  - Modes, owner and group in the mount derive from the checkpoint: files
    mode & 0666 (& 0444 read-only, map tensors always), directories add x
    where r is set, never setuid/setgid/sticky.  With -o allow_other a
    0600 checkpoint cannot be read by another user (EACCES).
  - A commit by fsync needs write permission: another user's fsync of a
    file opened read-only (or of the root) fails with EACCES and commits
    nothing; with write permission (mode 0666) it commits.  Forcing a
    commit (user.ckptfs.force) needs it too.
  - The status channel of 'ckpt umount': a socket PID.sock in a 0700
    runtime directory, published as user.ckptfs.status (not listed);
    no /tmp/ckptfs-status-* files; planted status files and sockets do not
    change what 'ckpt umount' prints; a socket served by someone else at
    the published path is refused; directories others could reach are
    refused at mount time; sockets of dead daemons are removed; nothing is
    left behind.
  - Refusals: XATTR_CREATE on user.dtype/user.shape is EEXIST; keyfile=
    with keyfd= (and --keyfile with --keyfd) exclude each other.

Another user is uid/gid 65534 (nobody) in a child process (frontutil).
"""

import os
import signal
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import frontutil as F  # noqa: E402
import wbutil as W  # noqa: E402

NAME = "lenet.ckpt"
NEW_BIAS = bytes(range(40))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Base(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (another user is played by setuid)")
        self.dir = W.tempdir(self, "ckptfs_priv_")
        self.src = W.make_lenet(os.path.join(self.dir, NAME))
        self.runtime = W.tempdir(self, "ckptfs_xdg_")
        self.env = {"XDG_RUNTIME_DIR": self.runtime}
        self.log = os.path.join(self.dir, "ckptfs.log")

    def start(self, *opts, env=None):
        return M.mount(self, self.src, *opts,
                       env=M.with_env(env or self.env), **F.DAEMON)

    def sockdir(self):
        return os.path.join(self.runtime, "ckptfs")


class TestModes(Base):
    def shown(self, d):
        return {n: os.stat(d.p(n)) for n in ("fc3.bias", "conv1.weight")}

    def test_0600_checkpoint_is_private_with_allow_other(self):
        os.chmod(self.src, 0o600)
        d = self.start("-o", "allow_other")
        for st in self.shown(d).values():
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        self.assertEqual(mode_of(d.mnt), 0o700)
        got = F.errno_as_user(
            "print(attempt(lambda: open(%r, 'rb').read()))\n"
            "print(attempt(lambda: os.listdir(%r)))\n"
            % (d.p("fc3.bias"), d.mnt))
        self.assertEqual(got, ["EACCES", "EACCES"])

    def test_0644_checkpoint_readable_not_writable_by_others(self):
        os.chmod(self.src, 0o644)
        d = self.start("-o", "allow_other")
        data = W.read_bytes(d.p("fc3.bias"))
        got = F.errno_as_user(
            "print(attempt(lambda: open(%r, 'rb').read() == %r or "
            "sys.exit(3)))\n"
            "print(attempt(lambda: open(%r, 'r+b')))\n"
            "print(attempt(lambda: os.unlink(%r)))\n"
            % (d.p("fc3.bias"), data, d.p("fc3.bias"), d.p("fc1.bias")))
        self.assertEqual(got, ["OK", "EACCES", "EACCES"])
        self.assertEqual(mode_of(d.mnt), 0o755)

    def test_modes_owner_and_group_follow_the_checkpoint(self):
        os.chown(self.src, 12345, 23456)
        for mode, want_file, want_dir in ((0o640, 0o640, 0o750),
                                          (0o604, 0o604, 0o705),
                                          (0o6755, 0o644, 0o755)):
            with self.subTest(mode=oct(mode)):
                os.chmod(self.src, mode)
                d = self.start()
                for st in self.shown(d).values():
                    self.assertEqual(stat.S_IMODE(st.st_mode), want_file)
                    self.assertEqual((st.st_uid, st.st_gid),
                                     (12345, 23456))
                self.assertEqual(mode_of(d.mnt), want_dir)
                self.assertEqual(d.ckpt_umount().rc, 0)

    def test_read_only_mount_shows_no_write_bits(self):
        os.chmod(self.src, 0o640)
        d = self.start("-o", "ro")
        self.assertEqual(mode_of(d.p("fc3.bias")), 0o440)
        self.assertEqual(mode_of(d.mnt), 0o550)

    def test_map_tensors_are_read_only(self):
        common.ensure_generated()
        src = common.private_copy(self, os.path.join(common.GEN_DIR,
                                                     "map.ckpt"))
        os.chmod(src, 0o660)
        d = M.mount(self, src, env=M.with_env(self.env), **F.DAEMON)
        self.assertEqual(mode_of(os.path.join(d.mnt, "emb.table")), 0o550)
        self.assertEqual(mode_of(os.path.join(d.mnt, "emb.table", "keys")),
                         0o440)
        self.assertEqual(mode_of(os.path.join(d.mnt, "dense.bias")), 0o660)


class TestCommitPermission(Base):
    FSYNC_AS_NOBODY = (
        "fd = os.open(%r, os.O_RDONLY)\n"
        "print(attempt(lambda: os.fsync(fd)))\n"
        "dfd = os.open(%r, os.O_RDONLY)\n"
        "print(attempt(lambda: os.fsync(dfd)))\n")

    def test_fsync_without_write_permission_commits_nothing(self):
        os.chmod(self.src, 0o644)
        d = self.start("-o", "allow_other", "-o", "log=" + self.log)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        before = W.file_state(self.src)
        got = F.errno_as_user(self.FSYNC_AS_NOBODY % (d.p("fc3.bias"),
                                                      d.mnt))
        self.assertEqual(got, ["EACCES", "EACCES"])
        self.assertEqual(W.file_state(self.src), before,
                         "another user's fsync committed")
        self.assertIn("refused", M.read_text(self.log))
        self.assertIn("uid 65534", M.read_text(self.log))
        # the owner's fsync of a read-only open commits
        self.assertEqual(M.fsync_path(d.p("fc3.bias")), 0)
        got = {p.name: p for p in common.ckref.load(self.src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)

    def test_fsync_with_write_permission_commits(self):
        os.chmod(self.src, 0o666)
        d = self.start("-o", "allow_other")
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        got = F.errno_as_user(self.FSYNC_AS_NOBODY % (d.p("fc3.bias"),
                                                      d.mnt))
        self.assertEqual(got, ["OK", "OK"])
        got = {p.name: p for p in common.ckref.load(self.src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)

    def test_group_write_permission_counts(self):
        os.chown(self.src, 0, 65534)
        os.chmod(self.src, 0o664)
        d = self.start("-o", "allow_other")
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        # one fsync: the commit's new file belongs to the daemon's group
        got = F.errno_as_user("fd = os.open(%r, os.O_RDONLY)\n"
                              "print(attempt(lambda: os.fsync(fd)))\n"
                              % d.p("fc3.bias"))
        self.assertEqual(got, ["OK"])
        got = {p.name: p for p in common.ckref.load(self.src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)

    def test_force_needs_write_permission(self):
        os.chmod(self.src, 0o644)
        d = self.start("-o", "allow_other")
        got = F.errno_as_user(
            "print(attempt(lambda: os.setxattr(%r, %r, b'1')))\n"
            % (d.mnt, F.XATTR_FORCE))
        self.assertEqual(got, ["EACCES"])


class TestStatusChannel(Base):
    def test_socket_in_a_private_directory(self):
        d = self.start()
        path = d.status_path()
        self.assertEqual(path, os.path.join(self.sockdir(),
                                            "%d.sock" % d.pid))
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        st = os.stat(self.sockdir())
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, 0))
        self.assertNotIn(M.XATTR_STATUS, os.listxattr(d.mnt))
        c = F.StatusClient(path)
        self.addCleanup(c.close)
        self.assertEqual(c.peer()[:2], (d.pid, 0))
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        res = d.ckpt_umount()
        self.assertEqual((res.rc, res.errtext), (0, ""), res.describe())
        self.assertEqual(c.read_all(), "OK\n")
        self.assertEqual(os.listdir(self.sockdir()), [],
                         "left behind in the status directory")
        self.assertEqual(F.status_files(d.pid, self.runtime), [],
                         "status files were made")

    def test_default_directory_for_root(self):
        d = self.start(env={"XDG_RUNTIME_DIR": None})
        path = d.status_path()
        want = "/run/ckptfs" if os.path.isdir("/run") and \
            os.stat("/run").st_uid == 0 else "/tmp/ckptfs-0"
        self.assertEqual(os.path.dirname(path), want)
        self.assertEqual(mode_of(want), 0o700)
        self.assertEqual(d.ckpt_umount().rc, 0)
        self.assertFalse(os.path.exists(path), "the socket was left")

    def test_runtime_dir_of_another_user_is_not_used(self):
        os.chown(self.runtime, F.NOBODY, F.NOBODY)
        d = self.start()
        self.assertFalse(d.status_path().startswith(self.runtime + "/"))
        self.assertEqual(os.listdir(self.runtime), [])
        self.assertEqual(d.ckpt_umount().rc, 0)

    def test_directories_others_could_reach_are_refused(self):
        other = W.tempdir(self, "ckptfs_other_")
        cases = (("mode", lambda p: os.mkdir(p, 0o755), "0700"),
                 ("owner", lambda p: (os.mkdir(p, 0o700),
                                      os.chown(p, F.NOBODY, F.NOBODY)),
                  "uid 65534"),
                 ("symlink", lambda p: os.symlink(other, p),
                  "symbolic link"))
        for what, plant, words in cases:
            with self.subTest(what=what):
                plant(self.sockdir())
                try:
                    self.refused(words)
                    self.assertEqual(os.listdir(other), [])
                finally:
                    if os.path.islink(self.sockdir()):
                        os.unlink(self.sockdir())
                    else:
                        os.rmdir(self.sockdir())

    def refused(self, words):
        res, d = M.try_mount(self, self.src, env=M.with_env(self.env),
                             **F.DAEMON)
        self.assertNotEqual(res.rc, 0, "mounted with a status directory "
                            "that is not private")
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertIn(words, res.errtext)
        self.assertIn("not mounted", res.errtext)

    def test_planted_status_files_and_sockets_change_nothing(self):
        d = self.start()
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        planted = []
        for path in ("/tmp/ckptfs-status-0-%d" % d.pid,
                     os.path.join(self.runtime, "ckptfs-status-0-%d"
                                  % d.pid)):
            W.write_file(path, b"EVIL: commit failed\n")
            self.addCleanup(os.unlink, path)
            planted.append(path)
        # sockets under names of other daemons, answering lies
        for path in (os.path.join(self.sockdir(), "%d.sock" % (d.pid + 1)),
                     "/tmp/ckptfs-status-sock-%d" % d.pid):
            F.fake_server(self, path)
        res = d.ckpt_umount()
        self.assertEqual((res.rc, res.errtext), (0, ""), res.describe())
        for path in planted:
            self.assertEqual(W.read_bytes(path), b"EVIL: commit failed\n")
        got = {p.name: p for p in common.ckref.load(self.src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)

    def test_socket_not_served_by_the_daemon_is_refused(self):
        d = self.start()
        path = d.status_path()
        os.unlink(path)
        F.fake_server(self, path, b"OK\n")
        res = d.ckpt_umount()
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn("not the daemon's", res.errtext)
        self.assertIn("nothing was unmounted", res.errtext)
        self.assertTrue(d.mounted())

    def test_stale_sockets_of_dead_daemons_are_removed(self):
        os.mkdir(self.sockdir(), 0o700)
        dead = os.path.join(self.sockdir(), "%d.sock" % F.dead_pid())
        F.stale_socket(dead)
        alive = os.path.join(self.sockdir(), "%d.sock" % os.getpid())
        F.stale_socket(alive)
        not_a_socket = os.path.join(self.sockdir(), "%d.sock"
                                    % F.dead_pid())
        W.write_file(not_a_socket, b"")
        d = self.start()
        self.assertFalse(os.path.lexists(dead), "stale socket kept")
        self.assertTrue(os.path.lexists(alive), "a live pid's socket "
                        "was removed")
        self.assertTrue(os.path.exists(not_a_socket), "a file that is "
                        "not a socket was removed")
        d.kill_and_wait(signal.SIGTERM)
        self.assertEqual(sorted(os.listdir(self.sockdir())),
                         sorted([os.path.basename(alive),
                                 os.path.basename(not_a_socket)]))

    def test_force_is_set_before_the_commit(self):
        d = self.start("-o", "log=" + self.log)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        res = d.ckpt_umount("--force")
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn("forced", M.read_text(self.log))
        got = {p.name: p for p in common.ckref.load(self.src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)


class TestRefusals(Base):
    def test_xattr_create_on_dtype_and_shape_is_eexist(self):
        d = self.start()
        for name, value in (("user.dtype", b"Float32"),
                            ("user.shape", b"[10]")):
            with self.subTest(name=name):
                with self.assertRaises(OSError) as cm:
                    os.setxattr(d.p("fc3.bias"), name, value,
                                os.XATTR_CREATE)
                self.assertEqual(cm.exception.errno, 17)  # EEXIST
                os.setxattr(d.p("fc3.bias"), name, value, os.XATTR_REPLACE)
        self.assertEqual(W.getx(d.p("fc3.bias"), "user.shape"), "[10]")

    def test_keyfile_and_keyfd_exclude_each_other(self):
        key = os.path.join(self.dir, "key")
        W.write_file(key, b"k" * 16)
        res, d = M.try_mount(self, self.src, "-o", "enc_mode=AES-GCM,"
                             "keyfile=%s,keyfd=0" % key,
                             env=M.with_env(self.env), **F.DAEMON)
        self.assertNotEqual(res.rc, 0)
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertIn("exclude each other", res.errtext)
        res = M.ckpt("ls", "--enc-mode", "AES-GCM", "--keyfile", key,
                          "--keyfd", "0", self.src)
        self.assertEqual(res.rc, 2, res.describe())
        self.assertIn("exclude each other", res.errtext)


if __name__ == "__main__":
    unittest.main()
