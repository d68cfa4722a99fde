#!/usr/bin/python3
"""Paths that cannot be swapped (issue 13, spec section 3).

Symlinks are planted at every path the daemon touches, and directories
are swapped for symlinks while mounted:

  * `-o output=` naming a symlink owned by another user (nobody, in a
    sticky 1777 directory) that points at a root-only 0600 file: refused at
    mount time ("symbolic link", "another user"), the target untouched;
  * the checkpoint path being such a symlink: refused the same way;
  * symlinks owned by the caller (root): followed, the link stays a link;
  * the checkpoint's directory replaced by a symlink while mounted: the
    commits still land in the original directory, the link's target
    directory is untouched;
  * the staging directory replaced by a symlink after mounting: the
    daemon's staging files (seen through /proc/PID/fd) are in the
    original directory;
  * a 06755 (and 07640) checkpoint loses setuid/setgid/sticky on commit;
    a new output file is 0644;
  * recovery names planted as symlinks (to a root-only file, dangling) and
    as files: the recovery of a failed unmount commit still works, under a
    name with a random part, and nothing planted is touched;
  * self-mounts: `cd d && ckptfs a.ckpt .`, `-o output=` and
    `-o staging=` inside the mountpoint: reads, edits, fsync commits, statfs
    and the unmount commit finish (no hang) and land in the covered
    directory.

Every step through a mount runs under a deadline (scratchutil.STEP); a
hung step aborts the FUSE connection (so nothing stays in state D) and
fails the test.
"""

import glob
import os
import shutil
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import scratchutil as S  # noqa: E402
import ckref  # noqa: E402

# the recovery name of spec section 1: BASE.recovery-YYYYmmdd-HHMMSS-XXXXXXXX
# .ckpt.  Assumption: the random part is six characters of [A-Za-z0-9]
# (what mkstemp uses).
RECOVERY_RE = r"^lenet\.ckpt\.recovery-\d{8}-\d{6}-[0-9a-z]{8}\.ckpt$"


def f32(*v):
    return np.array(v, dtype="<f4").tobytes()


class PathsBase(S.LenetCase):

    def root_only_file(self, data=b"root's secret\n"):
        """A 0600 file in a 0700 directory (what another user must never
        get root to overwrite)."""
        d = os.path.join(self.dir, "root_only")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        p = os.path.join(d, "secret")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(p, 0o600)
        return p

    def sticky_dir(self, name="sticky"):
        d = os.path.join(self.dir, name)
        os.mkdir(d)
        os.chmod(d, 0o1777)
        return d

    def nobody_link(self, target, link):
        os.symlink(target, link)
        os.lchown(link, S.NOBODY, S.NOBODY)
        self.assertEqual(os.lstat(link).st_uid, S.NOBODY)
        return link

    def assertRefusedForLink(self, res, m, what):
        self.assertIsNone(m, "%s: mounted although the symlink is owned by "
                          "another user" % what)
        self.assertNotEqual(res.rc, 0, what + ": " + res.describe())
        self.assertIn("symbolic link", res.errtext, what + ": message: " +
                      res.errtext)
        self.assertIn("another user", res.errtext, what + ": message: " +
                      res.errtext)

    def edit_and_unmount(self, m):
        """If a mount that should have been refused happened anyway, edit
        and unmount it, so that the checks that follow see the damage."""
        if m is None:
            return
        W.write_file(m.p("planted_by_test"), b"\x01\x02")
        try:
            m.unmount()
        except AssertionError:
            pass


