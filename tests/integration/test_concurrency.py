#!/usr/bin/python3
"""Concurrency stress of a ckptfs mount, checked against a model.

Writer threads each own a few parameters, so the model of every parameter
is the deterministic sequence of states its owner produced:

  * Float32 parameters of fixed size get whole-tensor versions (every
    element of version v of parameter k encodes (k, v)) written by one
    pwrite at offset 0, and small random pwrites inside;
  * 'str' parameters (which need no shape, only a positive multiple of 4
    bytes, and therefore survive resizing across commits) also get
    ftruncate to random sizes and appends.

Every write is at most 48 KiB (max_write is 1 MiB), but the kernel may
still send one write(2) as several FUSE WRITE requests: in write-through
mode a request ends after a partially written page that is not in the page
cache (and FUSE_AUTO_INVAL_DATA drops the cache whenever the daemon reports
a new mtime).  The daemon applies each request atomically with respect to a
commit, so a write in flight during a commit may be in the checkpoint up to
a page boundary.  Each modification of a parameter happens under a per-
parameter lock of the test, which reader threads take to read a parameter
(through descriptors kept open across commits, or freshly opened) and
compare it, its size and xattrs with the model; they also list the
directory.  Writers read their own parameters back the same way.

A committer thread fsyncs the mount directory every ~100 ms.  Before each
fsync it notes, per parameter, how many operations had completed (lo);
after it returns, how many had started (hi).  The new checkpoint must hold
for every parameter one of the states number lo..hi of its owner (nothing
lost that was acknowledged before the fsync, nothing from an operation that
started after it, no mix of two states), or -- only for the one write of
its owner that was in flight -- the state before that write with a prefix
of the write applied up to a page boundary (see above; the state is
rebuilt by replaying the owner's operations, and such commits are
counted and printed).  Never garbage, never another mix.  A random sample of
the intermediate checkpoints is copied right after their fsync returns and
checked with the reference reader at the end; every fsync must succeed.

At the end the mount is unmounted (committing) and the checkpoint must equal
the final model exactly (ckref, and byte for byte what MindSpore writes).
The number of operations per second is printed.

Environment: CKPT_STRESS_SECONDS (default 10; 120 with --long),
CKPT_STRESS_WRITERS (4), CKPT_STRESS_READERS (3), CKPT_STRESS_SEED (default random, printed),
CKPT_STRESS_SNAPSHOTS (intermediate checkpoints kept and checked, 12).
"""

import errno
import hashlib
import os
import random
import shutil
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402

SECONDS = common.count("CKPT_STRESS_SECONDS", 10.0, 120.0)
WRITERS = int(os.environ.get("CKPT_STRESS_WRITERS", "4"))
READERS = int(os.environ.get("CKPT_STRESS_READERS", "3"))
SNAPSHOTS = int(os.environ.get("CKPT_STRESS_SNAPSHOTS", "12"))
SEED = int(os.environ.get("CKPT_STRESS_SEED") or
           random.SystemRandom().randrange(1 << 32))
MAX_BYTES = 48 * 1024        # one FUSE write request
COMMIT_EVERY = 0.1
F32_PER_WRITER = 2


def digest(b):
    return hashlib.blake2b(b, digest_size=16).digest()


