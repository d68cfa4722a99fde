#!/usr/bin/python3
"""The mounted checkpoint is pinned (issue 13, spec section 1).

Another process changes the checkpoint underneath a read-write mount:

  * the path names another file: renamed over (PATH.tmp + rename, what
    MindSpore's save_checkpoint does), deleted, replaced by a symlink.
    A commit then writes nothing: fsync fails with EIO, user.ckptfs.error
    says "replaced" ("deleted" when the path names nothing), every edit
    stays in the mount, untouched parameters read the OLD bytes, and
    'ckpt umount' exits 1 after saving the mounted tree as
    DIR/BASE.recovery-YYYYmmdd-HHMMSS-XXXXXXXX.ckpt, whose path it prints
    on stderr.  The file at the path is never touched.  With no edits
    'ckpt umount' exits 0; 'ckpt umount --force' (or setfattr
    user.ckptfs.force + fsync) commits anyway.
  * the open file itself is rewritten in place (same inode: larger,
    smaller, same size with other bytes, truncated to 0): reads of
    untouched parameters fail with EIO and the daemon logs "modified"
    (-o log=PATH); edited and added parameters still read fine; fsync
    fails with EIO ("modified" in user.ckptfs.error); 'ckpt umount' exits
    1, the recovery file holds every edited and added parameter, and the
    others are named after "could not be saved:".

Every test works on a fresh LeNet written by examples/make_lenet.py into a
temporary directory; recovery files are read with the reference reader
tests/ref/ckref.py.  Untouched parameters are never read through the mount
before the change, so that what a read returns afterwards comes from the
daemon, not from the kernel's page cache.
"""

import errno
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import pinutil as P  # noqa: E402

BASE = "lenet.ckpt"
EDIT = P.f32(0.5, -0.5)             # written at offset 0 of fc3.bias
ADDED = P.f32(1, 2, 3)              # new parameter "added", Float32 [3]
ONES84 = P.f32(*([1.0] * 84))       # fc2.bias rewritten whole
DELETED = "fc1.bias"
# untouched parameters read after the change (never read before it)
UNTOUCHED_READ = ("conv1.weight", "fc2.weight", "moments.fc3.weight",
                  "global_step", "step_num")
HOW = {"renamed": "renamed over", "deleted": "deleted",
       "symlink": "replaced by a symlink"}


def perturbed(params, marker):
    """A valid checkpoint with the same names, dtypes and shapes as params
    but other bytes in every parameter (so that a read served from it
    instead of the pinned file is noticed)."""
    out = []
    for p in params:
        data = bytes((b + marker) & 0xFF for b in p["data"][:1]) + \
            p["data"][1:]
        out.append(W.param(p["name"], p["dtype"], p["shape"], data))
    return out


