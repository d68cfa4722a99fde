#!/usr/bin/python3
"""Stress: the checkpoint keeps being replaced while commits run (issue 13,
spec section 1).

test_rename_race: another process (a replacer child) replaces the mounted
checkpoint by PATH.tmp + rename -- what MindSpore's save_checkpoint does --
with a fresh valid checkpoint carrying a distinct marker (step_num,
fc3.bias), at a random point of a loop in which the test edits through the
mount and fsyncs: before a write, between a write and its fsync, or right
after an fsync, so that the rename races with the commit.  Each trial is one
mount: edits and fsyncs in a loop (each may succeed -- it came before the
rename -- or fail with EIO), then, once the replacer has finished, one more
edit whose fsync must fail with EIO ("replaced"), and 'ckpt umount', which
must exit 1 and save a recovery file holding the mounted tree.  Meanwhile a
checker thread reads every version of the path and loads it with the
reference reader.

test_inplace_rewrites: sequential in-place rewrites (larger, smaller, same
size, truncated to 0; same inode) by the other process after a successful
commit, then an edit and an fsync that must fail with EIO ("modified"),
'ckpt umount' exiting 1 with the edit in the recovery file.

Counted and asserted: zero lost updates (after both sides have finished
the path holds exactly the bytes the other process wrote last), zero
corrupt commits (every snapshot of the path the checker read, every
recovery file, is a valid checkpoint per ckref), zero hangs (every fsync,
unmount and replacement runs under a deadline), zero other deviations from
the spec (listed).  The counts are printed:

  stress (rename): N trials, F fsyncs: M EIO, K ok; L lost, C corrupt ...

Environment: CKPT_STRESS_TRIALS (rename trials, default 40; the in-place
test runs a quarter of them, at least 4), CKPT_STRESS_SEED (default random,
printed), CKPT_STRESS_DEADLINE (seconds per operation, default 15).
"""

import errno
import hashlib
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import pinutil as P  # noqa: E402
import ckref  # noqa: E402

