#!/usr/bin/python3
"""Helpers of the front-end suites (test_signals, test_privileges): starting
ckptfs with known signal dispositions, the status socket, other users.

Daemons started here reset SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
SIGUSR2 and SIGALRM to their default action before exec: ckptfs keeps a
signal ignored that was ignored when it started (as libfuse does, and as
`nohup` or a script's `&` expect), and the suites must not depend on how
their own runner was started.  Every mount registers its cleanup first
(unmount, wait for the daemon, kill it if it does not exit).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import wbutil as W  # noqa: E402

TIMEOUT = common.TIMEOUT
XATTR_STATUS = "user.ckptfs.status"
XATTR_FORCE = "user.ckptfs.force"
NOBODY = 65534
SESSION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                   signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGALRM)


def _default_signals():
    for s in SESSION_SIGNALS:
        signal.signal(s, signal.SIG_DFL)


class Daemon:
    """A ckptfs mount started by start() or start_fg()."""

    def __init__(self, tc, source, mnt, opts, proc=None):
        self.tc, self.source, self.mnt, self.opts = tc, source, mnt, opts
        self.proc = proc           # ckptfs -f: our child
        self.pid = None
        self.res = None            # daemonized: the Result of ckptfs

    def p(self, name):
        return os.path.join(self.mnt, W.escape_name(name))

    def mounted(self):
        return common.is_mounted(self.mnt)

    def commit(self, path=None):
        target = self.mnt if path is None else path
        return W.guarded(lambda: W.fsync_path(target), TIMEOUT,
                         lambda: W.kill9(self.pid), "fsync(%s)" % target)

    def status_path(self):
        return os.getxattr(self.mnt, XATTR_STATUS).decode()

    def wait_exit(self):
        """Waits until the daemon has exited; fails the test if it does
        not within TIMEOUT.  Returns its exit status with -f, else None."""
        if self.proc is not None:
            try:
                return self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.tc.fail("ckptfs -f (pid %d) did not exit" % self.pid)
        if not W.wait_pid_exit(self.pid, TIMEOUT):
            W.kill9(self.pid)
            self.tc.fail("ckptfs (pid %d) did not exit" % self.pid)
        return None

    def kill_and_wait(self, sig):
        os.kill(self.pid, sig)
        return self.wait_exit()

    def stderr(self):
        """What ckptfs wrote to stderr (daemonized: before it detached)."""
        if self.proc is not None:
            return read_text(self.errpath)
        return self.res.errtext if self.res else ""

    def ckpt_umount(self, *args):
        return common.ckpt("umount", *(list(args) + [self.mnt]))


def _cleanup(d):
    try:
        if common.is_mounted(d.mnt):
            W.fusermount("-u", d.mnt)
            if common.is_mounted(d.mnt):
                W.fusermount("-uz", d.mnt)
                common.wait_until(lambda: not common.is_mounted(d.mnt), 10)
        if d.proc is not None:
            try:
                d.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        elif d.pid and not W.wait_pid_exit(d.pid, TIMEOUT):
            W.kill9(d.pid)
            W.wait_pid_exit(d.pid, 10)
    finally:
        try:
            os.rmdir(d.mnt)
        except OSError:
            pass


def _new_daemon(tc, source, opts, proc=None):
    common.require_bin(tc, common.CKPTFS_BIN)
    mnt = tempfile.mkdtemp(prefix="ckptfs_mnt_")
    d = Daemon(tc, source, mnt, list(opts), proc)
    tc.addCleanup(_cleanup, d)
    return d


def _env(extra):
    env = dict(os.environ)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def try_start(tc, source, *opts, env=None):
    """Runs ckptfs OPTS SOURCE MNT (daemonizing), with default signal
    dispositions and env's changes to the environment (None removes a
    variable).  Returns the Daemon; .res is ckptfs's Result and .pid is
    None unless it mounted."""
    d = _new_daemon(tc, source, opts)
    cmd = [common.CKPTFS_BIN] + list(opts) + [source, d.mnt]
    with tempfile.TemporaryFile() as ef:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=ef,
                           preexec_fn=_default_signals, env=_env(env),
                           timeout=TIMEOUT)
        ef.seek(0)
        d.res = common.Result(cmd, r.returncode, b"", ef.read())
    if d.res.rc == 0 and common.is_mounted(d.mnt):
        d.pid = int(os.getxattr(d.mnt, W.XATTR_PID))
    return d


def start(tc, source, *opts, env=None):
    d = try_start(tc, source, *opts, env=env)
    if d.pid is None:
        tc.fail("ckptfs failed to mount %s\n%s" % (source,
                                                   d.res.describe()))
    return d


def start_fg(tc, source, *opts, env=None):
    """ckptfs -f OPTS SOURCE MNT as our child (stdout and stderr in a
    file, see Daemon.stderr()); returns the Daemon once mounted."""
    d = _new_daemon(tc, source, opts)
    fd, d.errpath = tempfile.mkstemp(prefix="ckptfs_err_")
    tc.addCleanup(os.unlink, d.errpath)
    try:
        d.proc = subprocess.Popen(
            [common.CKPTFS_BIN, "-f"] + list(opts) + [source, d.mnt],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
            preexec_fn=_default_signals, env=_env(env))
    finally:
        os.close(fd)
    d.pid = d.proc.pid
    if not common.wait_until(lambda: d.mounted() or
                             d.proc.poll() is not None, TIMEOUT):
        tc.fail("ckptfs -f did not mount within %ss" % TIMEOUT)
    if not d.mounted():
        tc.fail("ckptfs -f exited %s without mounting: %s" % (
            d.proc.poll(), d.stderr()))
    return d


# --------------------------------------------------------------------------
# the status socket

class StatusClient:
    """A connection to a daemon's status socket, made as 'ckpt umount'
    makes it (before unmounting)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)

    def peer(self):
        """(pid, uid, gid) of the process serving the socket."""
        import struct
        raw = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                   struct.calcsize("3i"))
        return struct.unpack("3i", raw)

    def read_all(self):
        """Everything the daemon sends until it closes (it sends one line
        after its commit at unmount)."""
        out = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return out.decode("utf-8", "replace")
            out += chunk

    def close(self):
        self.sock.close()


