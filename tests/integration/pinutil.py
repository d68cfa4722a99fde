#!/usr/bin/python3
"""Shared helpers of the pinning, locking and replace-stress suites
(test_pinning, test_locking, test_replace_stress): the checkpoint changing
underneath a mount (issue 13, spec sections 1 and 2).

Builds on common.py and wbutil.py (which other suites own; nothing here
changes them):

  * variants of the LeNet example (a distinct marker in step_num, larger,
    smaller, same size with other bytes) as expected-dicts and bytes;
  * replacing the checkpoint the way MindSpore's save_checkpoint does
    (write PATH.tmp, rename it over PATH), deleting it, replacing it by a
    symlink, rewriting it in place (cp-like truncate+write, same-size
    overwrite, truncate to 0);
  * recovery files (DIR/BASE.recovery-YYYYmmdd-HHMMSS-XXXXXXXX.ckpt) and the
    message of 'ckpt umount' ("could not be saved: NAME, NAME, ...");
  * F_OFD_GETLK probes of the lock a read-write mount holds;
  * the LIMITS of their mounts (mounting.py: no hang can stall a suite),
    and a replacer child process for the stress test.
"""

import fcntl
import glob
import os
import re
import select
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402

import numpy as np  # noqa: E402

XATTR_FORCE = "user.ckptfs.force"

# DIR/BASE.recovery-YYYYmmdd-HHMMSS-XXXXXXXX.ckpt, BASE the checkpoint's file
# name (with its .ckpt), XXXXXXXX random: eight characters of [0-9a-z].
RECOVERY_RE_FMT = r"^%s\.recovery-\d{8}-\d{6}-[0-9a-z]{8}\.ckpt$"

# spec 1: 'ckpt umount' names what could not be saved
NOT_SAVED = "could not be saved:"

DEADLINE = float(os.environ.get("CKPT_PIN_DEADLINE", "20"))


def f32(*v):
    return np.array(v, dtype="<f4").tobytes()


# --------------------------------------------------------------------------
# checkpoint variants (expected-dicts as in wbutil; bytes by ckref.dumps)

def with_marker(params, marker):
    """params with step_num set to marker (Int64 scalar) and fc3.bias set
    to a vector derived from it: a fresh valid checkpoint that differs from
    every other marker in its bytes."""
    out = W.replace(params, "step_num", data=np.int64(marker).tobytes())
    bias = (np.arange(10, dtype="<f4") + np.float32(marker)).tobytes()
    return W.replace(out, "fc3.bias", data=bias)


def larger(params, marker=7001):
    """A valid checkpoint larger than params (an extra 4 KiB parameter)."""
    extra = np.full(1024, marker, dtype="<f4")
    return with_marker(params, marker) + [
        W.param("extra.larger", "Float32", (1024,), extra)]


def smaller(params, marker=7002):
    """A valid checkpoint smaller than params (fc1.weight, 192000 bytes, and
    its moment dropped)."""
    out = W.remove(with_marker(params, marker), "fc1.weight")
    return W.remove(out, "moments.fc1.weight")


def same_size(params, marker=7003):
    """A valid checkpoint of exactly the size of params with other bytes
    (conv1.weight negated, another marker)."""
    p = W.find(params, "conv1.weight")
    neg = (-np.frombuffer(p["data"], dtype="<f4")).astype("<f4")
    return W.replace(with_marker(params, marker), "conv1.weight",
                     data=neg.tobytes())


def dumps(params):
    return W.expected_bytes(params)


# --------------------------------------------------------------------------
# the other process changing the checkpoint

