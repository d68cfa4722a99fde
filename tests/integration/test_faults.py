#!/usr/bin/python3
"""I/O errors and disk full at every write, fsync and rename of a commit.

The daemon runs in the foreground (`ckptfs -f`, started here with Popen) with
LD_PRELOAD=tests/fault/faultshim.c, an interposition library that makes the
N-th call of a kind (pwrite, copy_file_range, fsync, fchmod, linkat,
renameat2, openat/open with O_TMPFILE or O_CREAT, ftruncate, memfd_create,
ioctl FICLONE, ...) fail with a chosen errno (on XFS, where test_reflink
runs the commit faults, a failed FICLONE must fall back to the plain
writer and the commit succeed); the test rewrites its control file before
every trial and reads back which fault fired and how many calls of each kind
an operation made (see the comment at the top of faultshim.c).  Calls on
/dev/fuse, pipes, sockets and the standard streams are never counted or
failed.

The library comes from $CKPT_FAULTSHIM (set by ctest); without it, it is
compiled here with gcc into a temporary directory (a missing compiler fails
the test, it never skips).

Commit faults (plain, CRC, AES-GCM, -o output= and no-O_TMPFILE mounts of
the LeNet example).  A dry run of an edit set (full overwrite of one
tensor, a partial write into another, delete the parameter added last time
and add a new one, rename one, reshape one) learns how many calls of each
kind a commit makes.  Then for every kind K, every index i up to that count
(at most 30: beyond that the first 25 and the last 5) and each of EIO and
ENOSPC: make the edits again, arm "K i ERR", fsync the mount root.  If
the fault fired, fsync must fail with ERR (or succeed with the complete
new checkpoint, if the call did not matter); after a failure:

  * the checkpoint is byte-identical to before (same inode), nothing new in
    its directory (nor in the daemon's $TMPDIR);
  * the mount shows every pending edit (names in order, bytes read past the
    page cache, user.dtype, user.shape); the daemon is alive;
  * getxattr user.ckptfs.error on the root names the error;
  * disarmed, fsync succeeds, the file is exactly ckref.dumps() of the
    pending parameters (decrypted first for AES-GCM, with a fresh CRC
    trailer for -o crc), and user.ckptfs.error is empty again.

Also "K 1+ ERR" (every call of K fails), "any N ENOSPC" (the N-th wrapped
call, whatever its kind) and SHORT writes / EINTR, which must be absorbed.

Safetensors (test_safetensors*, StConfig): the same sweeps on a MindSpore
2.7-style file (crc_num, an Int4 marker, a big tensor copied unchanged),
edited by StEditor (the edit set above, a 0-d Int64, user.metadata.* set
and removed); the expected state is a stmodel.StState and every commit
must be exactly its serializer output (stref), read by both of stref's
readers; the mount must show the pending tensors and metadata.
TestUnmountFaultsSafetensors: the unmount faults below on such a mount
(the recovery file is the pending state's serializer output, without
crc_num).

Staging faults: the first write to a parameter copies it into a staging file
(open O_TMPFILE or memfd_create, copy_file_range, ftruncate, pwrite).  For a
partial write, a full overwrite from offset 0, a truncation to 0 (O_TRUNC)
and to a shorter size, an append, a new file, and a write to an already
staged parameter, every call is failed in turn: the operation returns that
errno or succeeds; the mount then shows exactly the old (or new) content;
a later partial write and a commit (no fault) give exactly the expected
checkpoint, so a failed operation can have lost nothing.

Unmount faults: a fault armed while `fusermount3 -u` runs makes the final
commit fail: the original stays byte-identical and the pending tree is
saved as NAME.recovery-*.ckpt (checked with the reference reader), named in
the status file for `ckpt umount`; when every write fails, nothing is left
behind and the status says the changes could not be saved.  `ckpt umount`
with an armed fault exits 1 and keeps the mount; disarmed, it succeeds.

bfloat16 stored as float32 is converted in memory when staged: short
writes and EINTR of that copy must be retried, errors reported (a fresh
mount per trial).  Apart from faults: a deleted parameter kept open may
pin the checkpoint it reads from, but commits must not keep every older
version open (each one is a checkpoint's worth of disk or memory).

The daemon's $TMPDIR is a private directory on the disk, the checkpoints
live on a private tmpfs (fsync is free there, so ~600 trials take ~20 s);
-o output= writes to the disk.  CKPT_FAULT_VERBOSE=1 prints the calls each
operation makes and the faults that were not reached or were absorbed;
CKPT_FAULT_TRACE=1 adds the calls of a failed trial to its report.

Every trial is counted; the module prints one summary line, e.g.
"fault trials: 563 (ENOSPC 253, EIO 220, EINTR 45, SHORT 45), all passed".
Failures are collected per test (every trial runs) and reported together.
"""

import collections
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import gen_safetensors as G  # noqa: E402
import stmodel as SM  # noqa: E402
import stref  # noqa: E402

SHIM_SRC = os.path.join(common.REPO, "tests", "fault", "faultshim.c")
NAME = "model.ckpt"
ERRS = ("EIO", "ENOSPC")
CAP = 30                 # at most this many indices per call kind
TIMEOUT = W.TIMEOUT
MAX_PROBLEMS_SHOWN = 40

TALLY = collections.Counter()     # trials by injected error
FAILED = collections.Counter()    # failed trials by test
NOT_REACHED = []                  # armed faults the operation never hit
ABSORBED = []                     # fired, and the operation succeeded
VERBOSE = os.environ.get("CKPT_FAULT_VERBOSE", "0") not in ("", "0")
T0 = time.monotonic()


# --------------------------------------------------------------------------
# the shim

_SHIM = {}


def shim_path(tc):
    """The interposition library: $CKPT_FAULTSHIM, else compiled here."""
    env = os.environ.get("CKPT_FAULTSHIM")
    if env:
        if not os.path.isfile(env):
            tc.fail("CKPT_FAULTSHIM=%s does not exist" % env)
        return env
    if "path" not in _SHIM:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if not gcc:
            tc.fail("CKPT_FAULTSHIM is not set and there is no gcc to build "
                    "%s" % SHIM_SRC)
        d = tempfile.mkdtemp(prefix="ckptfs_faultshim_")
        _SHIM["dir"] = d
        out = os.path.join(d, "libfaultshim.so")
        r = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall",
                            "-Wextra", "-o", out, SHIM_SRC, "-ldl",
                            "-lpthread"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            tc.fail("building the fault shim failed:\n%s"
                    % r.stdout.decode(errors="replace"))
        _SHIM["path"] = out
    return _SHIM["path"]


def tearDownModule():
    if "dir" in _SHIM:
        shutil.rmtree(_SHIM["dir"], True)
    n = sum(TALLY.values())
    parts = ", ".join("%s %d" % (k, TALLY[k]) for k in
                      sorted(TALLY, key=lambda k: (-TALLY[k], k)))
    nf = sum(FAILED.values())
    status = "all passed" if not nf else "%d FAILED (%s)" % (
        nf, ", ".join("%s: %d" % kv for kv in sorted(FAILED.items())))
    extra = ""
    if NOT_REACHED:
        extra += "; %d armed faults not reached" % len(NOT_REACHED)
    if ABSORBED:
        extra += "; %d absorbed (fired, operation succeeded)" % len(ABSORBED)
    if VERBOSE:
        for what, lst in (("not reached", NOT_REACHED),
                          ("absorbed", ABSORBED)):
            for x in lst:
                sys.stderr.write("  %s: %s\n" % (what, x))
    sys.stderr.write("\nfault trials: %d (%s), %s%s; %.1f s\n" % (
        n, parts, status, extra, time.monotonic() - T0))


def indices(n):
    """1..n, or when n > CAP the first CAP - 5 and the last 5 (the last
    calls are the interesting ones: a CRC trailer, the final block)."""
    if n <= CAP:
        return list(range(1, n + 1))
    return list(range(1, CAP - 4)) + list(range(n - 4, n + 1))


def fast_dir(tc, prefix):
    """A new directory on a tmpfs of this test (fsync costs nothing
    there, so hundreds of commits stay fast), or in $CKPT_TEST_FS_DIR
    when that is set (test_reflink: on XFS); removed at cleanup."""
    if os.environ.get("CKPT_TEST_FS_DIR"):
        return W.fs_dir(tc, prefix)
    if not getattr(tc, "_fault_tmpfs", None):
        tc._fault_tmpfs = W.mount_tmpfs(tc, "256m")
    return tempfile.mkdtemp(prefix=prefix, dir=tc._fault_tmpfs)


