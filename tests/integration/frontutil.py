#!/usr/bin/python3
"""Helpers of the front-end suites (test_signals, test_privileges): starting
ckptfs with known signal dispositions, the status socket, other users.

Daemons started here reset SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
SIGUSR2 and SIGALRM to their default action before exec: ckptfs keeps a
signal ignored that was ignored when it started (as libfuse does, and as
`nohup` or a script's `&` expect), and the suites must not depend on how
their own runner was started: mounting.mount(..., **DAEMON).
"""

import os
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402

TIMEOUT = common.TIMEOUT
XATTR_FORCE = "user.ckptfs.force"
NOBODY = 65534
SESSION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                   signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGALRM)


def default_signals():
    for s in SESSION_SIGNALS:
        signal.signal(s, signal.SIG_DFL)


# the keywords of mounting.mount()/try_mount() for the daemons of these
# suites (the environment: env=mounting.with_env(changes))
DAEMON = dict(preexec_fn=default_signals)


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
    r = M.run([common.PYTHON, "-c", code], cwd="/", preexec_fn=drop,
              timeout=timeout or TIMEOUT)
    return r.rc, r.outtext.strip(), r.errtext.strip()


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
