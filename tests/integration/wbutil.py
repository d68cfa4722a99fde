#!/usr/bin/python3
"""Shared helpers of the write-back tests (test_writeback, test_random_ops,
test_crash, test_diskfull).  Builds on common.py (binaries, run, is_mounted)
and the reference reader/writer tests/ref/ckref.py.

Mounts made here remember the daemon's pid (getxattr user.ckptfs.pid on the
mount root) so that unmounting can wait for the daemon to finish its last
commit instead of sleeping.  Every mount registers a cleanup that unmounts
(fusermount3 -u, then -uz), waits for the daemon to exit and, if it does not
exit within CKPT_TEST_TIMEOUT, kills it.  Blocking calls that go through the
mount and may hang on a daemon bug (fsync) run under a watchdog that kills
the daemon (which aborts the FUSE connection) instead of hanging the suite.
"""

import contextlib
import errno
import hashlib
import io
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import ckref  # noqa: E402  (common put tests/ref on sys.path)

EXAMPLES_DIR = os.path.join(common.REPO, "examples")
MAKE_LENET = os.path.join(EXAMPLES_DIR, "make_lenet.py")
FUSERMOUNT = common.FUSERMOUNT
TIMEOUT = common.TIMEOUT
XATTR_PID = "user.ckptfs.pid"
XATTR_ERROR = "user.ckptfs.error"

escape_name = ckref.escape_name
shape_str = ckref.shape_str
ITEMSIZE = ckref.ITEMSIZE

# Canonical MindSpore name for every spelling user.dtype accepts that we use.
NUMPY_ALIAS = {
    "bool": "Bool", "int8": "Int8", "int16": "Int16", "int32": "Int32",
    "int64": "Int64", "uint8": "UInt8", "uint16": "UInt16",
    "uint32": "UInt32", "uint64": "UInt64", "float16": "Float16",
    "float32": "Float32", "float64": "Float64", "bfloat16": "BFloat16",
    "complex64": "Complex64", "complex128": "Complex128",
}


# --------------------------------------------------------------------------
# fixtures

def _make_lenet_module():
    if EXAMPLES_DIR not in sys.path:
        sys.path.insert(0, EXAMPLES_DIR)
    import make_lenet  # noqa: E402
    return make_lenet


def make_lenet(out):
    """Writes a fresh LeNet checkpoint to out with examples/make_lenet.py
    (its main(), run in this process so that the reference schema is not
    compiled again) and returns out."""
    mod = _make_lenet_module()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = mod.main(["make_lenet.py", out])
    if rc:
        raise AssertionError("make_lenet.py %s failed (%r)" % (out, rc))
    return out


def lenet_params():
    """The LeNet parameters as expected-dicts (name, dtype, shape, data)."""
    mod = _make_lenet_module()
    return [dict(name=p["name"], dtype=p["dtype"], shape=tuple(p["shape"]),
                 data=bytes(p["data"])) for p in mod.lenet_params()]


def param(name, dtype, shape, data):
    if hasattr(data, "tobytes") and not isinstance(data, (bytes, bytearray)):
        data = data.tobytes()
    return dict(name=name, dtype=dtype, shape=tuple(shape), data=bytes(data))


def from_ref(params):
    """ckref.Param list -> expected-dicts."""
    return [param(p.name, p.dtype, p.shape, p.data) for p in params]


