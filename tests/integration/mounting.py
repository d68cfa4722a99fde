#!/usr/bin/python3
"""The one process and mount harness of the integration tests.

  run(cmd, ...)              a command, output in temporary files, under a
                             deadline; returns a Result
  ckpt(*args, **kw)          run() of the ckpt CLI
  try_mount(tc, source, *opts, **kw) -> (Result, Mount or None)
  mount(tc, source, *opts, **kw)     -> Mount (fails the test otherwise)
  Mount                      a live mount: .mnt, .pid, .source, .opts, .res,
                             .log, .proc; p(), names(), commit(), error(),
                             mounted(), run(), ckpt_umount(), unmount(),
                             wait_exit(), kill(), remount(), ...

Every mount registers its cleanup (tc.addCleanup) before ckptfs runs, so
nothing stays mounted whatever the test does.  The cleanup never hangs
and never sleeps a fixed time: if the mount does not answer, its FUSE
connection is aborted (/sys/fs/fuse/connections/N/abort: every request
waiting on it fails with ENOTCONN, so no thread of the test and no
process stays in state D); then fusermount3 -u, -uz, wait for the daemon
to exit (killed if it does not), remove the mountpoint if it was made
here.  Every step through a mount (commit, listing, getxattr, fusermount,
a tool run in the mount) runs under a deadline; when it passes, the
connection is aborted, the daemon killed and AssertionError raised.

The limits of a mount (seconds) are keywords of try_mount()/mount():
  timeout  the ckptfs command itself (daemonized) or until it has mounted
           (foreground)
  step     one step through the mount (fsync, listdir, getxattr)
  tool     a command run in the mount (Mount.run, ckpt umount, fusermount)
  exit     the daemon's exit after unmount
all CKPT_TEST_TIMEOUT (120) by default.

Other keywords: mnt (an existing mountpoint instead of a new temporary
directory), cmd_mnt (what the command line says instead of mnt, e.g. "."
with cwd), cwd, env (the whole environment, see with_env()), stdin_data,
pass_fds, preexec_fn, key (an object whose mount_opts() returns the -o
key options and run keywords, e.g. test_crypto's KeyPass), foreground
(ckptfs -f as our child, stdout and stderr in the file log), wrapper (a
command prefix, e.g. valgrind).
"""

import errno
import os
import re
import select
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

TIMEOUT = common.TIMEOUT
FUSERMOUNT = common.FUSERMOUNT
XATTR_PID = "user.ckptfs.pid"
XATTR_ERROR = "user.ckptfs.error"
XATTR_STATUS = "user.ckptfs.status"
CONNECTIONS = "/sys/fs/fuse/connections"
PIPE_MAX = 65536   # stdin_data goes through a pipe written before the exec


# --------------------------------------------------------------------------
# processes

class Result:
    """What a command did: cmd, rc (None: still running), out, err; mnt is
    the mountpoint for a ckptfs run by try_mount()."""

    def __init__(self, cmd, rc, out, err, mnt=None):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        self.mnt = mnt

    @property
    def text(self):
        return self.out.decode("utf-8", "surrogateescape")

    @property
    def outtext(self):
        return self.out.decode("utf-8", "replace")

    @property
    def errtext(self):
        return self.err.decode("utf-8", "replace")

    def describe(self):
        s = "%s -> exit %s\n" % (" ".join(os.fsdecode(c) for c in self.cmd),
                                 self.rc)
        if self.out.strip():
            s += "stdout: %s\n" % self.outtext.strip()[:1500]
        return s + "stderr: %s" % self.errtext.strip()[:2000]


def _fsencode(cmd):
    return [os.fsencode(c) if isinstance(c, str) else c for c in cmd]


def _stdin(stdin_data):
    """(stdin for Popen, fd to close after it): a pipe holding stdin_data
    (closed for writing, so the reader sees its end), else /dev/null."""
    if stdin_data is None:
        return subprocess.DEVNULL, None
    if len(stdin_data) > PIPE_MAX:
        raise ValueError("stdin_data of %d bytes does not fit a pipe"
                         % len(stdin_data))
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, stdin_data)
    finally:
        os.close(wfd)
    return rfd, rfd


