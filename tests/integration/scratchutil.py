#!/usr/bin/python3
"""Helpers of test_paths, test_scratch and test_smaller (issue 13).

Mounts made here may hang on a daemon bug (a mount over its own
directory, staging or output inside the mountpoint): they are made by
mounting.py with the short LIMITS below (every step through a mount under
a deadline that aborts the FUSE connection, see mounting.py).

Builds on wbutil.py: the LeNet example and its base class, check_ckpt,
file_state.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import wbutil as W  # noqa: E402
import wire  # noqa: E402

# seconds one step through a mount (a read, an fsync, a commit, the mount
# itself) may take before the test calls it hung.  A LeNet commit takes
# milliseconds, also under ASan.
STEP = float(os.environ.get("CKPT_STEP_TIMEOUT", "6"))
# seconds an external tool (vim, rsync, sed, tar, ckpt umount) may take
TOOL = float(os.environ.get("CKPT_TOOL_TIMEOUT", "20"))
# the limits of the mounts of these suites: mounting.mount(..., **LIMITS)
LIMITS = dict(timeout=STEP * 2, step=STEP, tool=TOOL, exit=STEP * 2)
NOBODY = 65534


# --------------------------------------------------------------------------
# processes

def as_nobody():
    """preexec_fn: the child runs as uid/gid 65534 (nobody)."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def require_tool(tc, name):
    """Fails (never skips) when an external tool is missing."""
    p = shutil.which(name)
    if not p:
        tc.fail("%s is not installed (Debian package %s); the test needs "
                "the real tool" % (name, {"vim": "vim", "rsync": "rsync",
                                          "setfattr": "attr"}.get(name,
                                                                  name)))
    return p


def fd_links(pid):
    """{fd: readlink} of the open descriptors of process pid."""
    out = {}
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            out[int(n)] = os.readlink(os.path.join(d, n))
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------
# checkpoints with any bytes as names (the protobuf runtime refuses to put
# bytes that are not UTF-8 into a string field; the TensorProto comes from
# the runtime and only the outer framing is written, by wire.raw_record)

def write_raw(path, params):
    """params: [(name bytes, dtype, shape, data)]."""
    with open(path, "wb") as f:
        for p in params:
            f.write(wire.raw_record(*p))
    return path


# --------------------------------------------------------------------------
# a base class with a fresh LeNet per test

class LenetCase(W.LenetBase):
    DIR_PREFIX = "ckptfs_i13_"
    MOUNT_KW = LIMITS

    def assertUmountOK(self, m):
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, "ckpt umount: " + r.describe())
        self.assertFalse(m.mounted(), "still mounted after ckpt umount")
        return r


def tree_state(d):
    """{name: (type, size, sha/target)} of the entries of d (no follow)."""
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.lstat(p)
        if os.path.islink(p):
            out[n] = ("link", os.readlink(p), st.st_uid)
        elif os.path.isdir(p):
            out[n] = ("dir", st.st_ino)
        else:
            out[n] = ("file", W.file_state(p), st.st_mode, st.st_uid)
    return out