def tempdir(tc, prefix="ckptfs_wb_"):
    d = tempfile.mkdtemp(prefix=prefix)
    tc.addCleanup(shutil.rmtree, d, True)
    return d


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def resident_pages(path, size=None):
    """How many of the first size bytes' pages (default: the whole file) of
    the file at path are in the page cache (mincore of a read-only shared
    mapping).  Give size for a file in a mount: the stat could make the
    kernel drop the pages of a FUSE file whose mtime has changed."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_char_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        n = os.fstat(fd).st_size if size is None else size
        if n == 0:
            return 0
        addr = libc.mmap(None, n, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap of %s" % path)
        try:
            vec = ctypes.create_string_buffer((n + 4095) // 4096)
            if libc.mincore(addr, n, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore of %s" % path)
            return sum(c & 1 for c in vec.raw)
        finally:
            libc.munmap(addr, n)
    finally:
        os.close(fd)


def file_state(path):
    """(inode, mtime_ns, size, sha256) of path."""
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size,
            hashlib.sha256(read_bytes(path)).hexdigest())


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# --------------------------------------------------------------------------
# processes

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_pid_exit(pid, timeout):
    """Waits until process pid (not our child) has exited.  True if it did
    within timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        return common.wait_until(lambda: not pid_alive(pid), timeout)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            if p.poll(int(left * 1000) + 1):
                return True
    finally:
        os.close(fd)


def kill9(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def fusermount(*args):
    return subprocess.run([FUSERMOUNT] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=60)


def lazy_unmount(mnt):
    if common.is_mounted(mnt):
        fusermount("-uz", mnt)
        common.wait_until(lambda: not common.is_mounted(mnt), timeout=10)


def fsync_path(path):
    """open(O_RDONLY) + fsync + close.  Returns 0 or the errno."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return e.errno
    try:
        os.fsync(fd)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def guarded(fn, timeout, on_timeout, what, done="daemon killed",
            wait=30):
    """Runs fn() in a thread; if it has not returned after timeout,
    calls on_timeout() (which must unblock it, e.g. kill the daemon: done
    says what it did), waits up to wait seconds for the thread and raises
    AssertionError.  Returns fn's result or re-raises its exception."""
    box = {}

    def body():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: B902 - re-raised below
            box["e"] = e
    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        on_timeout()
        th.join(wait)
        raise AssertionError("%s did not return within %ss (%s)"
                             % (what, timeout, done))
    if "e" in box:
        raise box["e"]
    return box.get("r")


# --------------------------------------------------------------------------
# mounts

class Mounted:
    """A live ckptfs mount of `source` at `mnt` (see mount())."""

    def __init__(self, tc, source, mnt, pid, opts):
        self.tc, self.source, self.mnt, self.pid = tc, source, mnt, pid
        self.opts = opts

    def p(self, name):
        """Path in the mount of parameter `name`."""
        return os.path.join(self.mnt, escape_name(name))

    def names(self):
        return os.listdir(self.mnt)

    def commit(self, path=None):
        """fsync(2) of path (default: the mount root).  0 or the errno."""
        target = self.mnt if path is None else path
        return guarded(lambda: fsync_path(target), TIMEOUT,
                       lambda: kill9(self.pid), "fsync(%s)" % target)

    def error(self):
        return os.getxattr(self.mnt, XATTR_ERROR).decode("utf-8",
                                                          "replace")

    def mounted(self):
        return common.is_mounted(self.mnt)

    def unmount(self):
        """fusermount3 -u and wait for the daemon (and its last commit) to
        finish.  Fails the test if either does not happen.  What the daemon
        reports of that commit is kept for take_status(pid)."""
        r = unmount_reporting(self.mnt, self.pid)
        if r.returncode != 0:
            self.tc.fail("fusermount3 -u %s failed: %s" % (
                self.mnt, r.stderr.decode(errors="replace")))
        if not wait_pid_exit(self.pid, TIMEOUT):
            kill9(self.pid)
            self.tc.fail("ckptfs (pid %d) did not exit within %ss after "
                         "unmount" % (self.pid, TIMEOUT))

    def ckpt_umount(self):
        """Runs 'ckpt umount MNT'; returns common.Result."""
        return common.ckpt("umount", self.mnt)

    def kill(self):
        """kill -9 the daemon, wait for it, lazily unmount the dead mount."""
        kill9(self.pid)
        wait_pid_exit(self.pid, TIMEOUT)
        lazy_unmount(self.mnt)


def _cleanup_mount(mnt, box):
    try:
        if common.is_mounted(mnt):
            fusermount("-u", mnt)
            if common.is_mounted(mnt):
                fusermount("-uz", mnt)
                common.wait_until(lambda: not common.is_mounted(mnt), 10)
        pid = box.get("pid")
        if pid and not wait_pid_exit(pid, TIMEOUT):
            kill9(pid)
            wait_pid_exit(pid, 10)
        if pid:
            take_status(pid)   # a failed commit at unmount nobody read
    finally:
        try:
            os.rmdir(mnt)
        except OSError:
            pass


def try_mount(tc, source, *opts, cwd=None):
    """Runs ckptfs OPTS SOURCE MNT (in directory cwd if given).  Returns
    (Result, Mounted or None).  The cleanup (unmount, wait for the daemon)
    is registered first."""
    common.require_bin(tc, common.CKPTFS_BIN)
    mnt = tempfile.mkdtemp(prefix="ckptfs_mnt_")
    box = {}
    tc.addCleanup(_cleanup_mount, mnt, box)
    cmd = [common.CKPTFS_BIN] + list(opts) + [source, mnt]
    if cwd is None:
        res = common.run(cmd)
    else:
        # stderr in a file, not a pipe the daemon could keep open
        with tempfile.TemporaryFile() as ef:
            r = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=ef,
                               timeout=TIMEOUT)
            ef.seek(0)
            res = common.Result(cmd, r.returncode, b"", ef.read())
    if res.rc != 0 or not common.is_mounted(mnt):
        return res, None
    try:
        pid = int(os.getxattr(mnt, XATTR_PID))
    except OSError as e:
        tc.fail("getxattr(%s, %s) failed: %s" % (mnt, XATTR_PID, e))
    box["pid"] = pid
    return res, Mounted(tc, source, mnt, pid, opts)