class PinBase(unittest.TestCase):
    maxDiff = 6000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, prefix="ckptfs_pin_")
        self.src = W.make_lenet(os.path.join(self.dir, BASE))
        self.base = W.lenet_params()

    # -- edits ------------------------------------------------------------

    def edit(self, m):
        """Edits every way (in place, new parameter, delete); returns the
        expected tree."""
        W.pwrite_file(m.p("fc3.bias"), EDIT, 0)
        W.write_file(m.p("added"), ADDED)
        W.set_meta(m.p("added"), "Float32")
        os.unlink(m.p(DELETED))
        fc3 = EDIT + W.find(self.base, "fc3.bias")["data"][len(EDIT):]
        want = W.replace(self.base, "fc3.bias", data=fc3)
        want = W.remove(want, DELETED)
        return want + [W.param("added", "Float32", (3,), ADDED)]

    def assertEditsInMount(self, m, want, what):
        self.assertEqual(m.names(), [W.escape_name(p["name"]) for p in want],
                         "%s: listing of the mount" % what)
        for name in ("fc3.bias", "added"):
            p = W.find(want, name)
            self.assertEqual(W.read_bytes(m.p(name)), p["data"],
                             "%s: %s in the mount" % (what, name))
        self.assertEqual(W.getx(m.p("added"), "user.dtype"), "Float32")
        self.assertEqual(W.getx(m.p("added"), "user.shape"), "[3]")
        self.assertFalse(os.path.exists(m.p(DELETED)),
                         "%s: the deleted parameter is back" % what)

    # -- assertions -------------------------------------------------------

    def assertCommitErrno(self, m, err, path=None, what="fsync"):
        e = m.commit(path)
        self.assertEqual(W.errno_name(e), W.errno_name(err),
                         "%s must fail with %s (error xattr: %r)" % (
                             what, W.errno_name(err), m.error_text()))

    def assertErrorSays(self, m, word, what):
        msg = m.error_text()
        self.assertIn(word, msg.lower(), "%s: user.ckptfs.error must say "
                      "%r: %r" % (what, word, msg))
        return msg

    def assertUmountFailsWithRecovery(self, m, what):
        """'ckpt umount MNT' exits 1, unmounts, and prints the path of the
        one recovery file it saved beside the checkpoint.  Returns
        (Result, recovery path)."""
        before = set(os.listdir(self.dir))
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 1, "%s: ckpt umount must exit 1\n%s" % (
            what, r.describe()))
        # Assumption: 'ckpt umount' does not leave the mount in place here
        # (retrying cannot help; the spec saves a recovery "at unmount").
        # ckpt umount waits for the daemon: a short deadline is enough
        self.assertTrue(P.wait_gone(m, 1.0), "%s: after ckpt umount the "
                        "mount and the daemon must be gone\n%s" % (
                            what, r.describe()))
        rec = P.recovery_files(self.dir, BASE)
        new = [p for p in rec if os.path.basename(p) not in before]
        self.assertEqual(len(new), 1, "%s: expected one recovery file "
                         "named %s.recovery-YYYYmmdd-HHMMSS-XXXXXXXX.ckpt "
                         "beside the checkpoint; the directory holds %s" % (
                             what, BASE, sorted(os.listdir(self.dir))))
        self.assertIn(new[0], r.errtext, "%s: ckpt umount must print the "
                      "recovery file's path on stderr" % what)
        return r, new[0]


# --------------------------------------------------------------------------
# the path names another file

class ReplacedBase(PinBase):
    """self.change(kind) changes what the path names and returns
    (word expected in user.ckptfs.error, check that the path is as the
    other process left it)."""

    def change(self, kind):
        if kind == "renamed":
            new = P.dumps(perturbed(self.base, 1))
            P.replace_by_rename(self.src, new)
            state = W.file_state(self.src)
            self.names = {BASE}

            def check(what):
                self.assertEqual(W.file_state(self.src), state,
                                 "%s: the file renamed over the checkpoint "
                                 "was touched (inode, mtime_ns, size, "
                                 "sha256)" % what)
                self.assertEqual(W.read_bytes(self.src), new, what)
            return "replaced", check
        if kind == "deleted":
            os.unlink(self.src)
            self.names = set()

            def check(what):
                self.assertFalse(os.path.lexists(self.src), "%s: the path "
                                 "of the deleted checkpoint names a file "
                                 "again" % what)
            return "deleted", check
        if kind == "symlink":
            sub = os.path.join(self.dir, "other")
            os.mkdir(sub)
            other = os.path.join(sub, "other.ckpt")
            W.write_file(other, P.dumps(perturbed(self.base, 2)))
            target = os.path.join("other", "other.ckpt")
            P.replace_by_symlink(self.src, target)
            state = W.file_state(other)
            self.names = {BASE, "other"}

            def check(what):
                self.assertTrue(os.path.islink(self.src), "%s: the symlink "
                                "at the path was replaced" % what)
                self.assertEqual(os.readlink(self.src), target, what)
                self.assertEqual(W.file_state(other), state, "%s: the "
                                 "symlink's target was touched" % what)
                self.assertEqual(os.listdir(sub), ["other.ckpt"], "%s: "
                                 "files appeared beside the symlink's "
                                 "target" % what)
            return "replaced", check
        raise ValueError(kind)

    def check_fsync_eio(self, kind):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        word, check = self.change(kind)
        self.assertCommitErrno(m, errno.EIO, what="fsync of the root after "
                               "the checkpoint was %s" % HOW[kind])
        msg = self.assertErrorSays(m, word, kind)
        self.assertCommitErrno(m, errno.EIO, path=m.p("fc3.bias"),
                               what="fsync of a file after the checkpoint "
                               "was %s" % HOW[kind])
        self.assertErrorSays(m, word, kind + ", second fsync")
        self.assertTrue(m.mounted())
        self.assertEditsInMount(m, want, "after the failed commits (%s: %r)"
                                % (kind, msg))
        check("after the failed commits")
        # nothing left beside the checkpoint (no temporary of the refused
        # commit, no recovery file yet)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(self.names),
                         "%s: files in the checkpoint's directory after the "
                         "failed commits" % kind)

    def check_untouched_read_old(self, kind):
        m = M.mount(self, self.src, **P.LIMITS)
        self.edit(m)
        self.change(kind)
        half = len(UNTOUCHED_READ) // 2
        for name in UNTOUCHED_READ[:half]:
            self.assertEqual(P.read_result(m.p(name)),
                             ("ok", W.find(self.base, name)["data"]),
                             "%s: %s must read the pinned file's bytes"
                             % (kind, name))
        m.commit()   # fails (checked elsewhere); the pinned file stays
        for name in UNTOUCHED_READ[half:]:
            self.assertEqual(P.read_result(m.p(name)),
                             ("ok", W.find(self.base, name)["data"]),
                             "%s: %s must read the pinned file's bytes "
                             "after a commit attempt" % (kind, name))

    def check_umount_recovery(self, kind):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        _, check = self.change(kind)
        _, rec = self.assertUmountFailsWithRecovery(m, kind)
        # the recovery holds the mounted tree: names, order, dtypes,
        # shapes and data (not necessarily byte for byte MindSpore's
        # encoding: exact=False)
        W.check_ckpt(self, rec, want, exact=False,
                     label="recovery file (%s)" % kind)
        check("after ckpt umount")
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(self.names | {os.path.basename(rec)}),
                         "%s: files in the checkpoint's directory after "
                         "ckpt umount" % kind)