class Param:
    """A parameter, its owner's model of it and the history of states."""

    def __init__(self, name, kind, data, owner):
        self.name = name
        self.kind = kind                 # "f32" or "str"
        self.owner = owner
        self.data = bytearray(data)
        self.lock = threading.Lock()
        self.initial = bytes(data)
        self.history = [digest(bytes(data))]   # state i: after i ops
        self.ops = []    # op i + 1 (see gen_data): ("w", off, gen) / ("t", n)
        self.started = 0
        self.completed = 0
        self.version = 0

    @property
    def dtype(self):
        return "Float32" if self.kind == "f32" else "str"

    def shape(self):
        return (len(self.data) // 4,) if self.kind == "f32" else ()

    def expected(self):
        return dict(name=self.name, dtype=self.dtype, shape=self.shape(),
                    data=bytes(self.data))

    def replay(self, n):
        """The bytes of state n, rebuilt from the operation log."""
        b = bytearray(self.initial)
        for op in self.ops[:n]:
            if op[0] == "t":
                resize(b, op[1])
            else:
                write_into(b, op[1], gen_data(op[2]))
        return bytes(b)


def gen_data(gen):
    """The bytes a write wrote, from its compact description."""
    if gen[0] == "f32v":
        _, k, v, n = gen
        return struct.pack("<%df" % n, *([float(k * 100000 + v)] * n))
    if gen[0] == "strv":
        _, k, v, n = gen
        return (struct.pack("<II", k, v) * (n // 8 + 1))[:n]
    _, seed, n = gen
    return random.Random(seed).randbytes(n)


def resize(b, n):
    if n < len(b):
        del b[n:]
    else:
        b.extend(bytes(n - len(b)))


def write_into(b, off, data):
    end = off + len(data)
    if end > len(b):
        b.extend(bytes(end - len(b)))
    b[off:end] = data


class Stress:
    def __init__(self, tc, mnt, params, rng):
        self.tc = tc
        self.mnt = mnt
        self.params = params
        self.rng = rng
        self.stop = threading.Event()
        self.errors = []
        self.elock = threading.Lock()
        self.ops = {}
        self.commits = 0
        self.commit_time = 0.0
        self.snapshots = []      # (path, lo, hi, commit number)
        self._rngs = {}          # per thread

    def error(self, msg):
        with self.elock:
            self.errors.append(msg)
        self.stop.set()

    def count(self, kind, n=1):
        with self.elock:
            self.ops[kind] = self.ops.get(kind, 0) + n

    def path(self, p):
        return os.path.join(self.mnt, W.escape_name(p.name))

    # ---- readers -----------------------------------------------------------

    def check_read(self, p, fd, who):
        """Under p.lock: the bytes, size and xattrs shown equal the model."""
        want = bytes(p.data)
        got = os.pread(fd, len(want) + 4096, 0)
        if got != want:
            self.error("%s: read of %s returned %d bytes that differ from the "
                       "model (%d bytes, first difference at %d, state %d)"
                       % (who, p.name, len(got), len(want),
                          W.first_diff(got, want), p.completed))
            return
        st = os.fstat(fd)
        if st.st_size != len(want):
            self.error("%s: size of %s is %d, model %d" % (
                who, p.name, st.st_size, len(want)))
        if self.rng_for(who).random() < 0.1:
            path = self.path(p)
            dt = W.getx(path, "user.dtype")
            shp = W.getx(path, "user.shape")
            if (dt, shp) != (p.dtype, W.shape_str(p.shape())):
                self.error("%s: xattrs of %s are %s %s, model %s %s" % (
                    who, p.name, dt, shp, p.dtype,
                    W.shape_str(p.shape())))

    def rng_for(self, who):
        return self._rngs[who]

    def reader(self, idx, seed):
        who = "reader %d" % idx
        rng = self._rngs[who] = random.Random(seed)
        fds = {}
        try:
            while not self.stop.is_set():
                r = rng.random()
                if r < 0.03:
                    names = set(os.listdir(self.mnt))
                    want = {W.escape_name(p.name) for p in self.params}
                    if names != want:
                        self.error("%s: listing %s, model %s" % (
                            who, sorted(names), sorted(want)))
                    self.count("listdir")
                    continue
                p = rng.choice(self.params)
                if p.name not in fds or rng.random() < 0.2:
                    if p.name in fds:
                        os.close(fds.pop(p.name))
                    fds[p.name] = os.open(self.path(p), os.O_RDONLY)
                with p.lock:
                    self.check_read(p, fds[p.name], who)
                self.count("read")
        except OSError as e:
            self.error("%s: %s" % (who, e))
        finally:
            for fd in fds.values():
                os.close(fd)

    # ---- writers -----------------------------------------------------------

    @staticmethod
    def rand_gen(rng, n):
        return ("rand", rng.getrandbits(64), n)

    def writer(self, idx, seed, mine):
        who = "writer %d" % idx
        rng = self._rngs[who] = random.Random(seed)
        fds = {}
        try:
            for p in mine:
                fds[p.name] = os.open(self.path(p), os.O_RDWR)
            while not self.stop.is_set():
                p = rng.choice(mine)
                fd = fds[p.name]
                k = self.params.index(p)
                r = rng.random()
                with p.lock:
                    if r < 0.15:
                        self.check_read(p, fd, who)
                        self.count("read")
                        continue
                    if p.kind == "f32":
                        if r < 0.6:
                            p.version += 1
                            gen, off, kind = (("f32v", k, p.version,
                                               len(p.data) // 4), 0,
                                              "version")
                        else:
                            off = rng.randrange(len(p.data))
                            ln = rng.randint(1, min(4096,
                                                    len(p.data) - off))
                            gen, kind = self.rand_gen(rng, ln), "pwrite"
                        self.apply_write(p, fd, gen, off, kind)
                    else:
                        size = len(p.data)
                        if r < 0.35:
                            self.apply_truncate(
                                p, fd, 4 * rng.randint(1, MAX_BYTES // 4))
                        elif r < 0.5 and size + 64 <= MAX_BYTES:
                            ln = 4 * rng.randint(1, 16)
                            self.apply_write(p, fd, self.rand_gen(rng, ln),
                                             size, "append")
                        elif r < 0.7:
                            off = 4 * rng.randrange(size // 4)
                            ln = min(size - off, 4 * rng.randint(1, 1024))
                            self.apply_write(p, fd, self.rand_gen(rng, ln),
                                             off, "pwrite")
                        else:  # a whole new version, maybe resized
                            n = 4 * rng.randint(1, MAX_BYTES // 4)
                            p.version += 1
                            if n < size:
                                self.apply_truncate(p, fd, n)
                            self.apply_write(p, fd, ("strv", k, p.version,
                                                     n), 0, "version")
        except OSError as e:
            self.error("%s: %s" % (who, e))
        finally:
            for fd in fds.values():
                os.close(fd)

    def apply_truncate(self, p, fd, n):
        self.apply(p, lambda: os.ftruncate(fd, n),
                   lambda: resize(p.data, n), ("t", n), "truncate")

    def apply_write(self, p, fd, gen, off, kind):
        data = gen_data(gen)

        def do():
            w = os.pwrite(fd, data, off)
            if w != len(data):
                raise OSError(errno.EIO, "short write %d of %d" % (
                    w, len(data)))
        self.apply(p, do, lambda: write_into(p.data, off, data),
                   ("w", off, gen), kind)

    def apply(self, p, syscall, model, op, kind):
        """One state transition: started before, completed after."""
        p.ops.append(op)
        p.started += 1
        syscall()
        model()
        p.history.append(digest(bytes(p.data)))
        p.completed += 1
        self.count(kind)

    # ---- committer ---------------------------------------------------------

    def committer(self, seed, snapdir, source):
        rng = random.Random(seed)
        dfd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        seen = 0
        try:
            next_t = time.monotonic()
            while not self.stop.is_set():
                next_t += COMMIT_EVERY
                lo = [p.completed for p in self.params]
                t0 = time.monotonic()
                try:
                    os.fsync(dfd)
                except OSError as e:
                    err = ""
                    try:
                        err = os.getxattr(self.mnt, M.XATTR_ERROR).decode()
                    except OSError:
                        pass
                    self.error("commit %d: fsync failed: %s (%s)" % (
                        self.commits + 1, e, err))
                    break
                hi = [p.started for p in self.params]
                self.commit_time += time.monotonic() - t0
                self.commits += 1
                # reservoir sample of the intermediate checkpoints; the
                # copy is taken before the next fsync, so it is exactly
                # what this one committed
                seen += 1
                slot = None
                if len(self.snapshots) < SNAPSHOTS:
                    slot = len(self.snapshots)
                    self.snapshots.append(None)
                elif rng.randrange(seen) < SNAPSHOTS:
                    slot = rng.randrange(SNAPSHOTS)
                    os.unlink(self.snapshots[slot][0])
                if slot is not None:
                    dst = os.path.join(snapdir, "commit-%05d.ckpt" % seen)
                    shutil.copyfile(source, dst)
                    self.snapshots[slot] = (dst, lo, hi, seen)
                self.count("commit")
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                else:
                    next_t = time.monotonic()
        finally:
            os.close(dfd)


class TestConcurrency(unittest.TestCase):

    def make_source(self, d, rng):
        params = []
        for w in range(WRITERS):
            for j in range(F32_PER_WRITER):
                n = rng.randint(1, MAX_BYTES // 4)
                data = struct.pack("<%df" % n, *[float(j)] * n)
                params.append(Param("w%d.f32_%d" % (w, j), "f32", data, w))
            n = 4 * rng.randint(1, MAX_BYTES // 4)
            params.append(Param("w%d/str" % w, "str", rng.randbytes(n), w))
        # bystanders nobody writes (readers check them too)
        params.append(Param("static.a", "f32", struct.pack("<3f", 1, 2, 3),
                            None))
        params.append(Param("static%b", "f32", struct.pack("<1f", 7), None))
        # a big one, so that every commit copies real data while the
        # writers go on
        params.append(Param("static.big", "f32", rng.randbytes(2 << 20),
                            None))
        src = os.path.join(d, "stress.ckpt")
        ckref.write(src, [p.expected() for p in params])
        return src, params

    def test_stress(self):
        rng = random.Random(SEED)
        print("\nCKPT_STRESS_SEED=%d, %.0f s, %d writers, %d readers"
              % (SEED, SECONDS, WRITERS, READERS), file=sys.stderr)
        d = W.tempdir(self, "ckptfs_stress_")
        snapdir = os.path.join(d, "snapshots")
        os.mkdir(snapdir)
        src, params = self.make_source(d, rng)
        m = M.mount(self, src)
        s = Stress(self, m.mnt, params, rng)
        threads = []
        for w in range(WRITERS):
            mine = [p for p in params if p.owner == w]
            threads.append(threading.Thread(
                target=s.writer, args=(w, rng.randrange(1 << 32), mine),
                name="writer-%d" % w, daemon=True))
        for r in range(READERS):
            threads.append(threading.Thread(
                target=s.reader, args=(r, rng.randrange(1 << 32)),
                name="reader-%d" % r, daemon=True))
        threads.append(threading.Thread(
            target=s.committer, args=(rng.randrange(1 << 32), snapdir, src),
            name="committer", daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        s.stop.wait(SECONDS)
        s.stop.set()
        deadline = time.monotonic() + W.TIMEOUT
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        hung = [t.name for t in threads if t.is_alive()]
        elapsed = time.monotonic() - t0
        if hung:
            M.kill9(m.pid)       # aborts the connection: calls return
            for t in threads:
                t.join(10)
            self.fail("threads did not finish within %ss after the stop "
                      "(daemon hung?): %s; seed %d" % (W.TIMEOUT, hung,
                                                        SEED))
        total = sum(v for k, v in s.ops.items())
        print("ops: %s; %d in %.1f s = %.0f ops/s; %d commits (%.1f ms "
              "each on average)" % (
                  ", ".join("%s %d" % kv for kv in sorted(s.ops.items())),
                  total, elapsed, total / elapsed, s.commits,
                  1000 * s.commit_time / max(1, s.commits)),
              file=sys.stderr)
        if s.errors:
            self.fail("seed %d: %d errors, first: %s" % (
                SEED, len(s.errors), "\n".join(s.errors[:5])))
        self.assertGreater(s.commits, 0, "no commit happened")

        m.unmount()
        W.check_ckpt(self, src, [p.expected() for p in params], exact=True,
                     label="final checkpoint (seed %d)" % SEED)

        # the intermediate checkpoints: consistent snapshots
        checked, self.split = 0, []
        for path, lo, hi, no in sorted(s.snapshots, key=lambda x: x[3]):
            self.check_snapshot(path, lo, hi, no, params)
            checked += 1
        print("checked %d intermediate checkpoints of %d commits; %d of them "
              "hold a write that was in flight up to a page boundary%s" % (
                  checked, s.commits, len(self.split),
                  (" (%s)" % "; ".join(self.split[:4])) if self.split
                  else ""), file=sys.stderr)

    def in_flight_prefix(self, p, lo, hi, got):
        """The op number j in lo+1..hi such that got is state j-1 with a
        page-aligned prefix of write j applied, and that boundary; or
        None."""
        for j in range(lo + 1, hi + 1):
            op = p.ops[j - 1]
            if op[0] != "w":
                continue
            off, data = op[1], gen_data(op[2])
            prev = p.replay(j - 1)
            first = (off // 4096 + 1) * 4096
            for cut in range(first, off + len(data), 4096):
                cand = bytearray(prev)
                write_into(cand, off, data[:cut - off])
                if bytes(cand) == got:
                    return j, cut
        return None

    def check_snapshot(self, path, lo, hi, no, params):
        label = "checkpoint of commit %d (seed %d)" % (no, SEED)
        try:
            got = ckref.load(path)
        except ckref.CheckpointError as e:
            self.fail("%s: the reference reader rejects it: %s" % (label, e))
        self.assertEqual([g.name for g in got], [p.name for p in params],
                         label + ": names and order")
        for i, (g, p) in enumerate(zip(got, params)):
            self.assertEqual(g.dtype, p.dtype, "%s: %s" % (label, p.name))
            if p.kind == "f32":
                self.assertEqual(g.shape, (len(g.data) // 4,),
                                 "%s: %s" % (label, p.name))
            h = digest(g.data)
            window = p.history[lo[i]:hi[i] + 1]
            if h in window:
                continue
            cut = self.in_flight_prefix(p, lo[i], hi[i], g.data)
            if cut:
                self.split.append("commit %d: %s, write %d up to offset %d"
                                  % (no, p.name, cut[0], cut[1]))
                continue
            if h in p.history:
                j = p.history.index(h)
                self.fail("%s: %s holds state %d of its owner, outside the "
                          "states %d..%d possible for this commit (%s)" % (
                              label, p.name, j, lo[i], hi[i],
                              "an acknowledged write is missing"
                              if j < lo[i] else "from the future"))
            self.fail("%s: %s (%d bytes) is no state its owner produced, "
                      "nor a page-aligned prefix of the write in flight "
                      "(torn or corrupt); possible states %d..%d" % (
                          label, p.name, len(g.data), lo[i], hi[i]))


if __name__ == "__main__":
    unittest.main()