def mount(tc, source, *opts, cwd=None):
    res, m = try_mount(tc, source, *opts, cwd=cwd)
    if m is None:
        tc.fail("ckptfs failed to mount %s\n%s" % (source, res.describe()))
    return m


def remount(tc, m):
    """Unmounts m (waiting for its commit) and mounts its source again with
    the same options."""
    m.unmount()
    return mount(tc, m.source, *m.opts)


# --------------------------------------------------------------------------
# files in the mount

def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def pwrite_file(path, data, off):
    fd = os.open(path, os.O_WRONLY)
    try:
        n = os.pwrite(fd, data, off)
        assert n == len(data), "short write %d of %d" % (n, len(data))
    finally:
        os.close(fd)


def setx(path, name, value):
    if isinstance(value, str):
        value = value.encode()
    os.setxattr(path, name, value)


def getx(path, name):
    return os.getxattr(path, name).decode("utf-8", "replace")


def set_meta(path, dtype=None, shape=None):
    if dtype is not None:
        setx(path, "user.dtype", dtype)
    if shape is not None:
        setx(path, "user.shape", shape if isinstance(shape, str)
             else shape_str(shape))


# --------------------------------------------------------------------------
# checking checkpoints against an expected list

def summary(params):
    return [(p["name"], p["dtype"], tuple(p["shape"]), len(p["data"]))
            for p in params]


def expected_bytes(expected, scalar_form="[]"):
    return ckref.dumps(expected, scalar_form=scalar_form)


