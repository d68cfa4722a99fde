#!/usr/bin/python3
"""Helpers of test_paths, test_scratch and test_smaller (issue 13).

Mounts made here may hang on a daemon bug (a mount over its own
directory, staging or output inside the mountpoint): every step that goes
through a mount runs under a deadline, and when the deadline passes the
mount's FUSE connection is aborted through
/sys/fs/fuse/connections/N/abort, which makes every request waiting on it
fail with ENOTCONN, so no thread of the test and no process (the daemon,
vim, rsync, ...) stays in state D.  The cleanup of every mount does the
same before unmounting if the mount does not answer, then unmounts
(fusermount3 -u, then -uz), waits for the daemon to exit (kills it if it
does not) and removes the mountpoint if it made it.

Builds on common.py and wbutil.py (not modified): binaries, the LeNet
example, check_ckpt, file_state.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import wire  # noqa: E402

# seconds one step through a mount (a read, an fsync, a commit, the mount
# itself) may take before the test calls it hung.  A LeNet commit takes
# milliseconds, also under ASan.
STEP = float(os.environ.get("CKPT_STEP_TIMEOUT", "6"))
# seconds an external tool (vim, rsync, sed, tar, ckpt umount) may take
TOOL = float(os.environ.get("CKPT_TOOL_TIMEOUT", "20"))
FUSERMOUNT = common.FUSERMOUNT
XATTR_PID = "user.ckptfs.pid"
XATTR_ERROR = "user.ckptfs.error"
NOBODY = 65534
CONNECTIONS = "/sys/fs/fuse/connections"


# --------------------------------------------------------------------------
# FUSE connections

def _mountinfo():
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 10:
                    continue
                sep = parts.index("-")
                out.append(dict(dev=parts[2],
                                mnt=common._unescape_mountinfo(parts[4]),
                                fstype=parts[sep + 1]))
    except OSError:
        pass
    return out


def fuse_conns(mnt):
    """Connection numbers (the minor device numbers) of the FUSE mounts at
    mnt, from /proc/self/mountinfo: nothing here goes through the mount."""
    mnt = os.path.realpath(mnt)
    return [int(e["dev"].split(":")[1]) for e in _mountinfo()
            if e["mnt"] == mnt and e["fstype"].startswith("fuse")]


def _fusectl_mounted():
    return any(e["mnt"] == CONNECTIONS and e["fstype"] == "fusectl"
               for e in _mountinfo())


def abort_conns(conns):
    """Aborts the FUSE connections conns (gone ones are skipped).  If the
    fuse control file system is not mounted (as on these machines), it is
    mounted for the abort and unmounted again, so that no 'fuse' line is
    left in /proc/mounts."""
    conns = list(conns)
    if not conns:
        return
    mounted_here = False
    if not _fusectl_mounted():
        r = subprocess.run(["mount", "-t", "fusectl", "fusectl",
                            CONNECTIONS], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        mounted_here = r.returncode == 0
    try:
        for c in conns:
            try:
                with open(os.path.join(CONNECTIONS, str(c), "abort"),
                          "w") as f:
                    f.write("1")
            except OSError:
                pass
    finally:
        if mounted_here:
            subprocess.run(["umount", CONNECTIONS], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)


def leftover_fuse_mounts():
    """Lines of /proc/mounts of FUSE mounts (the suites leave none)."""
    with open("/proc/mounts") as f:
        return [line for line in f
                if line.split(" ")[2].startswith("fuse")]


def deadline(fn, what, timeout=None, conns=()):
    """Runs fn() in a thread.  If it has not returned after timeout
    seconds, aborts the FUSE connections conns (a callable returning them,
    or a list), waits for the thread and raises AssertionError naming
    `what`.  Returns fn's result or re-raises its exception."""
    timeout = STEP if timeout is None else timeout
    return W.guarded(
        fn, timeout,
        lambda: abort_conns(conns() if callable(conns) else conns), what,
        done="hung: FUSE connection aborted", wait=10)


def fsync_path(path):
    """open + fsync + close; 0 or the errno."""
    return W.fsync_path(path)


# --------------------------------------------------------------------------
# processes

