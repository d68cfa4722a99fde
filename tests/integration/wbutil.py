#!/usr/bin/python3
"""Shared helpers of the write-back tests (test_writeback, test_random_ops,
test_crash, test_diskfull): the LeNet example, expected-dicts checked
against the reference reader/writer tests/ref/ckref.py, files in a mount,
small file systems.  Builds on common.py (binaries, fixtures); mounting,
unmounting and every step under a deadline are mounting.py's.
"""

import contextlib
import errno
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402  (common put tests/ref on sys.path)

EXAMPLES_DIR = os.path.join(common.REPO, "examples")
MAKE_LENET = os.path.join(EXAMPLES_DIR, "make_lenet.py")
TIMEOUT = common.TIMEOUT

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


def fs_dir(tc, prefix):
    """A new directory for checkpoints under test: in $CKPT_TEST_FS_DIR
    when it is set (test_reflink runs suites with it on an XFS image),
    else as tempdir(); removed at cleanup."""
    top = os.environ.get("CKPT_TEST_FS_DIR")
    if not top:
        return tempdir(tc, prefix)
    d = tempfile.mkdtemp(prefix=prefix, dir=top)
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
    """The first offset where a and b differ (the shorter length if one is
    a prefix of the other)."""
    n = min(len(a), len(b))
    step = 1 << 16
    for off in range(0, n, step):
        if a[off:off + step] != b[off:off + step]:
            for i in range(off, min(off + step, n)):
                if a[i] != b[i]:
                    return i
    return n


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
    if M.is_mounted(d):
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


# --------------------------------------------------------------------------
# a base class with a fresh LeNet per test

class LenetBase(unittest.TestCase):
    """self.src: a fresh LeNet checkpoint in self.dir, self.base its
    expected-dicts; mount() mounts it with the keywords MOUNT_KW."""
    maxDiff = 6000
    DIR_PREFIX = "ckptfs_wb_"
    MOUNT_KW = {}

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = tempdir(self, self.DIR_PREFIX)
        self.src = make_lenet(os.path.join(self.dir, "lenet.ckpt"))
        self.base = lenet_params()

    def mount(self, *opts, source=None, **kw):
        return M.mount(self, source or self.src, *opts,
                       **dict(self.MOUNT_KW, **kw))

    def assertCommitOK(self, m, path=None, what="commit"):
        e = m.commit(path)
        if e:
            self.fail("%s: fsync failed with %s: %s" % (
                what, errno_name(e), m.error()))

    def assertUntouched(self, before, path=None, what=""):
        after = file_state(path or self.src)
        self.assertEqual(after, before, "%s: the checkpoint changed (inode, "
                         "mtime_ns, size, sha256)" % what)

    def assertOSError(self, err, fn, *args, what=""):
        with self.assertRaises(OSError, msg=what) as cm:
            fn(*args)
        self.assertEqual(errno_name(cm.exception.errno),
                         errno_name(err), "%s: %s" % (what, cm.exception))
