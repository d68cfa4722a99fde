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

TestConcurrencySafetensors runs the same on a safetensors mount (fixed-size
tensors of several dtypes, crc_num, an Int4 marker) with a thread setting
and removing user.metadata.* keys of the root and one reading them back
while the commits run; every intermediate file is read by both of stref's
readers, its crc_num must match, its metadata must be one of the states
lo..hi of the metadata thread; the final file must be exactly the
serializer's bytes of the final model (stmodel, stref).

Environment: CKPT_STRESS_SECONDS (default 10; 120 with --long),
CKPT_STRESS_ST_SECONDS (the safetensors case: 5; 60 with --long),
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
import stmodel as SM  # noqa: E402
import stref  # noqa: E402

SECONDS = common.count("CKPT_STRESS_SECONDS", 10.0, 120.0)
ST_SECONDS = common.count("CKPT_STRESS_ST_SECONDS", 5.0, 60.0)
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

    def tracked(self):
        """What the committer notes the state numbers of (lo, hi)."""
        return self.params

    def extra_threads(self, rng):
        """[(name, target, args)] of threads beyond writers, readers and the
        committer."""
        return []

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
                lo = [p.completed for p in self.tracked()]
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
                hi = [p.started for p in self.tracked()]
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
    SECONDS = SECONDS
    STRESS = Stress

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
        print("\n%s: CKPT_STRESS_SEED=%d, %.0f s, %d writers, %d readers"
              % (type(self).__name__, SEED, self.SECONDS, WRITERS, READERS),
              file=sys.stderr)
        d = W.tempdir(self, "ckptfs_stress_")
        snapdir = os.path.join(d, "snapshots")
        os.mkdir(snapdir)
        src, params = self.make_source(d, rng)
        m = M.mount(self, src)
        s = self.stress = self.STRESS(self, m.mnt, params, rng)
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
        for name, target, args in s.extra_threads(rng):
            threads.append(threading.Thread(target=target, args=args,
                                            name=name, daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        s.stop.wait(self.SECONDS)
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
        self.check_final(src, params, s)

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

    def check_final(self, src, params, s):
        W.check_ckpt(self, src, [p.expected() for p in params], exact=True,
                     label="final checkpoint (seed %d)" % SEED)

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
            self.check_state(label, no, p, lo[i], hi[i], g.data)

    def check_state(self, label, no, p, lo, hi, data):
        """data (p's bytes in the checkpoint of commit no) is one of the
        states lo..hi of its owner, or the write in flight cut at a page
        boundary."""
        h = digest(data)
        window = p.history[lo:hi + 1]
        if h in window:
            return
        cut = self.in_flight_prefix(p, lo, hi, data)
        if cut:
            self.split.append("commit %d: %s, write %d up to offset %d"
                              % (no, p.name, cut[0], cut[1]))
            return
        if h in p.history:
            j = p.history.index(h)
            self.fail("%s: %s holds state %d of its owner, outside the "
                      "states %d..%d possible for this commit (%s)" % (
                          label, p.name, j, lo, hi,
                          "an acknowledged write is missing"
                          if j < lo else "from the future"))
        self.fail("%s: %s (%d bytes) is no state its owner produced, "
                  "nor a page-aligned prefix of the write in flight "
                  "(torn or corrupt); possible states %d..%d" % (
                      label, p.name, len(data), lo, hi))


# --------------------------------------------------------------------------
# the same on a safetensors mount

ST_META_KEYS = ["k%d" % i for i in range(6)]


class StParam(Param):
    """A tensor of fixed size and any dtype (a safetensors commit cannot
    write the str parameters' free sizes: shapes come from the file)."""

    def __init__(self, name, dtype, shape, data, owner):
        super().__init__(name, "f32", data, owner)
        self._dtype, self._shape = dtype, tuple(shape)

    @property
    def dtype(self):
        return self._dtype

    def shape(self):
        return self._shape


class MetaModel:
    """The user.metadata.* keys one thread edits (ST_META_KEYS), with the
    history of their states (an ordered tuple of items each), numbered as
    a Param's: state i after i operations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = SM.OD()
        self.history = [()]
        self.started = 0
        self.completed = 0


class StStress(Stress):
    """Stress with a thread that sets and removes root metadata keys while
    the commits run, and one that reads them back."""

    def __init__(self, tc, mnt, params, rng):
        super().__init__(tc, mnt, params, rng)
        self.meta = MetaModel()

    def tracked(self):
        return self.params + [self.meta]

    def extra_threads(self, rng):
        return [("meta-writer", self.meta_writer, (rng.randrange(1 << 32),)),
                ("meta-reader", self.meta_reader, ())]

    def meta_writer(self, seed):
        rng = random.Random(seed)
        mm = self.meta
        n = 0
        try:
            while not self.stop.is_set():
                key = rng.choice(ST_META_KEYS)
                with mm.lock:
                    mm.started += 1
                    if key in mm.items and rng.random() < 0.3:
                        os.removexattr(self.mnt, SM.PREFIX + key)
                        del mm.items[key]
                        self.count("meta remove")
                    else:
                        n += 1
                        value = "v%d \u00e9\n\"%s" % (n, "x" * (n % 40))
                        os.setxattr(self.mnt, SM.PREFIX + key,
                                    value.encode())
                        mm.items[key] = value
                        self.count("meta set")
                    mm.history.append(tuple(mm.items.items()))
                    mm.completed += 1
                time.sleep(0.001)
        except OSError as e:
            self.error("meta writer: %s" % e)

    def meta_reader(self):
        mm = self.meta
        try:
            while not self.stop.is_set():
                with mm.lock:
                    got = [(k, v) for k, v in SM.root_meta(self.mnt).items()
                           if k in ST_META_KEYS]
                    want = list(mm.items.items())
                if got != want:
                    self.error("meta reader: user.metadata.* %r, model %r"
                               % (got, want))
                self.count("meta read")
                time.sleep(0.002)
        except OSError as e:
            self.error("meta reader: %s" % e)


class TestConcurrencySafetensors(TestConcurrency):
    """The stress above on a safetensors mount (a MindSpore 2.7-style file:
    crc_num, an Int4 marker, 0-d and BFloat16 tensors), with fixed-size
    tensors only and metadata set / removed by a thread of its own while
    the commits run: every intermediate file must be one that both of
    stref's readers take, with a matching crc_num, each tensor one of its
    owner's states lo..hi (or the in-flight prefix), its metadata one of
    the metadata thread's states lo..hi; the final file exactly the
    serializer's bytes of the final model (stmodel, stref).
    CKPT_STRESS_ST_SECONDS (default 5; 60 with --long)."""
    SECONDS = ST_SECONDS
    STRESS = StStress

    def make_source(self, d, rng):
        params = []
        for w in range(WRITERS):
            for j, dt in enumerate(("Float32", "Float32", "BFloat16")):
                k = rng.randint(1, MAX_BYTES // 8)
                n = 2 * k if dt == "BFloat16" else k
                data = struct.pack("<%df" % k, *[float(j)] * k)
                params.append(StParam("w%d.%s_%d" % (w, dt.lower(), j), dt,
                                      (n,), data, w))
        params.append(StParam("static/a", "Float32", (3,),
                              struct.pack("<3f", 1, 2, 3), None))
        params.append(StParam("epoch_num", "Int64", (),
                              struct.pack("<q", 4), None))
        params.append(StParam("quant.weight", "Int4", (8, 2),
                              bytes(range(16)), None))
        params.append(StParam("static.big", "Float32", (512, 1024),
                              rng.randbytes(2 << 20), None))
        self.initial = stref.mindspore_save(
            [dict(name=p.name, dtype=p.dtype, shape=p.shape(),
                  data=p.initial) for p in params],
            SM.OD(remove_redundancy="False"), crc=True)
        src = os.path.join(d, "stress.safetensors")
        W.write_file(src, self.initial)
        return src, params

    def final_state(self, params, meta_items):
        st = SM.StState.of(self.initial)
        for p in params:
            st.set(p.name, data=bytes(p.data))
        for k, v in meta_items:
            st.set_meta(k, v)
        return st

    def check_final(self, src, params, s):
        want = self.final_state(params, list(s.meta.items.items()))
        self.assertEqual(SM.check_file(src, want.bytes(), "final file "
                                       "(seed %d)" % SEED), [])

    def check_snapshot(self, path, lo, hi, no, params):
        label = "file of commit %d (seed %d)" % (no, SEED)
        try:
            st = stref.read(path, "both")
        except stref.StError as e:
            self.fail("%s: stref rejects it: %s" % (label, e))
        with st:
            self.assertIs(stref.check_crc(path), True,
                          label + ": crc_num does not match its tensors")
            got = {t.name: t for t in st.tensors}
            self.assertEqual(sorted(got), sorted(p.name for p in params),
                             label + ": names")
            for i, p in enumerate(params):
                t = got[p.name]
                self.assertEqual((SM.shown_of(t.dtype, t.name, st.metadata),
                                  t.shape), (p.dtype, p.shape()),
                                 "%s: %s" % (label, p.name))
                self.check_state(label, no, p, lo[i], hi[i], t.data)
            mm = self.stress.meta
            items = tuple((k, v) for k, v in st.metadata.items()
                          if k in ST_META_KEYS)
            window = mm.history[lo[-1]:hi[-1] + 1]
            if items not in window:
                self.fail("%s: metadata %r is none of the states %d..%d "
                          "of the metadata thread%s" % (
                              label, items, lo[-1], hi[-1],
                              " (it is state %d)" % mm.history.index(items)
                              if items in mm.history else ""))
            fixed = [k for k in st.metadata if k not in ST_META_KEYS]
            self.assertEqual(fixed, ["format", "remove_redundancy",
                                     "quant.weight", "crc_num"], label)


if __name__ == "__main__":
    unittest.main()