# --------------------------------------------------------------------------
# a daemon under the shim

class Stats:
    def __init__(self, seq, counts, fired, trace, direct=(0, 0)):
        self.seq, self.counts, self.fired, self.trace = (seq, counts, fired,
                                                         trace)
        # pwrites on O_DIRECT descriptors: (went through, misaligned)
        self.direct = direct

    def kinds(self):
        return {k: n for k, n in self.counts.items() if n and k != "any"}


def parse_stats(text):
    seq, counts, fired, trace = None, {}, [], []
    direct = (0, 0)
    end = None
    gen = None
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "gen":
            gen = f[1]
        elif f[0] == "seq":
            seq = f[1]
        elif f[0] == "count":
            counts[f[1]] = int(f[2])
        elif f[0] == "fired":
            fired.append((f[1], int(f[2]), f[3]))
        elif f[0] == "trace":
            trace.append(" ".join(f[1:]))
        elif f[0] == "direct":
            direct = (int(f[1]), int(f[2]))
        elif f[0] == "end":
            end = f[1]
    if gen is None or end != gen:
        return None
    return Stats(seq, counts, fired, trace, direct)


class FaultMount:
    """ckptfs -f SOURCE MNT under the shim (a mounting.Mount in .m, made
    again by remount() on the same mountpoint); unmounted at cleanup."""

    def __init__(self, tc, source, *opts):
        self.tc, self.source, self.opts = tc, source, list(opts)
        # control and statistics on the tmpfs (rewritten at every call);
        # $TMPDIR of the daemon (fallback for staging and recovery files)
        # on the disk, another file system than the checkpoint's
        self.work = fast_dir(tc, "ctl_")
        self.ctl = os.path.join(self.work, "ctl")
        self.stats_path = os.path.join(self.work, "stats")
        self.tmpdir = W.tempdir(tc, "ckptfs_fault_tmp_")
        self.logpath = os.path.join(self.work, "log")
        self.seq = 0
        self.arm("")
        self.mnt = tempfile.mkdtemp(prefix="ckptfs_mnt_")
        tc.addCleanup(self._rmdir)   # after the mounts' cleanups
        self._start()

    def _start(self):
        env = dict(os.environ, LD_PRELOAD=shim_path(self.tc),
                   CKPT_FAULT_FILE=self.ctl,
                   CKPT_FAULT_STATS=self.stats_path, TMPDIR=self.tmpdir)
        # a sanitizer build: the shim comes before libasan, on purpose
        asan = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
            "verify_asan_link_order=0"
        env.pop("CKPT_FAULT_TRACE", None)
        if os.environ.get("CKPT_FAULT_TRACE"):
            env["CKPT_FAULT_TRACE"] = "1"
        self.m = M.mount(self.tc, self.source, *self.opts, mnt=self.mnt,
                         foreground=True, env=env, log=self.logpath,
                         timeout=15)
        self.tc.addCleanup(self._disarm_if_alive)  # before its unmount
        self.proc, self.pid = self.m.proc, self.m.pid

    def _rmdir(self):
        try:
            os.rmdir(self.mnt)
        except OSError:
            pass

    def _disarm_if_alive(self):
        if self.m.alive():
            try:
                self.disarm()
            except OSError:
                pass

    # control
    def arm(self, rules):
        self.seq += 1
        tmp = self.ctl + ".new"
        with open(tmp, "w") as f:
            f.write("seq %d\n%s\n" % (self.seq, rules))
        os.rename(tmp, self.ctl)

    def disarm(self):
        self.arm("")

    def stats(self):
        """Statistics of the calls since the last arm()."""
        for _ in range(200):
            try:
                with open(self.stats_path) as f:
                    s = parse_stats(f.read())
            except FileNotFoundError:
                s = Stats(None, {}, [], [])
            if s is not None:
                if s.seq != str(self.seq):   # no call since arm()
                    return Stats(str(self.seq), {}, [], [])
                return s
            time.sleep(0.005)
        self.tc.fail("unreadable fault statistics %s" % self.stats_path)

    # the daemon
    def alive(self):
        return self.m.alive()

    def log(self):
        return self.m.log_text()

    def p(self, name):
        return self.m.p(name)

    def commit(self, path=None):
        return self.m.commit(path)

    def error(self):
        return self.m.error()

    def fds(self):
        """[(fd, link)] of the daemon's regular files."""
        out = []
        d = "/proc/%d/fd" % self.pid
        for fd in os.listdir(d):
            p = os.path.join(d, fd)
            try:
                if os.path.isfile(p):
                    out.append((int(fd), os.readlink(p)))
            except OSError:
                pass
        return sorted(out)

    def remount(self):
        """Unmounts (committing) and mounts the source again."""
        rc = self.unmount()
        self.tc.assertEqual(rc, 0, "ckptfs exited %s at unmount: %s" % (
            rc, self.log()[-2000:]))
        self._start()

    def unmount(self):
        """fusermount3 -u and wait for the daemon; returns its exit code.
        What it reports of its last commit is kept for M.take_status."""
        return self.m.unmount()


# --------------------------------------------------------------------------
# checking

