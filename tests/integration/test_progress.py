#!/usr/bin/python3
"""`ckpt commit`, `user.ckptfs.progress` and the progress display (issue 15,
interface 1 of the work split).

  - `ckpt commit MNT` commits the edits (the file is checked with the
    reference reader), leaves the mount in place, and later edits and
    commits still work; nothing to commit is exit 0; bad usage exit 2; not
    a mount exit 1.
  - A failed commit is exit 1 with the reason and what to do: the
    checkpoint replaced underneath (the daemon's remedy names `ckpt
    umount`), an I/O error of the daemon's fsync (the fault shim; after
    disarming it, `ckpt commit` succeeds).
  - `user.ckptfs.progress` on the root reads "0 0" when idle, cannot be set
    or removed (EPERM), is not listed, and is answered while a commit runs
    (a thread of the test reads it every 10 ms and must see a commit in
    progress, DONE < TOTAL).
  - Progress lines ("DONE of TOTAL (P%), RATE/s, M:SS left") on stderr with
    CKPT_PROGRESS=1 (`ckpt commit`, `ckpt umount`, `ckpt convert`), and on
    a terminal (a pty: rewritten with '\\r', ended with a newline); none
    with -q, none when stderr is a plain file.  The formatter itself:
    tests/unit/test_progress.c.

A commit must last long enough to be seen: it writes a 64 MiB tensor
encrypted with SM4-CBC (no hardware helps it) by one thread
(CKPT_CRYPTO_THREADS=1 for the daemon), about half a second.  Whether a
display had anything to show is checked the same way (the test's own
reads of the xattr), so the tests that expect silence are not vacuous.
"""

import errno
import os
import re
import select
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import pinutil as P  # noqa: E402
import wbutil as W  # noqa: E402

XATTR_PROGRESS = "user.ckptfs.progress"
NEW_BIAS = bytes(range(40))            # fc3.bias: Float32 [10]
NEW_FC2 = bytes(range(100, 184)) * 4   # fc2.bias: Float32 [84], 336 bytes
BIG_BYTES = 64 << 20
BIG_DATA = bytes(range(256)) * (BIG_BYTES // 256)
BIG_SHOWN = "64.0 MiB"                 # BIG_BYTES and b, as ckpt shows them
MODE = "SM4-CBC"
KEY = bytes(range(7, 23))              # 16 bytes
SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB)"
LINE = re.compile(r"^%s of %s \(\d{1,3}%%\)(, %s/s(, \d+:\d\d(:\d\d)? "
                  r"left)?)?$" % (SIZE, SIZE, SIZE))
QUIET_ENV = {"CKPT_PROGRESS": None}
FORCED_ENV = {"CKPT_PROGRESS": "1"}


def progress_lines(text):
    """The lines of text (\\r and \\n separated) that are progress lines."""
    return [s for s in re.split(r"[\r\n]+", text.strip()) if LINE.match(
        s.strip())]