def fake_server(tc, path, answer=b"EVIL: the commit failed\n"):
    """A listening socket at path whose every client gets answer (served
    by a thread of this test process).  Removed at cleanup."""
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.05)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.sendall(answer)
            except OSError:
                pass
            c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()

    def cleanup():
        stop.set()
        th.join(5)
        srv.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    tc.addCleanup(cleanup)
    return srv


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid


def stale_socket(path):
    """Leaves a socket file at path that nobody listens on."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def status_files(pid, runtime=None):
    """The status files of the old scheme for daemon pid (there must
    never be any): /tmp/ckptfs-status-UID-PID, or in runtime."""
    name = "ckptfs-status-%d-%d" % (os.getuid(), pid)
    return [p for p in (os.path.join("/tmp", name),
                        os.path.join(runtime or "/tmp", name))
            if os.path.lexists(p)]


# --------------------------------------------------------------------------
# another user

def as_user(code, uid=NOBODY, timeout=None):
    """Runs Python code as uid (and gid uid, no supplementary groups) in
    a child; returns (exit status, stdout text, stderr text)."""
    def drop():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    r = subprocess.run([common.PYTHON, "-c", code], cwd="/",
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, preexec_fn=drop,
                       timeout=timeout or TIMEOUT)
    return (r.returncode, r.stdout.decode(errors="replace").strip(),
            r.stderr.decode(errors="replace").strip())


ERRNO_OF = """
import errno, os, sys
def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
"""


def errno_as_user(body, uid=NOBODY):
    """Runs body (Python statements that print attempt(lambda: ...)
    results) as uid; returns the printed lines."""
    rc, out, err = as_user(ERRNO_OF + body, uid)
    if rc != 0:
        raise AssertionError("child as uid %d failed (%d): %s" % (uid, rc,
                                                                 err))
    return out.splitlines()


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