class Res:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    @property
    def errtext(self):
        return self.err.decode("utf-8", "replace")

    @property
    def outtext(self):
        return self.out.decode("utf-8", "replace")

    def describe(self):
        return "%s -> exit %s\nstdout: %s\nstderr: %s" % (
            " ".join(os.fsdecode(c) for c in self.cmd), self.rc,
            self.outtext.strip()[:1500], self.errtext.strip()[:2000])


def run(cmd, timeout=None, conns=(), cwd=None, env=None, stdin_data=None,
        pass_fds=(), preexec_fn=None):
    """Runs cmd with stdout/stderr in temporary files (a daemon that keeps
    them open cannot make us wait).  On timeout: aborts conns (callable or
    list), kills the process and raises AssertionError."""
    timeout = TOOL if timeout is None else timeout
    cmd = [os.fsencode(c) if isinstance(c, str) else c for c in cmd]
    with tempfile.TemporaryFile() as of, tempfile.TemporaryFile() as ef, \
            tempfile.TemporaryFile() as inf:
        if stdin_data is not None:
            inf.write(stdin_data)
            inf.seek(0)
            stdin = inf
        else:
            stdin = subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=of, stderr=ef,
                                cwd=cwd, env=env, pass_fds=pass_fds,
                                preexec_fn=preexec_fn)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            abort_conns(conns() if callable(conns) else conns)
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            raise AssertionError("did not finish within %ss: hung: %s" % (
                timeout, " ".join(os.fsdecode(c) for c in cmd)))
        of.seek(0)
        ef.seek(0)
        return Res(cmd, rc, of.read(), ef.read())


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
# mounts

class Mount:
    """A ckptfs mount: mnt is the absolute mountpoint."""

    def __init__(self, tc, source, mnt, pid, conns, opts, res):
        self.tc, self.source, self.mnt, self.pid = tc, source, mnt, pid
        self.conns, self.opts, self.res = conns, opts, res

    def p(self, name):
        return os.path.join(self.mnt, ckref.escape_name(name))

    def step(self, fn, what, timeout=None):
        return deadline(fn, what, timeout, self.conns)

    def names(self):
        return self.step(lambda: os.listdir(self.mnt), "listdir(mnt)")

    def commit(self, path=None):
        """fsync of path (default: the mount root) under a deadline; 0 or
        the errno."""
        target = self.mnt if path is None else path
        return self.step(lambda: fsync_path(target), "fsync(%s)" % target)

    def error(self):
        return self.step(lambda: os.getxattr(self.mnt, XATTR_ERROR),
                         "getxattr(user.ckptfs.error)").decode(
                             "utf-8", "replace")

    def mounted(self):
        return common.is_mounted(self.mnt)

    def run(self, cmd, timeout=None, **kw):
        """Runs a tool that works in the mount (abort on timeout)."""
        return run(cmd, timeout=timeout, conns=self.conns, **kw)

    def ckpt_umount(self, *extra):
        return self.run([common.CKPT_BIN, "umount"] + list(extra) +
                        [self.mnt])

    def unmount(self):
        """fusermount3 -u and wait for the daemon (its last commit) to
        exit, under deadlines.  Fails the test if that does not happen."""
        r = self.run([FUSERMOUNT, "-u", self.mnt])
        if r.rc != 0:
            self.tc.fail("fusermount3 -u %s failed: %s" % (self.mnt,
                                                           r.errtext))
        if not W.wait_pid_exit(self.pid, STEP * 2):
            abort_conns(self.conns)
            W.kill9(self.pid)
            self.tc.fail("ckptfs (pid %d) did not exit within %ss after "
                         "unmount (connection aborted)" % (self.pid,
                                                          STEP * 2))


def _responsive(mnt):
    box = {}

    def probe():
        try:
            os.listdir(mnt)
            os.statvfs(mnt)
            box["ok"] = True
        except OSError:
            pass
    th = threading.Thread(target=probe, daemon=True)
    th.start()
    th.join(3)
    return not th.is_alive()