def check_ckpt(tc, path, expected, exact=True, label=""):
    """Loads path with the reference reader and compares it with the
    expected list of dicts (name, dtype, shape, data) in order; with
    exact, the file must also equal ckref.dumps(expected) byte for byte
    (what MindSpore >= 2.3 writes, scalars with no dims)."""
    label = label or os.path.basename(path)
    raw = read_bytes(path)
    try:
        got = ckref.loads(raw, os.path.basename(path))
    except ckref.CheckpointError as e:
        tc.fail("%s: the reference reader rejects the file: %s" % (label, e))
    got_d = [param(p.name, p.dtype, p.shape, p.data) for p in got
             if p.kind == "tensor"]
    tc.assertEqual(len(got_d), len(got), "%s: unexpected map parameters"
                   % label)
    tc.assertEqual(summary(got_d), summary(expected),
                   "%s: parameters (name, dtype, shape, bytes)" % label)
    for g, e in zip(got_d, expected):
        if g["data"] != e["data"]:
            tc.fail("%s: data of %r differs at byte %d" % (
                label, e["name"], first_diff(g["data"], e["data"])))
    if exact:
        want = expected_bytes(expected)
        if raw != want:
            tc.fail("%s: file is not what MindSpore >= 2.3 writes for these "
                    "parameters (%d bytes, expected %d, first difference at "
                    "offset %d)" % (label, len(raw), len(want),
                                    first_diff(raw, want)))
    return got


def replace(expected, name, **kw):
    """Copy of expected with the fields of parameter name replaced."""
    out = []
    found = False
    for p in expected:
        if p["name"] == name:
            q = dict(p)
            q.update(kw)
            if "shape" in kw:
                q["shape"] = tuple(kw["shape"])
            if "data" in kw and not isinstance(q["data"], bytes):
                q["data"] = q["data"].tobytes()
            out.append(q)
            found = True
        else:
            out.append(p)
    if not found:
        raise KeyError(name)
    return out


def remove(expected, name):
    out = [p for p in expected if p["name"] != name]
    if len(out) == len(expected):
        raise KeyError(name)
    return out


def find(expected, name):
    for p in expected:
        if p["name"] == name:
            return p
    raise KeyError(name)


def stray_files(directory, keep):
    """Names in directory other than those in keep."""
    return sorted(set(os.listdir(directory)) - set(keep))


def errno_name(e):
    return errno.errorcode.get(e, str(e)) if e else "success"


# --------------------------------------------------------------------------
# small filesystems

def mount_tmpfs(tc, size="3m"):
    """Mounts a tmpfs of the given size on a new directory; unmounted (and
    removed) at cleanup, after the ckptfs mounts made later."""
    d = tempfile.mkdtemp(prefix="ckptfs_tmpfs_")
    tc.addCleanup(_cleanup_tmpfs, d)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755"
                        % size, "tmpfs", d], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        tc.fail("mount -t tmpfs failed: %s" % r.stderr.decode(
            errors="replace"))
    return d


def _cleanup_tmpfs(d):
    if common.is_mounted(d):
        r = subprocess.run(["umount", d], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", d], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        os.rmdir(d)
    except OSError:
        pass


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def environ(**kw):
    """Temporarily sets environment variables (for the daemon we start)."""
    old = {k: os.environ.get(k) for k in kw}
    try:
        for k, v in kw.items():
            os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_STATUS = {}  # pid -> what its daemon reported of the unmount commit


def unmount_reporting(mnt, pid):
    """fusermount3 -u MNT, listening on the daemon's status socket as 'ckpt
    umount' does (src/common/status.c): the line it sends after its last
    commit is kept for take_status(pid), unless it is "OK".  Returns the
    fusermount CompletedProcess."""
    sock = None
    try:
        path = os.getxattr(mnt, "user.ckptfs.status").decode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(path)
    except OSError:
        if sock:
            sock.close()
        sock = None
    r = fusermount("-u", mnt)
    if sock:
        out = b""
        try:
            while True:
                chunk = sock.recv(65536) if r.returncode == 0 else b""
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        sock.close()
        line = out.decode("utf-8", "replace").strip()
        if line and line != "OK":
            _STATUS[pid] = line
    return r


def take_status(pid):
    """What the daemon pid reported of a failed commit at unmount (see
    unmount_reporting); None if nothing failed or nobody listened."""
    return _STATUS.pop(pid, None)