class TestPathReplaced(ReplacedBase):
    """Renamed over, deleted, replaced by a symlink: fsync, reads, unmount."""

    def test_renamed_over_fsync_eio(self):
        self.check_fsync_eio("renamed")

    def test_deleted_fsync_eio(self):
        self.check_fsync_eio("deleted")

    def test_symlink_fsync_eio(self):
        self.check_fsync_eio("symlink")

    def test_renamed_over_untouched_read_old(self):
        self.check_untouched_read_old("renamed")

    def test_deleted_untouched_read_old(self):
        self.check_untouched_read_old("deleted")

    def test_symlink_untouched_read_old(self):
        self.check_untouched_read_old("symlink")

    def test_renamed_over_umount_saves_recovery(self):
        self.check_umount_recovery("renamed")

    def test_deleted_umount_saves_recovery(self):
        self.check_umount_recovery("deleted")

    def test_symlink_umount_saves_recovery(self):
        self.check_umount_recovery("symlink")


class TestReplacedMore(ReplacedBase):
    """No edits, --force, user.ckptfs.force, our own commits."""

    def check_no_edits(self, kind):
        m = M.mount(self, self.src, **P.LIMITS)
        _, check = self.change(kind)
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, "no edits, checkpoint %s: ckpt umount "
                         "must exit 0\n%s" % (kind, r.describe()))
        self.assertTrue(P.wait_gone(m, 1.0), "the mount must be gone")
        check("no edits, ckpt umount")
        self.assertEqual(P.any_recovery(self.dir), [],
                         "no edits: nothing to recover")

    def test_renamed_over_no_edits_umount_ok(self):
        self.check_no_edits("renamed")
        self.assertEqual(sorted(os.listdir(self.dir)), [BASE])

    def test_deleted_no_edits_umount_ok(self):
        # Assumption: "no edits + replaced -> exit 0" holds for a deleted
        # checkpoint too (nothing to commit; the path stays empty).
        self.check_no_edits("deleted")
        self.assertEqual(os.listdir(self.dir), [])

    def test_umount_force_replaces(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        self.change("renamed")
        ino = os.stat(self.src).st_ino
        r = m.ckpt_umount("--force")
        self.assertEqual(r.rc, 0, "ckpt umount --force must commit over "
                         "the new file\n%s" % r.describe())
        self.assertTrue(P.wait_gone(m, 1.0))
        self.assertNotEqual(os.stat(self.src).st_ino, ino,
                            "--force: the path still names the other file")
        W.check_ckpt(self, self.src, want, label="after ckpt umount --force")
        self.assertEqual(P.any_recovery(self.dir), [],
                         "--force committed: no recovery file")

    def test_umount_force_after_delete(self):
        # Assumption: "replacing whatever file the path holds now" includes
        # nothing: --force creates the checkpoint again.
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        self.change("deleted")
        r = m.ckpt_umount("--force")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertTrue(P.wait_gone(m, 1.0))
        W.check_ckpt(self, self.src, want, label="--force after delete")

    def test_force_xattr_then_fsync(self):
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        self.change("renamed")
        self.assertCommitErrno(m, errno.EIO, what="fsync before forcing")
        r = subprocess.run(["setfattr", "-n", P.XATTR_FORCE, "-v", "1",
                            m.mnt], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=P.DEADLINE)
        self.assertEqual(r.returncode, 0, "setfattr -n %s -v 1 MNT: %s" % (
            P.XATTR_FORCE, r.stderr.decode(errors="replace")))
        self.assertCommitErrno(m, 0, path=m.p("fc3.bias"),
                               what="fsync after setting user.ckptfs.force")
        W.check_ckpt(self, self.src, want, label="forced commit")
        # the mount continues on the file it wrote: later commits work
        edit2 = P.f32(7, 8, 9)
        W.pwrite_file(m.p("fc3.bias"), edit2, 0)
        want = W.replace(want, "fc3.bias", data=edit2 + W.find(
            want, "fc3.bias")["data"][len(edit2):])
        self.assertCommitErrno(m, 0, what="fsync after the forced commit")
        W.check_ckpt(self, self.src, want, label="commit after forcing")
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, r.describe())
        W.check_ckpt(self, self.src, want, label="after ckpt umount")

    def test_replaced_after_own_commit(self):
        # the identity is taken again after each commit: our own commit is
        # not a replacement, a later one is
        m = M.mount(self, self.src, **P.LIMITS)
        want = self.edit(m)
        self.assertCommitErrno(m, 0, what="first commit")
        W.check_ckpt(self, self.src, want, label="first commit")
        W.pwrite_file(m.p("added"), P.f32(4), 0)
        want = W.replace(want, "added", data=P.f32(4) + ADDED[4:])
        self.assertCommitErrno(m, 0, what="second commit (own file)")
        W.check_ckpt(self, self.src, want, label="second commit")
        new = P.dumps(perturbed(self.base, 3))
        P.replace_by_rename(self.src, new)
        state = W.file_state(self.src)
        W.pwrite_file(m.p("added"), P.f32(5), 0)
        want = W.replace(want, "added", data=P.f32(5) + ADDED[4:])
        self.assertCommitErrno(m, errno.EIO, what="commit after the "
                               "committed file was renamed over")
        self.assertErrorSays(m, "replaced", "after own commits")
        self.assertEqual(W.file_state(self.src), state)
        _, rec = self.assertUmountFailsWithRecovery(m, "after own commits")
        W.check_ckpt(self, rec, want, exact=False, label="recovery")
        self.assertEqual(W.file_state(self.src), state)


