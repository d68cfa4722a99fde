"""The ckpt command line without a process per call: a client of
tests/batch/ckpt_batch.c, which runs `ckpt ARGS...` in one long-lived
process (its sources compiled with main renamed).

Suites that run ckpt thousands of times (test_corrupt, test_cli) use it
through Sampled, which still runs a sample of their calls through the real
binary (Batch.compare_with_binary), so that the two cannot drift apart.

A request that kills the driver comes back as a Result whose rc is minus
the signal, as from mounting.run(); the next request starts a new driver.
"""

import os
import select
import signal
import subprocess
import time

import common
import mounting as M

BATCH_BIN = os.environ.get("CKPT_BATCH_BIN", os.path.join(
    os.path.dirname(os.path.abspath(common.CKPT_BIN)), "tests",
    "ckpt_batch"))


class Batch:
    """ckpt(*args) -> mounting.Result, served by one driver process."""

    def __init__(self, wrapper=()):
        """wrapper: a command the driver runs under (valgrind ...)."""
        self.proc = None
        self.wrapper = list(wrapper)

    def available(self):
        return os.access(BATCH_BIN, os.X_OK)

    def close(self):
        """Ends the driver; its exit status (None if none was running)."""
        rc = None
        if self.proc:
            self.proc.stdin.close()
            try:
                rc = self.proc.wait(timeout=M.TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        return rc

    def _start(self):
        self.proc = subprocess.Popen(self.wrapper + [BATCH_BIN], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)

    def _read(self, n, deadline):
        chunks, got = [], 0
        fd = self.proc.stdout.fileno()
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.proc.kill()
                raise AssertionError("ckpt_batch: timed out after %ss "
                                     "(hung)" % M.TIMEOUT)
            b = os.read(fd, min(n - got, 1 << 20))
            if not b:
                return None
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def _read_line(self, deadline):
        line = b""
        while not line.endswith(b"\n"):
            b = self._read(1, deadline)
            if b is None:
                return None
            line += b
        return line

    def _died(self, cmd):
        rc = self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
        return M.Result(cmd, rc if rc < 0 else -signal.SIGABRT, b"",
                        b"ckpt_batch died (exit %d)" % rc)

    def ckpt(self, *args):
        cmd = [common.CKPT_BIN] + [os.fsencode(a) if isinstance(a, str)
                                   else a for a in args]
        if self.proc is None:
            self._start()
        req = [b"%d\n" % len(args)]
        for a in cmd[1:]:
            req += [b"%d\n" % len(a), a]
        try:
            self.proc.stdin.write(b"".join(req))
        except BrokenPipeError:
            return self._died(cmd)
        deadline = time.monotonic() + M.TIMEOUT
        head = self._read_line(deadline)
        if head is None:
            return self._died(cmd)
        rc, nout, nerr = (int(x) for x in head.split())
        body = self._read(nout + nerr, deadline) if nout + nerr else b""
        if body is None:
            return self._died(cmd)
        return M.Result(cmd, rc, body[:nout], body[nout:])

    def compare_with_binary(self, test, *args):
        """Runs args through the driver and the real ckpt binary and fails
        test unless both give the same exit status and output; returns the
        binary's Result."""
        mine, real = self.ckpt(*args), M.ckpt(*args)
        test.assertEqual((mine.rc, mine.out, mine.err),
                         (real.rc, real.out, real.err),
                         "ckpt_batch and the ckpt binary differ:\n" +
                         real.describe())
        return real


class Sampled:
    """ckpt(test, *args) -> mounting.Result through a Batch driver; every
    every-th call, the first included (default: 16, 64 under
    CKPT_SANITIZED, where a process start costs most), also through the
    real binary, which must give the same exit status and output (else
    test fails).  If the driver is not built, every call goes to the
    binary."""

    def __init__(self, batch, every=None):
        self.batch = batch
        self.every = every or (64 if common.SANITIZED else 16)
        self.calls = 0

    def ckpt(self, test, *args):
        if not self.batch.available():
            return M.ckpt(*args)
        self.calls += 1
        if self.calls % self.every == 1:
            return self.batch.compare_with_binary(test, *args)
        return self.batch.ckpt(*args)
