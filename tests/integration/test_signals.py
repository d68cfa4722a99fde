#!/usr/bin/python3
"""Signals, exit status and the log file of ckptfs (issue 13, spec section 7).

  - SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM each
    unmount, commit the pending edit and end the daemon (multi-threaded and
    -s); SIGPIPE changes nothing.
  - `ckptfs -f` exits 0 after a successful commit at unmount and with
    nothing to commit, 1 when that commit fails (a shape that does not fit
    its data), with the reason on stderr and in `-o log=`; the edits are
    then saved as a recovery file.
  - A daemonized mount's failure: `ckpt umount` reports it (the mount
    stays), the log file has it, and the status socket's last line names
    the recovery file after an unmount.
  - `-o log=PATH`: created 0600, appended to, one timestamped line per
    message, a symbolic link refused.  `-o scratch=` is accepted.

Each daemon is started with default signal dispositions (frontutil).
"""

import glob
import os
import re
import signal
import stat
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import frontutil as F  # noqa: E402
import wbutil as W  # noqa: E402

NAME = "lenet.ckpt"
NEW_BIAS = bytes(range(40))          # fc3.bias: Float32 [10], 40 bytes
BAD_SHAPE = "[5,7]"                  # conv1.weight holds 600 bytes
REASON = "needs 140 bytes"           # what the failed commit says
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                   r"ckptfs\[\d+\] \w+: ")


class Base(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.dir = W.tempdir(self, "ckptfs_sig_")
        self.src = W.make_lenet(os.path.join(self.dir, NAME))
        self.log = os.path.join(self.dir, "ckptfs.log")

    def fresh_source(self, tag):
        d = os.path.join(self.dir, tag)
        os.mkdir(d)
        return W.make_lenet(os.path.join(d, NAME))

    def assert_committed(self, src, what):
        got = {p.name: p for p in common.ckref.load(src)}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS,
                         "%s: the edit was not committed" % what)
        self.assertEqual(got["fc3.bias"].shape, (10,), what)

    def recoveries(self, src):
        return glob.glob(glob.escape(src) + ".recovery-*")

    def log_text(self):
        return M.read_text(self.log)