# --------------------------------------------------------------------------
# the open file is modified in place

class TestModifiedInPlace(PinBase):
    """For each kind of in-place rewrite: reads, fsync, unmount, log."""

    def edit(self, m):
        """fc3.bias edited in place, fc2.bias rewritten whole, "added"
        created, fc1.bias deleted.  Returns the expected parameters of the
        recovery file (every edited and added one)."""
        W.pwrite_file(m.p("fc3.bias"), EDIT, 0)
        W.write_file(m.p("fc2.bias"), ONES84)
        W.write_file(m.p("added"), ADDED)
        W.set_meta(m.p("added"), "Float32")
        os.unlink(m.p(DELETED))
        fc3 = EDIT + W.find(self.base, "fc3.bias")["data"][len(EDIT):]
        return [W.param("fc2.bias", "Float32", (84,), ONES84),
                W.param("fc3.bias", "Float32", (10,), fc3),
                W.param("added", "Float32", (3,), ADDED)]

    def untouched(self):
        return [p["name"] for p in self.base
                if p["name"] not in ("fc2.bias", "fc3.bias", DELETED)]

    def setup_modified(self, kind, *opts):
        m = M.mount(self, self.src, *opts, **P.LIMITS)
        saved = self.edit(m)
        ino = os.stat(self.src).st_ino
        data = P.inplace_data(kind, self.base)
        P.rewrite_in_place(self.src, kind, data)
        self.assertEqual(os.stat(self.src).st_ino, ino)   # same file

        def check(what):
            st = os.lstat(self.src)
            self.assertEqual(st.st_ino, ino, "%s: the path names another "
                             "file" % what)
            got = W.read_bytes(self.src)
            if got != data:
                self.fail("%s: the checkpoint no longer holds what the other "
                          "process wrote (%d bytes, expected %d, first "
                          "difference at %d)" % (what, len(got), len(data),
                                                 W.first_diff(got, data)))
        return m, saved, check

    def assertReadsEIO(self, m, names, kind):
        for name in names:
            got = P.read_result(m.p(name))
            if got != ("err", errno.EIO):
                self.fail("%s: read of untouched %s must fail with EIO, got "
                          "%s" % (kind, name, "%d bytes" % len(got[1])
                                  if got[0] == "ok" else
                                  W.errno_name(got[1])))

    def check_reads(self, kind):
        m, saved, check = self.setup_modified(kind)
        self.assertReadsEIO(m, self.untouched(), kind)
        got = P.pread_result(m.p("conv1.weight"), 4, 0)
        self.assertEqual(got, ("err", errno.EIO),
                         "%s: pread of 4 bytes of untouched conv1.weight"
                         % kind)
        for p in saved:
            self.assertEqual(P.read_result(m.p(p["name"])),
                             ("ok", p["data"]), "%s: staged %s must still "
                             "read fine" % (kind, p["name"]))
        check("after the reads")

    def check_fsync(self, kind):
        m, saved, check = self.setup_modified(kind)
        self.assertCommitErrno(m, errno.EIO, what="fsync after the "
                               "checkpoint was modified in place (%s)" % kind)
        self.assertErrorSays(m, "modified", kind)
        self.assertTrue(m.mounted())
        for p in saved:
            self.assertEqual(P.read_result(m.p(p["name"])),
                             ("ok", p["data"]), "%s: %s after the failed "
                             "commit" % (kind, p["name"]))
        check("after the failed commit")
        self.assertEqual(os.listdir(self.dir), [BASE], "%s: files beside "
                         "the checkpoint after the failed commit" % kind)

    def check_umount(self, kind):
        m, saved, check = self.setup_modified(kind)
        r, rec = self.assertUmountFailsWithRecovery(m, kind)
        got = P.load_or_fail(self, rec, "recovery (%s)" % kind)
        got = {p.name: p for p in got}
        self.assertEqual(sorted(got), sorted(p["name"] for p in saved),
                         "%s: the recovery file must hold every edited and "
                         "added parameter" % kind)
        for p in saved:
            g = got[p["name"]]
            self.assertEqual((g.dtype, g.shape), (p["dtype"], p["shape"]),
                             "%s: dtype/shape of %s" % (kind, p["name"]))
            self.assertEqual(g.data, p["data"], "%s: data of %s in the "
                             "recovery" % (kind, p["name"]))
        names = P.not_saved_names(r.errtext)
        self.assertIsNotNone(names, "%s: ckpt umount must say %r\n%s" % (
            kind, P.NOT_SAVED, r.describe()))
        for n in self.untouched():
            self.assertIn(n, names, "%s: %s could not be saved and must "
                          "be named" % (kind, n))
        for p in saved:
            self.assertNotIn(p["name"], names, "%s: %s was saved" % (
                kind, p["name"]))
        check("after ckpt umount")
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted([BASE, os.path.basename(rec)]),
                         "%s: files beside the checkpoint" % kind)

    def check_logged(self, kind):
        # The reason is logged when a read fails (spec: "reads of untouched
        # parameters fail with EIO ... and the daemon logs a reason"), so it
        # is looked for after a read and before any fsync.
        log = os.path.join(self.dir, "ckptfs.log")
        m, _, check = self.setup_modified(kind, "-o", "log=" + log)
        got = P.read_result(m.p("conv1.weight"))
        self.assertEqual(got[0], "err", "%s: read of an untouched "
                         "parameter must fail" % kind)
        text = P.wait_log(log, "modified")
        self.assertIn("modified", text.lower(), "%s: the log (%s) must give "
                      "the reason: %r" % (kind, log, text[-2000:]))
        check("after the read")


def _add_inplace_tests():
    for kind in P.INPLACE_KINDS:
        for what, fn in (("reads_eio", "check_reads"),
                         ("fsync_eio", "check_fsync"),
                         ("umount_recovery", "check_umount"),
                         ("logged", "check_logged")):
            def t(self, kind=kind, fn=fn):
                getattr(self, fn)(kind)
            t.__name__ = "test_%s_%s" % (kind, what)
            setattr(TestModifiedInPlace, t.__name__, t)


_add_inplace_tests()


if __name__ == "__main__":
    unittest.main()