class TestSymlinkOwners(PathsBase):

    def test_output_symlink_of_other_user_refused(self):
        secret = self.root_only_file()
        before = (W.file_state(secret), os.stat(secret).st_mode)
        sticky = self.sticky_dir()
        link = self.nobody_link(secret, os.path.join(sticky, "out.ckpt"))
        src_before = W.file_state(self.src)
        res, m = M.try_mount(self, self.src, "-o", "output=" + link,
                             **S.LIMITS)
        self.edit_and_unmount(m)
        self.assertEqual((W.file_state(secret), os.stat(secret).st_mode),
                         before, "the root-only target of the planted "
                         "symlink was modified")
        self.assertTrue(os.path.islink(link), "the planted link is gone")
        self.assertEqual(os.readlink(link), secret)
        self.assertUntouched(src_before, what="source")
        self.assertRefusedForLink(res, m, "-o output=<nobody's symlink>")

    def test_checkpoint_symlink_of_other_user_refused(self):
        # the target: a root-only 0600 checkpoint
        d = os.path.join(self.dir, "root_only")
        os.mkdir(d, 0o700)
        target = os.path.join(d, "model.ckpt")
        shutil.copyfile(self.src, target)
        os.chmod(target, 0o600)
        # Assumption: refused wherever the link is (the spec says "a
        # symlink ... owned by another user is refused"), in a sticky
        # world-writable directory and in a plain 0755 one.
        for kind in ("sticky", "plain"):
            with self.subTest(directory=kind):
                ld = os.path.join(self.dir, "links_" + kind)
                os.mkdir(ld)
                os.chmod(ld, 0o1777 if kind == "sticky" else 0o755)
                link = self.nobody_link(target,
                                        os.path.join(ld, "model.ckpt"))
                before = (W.file_state(target), os.stat(target).st_mode)
                res, m = M.try_mount(self, link, **S.LIMITS)
                self.edit_and_unmount(m)
                self.assertEqual((W.file_state(target),
                                  os.stat(target).st_mode), before,
                                 "the target of the planted symlink was "
                                 "modified")
                self.assertTrue(os.path.islink(link))
                self.assertEqual(sorted(os.listdir(ld)), ["model.ckpt"],
                                 "files appeared beside the link")
                self.assertRefusedForLink(res, m, "%s directory" % kind)

    def test_symlinks_owned_by_caller_followed(self):
        sticky = self.sticky_dir()
        # checkpoint path: a root-owned symlink (in the sticky directory)
        link = os.path.join(sticky, "model.ckpt")
        os.symlink(self.src, link)
        m = self.mount(source=link)
        ones = np.ones(10, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc3.bias"), ones, 0), "write")
        self.assertCommitOK(m)
        want = W.replace(self.base, "fc3.bias", data=ones)
        W.check_ckpt(self, self.src, want, label="target of the link")
        self.assertUmountOK(m)
        self.assertTrue(os.path.islink(link), "the link was replaced")
        self.assertEqual(os.readlink(link), self.src)
        W.check_ckpt(self, self.src, want)
        # -o output= a root-owned symlink to an existing file
        out = os.path.join(self.dir, "out.ckpt")
        shutil.copyfile(self.src, out)
        olink = os.path.join(sticky, "out.ckpt")
        os.symlink(out, olink)
        before = W.file_state(self.src)
        m = self.mount("-o", "output=" + olink)
        m.step(lambda: os.unlink(m.p("fc2.bias")), "unlink")
        self.assertCommitOK(m)
        want2 = W.remove(want, "fc2.bias")
        W.check_ckpt(self, out, want2, label="output through the link")
        self.assertUmountOK(m)
        self.assertTrue(os.path.islink(olink), "the output link was "
                        "replaced")
        self.assertEqual(os.readlink(olink), out)
        W.check_ckpt(self, out, want2)
        self.assertUntouched(before, what="source with -o output")
        self.assertEqual(sorted(os.listdir(sticky)),
                         ["model.ckpt", "out.ckpt"])


class TestSwappedDirectories(PathsBase):

    def test_checkpoint_dir_replaced_by_symlink(self):
        d = os.path.join(self.dir, "d")
        os.mkdir(d)
        a = os.path.join(d, "a.ckpt")
        os.rename(self.src, a)
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        decoy = os.path.join(other, "a.ckpt")
        W.make_lenet(decoy)
        W.write_file(os.path.join(other, "unrelated"), b"keep me")
        other_before = S.tree_state(other)
        m = self.mount(source=a)
        ones = np.ones(10, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc3.bias"), ones, 0), "write")
        # swap the directory for a symlink to another one
        orig = d + ".orig"
        os.rename(d, orig)
        os.symlink(other, d)
        z = np.zeros(84, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc2.bias"), z, 0),
               "write after the swap")
        self.assertCommitOK(m, what="commit after the swap")
        want = W.replace(W.replace(self.base, "fc3.bias", data=ones),
                         "fc2.bias", data=z)
        self.assertEqual(S.tree_state(other), other_before,
                         "the commit went into the symlink's target "
                         "directory")
        W.check_ckpt(self, os.path.join(orig, "a.ckpt"), want,
                     label="the original directory's checkpoint")
        # the unmount commit too
        m.step(lambda: os.unlink(m.p("fc1.bias")), "unlink")
        want = W.remove(want, "fc1.bias")
        self.assertUmountOK(m)
        self.assertEqual(S.tree_state(other), other_before,
                         "the unmount commit went into the symlink's "
                         "target directory")
        W.check_ckpt(self, os.path.join(orig, "a.ckpt"), want)
        self.assertEqual(sorted(os.listdir(orig)), ["a.ckpt"],
                         "stray files in the original directory")
        self.assertTrue(os.path.islink(d))
        self.assertEqual(os.readlink(d), other)

    def test_staging_dir_replaced_by_symlink(self):
        stage = os.path.join(self.dir, "stage")
        os.mkdir(stage)
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.mkdir(elsewhere)
        m = self.mount("-o", "staging=" + stage)
        orig = stage + ".orig"
        os.rename(stage, orig)
        os.symlink(elsewhere, stage)
        # the first write to a stored parameter copies it into staging; a
        # new parameter lives in staging from its creation
        m.step(lambda: W.pwrite_file(m.p("fc1.weight"), f32(9, 9), 100),
               "write into fc1.weight")
        m.step(lambda: W.write_file(m.p("added"), f32(1, 2, 3)),
               "create added")
        links = S.fd_links(m.pid)
        in_orig = sorted(v for v in links.values()
                         if v.startswith(orig + "/"))
        in_other = sorted(v for v in links.values()
                          if v.startswith(elsewhere + "/") or
                          v.startswith(stage + "/"))
        self.assertEqual(in_other, [], "staging files were created in the "
                         "directory the symlink points to")
        self.assertGreaterEqual(len(in_orig), 1, "no staging file of the "
                                "daemon is in the original staging "
                                "directory; its descriptors: %s" % links)
        self.assertEqual(os.listdir(elsewhere), [])
        self.assertCommitOK(m)
        fc1 = bytearray(W.find(self.base, "fc1.weight")["data"])
        fc1[100:108] = f32(9, 9)
        want = W.replace(self.base, "fc1.weight", data=bytes(fc1))
        want.append(W.param("added", "UInt8", (12,), f32(1, 2, 3)))
        W.check_ckpt(self, self.src, want)
        self.assertUmountOK(m)
        W.check_ckpt(self, self.src, want)
        self.assertEqual(os.listdir(elsewhere), [])


class TestModes(PathsBase):

    def test_setuid_setgid_sticky_stripped(self):
        for mode, want_mode in ((0o6755, 0o755), (0o7640, 0o640)):
            with self.subTest(mode=oct(mode)):
                src = os.path.join(self.dir, "m%o.ckpt" % mode)
                W.make_lenet(src)
                os.chmod(src, mode)
                self.assertEqual(os.stat(src).st_mode & 0o7777, mode)
                m = self.mount(source=src)
                m.step(lambda: os.unlink(m.p("fc3.bias")), "unlink")
                self.assertCommitOK(m)
                self.assertEqual(oct(os.stat(src).st_mode & 0o7777),
                                 oct(want_mode), "mode after an fsync "
                                 "commit of a %o checkpoint" % mode)
                m.step(lambda: os.unlink(m.p("fc2.bias")), "unlink")
                self.assertUmountOK(m)
                self.assertEqual(oct(os.stat(src).st_mode & 0o7777),
                                 oct(want_mode), "mode after the unmount "
                                 "commit")
                W.check_ckpt(self, src, W.remove(W.remove(
                    self.base, "fc3.bias"), "fc2.bias"))

    def test_new_output_file_is_0644(self):
        # Assumption: "New files: 0644" with the usual umask 022 of the
        # daemon, whatever the source's mode (here 06750).
        os.chmod(self.src, 0o6750)
        out = os.path.join(self.dir, "new.ckpt")
        old = os.umask(0o022)
        try:
            m = self.mount("-o", "output=" + out)
        finally:
            os.umask(old)
        m.step(lambda: os.unlink(m.p("fc3.bias")), "unlink")
        self.assertCommitOK(m)
        self.assertEqual(oct(os.stat(out).st_mode & 0o7777), oct(0o644))
        self.assertUmountOK(m)
        self.assertEqual(oct(os.stat(out).st_mode & 0o7777), oct(0o644))
        W.check_ckpt(self, out, W.remove(self.base, "fc3.bias"))


class TestPlantedRecoveryNames(PathsBase):

    def test_recovery_with_planted_names(self):
        # the checkpoint lives in a sticky world-writable directory (like
        # /tmp) where another user planted files and symlinks under every
        # name a recovery could predictably take (the old format, for the
        # seconds around the unmount, and the mkstemp template itself),
        # there and in $TMPDIR
        os.chmod(self.dir, 0o1777)
        secret = self.root_only_file(b"victim\n")
        secret_before = (W.file_state(secret), os.stat(secret).st_mode)
        dangling = os.path.join(os.path.dirname(secret), "made-through-link")
        tmpdir = os.path.join(self.dir, "tmpdir")
        os.mkdir(tmpdir)
        os.chmod(tmpdir, 0o1777)
        now = time.time()
        names = []
        for dt in range(-2, 40):
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + dt))
            names.append("lenet.ckpt.recovery-%s.ckpt" % stamp)
            names.append("lenet.ckpt.recovery-%s-XXXXXXXX.ckpt" % stamp)
        planted = []
        for d in (self.dir, tmpdir):
            for i, n in enumerate(names):
                p = os.path.join(d, n)
                kind = i % 3
                if kind == 0:
                    self.nobody_link(secret, p)
                elif kind == 1:
                    self.nobody_link(dangling, p)
                else:
                    W.write_file(p, b"planted " + n.encode())
                    os.chown(p, S.NOBODY, S.NOBODY)
                planted.append(p)
        def state():
            out = {}
            for d in (self.dir, tmpdir):
                ts = S.tree_state(d)
                out.update((os.path.join(d, n), ts.get(n)) for n in names)
            return out
        planted_before = state()
        src_before = W.file_state(self.src)
        m = self.mount(env=dict(os.environ, TMPDIR=tmpdir))
        # a shape that does not fit its data: the unmount commit fails and
        # the pending tree goes to a recovery file.  (fusermount3 -u, not
        # 'ckpt umount': a failed 'ckpt umount' leaves the mount in place
        # to be fixed, docs/editing.md.)
        def edit():
            W.set_meta(m.p("conv1.weight"), shape="[6,1,5,4]")
            W.pwrite_file(m.p("fc3.bias"), np.zeros(10, "<f4").tobytes(), 0)
            W.write_file(m.p("added"), f32(1, 2, 3))
            W.set_meta(m.p("added"), "Float32")
        m.step(edit, "edits")
        m.unmount()
        self.assertUntouched(src_before, what="failed unmount commit")
        self.assertEqual(state(), planted_before, "a planted file or "
                         "symlink was touched")
        self.assertEqual((W.file_state(secret), os.stat(secret).st_mode),
                         secret_before, "the target of a planted symlink "
                         "was modified")
        self.assertFalse(os.path.lexists(dangling), "a file was created "
                         "through a planted dangling symlink")
        new = sorted(p for p in glob.glob(os.path.join(self.dir, "*")) +
                     glob.glob(os.path.join(tmpdir, "*"))
                     if ".recovery-" in p and p not in planted)
        self.assertEqual(len(new), 1, "expected one new recovery file, "
                         "found %s" % new)
        rec = new[0]
        self.assertEqual(os.path.dirname(rec), self.dir, "the recovery "
                         "belongs beside the checkpoint (its directory "
                         "can take it)")
        st = os.lstat(rec)
        self.assertTrue(os.path.isfile(rec) and not os.path.islink(rec))
        self.assertEqual(st.st_uid, os.getuid())
        got = {p.name: p for p in ckref.load(rec)}
        self.assertEqual(got["fc3.bias"].data,
                         np.zeros(10, "<f4").tobytes())
        self.assertEqual(got["added"].data, f32(1, 2, 3))
        self.assertEqual(got["added"].dtype, "Float32")
        self.assertEqual(sorted(got), sorted(
            [p["name"] for p in self.base] + ["added"]))
        # last: the name has the form of spec section 1 (eight random
        # characters of [0-9a-z])
        self.assertRegex(os.path.basename(rec), RECOVERY_RE,
                         "recovery name: BASE.recovery-YYYYmmdd-HHMMSS-"
                         "XXXXXXXX.ckpt")