def _conns(conns):
    return conns() if callable(conns) else conns


def run(cmd, timeout=None, out_path=None, stdin_data=None, pass_fds=(),
        env=None, cwd=None, preexec_fn=None, conns=()):
    """Runs cmd with stdout/stderr in temporary files (not pipes, so a
    daemon that inherits them cannot make us wait); stdout goes to
    out_path instead if given (then .out is b'').  stdin is /dev/null, or
    a pipe holding stdin_data.  On timeout (default CKPT_TEST_TIMEOUT):
    aborts the FUSE connections conns (a list, or a callable returning
    one), kills the command and raises AssertionError."""
    timeout = TIMEOUT if timeout is None else timeout
    cmd = _fsencode(cmd)
    with tempfile.TemporaryFile() as ef:
        of = open(out_path, "wb") if out_path else tempfile.TemporaryFile()
        try:
            stdin, rfd = _stdin(stdin_data)
            try:
                proc = subprocess.Popen(cmd, stdin=stdin, stdout=of,
                                        stderr=ef, cwd=cwd, env=env,
                                        pass_fds=pass_fds,
                                        preexec_fn=preexec_fn)
            finally:
                if rfd is not None:
                    os.close(rfd)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                abort_conns(_conns(conns))
                proc.kill()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                raise AssertionError("timed out after %ss (hung): %s" % (
                    timeout, " ".join(os.fsdecode(c) for c in cmd)))
            ef.seek(0)
            err = ef.read()
            out = b""
            if not out_path:
                of.seek(0)
                out = of.read()
        finally:
            of.close()
    return Result(cmd, rc, out, err)


def ckpt(*args, **kw):
    """run() of the ckpt CLI with args."""
    return run([common.CKPT_BIN] + list(args), **kw)