def run_on_pty(cmd, env, timeout, conns):
    """Runs cmd with stderr on a pty; (exit status, what it wrote)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=slave,
                                env=env)
    finally:
        os.close(slave)
    out, end = b"", time.monotonic() + timeout
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                M.abort_conns(conns)
                proc.kill()
                proc.wait()
                raise AssertionError("timed out: %s" % " ".join(cmd))
            if not select.select([master], [], [], left)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:   # EIO: every holder of the slave is gone
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(timeout), out.decode("utf-8", "replace")
    finally:
        os.close(master)


class Poller:
    """Reads user.ckptfs.progress of mnt every 10 ms in a thread until
    finish() (or, with until_running, until it has seen a commit in
    progress: a getxattr still under way when 'ckpt umount' unmounts makes
    the mount busy); values are (done, total) pairs."""

    def __init__(self, tc, mnt, until_running=False):
        self.mnt, self.values, self.errors = mnt, [], []
        self.until_running = until_running
        self.stop = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        tc.addCleanup(self.finish)

    def _run(self):
        while not self.stop.is_set():
            try:
                v = os.getxattr(self.mnt, XATTR_PROGRESS).decode()
            except OSError as e:      # unmounted (ckpt umount)
                self.errors.append(e)
                return
            d, t = (int(x) for x in v.split())
            self.values.append((d, t))
            if self.until_running and d < t:
                return
            self.stop.wait(0.01)

    def finish(self):
        self.stop.set()
        self.th.join(30)
        return self.values

    def in_progress(self):
        return [(d, t) for d, t in self.values if d < t]


class LenetCase(W.LenetBase):
    DIR_PREFIX = "ckptfs_progress_"

    def ckpt(self, m, *args, env=None):
        return m.run([common.CKPT_BIN] + list(args),
                     env=M.with_env(env or QUIET_ENV))

    def assertRC(self, r, rc, what):
        common.assert_not_signal(self, r, what)
        self.assertEqual(r.rc, rc, "%s: exit %d expected\n%s" % (
            what, rc, r.describe()))


class TestCommit(LenetCase):
    def test_commit_stays_mounted_and_later_edits_work(self):
        m = self.mount()
        W.write_file(m.p("fc3.bias"), NEW_BIAS)
        r = self.ckpt(m, "commit", m.mnt)
        self.assertRC(r, 0, "ckpt commit")
        self.assertEqual(r.err, b"", "ckpt commit without a terminal must "
                         "print nothing")
        want = W.replace(self.base, "fc3.bias", data=NEW_BIAS)
        W.check_ckpt(self, self.src, want, label="after ckpt commit")
        self.assertTrue(m.mounted() and m.alive(), "ckpt commit unmounted")
        self.assertEqual(W.getx(m.mnt, XATTR_PROGRESS), "0 0")

        W.write_file(m.p("fc2.bias"), NEW_FC2)
        self.assertRC(self.ckpt(m, "commit", "-q", m.mnt), 0,
                      "second ckpt commit -q")
        want = W.replace(want, "fc2.bias", data=NEW_FC2)
        W.check_ckpt(self, self.src, want, label="after the second commit")
        self.assertEqual(W.read_bytes(m.p("fc3.bias")), NEW_BIAS)

        before = W.file_state(self.src)
        self.assertRC(self.ckpt(m, "commit", m.mnt), 0, "nothing to commit")
        self.assertUntouched(before, what="ckpt commit with nothing to do")
        self.assertRC(self.ckpt(m, "umount", "-q", m.mnt), 0, "umount -q")
        self.assertTrue(P.wait_gone(m, 5.0), "ckpt umount -q left the mount")
        W.check_ckpt(self, self.src, want, label="after ckpt umount -q")

    def test_umount_of_a_busy_mount(self):
        """A file held open in the mount: fusermount3 -u fails, ckpt umount
        exits 1 saying the edits are committed and how to find the
        process; once it is closed, ckpt umount works."""
        m = self.mount()
        W.write_file(m.p("fc3.bias"), NEW_BIAS)
        fd = os.open(m.p("fc2.bias"), os.O_RDONLY)
        try:
            r = self.ckpt(m, "umount", m.mnt)
        finally:
            os.close(fd)
        self.assertRC(r, 1, "ckpt umount of a busy mount")
        self.assertIn("the edits are committed", r.errtext)
        self.assertIn("fuser -vm %s" % m.mnt, r.errtext)
        self.assertTrue(m.mounted() and m.alive(), "a busy mount went away")
        want = W.replace(self.base, "fc3.bias", data=NEW_BIAS)
        W.check_ckpt(self, self.src, want, label="after the busy umount")
        self.assertRC(self.ckpt(m, "umount", m.mnt), 0, "ckpt umount again")
        self.assertTrue(P.wait_gone(m, 5.0), "ckpt umount left the mount")

    def test_usage(self):
        m = self.mount()
        for args in ([], [m.mnt, m.mnt], ["--force", m.mnt]):
            with self.subTest(args=args):
                r = self.ckpt(m, "commit", *args)
                self.assertRC(r, 2, "ckpt commit %s" % " ".join(args))
                self.assertIn("ckpt:", r.errtext)
        r = self.ckpt(m, "commit", self.dir)
        self.assertRC(r, 1, "ckpt commit of a plain directory")
        self.assertIn("%s is not a ckptfs mount point" % self.dir, r.errtext)
        r = M.ckpt("--help")
        self.assertRC(r, 0, "ckpt --help")
        for text in ("commit [-q] MOUNTPOINT", "umount [-q] [--force]",
                     "CKPT_PROGRESS=1"):
            self.assertIn(text, r.text, "ckpt --help")

    def test_replaced_underneath(self):
        m = self.mount()
        W.write_file(m.p("fc3.bias"), NEW_BIAS)
        other = W.replace(self.base, "fc1.bias", data=bytes(480))
        P.replace_by_rename(self.src, W.expected_bytes(other))
        r = self.ckpt(m, "commit", m.mnt)
        self.assertRC(r, 1, "ckpt commit after the checkpoint was replaced")
        self.assertIn("ckpt: commit of %s failed: " % m.mnt, r.errtext)
        self.assertIn("ckpt umount --force %s" % m.mnt, r.errtext,
                      "the remedy must be named")
        self.assertTrue(m.mounted(), "a failed ckpt commit unmounted")
        self.assertEqual(W.read_bytes(m.p("fc3.bias")), NEW_BIAS,
                         "the edit must still be in the mount")
        W.check_ckpt(self, self.src, other, label="the other file")
        r = self.ckpt(m, "umount", "--force", m.mnt)
        self.assertRC(r, 0, "ckpt umount --force")

    def test_io_error_then_retry(self):
        ctl = os.path.join(self.dir, "faults")
        W.write_file(ctl, b"")
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = M.with_env({"LD_PRELOAD": shim(self), "CKPT_FAULT_FILE": ctl,
                          # a sanitizer build: the shim precedes libasan
                          "ASAN_OPTIONS": (asan + ":" if asan else "") +
                          "verify_asan_link_order=0"})
        m = self.mount(env=env)
        W.write_file(m.p("fc3.bias"), NEW_BIAS)
        before = W.file_state(self.src)
        arm(ctl, b"fsync * EIO\nfdatasync * EIO\n")
        r = self.ckpt(m, "commit", m.mnt)
        self.assertRC(r, 1, "ckpt commit with failing fsyncs")
        self.assertIn("ckpt: commit of %s failed: " % m.mnt, r.errtext)
        self.assertIn("Input/output error", r.errtext)
        self.assertIn("fix the problem and run 'ckpt commit %s' again"
                      % m.mnt, r.errtext)
        self.assertUntouched(before, what="failed ckpt commit")
        self.assertTrue(m.mounted())
        arm(ctl, b"# disarmed\n")
        self.assertRC(self.ckpt(m, "commit", m.mnt), 0, "commit, disarmed")
        W.check_ckpt(self, self.src, W.replace(self.base, "fc3.bias",
                                               data=NEW_BIAS),
                     label="after the retried commit")

    def test_progress_xattr_idle_and_read_only(self):
        m = self.mount()
        self.assertEqual(W.getx(m.mnt, XATTR_PROGRESS), "0 0")
        W.write_file(m.p("fc3.bias"), NEW_BIAS)
        self.assertEqual(W.getx(m.mnt, XATTR_PROGRESS), "0 0",
                         "an edit is no commit in progress")
        self.assertOSError(errno.EPERM, os.setxattr, m.mnt, XATTR_PROGRESS,
                           b"1 2", what="setxattr user.ckptfs.progress")
        self.assertOSError(errno.EPERM, os.removexattr, m.mnt,
                           XATTR_PROGRESS, what="removexattr")
        self.assertNotIn(XATTR_PROGRESS, os.listxattr(m.mnt))
        self.assertEqual(W.getx(m.mnt, XATTR_PROGRESS), "0 0")

    def test_convert_progress(self):
        out = os.path.join(self.dir, "out.ckpt")
        r = M.ckpt("convert", self.src, out, "--crc",
                   env=M.with_env(FORCED_ENV))
        self.assertRC(r, 0, "ckpt convert with CKPT_PROGRESS=1")
        lines = progress_lines(r.errtext)
        self.assertGreaterEqual(len(lines), 2, r.errtext)
        self.assertTrue(lines[0].startswith("0 B of "), lines)
        self.assertIn("(100%)", lines[-1])
        self.assertEqual(len(lines), len(r.errtext.splitlines()),
                         "only progress lines expected: %r" % r.errtext)
        for extra in (["-q"], []):
            os.unlink(out)
            env = FORCED_ENV if extra else QUIET_ENV
            r = M.ckpt("convert", *extra, self.src, out,
                       env=M.with_env(env))
            self.assertRC(r, 0, "ckpt convert %s" % extra)
            self.assertEqual(r.err, b"", "ckpt convert %s: no progress "
                             "expected" % extra)


_SHIM = []


def shim(tc):
    """The fault shim ($CKPT_FAULTSHIM, else test_faults builds it)."""
    if not _SHIM:
        import test_faults
        _SHIM.append(test_faults.shim_path(tc))
    return _SHIM[0]


def arm(ctl, text):
    """Rewrites the shim's control file (a new inode: always seen)."""
    tmp = ctl + ".new"
    W.write_file(tmp, text)
    os.rename(tmp, ctl)