class TestNamesAndFifos(PathsBase):
    """Long checkpoint names (the temporary and recovery names built from
    them must fit NAME_MAX) and a FIFO planted where a file is expected
    (opening it must not block the mount)."""

    def test_long_name_commits_and_recovers(self):
        d = W.tempdir(self)
        src = os.path.join(d, "L" * 250 + ".ckpt")  # 255 bytes
        os.rename(W.make_lenet(os.path.join(d, "a.ckpt")), src)
        m = M.mount(self, src)
        W.pwrite_file(m.p("fc3.bias"), np.zeros(10, "<f4").tobytes(), 0)
        e = m.commit()
        self.assertEqual(e, 0, "commit of a 255-byte name: %s" % m.error())
        W.set_meta(m.p("fc3.bias"), shape="[11]")  # cannot be committed
        m.unmount()
        rec = [n for n in os.listdir(d) if ".recovery-" in n]
        self.assertEqual(len(rec), 1, "one recovery file: %s" % rec)
        self.assertLessEqual(len(rec[0]), 255)
        self.assertEqual(sorted(os.listdir(d)), sorted(
            [os.path.basename(src), rec[0]]), "no temporary file left")

    def test_chain_through_another_users_symlink_refused(self):
        # our link -> another user's link -> the file: every link of the
        # chain must be the caller's
        d = W.tempdir(self)
        src = W.make_lenet(os.path.join(d, "real.ckpt"))
        before = W.read_bytes(src)
        os.symlink("real.ckpt", os.path.join(d, "theirs"))
        os.chown(os.path.join(d, "theirs"), 65534, 65534,
                 follow_symlinks=False)
        os.symlink("theirs", os.path.join(d, "ours"))
        res, m = M.try_mount(self, os.path.join(d, "ours"))
        self.assertNotEqual(res.rc, 0, "mounted through another user's "
                            "symlink")
        self.assertIn("symbolic link", res.errtext)
        self.assertIn("another user", res.errtext)
        self.assertEqual(W.read_bytes(src), before)

    def test_fifo_output_refused_without_blocking(self):
        d = W.tempdir(self)
        src = W.make_lenet(os.path.join(d, "a.ckpt"))
        fifo = os.path.join(d, "out.ckpt")
        os.mkfifo(fifo)
        res, m = M.try_mount(self, src, "-o", "output=" + fifo)
        self.assertNotEqual(res.rc, 0, "a FIFO as the output was accepted")
        self.assertIn("not a regular file", res.errtext)
        os.unlink(fifo)
        os.mkfifo(src + ".fifo")
        res, m = M.try_mount(self, src + ".fifo")
        self.assertNotEqual(res.rc, 0, "a FIFO as the checkpoint mounted")
        self.assertIn("not a regular file", res.errtext)