class TestEverySignal(Base):
    def signal_commits(self, sig, *opts):
        src = self.fresh_source("s%d" % sig)
        d = M.mount(self, src, *opts, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        d.kill_and_wait(sig)
        self.assertFalse(d.mounted(), "%s: still mounted after the daemon "
                         "exited" % sig.name)
        self.assert_committed(src, sig.name)
        self.assertEqual(self.recoveries(src), [])

    def test_each_signal_commits_and_exits(self):
        for sig in F.SESSION_SIGNALS:
            with self.subTest(signal=sig.name):
                self.signal_commits(sig)

    def test_single_threaded(self):
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            with self.subTest(signal=sig.name):
                self.signal_commits(sig, "-s")

    def test_signal_while_workers_are_busy(self):
        # readers keep the worker threads inside requests: the signal may
        # land on any of them and must still end the session
        d = M.mount(self, self.src, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        stop = threading.Event()

        def read_loop():
            while not stop.is_set():
                try:
                    W.read_bytes(d.p("fc1.weight"))
                except OSError:
                    return
        readers = [threading.Thread(target=read_loop, daemon=True)
                   for _ in range(3)]
        for t in readers:
            t.start()
        self.addCleanup(lambda: [stop.set()] + [t.join(10)
                                                for t in readers])
        for sig in (signal.SIGUSR2, signal.SIGALRM):
            os.kill(d.pid, sig)
        d.wait_exit()
        stop.set()
        self.assert_committed(self.src, "SIGUSR2 with busy workers")

    def test_sigpipe_is_ignored(self):
        d = M.mount(self, self.src, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        os.kill(d.pid, signal.SIGPIPE)
        # kill() of a fatal signal ends the process before it returns;
        # a request answered afterwards proves it is ignored
        self.assertEqual(W.read_bytes(d.p("fc3.bias")), NEW_BIAS)
        self.assertTrue(M.pid_alive(d.pid), "SIGPIPE killed the daemon")
        res = d.ckpt_umount()
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_committed(self.src, "after SIGPIPE")


class TestExitStatus(Base):
    def test_zero_after_a_commit(self):
        d = M.mount(self, self.src, foreground=True, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        rc = d.kill_and_wait(signal.SIGTERM)
        self.assertEqual(rc, 0, "ckptfs -f exited %s after a successful "
                         "commit: %s" % (rc, d.stderr()))
        self.assert_committed(self.src, "SIGTERM")

    def test_zero_with_nothing_to_commit(self):
        before = W.file_state(self.src)
        for sig in (signal.SIGINT, signal.SIGHUP):
            with self.subTest(signal=sig.name):
                d = M.mount(self, self.src, foreground=True,
                            **F.DAEMON)
                rc = d.kill_and_wait(sig)
                self.assertEqual(rc, 0, "ckptfs -f exited %s with nothing "
                                 "to commit: %s" % (rc, d.stderr()))
                self.assertEqual(W.file_state(self.src), before)

    def test_zero_after_fusermount(self):
        d = M.mount(self, self.src, foreground=True, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        M.fusermount("-u", d.mnt)
        rc = d.wait_exit()
        self.assertEqual(rc, 0, d.stderr())
        self.assert_committed(self.src, "fusermount3 -u")

    def test_nonzero_when_the_commit_fails(self):
        before = W.file_state(self.src)
        d = M.mount(self, self.src, "-o", "log=" + self.log,
                    foreground=True, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        W.set_meta(d.p("conv1.weight"), shape=BAD_SHAPE)
        rc = d.kill_and_wait(signal.SIGTERM)
        self.assertNotEqual(rc, 0, "ckptfs -f exited 0 although its "
                            "commit at unmount failed")
        self.assertGreater(rc, 0, "killed by a signal: %s" % d.stderr())
        self.assertEqual(W.file_state(self.src), before,
                         "the failed commit changed the checkpoint")
        rec = self.recoveries(self.src)
        self.assertEqual(len(rec), 1, "one recovery file expected")
        for where, text in (("stderr", d.stderr()),
                            ("the log", self.log_text())):
            self.assertIn(REASON, text, "%s lacks the reason" % where)
            self.assertIn(os.path.basename(rec[0]), text,
                          "%s lacks the recovery file" % where)
        got = {p.name: p for p in common.ckref.load(rec[0])}
        self.assertEqual(got["fc3.bias"].data, NEW_BIAS)


class TestDaemonizedFailure(Base):
    def test_reported_by_ckpt_umount_and_the_log(self):
        before = W.file_state(self.src)
        d = M.mount(self, self.src, "-o", "log=" + self.log, **F.DAEMON)
        W.set_meta(d.p("conv1.weight"), shape=BAD_SHAPE)
        res = d.ckpt_umount()
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(REASON, res.errtext)
        self.assertIn("nothing was unmounted", res.errtext)
        self.assertTrue(d.mounted(), "ckpt umount unmounted after a "
                        "failed commit")
        self.assertIn("commit failed: ", self.log_text())
        self.assertIn(REASON, self.log_text())
        self.assertEqual(W.file_state(self.src), before)

        # plain fusermount3 -u now: the client of the status socket gets
        # the outcome of the commit at unmount, and so does the log
        client = F.StatusClient(d.status_path())
        self.addCleanup(client.close)
        M.fusermount("-u", d.mnt)
        line = client.read_all()
        d.wait_exit()
        rec = self.recoveries(self.src)
        self.assertEqual(len(rec), 1, "one recovery file expected")
        self.assertTrue(line.endswith("\n") and line.count("\n") == 1,
                        "not one line: %r" % line)
        self.assertIn(REASON, line)
        self.assertIn(rec[0], line)
        self.assertIn(rec[0], self.log_text())
        self.assertEqual(W.file_state(self.src), before)

    def test_status_line_after_a_good_commit(self):
        d = M.mount(self, self.src, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        client = F.StatusClient(d.status_path())
        self.addCleanup(client.close)
        os.kill(d.pid, signal.SIGTERM)
        self.assertEqual(client.read_all(), "OK\n")
        d.wait_exit()
        self.assert_committed(self.src, "SIGTERM")

    def test_ckpt_umount_of_a_killed_daemon(self):
        d = M.mount(self, self.src, **F.DAEMON)
        W.write_file(d.p("fc3.bias"), NEW_BIAS)
        self.assertEqual(d.commit(), 0)
        M.kill9(d.pid)
        d.wait_exit()
        res = d.ckpt_umount()
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn("is gone", res.errtext)
        self.assertFalse(d.mounted(), "the dead mount was not removed")
        self.assert_committed(self.src, "fsync before kill -9")


class TestLogFile(Base):
    def test_created_private_and_timestamped(self):
        d = M.mount(self, self.src, "-o", "log=" + self.log, **F.DAEMON)
        self.assertEqual(stat.S_IMODE(os.stat(self.log).st_mode), 0o600)
        W.set_meta(d.p("conv1.weight"), shape=BAD_SHAPE)
        self.assertNotEqual(d.commit(), 0)
        W.set_meta(d.p("conv1.weight"), shape="[6,1,5,5]")
        os.kill(d.pid, signal.SIGUSR1)
        d.wait_exit()
        lines = self.log_text().splitlines()
        self.assertGreaterEqual(len(lines), 2, lines)
        for line in lines:
            self.assertRegex(line, STAMP)
        self.assertTrue(any("commit failed" in x for x in lines), lines)
        self.assertTrue(any("SIGUSR1 received" in x for x in lines), lines)

    def test_appends(self):
        W.write_file(self.log, b"earlier line\n")
        os.chmod(self.log, 0o640)
        d = M.mount(self, self.src, "-o", "log=" + self.log, **F.DAEMON)
        d.kill_and_wait(signal.SIGTERM)
        text = self.log_text()
        self.assertTrue(text.startswith("earlier line\n"), text)
        self.assertIn("SIGTERM received", text)
        self.assertEqual(stat.S_IMODE(os.stat(self.log).st_mode), 0o640,
                         "an existing log file's mode was changed")

    def test_symbolic_link_refused(self):
        target = os.path.join(self.dir, "target")
        W.write_file(target, b"precious\n")
        os.symlink(target, self.log)
        res, d = M.try_mount(self, self.src, "-o", "log=" + self.log,
                             **F.DAEMON)
        self.assertNotEqual(res.rc, 0, "mounted with log= a symlink")
        self.assertFalse(M.is_mounted(res.mnt))
        self.assertIn("symbolic link", res.errtext)
        self.assertEqual(W.read_bytes(target), b"precious\n")

    def test_mount_messages_go_to_the_log(self):
        res, d = M.try_mount(self, os.path.join(self.dir, "missing.ckpt"),
                             "-o", "log=" + self.log, **F.DAEMON)
        self.assertNotEqual(res.rc, 0)
        self.assertIn("not mounted", self.log_text())

    def test_help_documents_the_options(self):
        res = M.run([common.CKPTFS_BIN, "--help"])
        self.assertEqual(res.rc, 0)
        for word in ("log=PATH", "scratch=GLOB", "SIGUSR1", "Exit status"):
            self.assertIn(word, res.text)


class TestScratchOption(Base):
    def test_accepted_and_kept_from_the_kernel(self):
        # the globs go to the library (ckpt_tree_opts.scratch), not to the
        # kernel, which would refuse an unknown option
        for value in ("scratch=", "scratch=*.tmp:#*#:.*"):
            with self.subTest(option=value):
                d = M.mount(self, self.src, "-o", value, **F.DAEMON)
                W.write_file(d.p("fc3.bias"), NEW_BIAS)
                res = d.ckpt_umount()
                self.assertEqual(res.rc, 0, res.describe())
                self.assert_committed(self.src, value)


if __name__ == "__main__":
    unittest.main()