def replace_by_rename(path, data):
    """What MindSpore's save_checkpoint does: write PATH.tmp, rename it over
    PATH.  Returns the new file's inode."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return os.lstat(path).st_ino


def replace_by_symlink(path, target):
    """Replaces PATH by a symlink to target (atomically, by rename)."""
    tmp = path + ".lnk"
    os.symlink(target, tmp)
    os.rename(tmp, path)


# in-place rewrites: the same inode afterwards
INPLACE_KINDS = ("larger", "smaller", "same_size", "truncated")


def inplace_data(kind, params):
    """The bytes another process writes into the file for kind."""
    if kind == "larger":
        return dumps(larger(params))
    if kind == "smaller":
        return dumps(smaller(params))
    if kind == "same_size":
        return dumps(same_size(params))
    if kind == "truncated":
        return b""
    raise ValueError(kind)


CLOCK_REALTIME_COARSE = 5   # Linux; what file timestamps are taken from


def wait_clock_past(path, timeout=5.0):
    """Polls until the coarse clock the kernel stamps files with is past the
    mtime and ctime of path, so that a rewrite now gives the file another
    mtime/ctime (a same-size rewrite within the same clock tick would
    otherwise keep the identity (dev, ino, size, mtime, ctime) that the
    daemon remembers, and could not be noticed)."""
    st = os.stat(path)
    last = max(st.st_mtime_ns, st.st_ctime_ns)
    if not common.wait_until(
            lambda: time.clock_gettime_ns(CLOCK_REALTIME_COARSE) > last,
            timeout=timeout, interval=0.001):
        raise AssertionError("the clock did not pass the mtime of %s" % path)


def rewrite_in_place(path, kind, data):
    """Rewrites the file at path in place (same inode): cp-like (O_TRUNC then
    write) for larger/smaller, an overwrite without truncation for
    same_size, truncate(0) for truncated."""
    wait_clock_past(path)
    if kind in ("larger", "smaller", "same_size"):
        if kind == "same_size" and os.path.getsize(path) != len(data):
            raise AssertionError("same_size variant has %d bytes, the file "
                                 "%d" % (len(data), os.path.getsize(path)))
        flags = os.O_WRONLY | (0 if kind == "same_size" else os.O_TRUNC)
        fd = os.open(path, flags)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    elif kind == "truncated":
        if data:
            raise ValueError("truncated takes no data")
        os.truncate(path, 0)
    else:
        raise ValueError(kind)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --------------------------------------------------------------------------
# mounts of these suites: mounting.mount(..., **LIMITS), every step under
# DEADLINE

LIMITS = dict(timeout=DEADLINE, step=DEADLINE, tool=DEADLINE)


def read_result(path):
    """Reads a whole file: ('ok', bytes) or ('err', errno)."""
    try:
        with open(path, "rb") as f:
            return "ok", f.read()
    except OSError as e:
        return "err", e.errno


def pread_result(path, n, off=0):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "err", e.errno
    try:
        return "ok", os.pread(fd, n, off)
    except OSError as e:
        return "err", e.errno
    finally:
        os.close(fd)


def wait_log(path, word, timeout=10.0):
    """Polls the log file at path until it contains word (case-insensitive);
    returns its text (the last one read)."""
    box = {"text": ""}

    def has():
        try:
            with open(path, "rb") as f:
                box["text"] = f.read().decode("utf-8", "replace")
        except OSError:
            return False
        return word.lower() in box["text"].lower()
    common.wait_until(has, timeout=timeout)
    return box["text"]


def wait_gone(m, timeout=10.0):
    """True once the daemon has exited and the mount is gone."""
    exited = M.wait_pid_exit(m.pid, timeout)
    if exited:
        m.forget()
    return exited and common.wait_until(
        lambda: not M.is_mounted(m.mnt), timeout)


# --------------------------------------------------------------------------
# recovery files

def recovery_re(base):
    return re.compile(RECOVERY_RE_FMT % re.escape(base))


def recovery_files(directory, base):
    """Files in directory named like a recovery file of base."""
    rx = recovery_re(base)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names if rx.match(n))


def any_recovery(directory):
    """Every *.recovery-* file in directory (any naming)."""
    return sorted(glob.glob(os.path.join(glob.escape(directory),
                                         "*.recovery-*")))


def not_saved_names(text):
    """The names after 'could not be saved:' in text (None if absent)."""
    i = text.find(NOT_SAVED)
    if i < 0:
        return None
    tail = text[i + len(NOT_SAVED):].split("\n", 1)[0]
    tail = tail.strip().rstrip(".;")
    return [n.strip() for n in tail.split(",") if n.strip()]


# ckref.loads is not thread-safe: it points fd 2 at /dev/null around the
# protobuf parse (and back) and records warnings process-wide, so two
# threads parsing at once can leave the process's stderr on /dev/null.
# Threads that parse take this lock (ref_loads / ref_load).
REF_LOCK = threading.Lock()


def ref_loads(data, label="<bytes>"):
    with REF_LOCK:
        return ckref.loads(data, label)


def ref_load(path):
    with REF_LOCK:
        return ckref.load(path)


def load_or_fail(tc, path, label):
    try:
        return ref_load(path)
    except ckref.CheckpointError as e:
        tc.fail("%s: the reference reader rejects %s: %s" % (label, path, e))


# --------------------------------------------------------------------------
# OFD locks

_FLOCK = "hhqqi4x"   # struct flock on x86_64/aarch64 Linux


def ofd_getlk(path, ltype=fcntl.F_RDLCK):
    """F_OFD_GETLK on the whole file at path for a lock of type ltype.
    Returns (l_type, l_pid) of a conflicting lock, (F_UNLCK, 0) if none.
    With ltype F_RDLCK only a write lock conflicts; OFD locks report
    l_pid -1."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        arg = struct.pack(_FLOCK, ltype, os.SEEK_SET, 0, 0, 0)
        res = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, arg)
        l_type, _, _, _, l_pid = struct.unpack(_FLOCK, res)
        return l_type, l_pid
    finally:
        os.close(fd)