def with_env(changes):
    """A copy of os.environ with changes (a value None removes it)."""
    env = dict(os.environ)
    for k, v in (changes or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def pid_alive(pid):
    """False once pid has exited (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
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


def deadline(fn, what, timeout, conns=()):
    """guarded() whose timeout aborts the FUSE connections conns (a list or
    a callable returning one)."""
    return guarded(fn, timeout, lambda: abort_conns(_conns(conns)), what,
                   done="hung: FUSE connection aborted", wait=10)


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


# --------------------------------------------------------------------------
# mounts and FUSE connections

def unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mountinfo():
    """[dict(dev, mnt, fstype)] of /proc/self/mountinfo."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 10 or "-" not in parts:
                    continue
                sep = parts.index("-")
                out.append(dict(dev=parts[2],
                                mnt=unescape_mountinfo(parts[4]),
                                fstype=parts[sep + 1]))
    except OSError:
        pass
    return out


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    return any(e["mnt"] == mnt for e in mountinfo())


def fuse_conns(mnt):
    """Connection numbers (the minor device numbers) of the FUSE mounts at
    mnt, from /proc/self/mountinfo: nothing here goes through the mount."""
    mnt = os.path.realpath(mnt)
    return [int(e["dev"].split(":")[1]) for e in mountinfo()
            if e["mnt"] == mnt and e["fstype"].startswith("fuse")]


def _fusectl_mounted():
    return any(e["mnt"] == CONNECTIONS and e["fstype"] == "fusectl"
               for e in mountinfo())


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


def fusermount(*args, timeout=TIMEOUT, conns=()):
    """fusermount3 ARGS under a deadline (aborting conns); a Result."""
    return run([FUSERMOUNT] + list(args), timeout=timeout, conns=conns)


def lazy_unmount(mnt):
    if is_mounted(mnt):
        fusermount("-uz", mnt)
        common.wait_until(lambda: not is_mounted(mnt), timeout=10)


_STATUS = {}  # pid -> what its daemon reported of the unmount commit


def unmount_reporting(mnt, pid, timeout=TIMEOUT, conns=()):
    """fusermount3 -u MNT, listening on the daemon's status socket as 'ckpt
    umount' does (src/common/status.c): the line it sends after its last
    commit is kept for take_status(pid), unless it is "OK".  Returns the
    fusermount Result."""
    sock = None
    try:
        path = deadline(lambda: os.getxattr(mnt, XATTR_STATUS),
                        "getxattr(%s)" % XATTR_STATUS, timeout,
                        conns).decode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError:
        if sock:
            sock.close()
        sock = None
    r = fusermount("-u", mnt, timeout=timeout, conns=conns)
    if sock:
        out = b""
        try:
            while True:
                chunk = sock.recv(65536) if r.rc == 0 else b""
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


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Mount:
    """A ckptfs mount of source at mnt (absolute), made by try_mount()."""

    def __init__(self, tc, source, mnt, opts, kw):
        self.tc, self.source, self.mnt = tc, source, mnt
        self.opts = tuple(opts)     # the options as given
        self.kw = kw                # the keywords as given (for remount)
        self.timeout = kw.get("timeout") or TIMEOUT
        self.step_timeout = kw.get("step") or TIMEOUT
        self.tool_timeout = kw.get("tool") or TIMEOUT
        self.exit_timeout = kw.get("exit") or TIMEOUT
        self.pid = None             # the daemon (user.ckptfs.pid)
        self.proc = None            # foreground: our child
        self.log = None             # foreground: its stdout and stderr
        self.res = None             # daemonized: the ckptfs Result
        self.conns = []
        self.forgotten = False

    # paths and steps
    def p(self, name):
        """Path in the mount of parameter name."""
        return os.path.join(self.mnt, common.escape_name(name))

    def unhang(self):
        """What a deadline does: abort the connection, kill the daemon."""
        abort_conns(self.conns or fuse_conns(self.mnt))
        if self.pid:
            kill9(self.pid)

    def step(self, fn, what, timeout=None):
        """fn() under the step deadline (unhang() when it passes)."""
        return guarded(fn, self.step_timeout if timeout is None else timeout,
                       self.unhang, what,
                       done="hung: FUSE connection aborted, daemon killed",
                       wait=10)

    def names(self):
        return self.step(lambda: os.listdir(self.mnt), "listdir(mnt)")

    def commit(self, path=None, timeout=None):
        """fsync(2) of path (default: the mount root).  0 or the errno."""
        target = self.mnt if path is None else path
        return self.step(lambda: fsync_path(target), "fsync(%s)" % target,
                         timeout)

    def error(self, fallback=False):
        """user.ckptfs.error of the root; with fallback, a failing getxattr
        gives a text saying so instead of raising."""
        try:
            return self.step(lambda: os.getxattr(self.mnt, XATTR_ERROR),
                             "getxattr(%s)" % XATTR_ERROR).decode(
                                 "utf-8", "replace")
        except OSError as e:
            if fallback:
                return "(no %s: %s)" % (XATTR_ERROR, e)
            raise

    def error_text(self):
        """user.ckptfs.error ('' if there is none)."""
        try:
            return self.error()
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOTSUP):
                return ""
            raise

    def status_path(self):
        return self.step(lambda: os.getxattr(self.mnt, XATTR_STATUS),
                         "getxattr(%s)" % XATTR_STATUS).decode()

    def mounted(self):
        return is_mounted(self.mnt)

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid)

    def stderr(self):
        """What ckptfs wrote to stderr (daemonized: before it detached)."""
        if self.proc is not None:
            return read_text(self.log)
        return self.res.errtext if self.res else ""

    def log_text(self):
        return read_text(self.log) if self.log else ""

    # commands
    def run(self, cmd, timeout=None, **kw):
        """run() of a command that works in the mount: on timeout the
        connection is aborted."""
        return run(cmd, timeout=self.tool_timeout if timeout is None
                   else timeout, conns=lambda: self.conns or
                   fuse_conns(self.mnt), **kw)

    def ckpt_umount(self, *extra, timeout=None, **kw):
        """'ckpt umount [EXTRA] MNT'; a Result."""
        return self.run([common.CKPT_BIN, "umount"] + list(extra) +
                        [self.mnt], timeout=timeout, **kw)

    # the end
    def unmount(self):
        """fusermount3 -u (listening on the status socket, see
        unmount_reporting) and wait for the daemon and its last commit
        (wait_exit).  Fails the test if either does not happen.  Returns
        the exit status of a foreground daemon, else None."""
        r = unmount_reporting(self.mnt, self.pid, self.tool_timeout,
                              self.conns)
        if r.rc != 0:
            self.tc.fail("fusermount3 -u %s failed: %s" % (self.mnt,
                                                           r.errtext))
        return self.wait_exit()

    def wait_exit(self):
        """Waits until the daemon has exited; fails the test (after
        aborting the connection and killing it) if it does not within the
        exit limit.  Returns its exit status if it is our child."""
        if self.proc is not None:
            try:
                rc = self.proc.wait(self.exit_timeout)
            except subprocess.TimeoutExpired:
                self.unhang()
                self.proc.wait()
                self.tc.fail("ckptfs -f (pid %d) did not exit within %ss"
                             % (self.pid, self.exit_timeout))
            return rc
        if not wait_pid_exit(self.pid, self.exit_timeout):
            self.unhang()
            self.tc.fail("ckptfs (pid %d) did not exit within %ss "
                         "(connection aborted, daemon killed)"
                         % (self.pid, self.exit_timeout))
        return None

    def kill_and_wait(self, sig):
        """Sends sig to the daemon; wait_exit()."""
        os.kill(self.pid, sig)
        return self.wait_exit()

    def kill(self):
        """kill -9 the daemon, wait for it, lazily unmount the dead mount."""
        kill9(self.pid)
        if self.proc is not None:
            self.proc.wait()
        else:
            wait_pid_exit(self.pid, TIMEOUT)
        lazy_unmount(self.mnt)

    def forget(self):
        """Once the daemon is known to have exited, the cleanup no longer
        waits for (or kills) its pid: after many mounts the number may
        belong to another process by the time the cleanups run."""
        self.forgotten = True

    def remount(self):
        """unmount() and mount the source again with the same options."""
        self.unmount()
        return mount(self.tc, self.source, *self.opts, **self.kw)