TRIALS = int(os.environ.get("CKPT_STRESS_TRIALS", "40"))
INPLACE_TRIALS = max(4, TRIALS // 4)
SEED = int(os.environ.get("CKPT_STRESS_SEED") or
           random.SystemRandom().randrange(1 << 32))
OP_DEADLINE = float(os.environ.get("CKPT_STRESS_DEADLINE", "15"))
STEPS = 3            # edit + fsync rounds per trial before the final one
MAX_HANGS = 2        # stop early after this many: each costs a deadline
BASE = "lenet.ckpt"


class Hang(Exception):
    pass


def digest(b):
    return hashlib.blake2b(b, digest_size=16).digest()


def summary(params):
    return [(p.name, p.dtype, tuple(p.shape), p.data) for p in params]


class Checker(threading.Thread):
    """Reads the file at path over and over; every distinct version must
    load with the reference reader.  Versions are told apart by digest, so
    each is parsed once."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.seen = set()
        self.reads = 0
        self.corrupt = []     # (why, size)

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                self.corrupt.append(("the path named nothing", 0))
                self.stop.wait(0.002)
                continue
            self.reads += 1
            d = digest(data)
            if d not in self.seen:
                self.seen.add(d)
                try:
                    P.ref_loads(data, BASE)
                except ckref.CheckpointError as e:
                    self.corrupt.append((str(e)[:200], len(data)))
            self.stop.wait(0.002)   # poll interval, not a wait for a state


class StressBase(unittest.TestCase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, prefix="ckptfs_stress_")
        self.prep = W.tempdir(self, prefix="ckptfs_stress_src_")
        self.src = W.make_lenet(os.path.join(self.dir, BASE))
        self.base = W.lenet_params()
        self.rng = random.Random(SEED)
        self.rep = P.Replacer(self, self.src)
        self.violations = []
        self.hangs = []
        self.lost = []
        self.corrupt = []
        self.eio = self.ok = self.other = 0
        self.stuck = False

    def prepare(self, name, params):
        """Writes a checkpoint the replacer will copy; returns (path, bytes)."""
        data = P.dumps(params)
        p = os.path.join(self.prep, name)
        W.write_file(p, data)
        return p, data

    def violation(self, trial, msg):
        self.violations.append("trial %d: %s" % (trial, msg))

    def count_fsync(self, trial, e, allowed=(0, errno.EIO)):
        if e == 0:
            self.ok += 1
        elif e == errno.EIO:
            self.eio += 1
        else:
            self.other += 1
        if e not in allowed:
            self.violation(trial, "fsync returned %s (expected %s)" % (
                W.errno_name(e), " or ".join(W.errno_name(a)
                                             for a in allowed)))

    def commit(self, m):
        try:
            return m.commit()
        except AssertionError as e:   # the daemon was killed
            raise Hang(str(e))

    def op(self, m, what, fn):
        """fn() (an operation through the mount) under the deadline; on a
        hang the daemon is killed (which unblocks it) and Hang raised."""
        try:
            return m.step(fn, what, OP_DEADLINE)
        except AssertionError as e:
            raise Hang(str(e))

    def write(self, m, name, data):
        self.op(m, "pwrite(%s)" % name,
                lambda: W.pwrite_file(m.p(name), data, 0))

    def error_text(self, m):
        try:
            return m.error_text()
        except AssertionError as e:
            raise Hang(str(e))

    def mount_trial(self, trial):
        """Mounts the checkpoint under the deadline: the Mount, or None
        (counted) if the mount failed."""
        try:
            res, m = M.try_mount(self, self.src, timeout=OP_DEADLINE,
                                 step=OP_DEADLINE, tool=OP_DEADLINE)
        except AssertionError as e:   # M.run's timeout
            raise Hang(str(e))
        if m is None:
            self.violation(trial, "mount failed: %s" % res.describe())
        return m

    def umount(self, m):
        try:
            return m.ckpt_umount()
        except AssertionError as e:
            M.kill9(m.pid)
            raise Hang(str(e))

    def rep_wait(self):
        try:
            return self.rep.wait(OP_DEADLINE)
        except AssertionError as e:
            if "within" in str(e):
                raise Hang(str(e))
            raise

    def drain_replacer(self, trial):
        """After a hang: reads the answers still due, so that the next
        trial does not take a stale one."""
        while self.rep.pending > 0:
            try:
                self.rep_wait()
            except Hang as e:
                self.hangs.append("trial %d: %s" % (trial, e))
                self.stuck = True   # the replacer is stuck: stop
                return

    def finish_mount(self, m):
        """Makes sure the trial's mount is gone (after a deviation or a
        hang); the daemon is killed if it does not exit.  Once done, never
        again (the daemon's pid may be reused)."""
        if m is None or getattr(m, "finished", False):
            return
        m.finished = True
        if M.is_mounted(m.mnt):
            M.fusermount("-u", m.mnt)
        if not M.wait_pid_exit(m.pid, OP_DEADLINE):
            M.kill9(m.pid)
            if not M.wait_pid_exit(m.pid, 5):
                return
        m.forget()
        M.lazy_unmount(m.mnt)

    def check_recovery(self, trial, before, want):
        """One new recovery file beside the checkpoint, valid, holding
        want (list of (name, dtype, shape, data)); removed afterwards."""
        new = [p for p in P.any_recovery(self.dir)
               if os.path.basename(p) not in before]
        if len(new) != 1:
            self.violation(trial, "expected one recovery file, found %s"
                           % [os.path.basename(p) for p in new])
        for p in new:
            try:
                got = summary(P.ref_load(p))
            except ckref.CheckpointError as e:
                self.corrupt.append("trial %d: recovery %s: %s" % (
                    trial, os.path.basename(p), e))
                got = None
            if got is not None and want is not None and got != want:
                self.violation(trial, "recovery %s does not hold the "
                               "mounted tree (%s)" % (
                                   os.path.basename(p),
                                   [g[0] for g in got] if
                                   [g[0] for g in got] != [w[0] for w in want]
                                   else "data differs"))
            os.unlink(p)

    def check_strays(self, trial):
        """After a trial the checkpoint's directory holds only the
        checkpoint (recovery files were removed by check_recovery)."""
        names = os.listdir(self.dir)
        if names != [BASE]:
            self.violation(trial, "stray files beside the checkpoint: %s"
                           % sorted(set(names) - {BASE}))
            for n in names:
                if n != BASE:
                    try:
                        os.unlink(os.path.join(self.dir, n))
                    except OSError:
                        pass

    def report(self, label, trials, extra=""):
        line = ("stress (%s): %d trials, %d fsyncs: %d EIO, %d ok, %d other; "
                "%d lost, %d corrupt%s, %d hangs, %d deviations (seed %d)" % (
                    label, trials, self.eio + self.ok + self.other, self.eio,
                    self.ok, self.other, len(self.lost), len(self.corrupt),
                    extra, len(self.hangs), len(self.violations), SEED))
        print("\n" + line, file=sys.stderr, flush=True)
        return line

    def assertClean(self, line):
        problems = []
        for what, items in (("lost updates", self.lost),
                            ("corrupt", self.corrupt),
                            ("hangs", self.hangs),
                            ("deviations from the spec", self.violations)):
            if items:
                problems.append("%s (%d):\n  %s" % (
                    what, len(items), "\n  ".join(items[:8])))
        if problems:
            self.fail(line + "\n" + "\n".join(problems))


class TestReplaceStress(StressBase):

    def one_rename_trial(self, i):
        """One mount racing one replacement; returns the mount (or None)."""
        rpath, rbytes = self.prepare("r%d.ckpt" % i,
                                     P.with_marker(self.base, 100000 + i))
        pinned = W.read_bytes(self.src)
        try:
            pinned_params = P.ref_loads(pinned, BASE)
        except ckref.CheckpointError:
            pinned_params = None   # counted by the checker already
        m = None
        j = self.rng.randrange(STEPS)
        where = self.rng.choice(("before_write", "before_fsync",
                                 "after_fsync"))
        sent = False
        last = None
        try:
            m = self.mount_trial(i)
            if m is None:
                self.rep.send("rename", rpath)
                sent = True
                self.rep_wait()
                return None
            for s in range(STEPS):
                if s == j and where == "before_write":
                    self.rep.send("rename", rpath)
                    sent = True
                last = P.f32(i, s, 1.5, -2.5)
                self.write(m, "fc3.bias", last)
                if s == j and where == "before_fsync":
                    self.rep.send("rename", rpath)
                    sent = True
                self.count_fsync(i, self.commit(m))
                if s == j and where == "after_fsync":
                    self.rep.send("rename", rpath)
                    sent = True
            assert sent
            ino = self.rep_wait()
            # the replacement is done: a commit now must write nothing
            last = P.f32(i, -1, 3.5, -4.5)
            self.write(m, "fc3.bias", last)
            e = self.commit(m)
            self.count_fsync(i, e, allowed=(errno.EIO,))
            msg = self.error_text(m)
            if e == errno.EIO and "replaced" not in msg.lower():
                self.violation(i, "user.ckptfs.error does not say "
                               "'replaced': %r" % msg)
            before = set(os.listdir(self.dir))
            r = self.umount(m)
            if r.rc != 1:
                self.violation(i, "ckpt umount exited %d, expected 1 (edits "
                               "pending, checkpoint replaced)" % r.rc)
            if not P.wait_gone(m, 0.5):
                self.violation(i, "the mount is still there after ckpt "
                               "umount: %s" % r.errtext.strip()[:300])
            self.finish_mount(m)
            want = None
            if pinned_params is not None:
                want = [(p.name, p.dtype, tuple(p.shape),
                         (last + p.data[len(last):]) if p.name == "fc3.bias"
                         else p.data) for p in pinned_params]
            self.check_recovery(i, before, want)
            self.check_strays(i)
            st = os.lstat(self.src)
            same = W.read_bytes(self.src) == rbytes
            if st.st_ino != ino or not same:
                self.lost.append("trial %d (%s at step %d): the path does not "
                                 "hold the replacer's checkpoint (marker %d): "
                                 "inode %d, the replacer's %d; bytes %s"
                                 % (i, where, j, 100000 + i, st.st_ino, ino,
                                    "equal" if same else "differ"))
        except Hang as e:
            self.hangs.append("trial %d: %s" % (i, e))
            self.finish_mount(m)
            if not sent:
                self.rep.send("rename", rpath)
            self.drain_replacer(i)
        finally:
            self.finish_mount(m)
        return m

    def test_rename_race(self):
        checker = Checker(self.src)
        self.addCleanup(checker.stop.set)
        checker.start()
        t0 = time.monotonic()
        done = 0
        for i in range(TRIALS):
            if len(self.hangs) >= MAX_HANGS or self.stuck:
                break
            self.one_rename_trial(i)
            done += 1
        checker.stop.set()
        checker.join(OP_DEADLINE)
        if checker.is_alive():
            self.hangs.append("the checker thread did not stop")
        for why, size in checker.corrupt:
            self.corrupt.append("snapshot of %d bytes: %s" % (size, why))
        line = self.report("rename", done, " (of %d snapshots, %d reads)" % (
            len(checker.seen), checker.reads))
        print("stress (rename): %.1f s" % (time.monotonic() - t0),
              file=sys.stderr, flush=True)
        self.assertClean(line)
        self.assertEqual(done, TRIALS, "stopped early after hangs")

    def one_inplace_trial(self, i):
        kind = P.INPLACE_KINDS[i % len(P.INPLACE_KINDS)]
        fpath, _ = self.prepare("f%d.ckpt" % i,
                                P.with_marker(self.base, 200000 + i))
        m = None
        try:
            self.rep.send("rename", fpath)    # a fresh valid file to mount
            self.rep_wait()
            m = self.mount_trial(i)
            if m is None:
                return
            first = P.f32(i, 1, 2, 3)
            self.write(m, "fc3.bias", first)
            e = self.commit(m)
            self.count_fsync(i, e, allowed=(0,))
            committed = W.read_bytes(self.src)
            try:
                params = P.ref_loads(committed, BASE)
            except ckref.CheckpointError as err:
                self.corrupt.append("trial %d: commit: %s" % (i, err))
                params = []
            second = P.f32(i, 4, 5, 6)
            self.write(m, "fc3.bias", second)
            ino = os.stat(self.src).st_ino
            P.wait_clock_past(self.src)   # the rewrite gets a new mtime
            if kind == "truncated":
                data = b""
                self.rep.send("inplace", kind)
            else:
                variant = {"larger": P.larger, "smaller": P.smaller,
                           "same_size": P.same_size}[kind]
                vpath, data = self.prepare(
                    "v%d.ckpt" % i, variant(self.base, 300000 + i))
                if kind == "same_size" and len(data) != len(committed):
                    self.violation(i, "the commit has %d bytes, the "
                                   "same-size variant %d" % (
                                       len(committed), len(data)))
                self.rep.send("inplace", kind, vpath)
            if self.rep_wait() != ino:
                self.violation(i, "the in-place rewrite changed the inode")
            e = self.commit(m)
            self.count_fsync(i, e, allowed=(errno.EIO,))
            msg = self.error_text(m)
            if e == errno.EIO and "modified" not in msg.lower():
                self.violation(i, "user.ckptfs.error does not say "
                               "'modified': %r" % msg)
            before = set(os.listdir(self.dir))
            r = self.umount(m)
            if r.rc != 1:
                self.violation(i, "ckpt umount exited %d, expected 1 (%s)"
                               % (r.rc, kind))
            if not P.wait_gone(m, 0.5):
                self.violation(i, "the mount is still there after ckpt "
                               "umount: %s" % r.errtext.strip()[:300])
            self.finish_mount(m)
            # the recovery holds the edited parameter (the others could not
            # be read any more)
            fc3 = [p for p in params if p.name == "fc3.bias"]
            want = [(p.name, p.dtype, tuple(p.shape),
                     second + p.data[len(second):]) for p in fc3]
            self.check_recovery(i, before, want)
            self.check_strays(i)
            st = os.lstat(self.src)
            if st.st_ino != ino or W.read_bytes(self.src) != data:
                self.lost.append("trial %d (%s): the path does not hold what "
                                 "the other process wrote in place" % (
                                     i, kind))
        except Hang as e:
            self.hangs.append("trial %d (%s): %s" % (i, kind, e))
            self.finish_mount(m)
            self.drain_replacer(i)
        finally:
            self.finish_mount(m)

    def test_inplace_rewrites(self):
        t0 = time.monotonic()
        done = 0
        for i in range(INPLACE_TRIALS):
            if len(self.hangs) >= MAX_HANGS or self.stuck:
                break
            self.one_inplace_trial(i)
            done += 1
        line = self.report("in place", done)
        print("stress (in place): %.1f s" % (time.monotonic() - t0),
              file=sys.stderr, flush=True)
        self.assertClean(line)
        self.assertEqual(done, INPLACE_TRIALS, "stopped early after hangs")


if __name__ == "__main__":
    unittest.main()