class TestSelfMounts(PathsBase):
    """Mounts whose own paths are in the covered directory.  What the
    daemon writes there is checked through a directory descriptor opened
    before mounting (it still names the covered directory)."""

    def covered(self, d):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, fd)
        return fd

    def read_covered(self, dfd, name):
        fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def check_covered(self, dfd, name, want, label):
        copy = os.path.join(self.dir, "covered_copy.ckpt")
        W.write_file(copy, self.read_covered(dfd, name))
        W.check_ckpt(self, copy, want, label=label)

    def self_mount(self):
        d = os.path.join(self.dir, "d")
        os.mkdir(d)
        os.rename(self.src, os.path.join(d, "a.ckpt"))
        self.src = os.path.join(d, "a.ckpt")
        dfd = self.covered(d)
        # cd d && ckptfs a.ckpt .
        m = M.mount(self, "a.ckpt", mnt=d, cmd_mnt=".", cwd=d, **S.LIMITS)
        return m, d, dfd

    def test_mount_over_own_directory(self):
        m, d, dfd = self.self_mount()
        got = m.step(lambda: W.read_bytes(m.p("fc1.bias")), "read")
        self.assertEqual(got, W.find(self.base, "fc1.bias")["data"])
        ones = np.ones(10, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc3.bias"), ones, 0), "write")
        m.step(lambda: W.write_file(m.p("added"), b"\x07" * 5), "create")
        self.assertEqual(m.step(lambda: W.read_bytes(m.p("fc3.bias")),
                                "read back"), ones)
        self.assertCommitOK(m, what="fsync commit of a self-mount")
        want = W.replace(self.base, "fc3.bias", data=ones) + [
            W.param("added", "UInt8", (5,), b"\x07" * 5)]
        self.check_covered(dfd, "a.ckpt", want, "d/a.ckpt after fsync")
        m.step(lambda: os.unlink(m.p("fc1.bias")), "unlink")
        want = W.remove(want, "fc1.bias")
        self.assertUmountOK(m)
        W.check_ckpt(self, self.src, want, label="d/a.ckpt after unmount")
        self.assertEqual(os.listdir(d), ["a.ckpt"], "stray files in d")

    def test_statfs_of_self_mount(self):
        m, d, dfd = self.self_mount()
        sv = m.step(lambda: os.statvfs(m.mnt), "statfs of a self-mount")
        self.assertGreater(sv.f_bsize, 0)
        self.assertUmountOK(m)

    def test_output_inside_mountpoint(self):
        mnt = os.path.join(self.dir, "mnt")
        os.mkdir(mnt)
        W.write_file(os.path.join(mnt, "keep.txt"), b"covered file")
        mfd = self.covered(mnt)
        out = os.path.join(mnt, "out.ckpt")
        before = W.file_state(self.src)
        m = M.mount(self, self.src, "-o", "output=" + out, mnt=mnt,
                    **S.LIMITS)
        ones = np.ones(10, dtype="<f4").tobytes()
        m.step(lambda: W.pwrite_file(m.p("fc3.bias"), ones, 0), "write")
        self.assertCommitOK(m, what="fsync commit to an output inside the "
                            "mountpoint")
        want = W.replace(self.base, "fc3.bias", data=ones)
        self.check_covered(mfd, "out.ckpt", want, "mnt/out.ckpt (covered)")
        m.step(lambda: os.unlink(m.p("fc2.bias")), "unlink")
        want = W.remove(want, "fc2.bias")
        self.assertUmountOK(m)
        W.check_ckpt(self, out, want, label="mnt/out.ckpt after unmount")
        self.assertEqual(W.read_bytes(os.path.join(mnt, "keep.txt")),
                         b"covered file")
        self.assertEqual(sorted(os.listdir(mnt)), ["keep.txt", "out.ckpt"])
        self.assertUntouched(before, what="source with -o output")

    def test_staging_inside_mountpoint(self):
        mnt = os.path.join(self.dir, "mnt")
        stage = os.path.join(mnt, "stage")
        os.makedirs(stage)
        mfd = self.covered(mnt)
        covered_dev = os.fstat(mfd).st_dev
        m = M.mount(self, self.src, "-o", "staging=" + stage, mnt=mnt,
                    **S.LIMITS)
        m.step(lambda: W.pwrite_file(m.p("fc1.weight"), f32(5, 5), 64),
               "write into fc1.weight")
        m.step(lambda: W.write_file(m.p("added"), f32(1, 2)), "create")
        links = S.fd_links(m.pid)
        staged = sorted(n for n, v in links.items()
                        if v.startswith(stage + "/"))
        self.assertGreaterEqual(len(staged), 1, "no staging file in %s: %s"
                                % (stage, links))
        for n in staged:
            st = m.step(lambda: os.stat("/proc/%d/fd/%d" % (m.pid, n)),
                        "stat of a staging file")
            self.assertEqual(st.st_dev, covered_dev, "a staging file is "
                             "not in the covered directory")
        self.assertCommitOK(m, what="fsync commit with staging inside the "
                            "mountpoint")
        fc1 = bytearray(W.find(self.base, "fc1.weight")["data"])
        fc1[64:72] = f32(5, 5)
        want = W.replace(self.base, "fc1.weight", data=bytes(fc1)) + [
            W.param("added", "UInt8", (8,), f32(1, 2))]
        W.check_ckpt(self, self.src, want)
        m.step(lambda: W.write_file(m.p("added2"), b"\x01"), "create")
        want.append(W.param("added2", "UInt8", (1,), b"\x01"))
        self.assertUmountOK(m)
        W.check_ckpt(self, self.src, want)
        self.assertEqual(os.listdir(stage), [], "staging files left")


if __name__ == "__main__":
    unittest.main()