def _responsive(mnt, timeout):
    box = {}

    def probe():   # a readdir (the first batch is enough) and a statfs
        try:
            with os.scandir(mnt) as it:
                next(it, None)
            os.statvfs(mnt)
            box["ok"] = True
        except OSError:
            pass
    th = threading.Thread(target=probe, daemon=True)
    th.start()
    th.join(timeout)
    return not th.is_alive()


def cleanup(m, remove_dir):
    """Unmounts whatever is still mounted at m.mnt without ever hanging;
    waits for the daemon (kills it if it does not exit)."""
    mnt = m.mnt
    try:
        conns = list(m.conns) + fuse_conns(mnt)
        probe = max(3.0, min(m.step_timeout / 2, 10.0))
        if is_mounted(mnt) and not _responsive(mnt, probe):
            abort_conns(conns)
        for _ in range(3):
            if not is_mounted(mnt):
                break
            for how in ("-u", "-uz"):
                try:
                    subprocess.run([FUSERMOUNT, how, mnt],
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL,
                                   timeout=m.step_timeout)
                except subprocess.TimeoutExpired:
                    abort_conns(conns)
                if not is_mounted(mnt):
                    break
            common.wait_until(lambda: not is_mounted(mnt), 5)
        if m.proc is not None:
            try:
                m.proc.wait(m.exit_timeout)
            except subprocess.TimeoutExpired:
                abort_conns(conns)
                m.proc.kill()
                m.proc.wait()
        elif m.pid and not m.forgotten and \
                not wait_pid_exit(m.pid, m.exit_timeout):
            abort_conns(conns)
            kill9(m.pid)
            wait_pid_exit(m.pid, 10)
        if m.pid:
            take_status(m.pid)   # a failed commit at unmount nobody read
    finally:
        if remove_dir:
            try:
                os.rmdir(mnt)
            except OSError:
                pass