def cleanup_mount(mnt, box, remove_dir):
    """Unmounts whatever is still mounted at mnt without ever hanging."""
    try:
        conns = list(box.get("conns") or []) + fuse_conns(mnt)
        if common.is_mounted(mnt) and not _responsive(mnt):
            abort_conns(conns)
        for _ in range(3):
            if not common.is_mounted(mnt):
                break
            try:
                subprocess.run([FUSERMOUNT, "-u", mnt],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=STEP)
            except subprocess.TimeoutExpired:
                abort_conns(conns)
            if common.is_mounted(mnt):
                try:
                    subprocess.run([FUSERMOUNT, "-uz", mnt],
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=STEP)
                except subprocess.TimeoutExpired:
                    abort_conns(conns)
                common.wait_until(lambda: not common.is_mounted(mnt), 5)
        pid = box.get("pid")
        if pid and not W.wait_pid_exit(pid, STEP * 2):
            abort_conns(conns)
            W.kill9(pid)
            W.wait_pid_exit(pid, 10)
        if pid:
            W.take_status(pid)  # the old status files of a failed commit
    finally:
        if remove_dir:
            try:
                os.rmdir(mnt)
            except OSError:
                pass


def try_mount(tc, source, *opts, mnt=None, cmd_mnt=None, cwd=None,
              env=None, stdin_data=None, pass_fds=(), timeout=None):
    """Runs ckptfs OPTS SOURCE MNT (cmd_mnt is what the command line says,
    default mnt; mnt defaults to a new temporary directory).  Returns
    (Res, Mount or None).  The cleanup is registered before mounting."""
    common.require_bin(tc, common.CKPTFS_BIN)
    made = mnt is None
    if made:
        mnt = tempfile.mkdtemp(prefix="ckptfs_mnt_")
    mnt = os.path.abspath(mnt)
    box = {}
    tc.addCleanup(cleanup_mount, mnt, box, made)
    cmd = [common.CKPTFS_BIN] + list(opts) + [source, cmd_mnt or mnt]
    box["conns"] = []
    res = run(cmd, timeout=timeout if timeout is not None else STEP * 2,
              conns=lambda: fuse_conns(mnt), cwd=cwd, env=env,
              stdin_data=stdin_data, pass_fds=pass_fds)
    if res.rc != 0 or not common.is_mounted(mnt):
        return res, None
    conns = fuse_conns(mnt)
    box["conns"] = conns
    try:
        pid = int(deadline(lambda: os.getxattr(mnt, XATTR_PID),
                           "getxattr(user.ckptfs.pid)", conns=conns))
    except OSError as e:
        tc.fail("getxattr(%s, %s) failed: %s" % (mnt, XATTR_PID, e))
    box["pid"] = pid
    return res, Mount(tc, source, mnt, pid, conns, opts, res)


def mount(tc, source, *opts, **kw):
    res, m = try_mount(tc, source, *opts, **kw)
    if m is None:
        tc.fail("ckptfs failed to mount %s\n%s" % (source, res.describe()))
    return m


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

class LenetCase(unittest.TestCase):
    maxDiff = 6000

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.dir = W.tempdir(self, "ckptfs_i13_")
        self.src = W.make_lenet(os.path.join(self.dir, "lenet.ckpt"))
        self.base = W.lenet_params()

    def mount(self, *opts, source=None, **kw):
        return mount(self, source or self.src, *opts, **kw)

    def assertCommitOK(self, m, path=None, what="commit"):
        e = m.commit(path)
        if e:
            self.fail("%s: fsync failed with %s: %s" % (
                what, W.errno_name(e), m.error()))

    def assertUntouched(self, before, path=None, what=""):
        after = W.file_state(path or self.src)
        self.assertEqual(after, before, "%s: the checkpoint changed (inode, "
                         "mtime_ns, size, sha256)" % what)

    def assertOSError(self, err, fn, *args, what=""):
        with self.assertRaises(OSError, msg=what) as cm:
            fn(*args)
        self.assertEqual(W.errno_name(cm.exception.errno),
                         W.errno_name(err), "%s: %s" % (what, cm.exception))

    def assertUmountOK(self, m):
        r = m.ckpt_umount()
        self.assertEqual(r.rc, 0, "ckpt umount: " + r.describe())
        self.assertFalse(m.mounted(), "still mounted after ckpt umount")
        return r


def errno_name(e):
    return W.errno_name(e)


def file_state(path):
    return W.file_state(path)


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