# --------------------------------------------------------------------------
# commits long enough to show progress

def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    common.check_inputs()


class BigCase(LenetCase):
    """A checkpoint created encrypted in the mount (-o create): "b" (16
    bytes, the marker of each commit) then "w" (BIG_BYTES), written anew
    before every commit, so that no commit has to decrypt anything."""

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, "ckptfs_progress_")
        self.src = os.path.join(self.dir, "big.ckpt")
        self.key = os.path.join(self.dir, "key")
        W.write_file(self.key, KEY)
        os.chmod(self.key, 0o600)

    def mount_big(self):
        return M.mount(self, self.src, "-o",
                       "create,enc_mode=%s,keyfile=%s" % (MODE, self.key),
                       env=M.with_env({"CKPT_CRYPTO_THREADS": "1"}))

    def edit(self, m, value):
        W.write_file(m.p("b"), bytes([value]) * 16)
        W.write_file(m.p("w"), BIG_DATA)

    def watched(self, m, fn, unmounts=False):
        """fn() while a Poller reads the progress (only until it is seen
        if fn unmounts); asserts that it saw a commit in progress.
        Returns fn's result."""
        poller = Poller(self, m.mnt, until_running=unmounts)
        res = fn()
        values = poller.finish()
        running = poller.in_progress()
        self.assertTrue(running, "user.ckptfs.progress never showed a "
                        "commit in progress (%d reads: %s ...): getxattr "
                        "waited for the commit, or it was too quick to "
                        "see" % (len(values), sorted(set(values))[:5]))
        for d, t in running:
            self.assertGreaterEqual(t, BIG_BYTES, "TOTAL of %r" % ((d, t),))
        return res

    def assertProgress(self, text, what):
        lines = progress_lines(text)
        self.assertTrue(lines, "%s: no progress line on stderr: %r"
                        % (what, text))
        self.assertIn("of %s" % BIG_SHOWN, lines[0], what)
        self.assertTrue(lines[-1].startswith("%s of %s (100%%)" % (
            BIG_SHOWN, BIG_SHOWN)), "%s: the last line: %r" % (what, lines))
        return lines

    def committed(self, value):
        r = M.ckpt("cat", "--enc-mode", MODE, "--keyfile", self.key,
                   self.src, "b")
        self.assertRC(r, 0, "ckpt cat b")
        self.assertEqual(r.out, bytes([value]) * 16, "the edit of b")