def read_uncached(path):
    """The bytes of a file in the mount, past the kernel's page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        out = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            out.append(b)
        return b"".join(out)
    finally:
        os.close(fd)


def view_problems(fm, expected, what):
    """Differences between the mount and the expected parameters."""
    probs = []
    try:
        names = os.listdir(fm.mnt)
    except OSError as e:
        return ["%s: listing the mount failed: %s" % (what, e)]
    want = [W.escape_name(p["name"]) for p in expected]
    if names != want:
        probs.append("%s: the mount lists %s, expected %s" % (
            what, names, want))
    for p in expected:
        path = fm.p(p["name"])
        try:
            data = read_uncached(path)
            dt = W.getx(path, "user.dtype")
            sh = W.getx(path, "user.shape")
        except OSError as e:
            probs.append("%s: %s: %s" % (what, p["name"], e))
            continue
        if data != p["data"]:
            zeros = data == bytes(len(data))
            probs.append("%s: %s reads %d bytes%s, expected %d bytes (first "
                         "difference at %d)" % (
                             what, p["name"], len(data),
                             " of zeros" if zeros and data else "",
                             len(p["data"]), W.first_diff(data, p["data"])))
        if dt != p["dtype"] or sh != W.shape_str(p["shape"]):
            probs.append("%s: %s is %s %s, expected %s %s" % (
                what, p["name"], dt, sh, p["dtype"],
                W.shape_str(p["shape"])))
    return probs


def errname(e):
    return W.errno_name(e)


class Config:
    """How a mount is made and how its checkpoint is checked."""

    def __init__(self, name, opts=(), crc=False, key=None, output=False,
                 base_rule=""):
        self.name, self.opts, self.crc = name, list(opts), crc
        self.key, self.output = key, output
        # armed in the dry runs and with every trial (e.g. to take the
        # path of a file system without O_TMPFILE)
        self.base_rule = base_rule

    def prepare(self, tc):
        """Makes the source checkpoint; returns (source, target)."""
        d = fast_dir(tc, "src_")
        src = os.path.join(d, NAME)
        W.make_lenet(src)
        opts = list(self.opts)
        if self.key:
            opts += self.encrypt(tc, src)
        target = src
        if self.output:
            # on the disk, not the tmpfs: another file system
            od = W.tempdir(tc, "ckptfs_fault_out_")
            target = os.path.join(od, "out.ckpt")
            opts += ["-o", "output=" + target]
        self.mount_opts = opts
        return src, target

    def encrypt(self, tc, src, keydir=None):
        """Encrypts the plain checkpoint src in place with a new key file
        in keydir (default: beside it); returns the mount options that
        read it."""
        d = os.path.dirname(src)
        plain = os.path.join(d, "plain.ckpt")
        os.rename(src, plain)
        self.keyfile = os.path.join(keydir or d, "model.key")
        with open(self.keyfile, "wb") as f:
            f.write(bytes(range(32)))
        r = M.ckpt("convert", "--out-enc-mode", self.key,
                   "--out-keyfile", self.keyfile, plain, src)
        tc.assertEqual(r.rc, 0, r.describe())
        os.unlink(plain)
        return ["-o", "enc_mode=%s,keyfile=%s" % (self.key, self.keyfile)]

    def plain_bytes(self, tc, path):
        if not self.key:
            return W.read_bytes(path)
        d = fast_dir(tc, "dec_")
        out = os.path.join(d, "plain.ckpt")
        r = M.ckpt("convert", "--enc-mode", self.key, "--keyfile",
                        self.keyfile, "--decrypt", path, out)
        if r.rc != 0:
            raise AssertionError("cannot decrypt %s: %s" % (path,
                                                           r.describe()))
        b = W.read_bytes(out)
        shutil.rmtree(d, True)
        return b

    def check(self, tc, path, expected, label, exact=True):
        """Problems of the checkpoint at path against expected ([] = ok);
        exact: byte for byte what MindSpore writes for them."""
        try:
            raw = self.plain_bytes(tc, path)
            got = ckref.loads(raw, os.path.basename(path))
        except (AssertionError, ckref.CheckpointError, OSError) as e:
            return ["%s: the reference reader rejects %s: %s" % (
                label, path, e)]
        got_d = W.from_ref(got)
        probs = []
        if W.summary(got_d) != W.summary(expected):
            probs.append("%s: %s holds %s, expected %s" % (
                label, path, W.summary(got_d), W.summary(expected)))
        else:
            for g, e in zip(got_d, expected):
                if g["data"] != e["data"]:
                    zeros = g["data"][W.first_diff(g["data"], e["data"]):]
                    probs.append("%s: %s: data of %r differs at byte %d%s" % (
                        label, path, e["name"],
                        W.first_diff(g["data"], e["data"]),
                        " (zeros from there on)"
                        if zeros == bytes(len(zeros)) else ""))
        want = ckref.dumps(expected, crc=self.crc) if exact else raw
        if not probs and raw != want:
            probs.append("%s: %s is not what MindSpore writes (%d bytes, "
                         "expected %d, first difference at %d)" % (
                             label, path, len(raw), len(want),
                             W.first_diff(raw, want)))
        return probs

    def load(self, tc, path):
        return W.from_ref(ckref.loads(self.plain_bytes(tc, path), path))

    def editor(self):
        return Editor()

    def view(self, fm, expected, what):
        return view_problems(fm, expected, what)


# --------------------------------------------------------------------------
# the edit set of the commit trials

def f32(rng, n):
    return rng.standard_normal(n).astype("<f4").tobytes()


class Editor:
    """Applies the same kind of edits to the mount and to the model, so
    that every commit makes the same calls."""

    def __init__(self):
        self.k = 0

    def edit(self, fm, exp):
        self.k += 1
        k = self.k
        rng = np.random.default_rng(1000 + k)
        # a full overwrite from offset 0 (no O_TRUNC)
        new = f32(rng, 84)
        W.pwrite_file(fm.p("fc2.bias"), new, 0)
        exp = W.replace(exp, "fc2.bias", data=new)
        # a partial write
        old = W.find(exp, "conv2.weight")["data"]
        off = (k * 64) % (len(old) - 16)
        chunk = f32(rng, 4)
        W.pwrite_file(fm.p("conv2.weight"), chunk, off)
        exp = W.replace(exp, "conv2.weight",
                        data=old[:off] + chunk + old[off + 16:])
        # delete the parameter added last time, add a new one
        for p in list(exp):
            if p["name"].startswith("extra."):
                os.unlink(fm.p(p["name"]))
                exp = W.remove(exp, p["name"])
        name = "extra.%d" % k
        data = f32(rng, 10)
        W.write_file(fm.p(name), data)
        W.setx(fm.p(name), "user.dtype", "float32")
        exp = exp + [W.param(name, "Float32", (10,), data)]
        # rename one (it keeps its place)
        a, b = "fc3.bias", "fc3.bias.renamed"
        if not any(p["name"] == a for p in exp):
            a, b = b, a
        os.rename(fm.p(a), fm.p(b))
        exp = [dict(p, name=b) if p["name"] == a else p for p in exp]
        # reshape one
        shape = (6, 25) if W.find(exp, "conv1.weight")["shape"] != (6, 25) \
            else (6, 1, 5, 5)
        W.setx(fm.p("conv1.weight"), "user.shape", W.shape_str(shape))
        exp = W.replace(exp, "conv1.weight", shape=shape)
        return exp


# --------------------------------------------------------------------------
# the same on a safetensors mount

ST_NAME = "model.safetensors"


class StConfig(Config):
    """A safetensors mount of what MindSpore 2.7 writes (metadata with an
    Int4 marker and crc_num); the expected state is a stmodel.StState and
    a commit must write exactly its serializer output."""

    def prepare(self, tc):
        d = fast_dir(tc, "st_")
        src = os.path.join(d, ST_NAME)
        # plus a big tensor nobody edits: copied from the old file
        big = dict(name="big.weight", dtype="Float32", shape=(256, 1024),
                   data=f32(np.random.default_rng(5), 256 * 1024))
        W.write_file(src, stref.mindspore_save(
            G.ms_params() + [big], SM.OD(remove_redundancy="False"),
            crc=True))
        self.mount_opts = list(self.opts)
        return src, src

    def check(self, tc, path, expected, label, exact=True):
        return SM.check_file(path, expected.bytes(), "%s: %s" % (
            label, path))

    def load(self, tc, path):
        return SM.StState.of(path)

    def editor(self):
        return StEditor()

    def view(self, fm, expected, what):
        return st_view_problems(fm, expected, what)


class StEditor:
    """Editor's edit set on the safetensors file, and the metadata."""

    def __init__(self):
        self.k = 0

    def edit(self, fm, exp):
        self.k += 1
        k = self.k
        rng = np.random.default_rng(2000 + k)
        exp = exp.copy()
        new = f32(rng, 4)                         # a full overwrite
        W.pwrite_file(fm.p("conv1.bias"), new, 0)
        exp.set("conv1.bias", data=new)
        old = exp.t["moments.conv1.weight"][2]    # a partial write
        off = (k * 16) % (len(old) - 16)
        chunk = f32(rng, 4)
        W.pwrite_file(fm.p("moments.conv1.weight"), chunk, off)
        exp.set("moments.conv1.weight",
                data=old[:off] + chunk + old[off + 16:])
        for name in [n for n in exp.t if n.startswith("extra.")]:
            os.unlink(fm.p(name))                 # last time's new one
            exp.remove(name)
        name = "extra.%d" % k
        data = f32(rng, 10)
        W.write_file(fm.p(name), data)
        W.setx(fm.p(name), "user.dtype", "F32")
        exp.add(name, "Float32", (10,), data)
        a, b = "fc.weight", "fc.weight.renamed"   # a rename
        if a not in exp.t:
            a, b = b, a
        os.rename(fm.p(a), fm.p(b))
        exp.rename(a, b)
        shape = (12, 4) if exp.t["conv1.weight"][1] != (12, 4) \
            else (4, 3, 2, 2)                     # a reshape
        W.setx(fm.p("conv1.weight"), "user.shape", W.shape_str(shape))
        exp.set("conv1.weight", shape=shape)
        v = np.int64(k % 50).tobytes()            # 0-d: crc_num's quirk
        W.pwrite_file(fm.p("epoch_num"), v, 0)
        exp.set("epoch_num", data=v)
        os.setxattr(fm.mnt, "user.metadata.note", ("edit %d" % k).encode())
        exp.set_meta("note", "edit %d" % k)
        if k % 2:
            os.setxattr(fm.mnt, "user.metadata.other", b"x")
            exp.set_meta("other", "x")
        elif exp.meta.find("other"):
            os.removexattr(fm.mnt, "user.metadata.other")
            exp.meta.remove("other")
        return exp


def st_view_problems(fm, expected, what):
    """Differences between a safetensors mount and the expected StState:
    the listing (as a set), every tensor's bytes (past the page cache),
    user.dtype and user.shape, the root's user.metadata.* (crc_num's value
    is the file's, recomputed by the commit: only its place counts)."""
    probs = []
    try:
        names = sorted(os.listdir(fm.mnt))
        meta = SM.root_meta(fm.mnt)
    except OSError as e:
        return ["%s: listing the mount failed: %s" % (what, e)]
    want = sorted(W.escape_name(n) for n in expected.t)
    if names != want:
        probs.append("%s: the mount lists %s, expected %s" % (
            what, names, want))
    for name, (dtype, shape, data) in expected.t.items():
        path = fm.p(name)
        try:
            got = read_uncached(path)
            dt = W.getx(path, "user.dtype")
            sh = W.getx(path, "user.shape")
        except OSError as e:
            probs.append("%s: %s: %s" % (what, name, e))
            continue
        if got != data:
            probs.append("%s: %s reads %d bytes, expected %d (first "
                         "difference at %d)" % (what, name, len(got),
                                                len(data),
                                                W.first_diff(got, data)))
        if dt != dtype or sh != W.shape_str(shape):
            probs.append("%s: %s is %s %s, expected %s %s" % (
                what, name, dt, sh, dtype, W.shape_str(shape)))
    wmeta = expected.meta.shown()
    if list(meta) != list(wmeta) or any(
            meta[k] != v for k, v in wmeta.items() if k != SM.CRC_KEY):
        probs.append("%s: user.metadata.* of the root %r, expected %r" % (
            what, list(meta.items()), list(wmeta.items())))
    return probs