LOCK_NAMES = {fcntl.F_RDLCK: "F_RDLCK", fcntl.F_WRLCK: "F_WRLCK",
              fcntl.F_UNLCK: "F_UNLCK"}


# --------------------------------------------------------------------------
# the replacer: another process that changes the checkpoint on command

_REPLACER = r'''
import os, sys
path = sys.argv[1]
def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "rename":          # rename SRC: save_checkpoint
            with open(cmd[1], "rb") as f:
                data = f.read()
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            write_all(fd, data)
            ino = os.fstat(fd).st_ino   # its own file, not what the path
            os.close(fd)                # names a moment later: a commit
            os.rename(tmp, path)        # may be exchanging it just then
        elif cmd[0] == "inplace":       # inplace KIND SRC
            kind = cmd[1]
            if kind == "truncated":
                os.truncate(path, 0)
            else:
                with open(cmd[2], "rb") as f:
                    data = f.read()
                flags = os.O_WRONLY | (0 if kind == "same_size"
                                       else os.O_TRUNC)
                fd = os.open(path, flags)
                write_all(fd, data)
                os.fsync(fd)
                os.close(fd)
            ino = os.lstat(path).st_ino
        else:
            raise ValueError("unknown command %r" % cmd[0])
        sys.stdout.write("ok %d\n" % ino)
    except Exception as e:
        sys.stdout.write("err %s\n" % str(e).replace("\n", " "))
    sys.stdout.flush()
'''


class Replacer:
    """A child process that replaces or rewrites the checkpoint at path on
    command.  send() does not wait; wait() reads the answer under a
    deadline."""

    def __init__(self, tc, path):
        self.proc = subprocess.Popen(
            [common.PYTHON, "-c", _REPLACER, path], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf = b""
        self.pending = 0      # commands sent and not answered yet
        tc.addCleanup(self.close)

    def send(self, *cmd):
        self.proc.stdin.write((" ".join(cmd) + "\n").encode())
        self.proc.stdin.flush()
        self.pending += 1

    def wait(self, timeout=10.0):
        """The answer to the oldest command: the inode now at the path.
        Raises AssertionError on an error or when there is none in time."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("the replacer did not answer within "
                                     "%ss" % timeout)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError("the replacer exited")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        self.pending -= 1
        line = line.decode("utf-8", "replace")
        if not line.startswith("ok "):
            raise AssertionError("the replacer failed: %s" % line.strip())
        return int(line.split()[1])

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