class TestProgressDisplay(BigCase):
    def test_commit_with_forced_progress(self):
        m = self.mount_big()
        self.edit(m, 1)
        r = self.watched(m, lambda: self.ckpt(m, "commit", m.mnt,
                                              env=FORCED_ENV))
        self.assertRC(r, 0, "ckpt commit with CKPT_PROGRESS=1")
        self.assertProgress(r.errtext, "ckpt commit")
        self.assertTrue(r.errtext.endswith("\n"), repr(r.errtext))
        self.committed(1)
        self.assertTrue(m.mounted())
        self.assertEqual(W.getx(m.mnt, XATTR_PROGRESS), "0 0")

    def test_quiet_and_no_terminal_are_silent(self):
        m = self.mount_big()
        for value, args, env in ((1, ["-q"], FORCED_ENV),
                                 (2, [], QUIET_ENV)):
            self.edit(m, value)
            r = self.watched(m, lambda: self.ckpt(m, "commit", *args,
                                                  m.mnt, env=env))
            self.assertRC(r, 0, "ckpt commit %s" % args)
            self.assertEqual(r.err, b"", "ckpt commit %s, %s: no output "
                             "expected" % (args, env))
        self.edit(m, 3)
        r = self.watched(m, lambda: self.ckpt(m, "umount", "-q", m.mnt,
                                              env=FORCED_ENV),
                         unmounts=True)
        self.assertRC(r, 0, "ckpt umount -q")
        self.assertEqual(r.err, b"", "ckpt umount -q: no output expected")
        self.committed(3)

    def test_umount_with_forced_progress(self):
        m = self.mount_big()
        self.edit(m, 4)
        r = self.watched(m, lambda: self.ckpt(m, "umount", m.mnt,
                                              env=FORCED_ENV),
                         unmounts=True)
        self.assertRC(r, 0, "ckpt umount with CKPT_PROGRESS=1")
        self.assertProgress(r.errtext, "ckpt umount")
        self.assertTrue(P.wait_gone(m, 5.0), "ckpt umount left the mount")
        self.committed(4)

    def test_terminal(self):
        m = self.mount_big()
        self.edit(m, 5)
        rc, text = self.watched(m, lambda: run_on_pty(
            [common.CKPT_BIN, "commit", m.mnt], M.with_env(QUIET_ENV),
            m.tool_timeout, m.conns))
        self.assertEqual(rc, 0, "ckpt commit on a terminal: %r" % text)
        self.assertProgress(text, "ckpt commit on a terminal")
        self.assertTrue(text.startswith("\r"), "lines are rewritten in "
                        "place: %r" % text)
        self.assertTrue(text.endswith("\n"), "the last line must end: %r"
                        % text)
        self.assertEqual(text.count("\n"), 1, "one line on a terminal: %r"
                         % text)
        self.committed(5)


if __name__ == "__main__":
    unittest.main()