# --------------------------------------------------------------------------

class FaultBase(unittest.TestCase):

    def setUp(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        self.problems = []
        self.trials = 0

    def trial_failed(self, label, probs):
        self.problems.append("%s:\n    %s" % (label, "\n    ".join(probs)))
        FAILED[self._testMethodName] += 1

    def count(self, err):
        TALLY[err] += 1
        self.trials += 1

    def finish(self):
        if self.problems:
            shown = self.problems[:MAX_PROBLEMS_SHOWN]
            more = len(self.problems) - len(shown)
            self.fail("%d of %d fault trials failed:\n%s%s" % (
                len(self.problems), self.trials, "\n".join(shown),
                "\n... and %d more" % more if more else ""))

    @staticmethod
    def dir_state(d):
        return sorted(os.listdir(d))

    def target_state(self, path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return (st.st_ino, W.read_bytes(path))


class TestCommitFaults(FaultBase):
    """Every call of a commit fails in turn."""

    def run_sweep(self, cfg, rules=None, errs=ERRS):
        src, target = cfg.prepare(self)
        fm = FaultMount(self, src, *cfg.mount_opts)
        self.cfg, self.fm, self.target, self.src = cfg, fm, target, src
        self.src_dir = os.path.dirname(src)
        self.src_bytes = W.read_bytes(src) if cfg.output else None
        self.ed = cfg.editor()
        self.exp = cfg.load(self, src)
        # dry runs: learn the calls of a commit of this edit set (from the
        # second: the first may differ, e.g. the first commit with
        # -o output reads another file system)
        for _ in range(2):
            pending = self.ed.edit(fm, self.exp)
            fm.arm(cfg.base_rule)
            rc = fm.commit()
            st = fm.stats()
            fm.disarm()
            self.assertEqual(rc, 0, "dry run commit: %s: %s" % (
                errname(rc), fm.error() if fm.alive() else fm.log()))
            probs = cfg.check(self, target, pending, "dry run")
            self.assertEqual(probs, [], "dry run")
            self.exp = pending
        kinds = st.kinds()
        self.calls = kinds
        if VERBOSE:
            sys.stderr.write("[%s] a commit makes %s\n" % (cfg.name, kinds))
        self.assertTrue(kinds, "the shim saw no call of the commit")
        musts = ["openat", "fsync", "renameat2", "fchmod"]
        if not cfg.base_rule:
            musts.append("linkat")     # names the O_TMPFILE
        for must in musts:
            self.assertIn(must, kinds, "a commit makes no %s call? %s"
                          % (must, kinds))
        self.ckpt_paths = {src, target}
        self.assertEqual(self.settled_stray_fds(), [], "after the dry runs")
        if rules is None:
            rules = []
            for kind in sorted(kinds):
                for i in indices(kinds[kind]):
                    if re.search(r"^%s %d " % (kind, i), cfg.base_rule,
                                 re.M):
                        continue   # the base rule's call
                    for err in errs:
                        rules.append(("%s %d %s" % (kind, i, err), err))
        elif callable(rules):
            rules = rules(kinds, st.counts.get("any", 0))
        for rule, err in rules:
            self.commit_trial(rule, err)
            if not fm.alive():
                self.trial_failed(rule, ["the daemon died: " + fm.log()])
                break
        self.finish()
        return fm

    def commit_trial(self, rule, err):
        fm, cfg, target = self.fm, self.cfg, self.target
        absorb = err in ("SHORT", "EINTR")
        self.count(err)
        label = "[%s] %s" % (cfg.name, rule)
        before = self.target_state(target)
        tdir = os.path.dirname(target)
        dir_before = self.dir_state(tdir)
        try:
            pending = self.ed.edit(fm, self.exp)
        except OSError as e:
            self.trial_failed(label, ["editing the mount failed: %s" % e])
            self.resync()
            return
        fm.arm(cfg.base_rule + "\n" + rule)
        rc = fm.commit()
        st = fm.stats()
        fm.disarm()
        probs = []
        fired = [f for f in st.fired
                 if "%s %d %s" % f not in cfg.base_rule]
        if not fired:
            NOT_REACHED.append(label)
        if absorb and rc == 0 and st.counts.get("openat", 0) != \
                self.calls.get("openat", 0):
            probs.append("the commit was made %d times: fsync returned %s "
                         "and the caller retried" % (
                             st.counts.get("openat", 0), err))
        if rc != 0:
            if not fired:
                probs.append("fsync failed with %s but no fault fired" %
                             errname(rc))
            elif absorb:
                probs.append("a %s fault must be absorbed, fsync failed "
                             "with %s" % (err, errname(rc)))
            elif errname(rc) != err:
                probs.append("fsync failed with %s, the fault was %s" % (
                    errname(rc), err))
            after = self.target_state(target)
            try:
                msg = fm.error() if fm.alive() else ""
            except OSError:
                msg = ""
            # documented (docs/editing.md): when only the fsync of the
            # directory after the rename fails, the new checkpoint is
            # complete and in place, and the error says exactly that
            dir_unsynced = "directory could not be synced" in msg
            if after != before and dir_unsynced and before is not None \
                    and after is not None and after[0] != before[0]:
                probs += cfg.check(self, target, pending,
                                   "in place after the directory fsync "
                                   "failed")
            elif after != before:
                if after is None:
                    probs.append("the checkpoint is gone after the failed "
                                 "commit")
                elif before is not None and after[0] != before[0]:
                    cp = cfg.check(self, target, pending, "replaced")
                    probs.append(
                        "the checkpoint was replaced (new inode) although "
                        "fsync failed with %s%s" % (
                            errname(rc), "; it is the complete new one"
                            if not cp else "; and it is not even the new "
                            "one: " + "; ".join(cp)))
                else:
                    probs.append("the checkpoint changed in place although "
                                 "fsync failed")
            if self.dir_state(tdir) != dir_before:
                probs.append("files left beside the checkpoint: %s" %
                             (sorted(set(self.dir_state(tdir)) -
                                     set(dir_before)),))
            if cfg.output and W.read_bytes(self.src) != self.src_bytes:
                probs.append("-o output: the source changed")
            if os.listdir(fm.tmpdir):
                probs.append("files left in $TMPDIR: %s" %
                             os.listdir(fm.tmpdir))
            if not fm.alive():
                probs.append("the daemon died: " + fm.log()[-2000:])
                self.trial_failed(label, probs)
                return
            try:
                msg = fm.error()
            except OSError as e:
                msg = ""
                probs.append("getxattr user.ckptfs.error: %s" % e)
            if not msg:
                probs.append("user.ckptfs.error is empty after a failed "
                             "commit")
            elif not absorb and os.strerror(getattr(errno, err)) not in msg:
                probs.append("user.ckptfs.error does not name the error "
                             "(%s): %r" % (os.strerror(getattr(errno, err)),
                                           msg))
            probs += cfg.view(fm, pending, "after the failed commit")
            # disarmed, the same commit must now work
            rc2 = fm.commit()
            if rc2 != 0:
                probs.append("fsync after disarming failed with %s: %s" % (
                    errname(rc2), fm.error() if fm.alive() else fm.log()))
        elif fired and not absorb:
            # the call did not matter for the new file (e.g. reopening it
            # afterwards): the file must be complete (checked below), and
            # a tree that could not move to it stays dirty; the next commit
            # writes it again and moves on
            ABSORBED.append(label)
            probs += cfg.check(self, target, pending, "after the absorbed "
                               "fault")
            rc2 = fm.commit()
            if rc2 != 0:
                probs.append("the commit after an absorbed fault failed with "
                             "%s" % errname(rc2))
        # now the commit has succeeded (or the trial has failed)
        probs += cfg.check(self, target, pending, "after the commit")
        if self.dir_state(tdir) != sorted({os.path.basename(target)} |
                                          set(dir_before)):
            probs.append("directory after the commit: %s" %
                         self.dir_state(tdir))
        if fm.alive():
            probs += cfg.view(fm, pending, "after the commit")
            try:
                if fm.error():
                    probs.append("user.ckptfs.error not cleared by a "
                                 "successful commit: %r" % fm.error())
            except OSError as e:
                probs.append("getxattr user.ckptfs.error: %s" % e)
        if os.listdir(fm.tmpdir):
            probs.append("files left in $TMPDIR: %s" % os.listdir(fm.tmpdir))
        if fm.alive():
            stray = self.settled_stray_fds()
            if stray:
                probs.append("after the successful commit the daemon still "
                             "holds %s" % stray)
        if probs:
            if st.trace:
                probs.append("calls: " + ", ".join(st.trace))
            self.trial_failed(label + " (fired: %s)" % (
                ", ".join("%s %d %s" % f for f in fired) or "nothing"), probs)
            self.resync()
        else:
            self.exp = pending

    def settled_stray_fds(self, timeout=5.0):
        """stray_fds() once the daemon has finished the commit it answered:
        the replaced checkpoint (renamed to the temporary name by the
        exchange, then unlinked) is closed just *after* the fsync's answer
        (ckpt_tree_drop_replaced), so for a moment it shows as
        '.NAME.ckptfs-tmp-* (deleted)'. Polls until nothing is left; a
        leaked file stays and is returned after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.stray_fds()
            if not out or time.monotonic() > deadline:
                return out
            time.sleep(0.01)

    def stray_fds(self):
        """Files the daemon holds open other than checkpoints (any
        version) and its log: after a successful commit there must be none
        (no staging file, no unnamed output file of a failed commit).
        An encrypted mount keeps serving the edits it committed from their
        staging memfds (the tree is not reopened after a commit), so those
        stay: at most one per parameter."""
        out = []
        staged = 0
        for fd, link in self.fm.fds():
            if link in (self.fm.logpath, "/dev/null") or \
                    link.startswith("/memfd:ckptfs-plain"):
                continue
            if self.cfg.key and link.startswith("/memfd:ckptfs-stage"):
                staged += 1
                if staged <= len(self.exp):
                    continue
            if any(link in (p, p + " (deleted)") for p in self.ckpt_paths):
                continue
            out.append("fd %s -> %s" % (fd, link))
        return out

    def resync(self):
        """After a failed trial: continue from what is really there."""
        fm = self.fm
        if fm.alive():
            fm.disarm()
            if fm.commit() != 0:
                return
        try:
            self.exp = self.cfg.load(self, self.target)
        except Exception:  # noqa: BLE001 - keep going with the old model
            pass

    # ---- the sweeps -------------------------------------------------------

    def test_plain(self):
        self.run_sweep(Config("plain"))

    def test_crc(self):
        self.run_sweep(Config("crc", ["-o", "crc"], crc=True))

    def test_aes_gcm(self):
        self.run_sweep(Config("AES-GCM", key="AES-GCM"))

    def test_safetensors(self):
        """A safetensors commit (tensors and user.metadata.* edited, a
        crc_num to recompute): the original untouched and the edits kept
        after every failure; the next commit writes exactly the
        serializer's bytes."""
        self.run_sweep(StConfig("safetensors"))

    def test_safetensors_persistent(self):
        def rules(kinds, nany):
            return [("%s 1+ %s" % (k, e), e) for k in sorted(kinds)
                    for e in ERRS]
        self.run_sweep(StConfig("safetensors persistent"), rules=rules)

    def test_safetensors_short_and_eintr(self):
        def rules(kinds, nany):
            out = [("any %d ENOSPC" % i, "ENOSPC")
                   for i in range(1, min(nany, CAP) + 1)]
            for k in ("write", "pwrite", "copy_file_range"):
                for i in indices(kinds.get(k, 0)):
                    out.append(("%s %d SHORT" % (k, i), "SHORT"))
                    out.append(("%s %d EINTR" % (k, i), "EINTR"))
            return out
        self.run_sweep(StConfig("safetensors short"), rules=rules)

    def test_output_option(self):
        self.run_sweep(Config("output", output=True))

    def test_named_temporary(self):
        """A file system without O_TMPFILE: the new checkpoint is written
        under a temporary name, which a failed commit must remove."""
        self.run_sweep(Config("no O_TMPFILE",
                              base_rule="openat 1 EOPNOTSUPP"))

    def test_persistent(self):
        """Every call of a kind fails (a disk that stays full)."""
        def rules(kinds, nany):
            return [("%s 1+ %s" % (k, e), e) for k in sorted(kinds)
                    for e in ERRS]
        self.run_sweep(Config("persistent"), rules=rules)

    def test_any_enospc(self):
        """The N-th wrapped call, whatever it is, fails with ENOSPC."""
        def rules(kinds, nany):
            return [("any %d ENOSPC" % i, "ENOSPC")
                    for i in range(1, min(nany, 2 * CAP) + 1)]
        self.run_sweep(Config("any"), rules=rules)

    def test_short_and_eintr(self):
        """Short writes and EINTR are retried, never reported."""
        def rules(kinds, nany):
            out = []
            for k in ("write", "pwrite", "copy_file_range"):
                for i in indices(kinds.get(k, 0)):
                    out.append(("%s %d SHORT" % (k, i), "SHORT"))
                    out.append(("%s %d EINTR" % (k, i), "EINTR"))
            return out
        self.run_sweep(Config("short"), rules=rules)


# --------------------------------------------------------------------------
# staging

class StagingOp:
    """An operation that stages a parameter, and its effect on the model.

    run(fm) performs it (raises OSError); apply(exp) is the model after
    success; the target parameter must be unstaged before it runs."""

    def __init__(self, name, target, run, apply, prepare=None):
        self.name, self.target = name, target
        self.run, self.apply, self.prepare = run, apply, prepare


def _data(exp, name):
    return W.find(exp, name)["data"]


def _set(exp, name, data):
    return W.replace(exp, name, data=data)


def staging_ops():
    rng = np.random.default_rng(5)
    part = f32(rng, 4)
    full = f32(rng, 84)
    tail = f32(rng, 10)
    newd = f32(rng, 16)
    again = f32(rng, 2)
    ops = []

    def partial_run(fm):
        W.pwrite_file(fm.p("fc3.weight"), part, 100)

    def partial_apply(exp):
        d = _data(exp, "fc3.weight")
        return _set(exp, "fc3.weight", d[:100] + part + d[116:])
    ops.append(StagingOp("partial write", "fc3.weight", partial_run,
                         partial_apply))

    def full_run(fm):
        W.pwrite_file(fm.p("fc2.bias"), full, 0)
    ops.append(StagingOp("full overwrite at offset 0", "fc2.bias", full_run,
                         lambda exp: _set(exp, "fc2.bias", full)))

    def trunc0_run(fm):
        os.close(os.open(fm.p("fc1.bias"), os.O_WRONLY | os.O_TRUNC))
    ops.append(StagingOp("truncate to 0 (O_TRUNC)", "fc1.bias", trunc0_run,
                         lambda exp: _set(exp, "fc1.bias", b"")))

    def shorter_run(fm):
        os.truncate(fm.p("conv2.weight"), 4800)
    ops.append(StagingOp("truncate to a shorter size", "conv2.weight",
                         shorter_run,
                         lambda exp: _set(exp, "conv2.weight",
                                          _data(exp, "conv2.weight")[:4800])))

    def append_run(fm):
        with open(fm.p("moments.fc3.bias"), "ab") as f:
            f.write(tail)
    ops.append(StagingOp("append", "moments.fc3.bias", append_run,
                         lambda exp: _set(exp, "moments.fc3.bias",
                                          _data(exp, "moments.fc3.bias") +
                                          tail)))

    def new_prepare(fm, exp):
        # the file is created without a fault; its first write is tested
        W.write_file(fm.p("newparam"), b"")
        return exp + [W.param("newparam", "UInt8", (0,), b"")]

    def new_run(fm):
        W.pwrite_file(fm.p("newparam"), newd, 0)
    ops.append(StagingOp("first write to a new file", "newparam", new_run,
                         lambda exp: W.replace(exp, "newparam", data=newd,
                                               shape=(len(newd),)),
                         prepare=new_prepare))

    def staged_prepare(fm, exp):
        d = _data(exp, "moments.conv1.weight")
        W.pwrite_file(fm.p("moments.conv1.weight"), b"\0\0\0\0", 0)
        return _set(exp, "moments.conv1.weight", b"\0\0\0\0" + d[4:])

    def staged_run(fm):
        W.pwrite_file(fm.p("moments.conv1.weight"), again, 200)

    def staged_apply(exp):
        d = _data(exp, "moments.conv1.weight")
        return _set(exp, "moments.conv1.weight", d[:200] + again + d[208:])
    ops.append(StagingOp("write to a staged parameter",
                         "moments.conv1.weight", staged_run, staged_apply,
                         prepare=staged_prepare))
    return ops


class TestStagingFaults(FaultBase):
    """Every call of staging fails in turn."""

    def run_staging(self, cfg):
        src, target = cfg.prepare(self)
        fm = FaultMount(self, src, *cfg.mount_opts)
        self.cfg, self.fm, self.target = cfg, fm, target
        self.exp = cfg.load(self, src)
        self.orig = {p["name"]: p for p in self.exp}
        for op in staging_ops():
            # dry run: which calls does the operation make?
            calls, probs = self.staging_trial(op, None, None)
            self.assertEqual(probs, [], "dry run of %s" % op.name)
            self.assertTrue(calls, "%s: the shim saw no call" % op.name)
            if VERBOSE:
                sys.stderr.write("[%s] %s makes %s\n" % (cfg.name, op.name,
                                                         calls))
            rules = []
            for kind in sorted(calls):
                for i in indices(calls[kind]):
                    for err in ERRS:
                        rules.append(("%s %d %s" % (kind, i, err), err))
                if kind in ("open", "memfd_create"):
                    for err in ERRS:   # no fallback directory helps
                        rules.append(("%s 1+ %s" % (kind, err), err))
            for kind in ("pwrite", "copy_file_range"):
                for i in indices(calls.get(kind, 0)):
                    for err in ("SHORT", "EINTR"):
                        rules.append(("%s %d %s" % (kind, i, err), err))
            for rule, err in rules:
                self.count(err)
                _, probs = self.staging_trial(op, rule, err, calls)
                if probs:
                    self.trial_failed("[%s] %s: %s" % (cfg.name, op.name,
                                                       rule), probs)
                    if not fm.alive():
                        break
                    self.resync()
            if not fm.alive():
                break
        self.finish()

    def resync(self):
        fm = self.fm
        fm.disarm()
        if fm.alive():
            try:
                if os.path.exists(fm.p("newparam")):
                    os.unlink(fm.p("newparam"))
            except OSError:
                pass
            fm.commit()
        try:
            self.exp = self.cfg.load(self, self.target)
        except Exception:  # noqa: BLE001
            pass

    def staging_trial(self, op, rule, err, dry=None):
        """Returns (calls of the operation, problems)."""
        fm = self.fm
        probs = []
        if self.cfg.key:
            # an encrypted mount keeps its staging after a commit: start
            # each trial unstaged, so staging itself is what is tested
            fm.remount()
        absorb = err in ("SHORT", "EINTR")
        exp = self.exp
        if op.prepare:
            exp = op.prepare(fm, exp)
        fm.arm(rule or "")
        rc = 0
        try:
            op.run(fm)
        except OSError as e:
            rc = e.errno
        st = fm.stats()
        fm.disarm()
        if rule and not st.fired:
            NOT_REACHED.append("[%s] %s: %s" % (self.cfg.name, op.name, rule))
        if absorb and rc:
            probs.append("a %s %s must be retried inside the daemon, %s "
                         "failed with %s" % (err, rule.split()[0], op.name,
                                             errname(rc)))
        elif absorb:
            again = {k: st.counts.get(k, 0) for k in ("open", "memfd_create")
                     if st.counts.get(k, 0) != dry.get(k, 0)}
            if again:
                probs.append("%s was staged again (%s calls, %s in the dry "
                             "run): the daemon replied %s and the caller "
                             "retried" % (op.name, again, dry, err))
        if rc == 0:
            exp = op.apply(exp)
        elif not st.fired:
            probs.append("%s failed with %s but no fault fired" % (
                op.name, errname(rc)))
        elif errname(rc) != err:
            probs.append("%s failed with %s, the fault was %s" % (
                op.name, errname(rc), err))
        if not fm.alive():
            return st.kinds(), probs + ["the daemon died: " +
                                        fm.log()[-2000:]]
        what = "after %s %s" % (op.name, "failed with " + errname(rc)
                                if rc else "succeeded")
        probs += view_problems(fm, exp, what)
        # make the parameter valid again with a partial write (no fault),
        # so that whatever the staging file holds is committed
        name = op.target
        cur = W.find(exp, name)["data"]
        want = self.orig[name]["data"] if name in self.orig else None
        try:
            if name == "newparam":
                if not cur:
                    W.pwrite_file(fm.p(name), newparam_fill(), 0)
                    exp = W.replace(exp, name, data=newparam_fill(),
                                    shape=(len(newparam_fill()),))
                W.pwrite_file(fm.p(name), b"\x07", 1)
                d = _data(exp, name)
                exp = _set(exp, name, d[:1] + b"\x07" + d[2:])
            else:
                if len(cur) > len(want):
                    os.truncate(fm.p(name), len(want))
                    cur = cur[:len(want)]
                elif len(cur) < len(want):
                    W.pwrite_file(fm.p(name), want[len(cur):], len(cur))
                    cur = cur + want[len(cur):]
                mark = b"\x01\x02\x03\x04"
                W.pwrite_file(fm.p(name), mark, 4)
                exp = _set(exp, name, cur[:4] + mark + cur[8:])
        except OSError as e:
            probs.append("the follow-up write to %s failed: %s" % (name, e))
        rc2 = fm.commit()
        if rc2 != 0:
            probs.append("commit after the follow-up write failed with %s: "
                         "%s" % (errname(rc2), fm.error()))
        else:
            probs += self.cfg.check(
                self, self.target, exp, "commit after the operation " +
                ("failed" if rc else "succeeded"))
        if name == "newparam":
            try:
                os.unlink(fm.p(name))
            except OSError as e:
                probs.append("unlink newparam: %s" % e)
            exp = W.remove(exp, name)
            if fm.commit() != 0:
                probs.append("commit after unlinking newparam failed")
        if os.listdir(fm.tmpdir):
            probs.append("files left in $TMPDIR: %s" % os.listdir(fm.tmpdir))
        if not probs:
            # the next trial starts from the original data again
            self.exp = self.restore(exp, name)
        return st.kinds(), probs

    def restore(self, exp, name):
        """Writes the original bytes of name back (unstaged after the
        commit), so every trial of an operation starts alike."""
        fm = self.fm
        if name not in self.orig or W.find(exp, name)["data"] == \
                self.orig[name]["data"]:
            return exp
        W.pwrite_file(fm.p(name), self.orig[name]["data"], 0)
        exp = _set(exp, name, self.orig[name]["data"])
        rc = fm.commit()
        if rc != 0:
            raise AssertionError("restoring %s: %s" % (name, errname(rc)))
        return exp

    def test_staging(self):
        self.run_staging(Config("plain"))

    def test_staging_in_memory(self):
        # encrypted mounts stage in memfds: memfd_create, not open
        self.run_staging(Config("AES-GCM", key="AES-GCM"))


class TestStagingBf16(FaultBase):
    """bfloat16 stored as float32 (MindSpore 2.2.10-2.2.14) is converted
    in memory when staged: the copy is a pwrite from a buffer, not a
    copy_file_range, and must handle short writes and EINTR like the
    others."""

    def test_bf16_as_fp32_staging(self):
        common.ensure_generated()
        fixture = os.path.join(common.GEN_DIR, "bf16_fp32_form.ckpt")
        name = "w.bf16_as_fp32"
        cfg = Config("bf16")

        def trial(rule, err, dry=None):
            # a fresh copy each time: after a commit the parameter is
            # stored natively and no longer converted
            d = fast_dir(self, "bf16_")
            src = os.path.join(d, "bf16.ckpt")
            shutil.copyfile(fixture, src)
            fm = FaultMount(self, src)
            exp = W.from_ref(ckref.load(src))
            self.assertEqual(W.find(exp, name)["dtype"], "BFloat16")
            mark = b"\x11\x3f"
            fm.arm(rule or "")
            rc = 0
            try:
                W.pwrite_file(fm.p(name), mark, 2)
            except OSError as e:
                rc = e.errno
            st = fm.stats()
            fm.disarm()
            probs = []
            new = exp
            if rc == 0:
                dd = W.find(exp, name)["data"]
                new = W.replace(exp, name, data=dd[:2] + mark + dd[4:])
            if rule and not st.fired:
                NOT_REACHED.append("[bf16] " + rule)
            if err in ("SHORT", "EINTR"):
                if rc:
                    probs.append("a %s pwrite must be retried inside the "
                                 "daemon; the write failed with %s" % (
                                     err, errname(rc)))
                elif st.counts.get("open", 0) != dry.get("open", 0):
                    probs.append("staged %d times: the daemon replied %s "
                                 "and the caller retried" % (
                                     st.counts.get("open", 0), err))
            elif rule and rc and errname(rc) != err:
                probs.append("the write failed with %s, the fault was %s"
                             % (errname(rc), err))
            elif rule is None and rc:
                probs.append("dry run: %s" % errname(rc))
            probs += view_problems(fm, new, "after the write")
            rc2 = fm.commit()
            if rc2:
                probs.append("commit: %s" % errname(rc2))
            else:
                probs += cfg.check(self, src, new, "after the commit",
                                   exact=False)
            fm.unmount()
            shutil.rmtree(d, True)
            return st, probs

        st, probs = trial(None, None)
        self.assertEqual(probs, [], "dry run")
        calls = st.kinds()
        if VERBOSE:
            sys.stderr.write("[bf16] a partial write makes %s\n" % calls)
        self.assertIn("pwrite", calls)
        for i in range(1, calls["pwrite"] + 1):
            for err in ERRS + ("SHORT", "EINTR"):
                rule = "pwrite %d %s" % (i, err)
                self.count(err)
                st, probs = trial(rule, err, calls)
                if probs:
                    self.trial_failed("[bf16] " + rule, probs)
        self.finish()


def newparam_fill():
    return bytes(range(64))


# --------------------------------------------------------------------------
# unmount

RECOVERY_RE = re.compile(re.escape(NAME) +
                         r"\.recovery-\d{8}-\d{6}-[0-9a-z]{8}\.ckpt$")


class TestUnmountFaults(FaultBase):
    NAME = NAME
    RECOVERY_RE = RECOVERY_RE
    ERRS = ERRS

    def edits(self, fm, exp):
        return Editor().edit(fm, exp)

    def make_source(self, d):
        """The checkpoint to mount, in directory d: (path, expected)."""
        src = W.make_lenet(os.path.join(d, self.NAME))
        return src, W.from_ref(ckref.load(src))

    def check(self, path, expected, label, recovery=False):
        return Config("plain").check(self, path, expected, label)

    def view(self, fm, expected, what):
        return view_problems(fm, expected, what)

    def learn_calls(self):
        d = fast_dir(self, "learn_")
        src, exp = self.make_source(d)
        fm = FaultMount(self, src)
        self.edits(fm, exp)
        fm.disarm()
        self.assertEqual(fm.commit(), 0)
        kinds = fm.stats().kinds()
        self.assertEqual(fm.unmount(), 0)
        return kinds

    def unmount_trial(self, rule, err, persistent=False):
        self.count(err)
        d = fast_dir(self, "um_")
        src, exp = self.make_source(d)
        before = self.target_state(src)
        fm = FaultMount(self, src)
        pending = self.edits(fm, exp)
        fm.arm(rule)
        code = fm.unmount()
        st = fm.stats()
        probs = []
        log = fm.log()
        status = M.take_status(fm.pid)
        if not st.fired:
            probs.append("no fault fired")
        # a refused clone (FICLONE) is no failure: the commit falls back
        # to the plain writer and must succeed, complete, nothing left
        if st.fired and all(f[0] == "ficlone" for f in st.fired):
            probs += self.check(src, pending, "after the clone was refused")
            others = sorted(set(os.listdir(d)) - {self.NAME})
            if others or os.listdir(fm.tmpdir):
                probs.append("files left: %s, $TMPDIR: %s" % (
                    others, os.listdir(fm.tmpdir)))
            if code != 0:
                probs.append("the daemon exited with %s" % code)
            if probs:
                self.trial_failed("unmount with %s" % rule, probs)
            return
        # documented (docs/editing.md): when only the directory fsync
        # fails, the new checkpoint is in place and the status says so
        if status and "directory could not be synced" in status:
            probs += self.check(src, pending, "in place, directory unsynced")
            others = sorted(set(os.listdir(d)) - {self.NAME})
            if others or os.listdir(fm.tmpdir):
                probs.append("files left: %s, $TMPDIR: %s" % (
                    others, os.listdir(fm.tmpdir)))
            if probs:
                self.trial_failed("unmount with %s" % rule, probs)
            return
        if self.target_state(src) != before:
            probs.append("the original changed (fault at unmount)")
            if os.stat(src).st_ino != before[0]:
                cp = self.check(src, pending, "replaced")
                if not cp:
                    probs.append("it was replaced by the complete new "
                                 "checkpoint although the commit failed")
        if "commit at unmount failed" not in log:
            probs.append("the log does not say that the commit failed: %r"
                         % log[-1000:])
        others = sorted(set(os.listdir(d)) - {self.NAME})
        tmps = os.listdir(fm.tmpdir)
        if not persistent:
            rec = [n for n in others if self.RECOVERY_RE.match(n)]
            if len(rec) != 1 or len(others) != 1:
                probs.append("expected one recovery file beside the "
                             "checkpoint, found %s (and %s in $TMPDIR)" % (
                                 others, tmps))
            else:
                path = os.path.join(d, rec[0])
                probs += self.check(path, pending, "recovery file",
                                    recovery=True)
                if not status or path not in status:
                    probs.append("the status file does not name the "
                                 "recovery file: %r" % status)
                if path not in log:
                    probs.append("the log does not name the recovery file")
            if tmps:
                probs.append("files in $TMPDIR: %s" % tmps)
        else:
            if others or tmps:
                probs.append("files left although nothing could be written: "
                             "%s, $TMPDIR: %s" % (others, tmps))
            if not status or "could not be saved" not in status:
                probs.append("the status file does not say that the changes "
                             "could not be saved: %r" % status)
        if code not in (0, 1):
            probs.append("the daemon exited with %s" % code)
        if probs:
            self.trial_failed("unmount with %s (fired: %s)" % (
                rule, ", ".join("%s %d %s" % f for f in st.fired)
                or "nothing"), probs)

    def test_unmount_faults(self):
        kinds = self.learn_calls()
        cases = []
        for kind in sorted(kinds):
            idx = sorted({1, kinds[kind]})
            for i in idx:
                for err in self.ERRS:
                    cases.append(("%s %d %s" % (kind, i, err), err))
        for rule, err in cases:
            self.unmount_trial(rule, err)
        # nothing can be written anywhere: a clear error, nothing left
        self.unmount_trial("pwrite 1+ EIO\ncopy_file_range 1+ EIO", "EIO",
                           persistent=True)
        self.unmount_trial("openat 1+ ENOSPC", "ENOSPC", persistent=True)
        self.finish()

    def test_ckpt_umount_with_fault(self):
        """ckpt umount: exit 1, still mounted with the edits; then 0."""
        d = fast_dir(self, "cu_")
        src, exp = self.make_source(d)
        before = self.target_state(src)
        fm = FaultMount(self, src)
        pending = self.edits(fm, exp)
        for rule, err in (("renameat2 1 EIO", "EIO"),
                          ("pwrite 1 ENOSPC", "ENOSPC")):
            self.count(err)
            fm.arm(rule)
            r = M.ckpt("umount", fm.mnt)
            st = fm.stats()
            fm.disarm()
            probs = []
            if r.rc != 1:
                probs.append("ckpt umount exited %s: %s" % (r.rc,
                                                            r.describe()))
            if os.strerror(getattr(errno, err)) not in r.errtext:
                probs.append("ckpt umount does not say why: %r" % r.errtext)
            if not st.fired:
                probs.append("no fault fired")
            if not M.is_mounted(fm.mnt) or not fm.alive():
                probs.append("the mount is gone")
                self.trial_failed("ckpt umount with " + rule, probs)
                break
            if self.target_state(src) != before:
                probs.append("the original changed")
            if os.listdir(d) != [self.NAME]:
                probs.append("files left: %s" % os.listdir(d))
            probs += self.view(fm, pending, "after ckpt umount failed")
            if probs:
                self.trial_failed("ckpt umount with " + rule, probs)
        if fm.alive():
            r = M.ckpt("umount", fm.mnt)
            if r.rc != 0:
                self.trial_failed("ckpt umount disarmed", [r.describe()])
            else:
                probs = self.check(src, pending, "after ckpt umount")
                if probs:
                    self.trial_failed("ckpt umount disarmed", probs)
        self.finish()


class TestUnmountFaultsSafetensors(TestUnmountFaults):
    """TestUnmountFaults on a safetensors mount (StConfig's file and
    StEditor's edits): the original untouched, the pending tree saved as a
    recovery file in the mount's format and with its extension (exactly
    the serializer's bytes of the pending state, without crc_num: recovery
    files carry none)."""
    NAME = ST_NAME
    ERRS = ("ENOSPC",)     # the same machinery as above: one errno is enough
    RECOVERY_RE = re.compile(re.escape(ST_NAME) + r"\.recovery-\d{8}-\d{6}-"
                             r"[0-9a-z]{8}\.safetensors$")

    def edits(self, fm, exp):
        return StEditor().edit(fm, exp)

    def make_source(self, d):
        cfg = StConfig("safetensors")
        src, _ = cfg.prepare(self)
        path = os.path.join(d, self.NAME)
        os.rename(src, path)
        return path, cfg.load(self, path)

    def check(self, path, expected, label, recovery=False):
        want = SM.file_bytes(expected.tensors(), expected.meta,
                             recovery=recovery)
        return SM.check_file(path, want, "%s: %s" % (label, path))

    def view(self, fm, expected, what):
        return st_view_problems(fm, expected, what)


# --------------------------------------------------------------------------
# O_DIRECT output

def direct_io_works(d):
    """Whether files in d can be opened with O_DIRECT (tmpfs: Linux >= 6.6)."""
    path = os.path.join(d, ".odirect-probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


class TestDirectOutput(FaultBase):
    """A plain commit writes the new checkpoint with O_DIRECT in 16 MiB
    chunks and its last, shorter chunk through the page cache
    (src/lib/commit/sink_dio.c).  A 40 MiB checkpoint takes two direct
    writes and a buffered one.  An encrypted commit writes the middle of
    every block with O_DIRECT from each thread's window and the blocks'
    edges through the page cache (src/lib/crypt/encwriter.c); 68 MiB
    make two blocks, encrypted on two threads.  The shim refuses a
    misaligned direct write as ext4 does, and none may be made.  A direct
    write the file system refuses (EINVAL) is written again through the
    page cache and the commit succeeds; any other failure fails the
    commit, the original untouched and the edits kept; short writes and
    EINTR are retried."""

    TRIALS = (("pwrite 1 EINVAL", "EINVAL", True),
              ("pwrite 2 EINVAL", "EINVAL", True),
              ("pwrite 1 EIO", "EIO", False),
              ("pwrite 2 ENOSPC", "ENOSPC", False),
              ("pwrite 3 EIO", "EIO", False),
              ("pwrite 1 SHORT", "SHORT", True),
              ("pwrite 2 EINTR", "EINTR", True))

    def sweep(self, cfg):
        d = fast_dir(self, "dio_")
        if not direct_io_works(d):
            self.skipTest("no O_DIRECT on the test's tmpfs (Linux < 6.6)")
        rng = np.random.default_rng(17)
        n = 4 << 20
        exp = [W.param("p%d" % i, "Float32", (n // 4,), rng.bytes(n))
               for i in range(17 if cfg.key else 10)]
        src = os.path.join(d, NAME)
        ckref.write(src, exp, crc=cfg.crc)
        opts = cfg.opts + (cfg.encrypt(self, src, fast_dir(self, "key_"))
                           if cfg.key else [])
        fm = FaultMount(self, src, *opts)
        for k, (rule, err, ok) in enumerate((("", "-", True),) +
                                            self.TRIALS):
            name, off = "p%d" % (k % 10), 4096 * (k + 1)
            data = bytearray(W.find(exp, name)["data"])
            data[off:off + 4096] = rng.bytes(4096)
            W.pwrite_file(fm.p(name), bytes(data[off:off + 4096]), off)
            pending = W.replace(exp, name, data=bytes(data))
            before = self.target_state(src)
            self.count(err)
            fm.arm(rule)
            rc = fm.commit()
            st = fm.stats()
            fm.disarm()
            label = "%s commit with %r" % (cfg.name, rule or "no fault")
            probs = []
            if st.direct[1]:
                probs.append("%d misaligned direct writes" % st.direct[1])
            if not rule and cfg.key:
                # the blocks' middles direct (68 MiB in 8 MiB windows),
                # no copy in the kernel
                if st.direct[0] < 8 or st.counts.get("copy_file_range"):
                    probs.append("expected at least 8 direct writes and "
                                 "no copy_file_range, counted %s, direct "
                                 "%s" % (st.counts, st.direct))
            elif not rule:
                # the direct path is taken: 2 direct writes + the tail,
                # no copy in the kernel
                if st.counts.get("pwrite") != 3 or st.direct[0] != 2 or \
                        st.counts.get("copy_file_range"):
                    probs.append("expected 3 pwrites, 2 of them direct, "
                                 "and no copy_file_range, counted %s, "
                                 "direct %s" % (st.counts, st.direct))
            elif not st.fired:
                probs.append("the fault never fired (counted %s)"
                             % st.counts)
            if ok:
                if rc != 0:
                    probs.append("the commit failed: %s (%s)" % (
                        errname(rc), fm.error()))
                probs += cfg.check(self, src, pending, label)
                exp = pending
            else:
                if rc == 0:
                    probs.append("the commit succeeded")
                if self.target_state(src) != before:
                    probs.append("the original changed")
                if os.strerror(getattr(errno, err)) not in fm.error():
                    probs.append("the error does not say why: %r"
                                 % fm.error())
                probs += view_problems(fm, pending, "after the failure")
                if fm.commit() != 0:
                    probs.append("the commit without a fault failed: %s"
                                 % fm.error())
                probs += cfg.check(self, src, pending, label + ", then "
                                   "without")
                exp = pending
            if sorted(os.listdir(d)) != [NAME]:
                probs.append("files left: %s" % os.listdir(d))
            if probs:
                self.trial_failed(label, probs)
        self.finish()

    def test_plain(self):
        self.sweep(Config("plain"))

    def test_crc(self):
        self.sweep(Config("crc", ["-o", "crc"], crc=True))

    def test_encrypted(self):
        self.sweep(Config("AES-GCM", key="AES-GCM"))


# --------------------------------------------------------------------------
# old checkpoints held open

class TestOldVersions(unittest.TestCase):
    """Space: a commit may keep the previous checkpoint open while a
    deleted parameter that still reads from it is open (its blocks stay
    allocated, or, encrypted, its plaintext stays in memory), but no more:
    on a nearly full disk every version kept is a checkpoint's worth of
    space that the next commit cannot use."""

    def test_commits_do_not_pin_every_old_version(self):
        common.require_bin(self, common.CKPTFS_BIN)
        d = fast_dir(self, "old_")
        src = W.make_lenet(os.path.join(d, NAME))
        m = M.mount(self, src)

        def held():
            fdd = "/proc/%d/fd" % m.pid
            out = []
            for n in os.listdir(fdd):
                try:
                    link = os.readlink(os.path.join(fdd, n))
                except OSError:
                    continue
                if link in (src, src + " (deleted)"):
                    out.append(link)
            return out
        keep = os.open(m.p("fc1.bias"), os.O_RDONLY)
        try:
            os.unlink(m.p("fc1.bias"))
            for i in range(5):
                W.pwrite_file(m.p("conv1.weight"), bytes([i + 1]) * 4, 0)
                self.assertEqual(m.commit(), 0)
            h = held()
            # the current file, and the first one, which the deleted and
            # still open fc1.bias reads from
            self.assertLessEqual(
                len(h), 2, "after 5 commits with one deleted parameter "
                "open, the daemon holds %d versions of the checkpoint: %s"
                % (len(h), h))
            self.assertEqual(os.pread(keep, 480, 0),
                             W.find(W.lenet_params(), "fc1.bias")["data"])
        finally:
            os.close(keep)


if __name__ == "__main__":
    unittest.main()