def try_mount(tc, source, *opts, **kw):
    """Runs ckptfs OPTS SOURCE MNT (see the keywords at the top of this
    file).  Returns (Result, Mount or None); the Result's mnt is the
    mountpoint also when the mount failed.  The cleanup is registered
    before ckptfs runs."""
    bad = set(kw) - {"mnt", "cmd_mnt", "cwd", "env", "stdin_data",
                     "pass_fds", "preexec_fn", "key", "foreground", "log",
                     "wrapper", "timeout", "step", "tool", "exit"}
    if bad:
        raise TypeError("try_mount: unknown keywords %s" % sorted(bad))
    common.require_bin(tc, common.CKPTFS_BIN)
    mnt = kw.get("mnt")
    made = mnt is None
    if made:
        mnt = tempfile.mkdtemp(prefix="ckptfs_mnt_")
    mnt = os.path.abspath(mnt)
    m = Mount(tc, source, mnt, opts, kw)
    tc.addCleanup(cleanup, m, made)
    run_kw = dict(cwd=kw.get("cwd"), env=kw.get("env"),
                  pass_fds=kw.get("pass_fds", ()),
                  preexec_fn=kw.get("preexec_fn"),
                  stdin_data=kw.get("stdin_data"))
    key_opts = []
    if kw.get("key") is not None:
        o, more = kw["key"].mount_opts()
        key_opts = ["-o", o]
        run_kw.update(more)
    cmd = list(kw.get("wrapper", ())) + [common.CKPTFS_BIN] + \
        (["-f"] if kw.get("foreground") else []) + key_opts + list(opts) + \
        [source, kw.get("cmd_mnt") or mnt]
    if kw.get("foreground"):
        res = _start_foreground(m, cmd, kw.get("log"), run_kw)
    else:
        res = run(cmd, timeout=m.timeout, conns=lambda: fuse_conns(mnt),
                  **run_kw)
    res.mnt = mnt
    m.res = res
    # a foreground daemon that mounted is still running (rc None)
    if res.rc != (None if kw.get("foreground") else 0) or \
            not is_mounted(mnt):
        return res, None
    m.conns = fuse_conns(mnt)
    try:
        m.pid = int(m.step(lambda: os.getxattr(mnt, XATTR_PID),
                           "getxattr(%s)" % XATTR_PID))
    except OSError as e:
        tc.fail("getxattr(%s, %s) failed: %s" % (mnt, XATTR_PID, e))
    if m.proc is not None:
        tc.assertEqual(m.pid, m.proc.pid, "user.ckptfs.pid is not the "
                       "daemon we started")
    return res, m


def _start_foreground(m, cmd, log, run_kw):
    """Starts cmd (ckptfs -f ...) as our child, output appended to log (a
    new temporary file if None); waits until it has mounted or exited.
    Returns a Result (rc None while it runs, err what it wrote)."""
    if log is None:
        fd, log = tempfile.mkstemp(prefix="ckptfs_log_")
        os.close(fd)
        m.tc.addCleanup(os.unlink, log)
    m.log = log
    stdin, rfd = _stdin(run_kw.pop("stdin_data"))
    try:
        with open(log, "ab") as lf:
            m.proc = subprocess.Popen(_fsencode(cmd), stdin=stdin,
                                      stdout=lf, stderr=lf, **run_kw)
    finally:
        if rfd is not None:
            os.close(rfd)
    if not common.wait_until(lambda: is_mounted(m.mnt) or
                             m.proc.poll() is not None, m.timeout):
        m.tc.fail("ckptfs -f did not mount within %ss: %s" % (
            m.timeout, m.log_text()))
    return Result(_fsencode(cmd), m.proc.poll(), b"",
                  os.fsencode(m.log_text()))


def mount(tc, source, *opts, **kw):
    """try_mount() that fails the test unless it mounted."""
    res, m = try_mount(tc, source, *opts, **kw)
    if m is None:
        if res.rc == 0:
            tc.fail("ckptfs exited 0 but %s is not mounted\n%s"
                    % (res.mnt, res.describe()))
        tc.fail("ckptfs failed to mount %s%s\n%s" % (
            source, " (%r)" % kw["key"] if kw.get("key") is not None else "",
            res.describe()))
    return m
