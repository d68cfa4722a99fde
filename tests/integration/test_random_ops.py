#!/usr/bin/python3
"""Model-based random test of a ckptfs mount, in the spirit of fsx.

An in-memory model (ordered: name -> data, dtype, explicit shape or None
for inferred) is driven in lockstep with a mount of a fresh LeNet copy by
thousands of random operations: pwrite at random offsets (also past the
end), truncate, create (O_EXCL), unlink, rename (also over an existing
parameter), setxattr user.dtype (MindSpore and numpy spellings; some
unknown names -> EINVAL), setxattr user.shape (fitting, non-fitting but
well-formed, malformed -> EINVAL), removexattr user.shape, read-and-compare
(data, size, xattrs), listing order, operations through descriptors kept
open across other operations (pwrite, pread, ftruncate, fsync on an fd
whose parameter was renamed or committed meanwhile), commit by fsync of a
random file, an open descriptor or the directory, and unmount + remount
(by 'ckpt umount' or fusermount3 -u).

A commit must fail with EINVAL exactly when the model says a parameter's
explicit shape does not fit its bytes, an inferred (1-D) parameter is
empty or not a whole number of elements, or a str parameter is not a
positive multiple of 4 bytes; the file must then be unchanged.  The test
then fixes those parameters (random strategy) and commits again.  After
every successful commit the file is checked with ckref.load against the
model (names, order, dtypes, shapes, data) and byte for byte against
ckref.dumps of the model (what MindSpore >= 2.3 writes).  Occasionally an
unmount happens while the model is invalid: the original must stay intact
and a loadable recovery checkpoint must appear beside it.

The same on a safetensors mount (test_random_ops_safetensors,
SafetensorsRunner): a MindSpore 2.7-style file (metadata with an Int4
marker and crc_num, 0-d tensors), the same operation mix plus setxattr /
removexattr / getxattr / listxattr of the root's user.metadata.*, the
safetensors-only dtypes and those it cannot hold (EINVAL), a 0-d integer
crc_num cannot hash (the commit fails with ENOTSUP); after every commit
the file must be exactly stmodel.file_bytes() of the model
(stref.serialize: the serializer's order, metadata keys in their order
with new ones appended, markers, crc_num recomputed in place), read by
both of stref's readers, and the mount must read back the model.

Environment: CKPT_RANDOM_OPS (default 20,000; 5,000 under the sanitizers;
100,000 with scripts/test.sh --long), CKPT_RANDOM_ST_OPS (the safetensors
case: 20,000; 5,000; 100,000), CKPT_RANDOM_SEED (default: random; printed,
and shown in every failure message).
"""

import errno
import glob
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import wbutil as W  # noqa: E402
import ckref  # noqa: E402
import stmodel as SM  # noqa: E402
import stref  # noqa: E402
import gen_safetensors as G  # noqa: E402

NOPS = common.count("CKPT_RANDOM_OPS", 20000, 100000, sanitized=5000)
ST_NOPS = common.count("CKPT_RANDOM_ST_OPS", 20000, 100000, sanitized=5000)
SEED_ENV = os.environ.get("CKPT_RANDOM_SEED")

MS_DTYPES = sorted(ckref.ITEMSIZE)           # every name MindSpore writes
ALIASES = dict(W.NUMPY_ALIAS)
BAD_DTYPES = ["Float33", "float", "", "Str", "uint", "int128", "Float32 ",
              "bfloat", "FLOAT16", "Int 8", "complex", "f8"]
BAD_SHAPES = ["1,,2", "[1,2", "x", "-3", "[0]", "0", "", "1 2", "[[1]]",
              "1.0", "[1,2]]", ",", "[,]", "1,2,"]
EXTRA_NAMES = ["x/y", "pct%", "a.b", "%lead", "dir/sub/leaf", "sp ace"]
MAX_ENTRIES = 40
MAX_SIZE = 256 * 1024


ITEMSIZE = dict(ckref.ITEMSIZE, **SM.ST_ONLY)


def isz(dtype):
    return ITEMSIZE[dtype]


def prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Ent:
    """A parameter of the model.  dset: its dtype/shape are its own (from
    the file, or set with setxattr); inh: they were inherited from the
    parameter it replaced, and show only while the bytes fit them
    (docs/editing.md, "Replacing a parameter")."""
    __slots__ = ("data", "dtype", "shape", "dset", "inh")

    def __init__(self, data, dtype, shape, dset=True):
        self.data = bytearray(data)
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)
        self.dset = dset
        self.inh = False

    def fits(self):
        n = len(self.data)
        if self.dtype == "str":
            return n > 0 and n % 4 == 0
        if self.shape is not None:
            return prod(self.shape) * isz(self.dtype) == n
        return n > 0 and n % isz(self.dtype) == 0

    def view(self):
        """(dtype, explicit shape or None) as shown."""
        if self.inh and not self.fits():
            return "UInt8", None
        return self.dtype, self.shape

    def own_view(self):
        """What setxattr does first: an inherited view becomes its own."""
        if self.inh:
            self.dtype, self.shape = self.view()
            self.inh = False

    def inherit(self, dtype, shape):
        if not self.dset and self.shape is None:
            self.dtype, self.shape, self.inh = dtype, shape, True

    def shown_dtype(self):
        return self.view()[0]

    def shown_shape(self):
        dtype, shape = self.view()
        if dtype == "str":
            return ()
        if shape is not None:
            return shape
        return (len(self.data) // isz(dtype),)

    def problem(self):
        """None if this parameter can be committed, else why not."""
        n = len(self.data)
        dtype, shape = self.view()
        if dtype == "str":
            if n == 0 or n % 4:
                return "str of %d bytes" % n
            return None
        if shape is not None:
            if prod(shape) * isz(dtype) != n:
                return "shape %s of %s needs %d bytes, has %d" % (
                    W.shape_str(shape), dtype, prod(shape) * isz(dtype), n)
            return None
        if n == 0:
            return "empty"
        if n % isz(dtype):
            return "%d bytes is not a whole number of %s" % (n, dtype)
        return None


class Model:
    """Names in order, their parameters, and the tombs: parameters deleted
    since the last commit, whose place, dtype and shape a new file of the
    same name takes."""

    def __init__(self):
        self.order = []   # names
        self.ents = {}
        self.tombs = {}   # name -> (position, dtype, shape)

    def copy(self):
        m = Model()
        m.order = list(self.order)
        for k, e in self.ents.items():
            c = Ent(bytes(e.data), e.dtype, e.shape, e.dset)
            c.inh = e.inh
            m.ents[k] = c
        return m

    # the order changes one name at a time; the tombs' places move with
    # their neighbours, as the tree's do (scratch.c, ckpt_tombs_shift)

    def _insert(self, i, name):
        i = min(i, len(self.order))
        for k, (pos, dt, sh) in list(self.tombs.items()):
            if pos >= i:
                self.tombs[k] = (pos + 1, dt, sh)
        self.order.insert(i, name)

    def _delete(self, name):
        i = self.order.index(name)
        del self.order[i]
        for k, (pos, dt, sh) in list(self.tombs.items()):
            if pos > i:
                self.tombs[k] = (pos - 1, dt, sh)

    def add(self, name, ent):
        assert name not in self.ents
        self._insert(len(self.order), name)
        self.ents[name] = ent

    def create(self, name, ent):
        """A new file: in the place of a tomb of its name, if any."""
        assert name not in self.ents
        tomb = self.tombs.pop(name, None)
        if tomb:
            ent.inherit(tomb[1], tomb[2])
            self._insert(tomb[0], name)
        else:
            self._insert(len(self.order), name)
        self.ents[name] = ent

    def remove(self, name):
        e = self.ents[name]
        if e.dset or e.inh:
            self.tombs[name] = (self.order.index(name),) + e.view()
        self._delete(name)
        return self.ents.pop(name)

    def rename(self, src, dst):
        if src == dst:
            return None
        self.tombs.pop(src, None)
        e = self.ents.pop(src)
        if dst in self.ents:      # over a parameter: its place and meta
            gone = self.ents.pop(dst)
            e.inherit(*gone.view())
            self._delete(src)
            at = self.order.index(dst)
            self._delete(dst)
            self._insert(at, dst)
            self.ents[dst] = e
            return gone
        if dst in self.tombs:     # its place: where the tomb is once
            self._delete(src)     # src has left the order
            tomb = self.tombs.pop(dst)
            e.inherit(tomb[1], tomb[2])
            self._insert(tomb[0], dst)
        else:
            self.order[self.order.index(src)] = dst
        self.ents[dst] = e
        return None

    def problems(self):
        return [(n, self.ents[n].problem()) for n in self.order
                if self.ents[n].problem()]

    def expected(self):
        return [W.param(n, self.ents[n].shown_dtype(),
                        self.ents[n].shown_shape(),
                        bytes(self.ents[n].data)) for n in self.order]

    def committed(self):
        """After a commit every dtype and shape is the stored one, and no
        tomb is left."""
        for e in self.ents.values():
            e.dtype, e.shape = e.shown_dtype(), e.shown_shape()
            e.dset, e.inh = True, False
        self.tombs = {}


def factor_shape(rng, n):
    """A random shape with prod == n (n >= 1)."""
    if n == 1:
        return rng.choice([(), (1,), (1, 1)])
    dims = []
    rest = n
    for _ in range(rng.randrange(0, 3)):
        divs = [d for d in range(2, min(rest, 64) + 1) if rest % d == 0]
        if not divs or rest == 1:
            break
        d = rng.choice(divs)
        dims.append(d)
        rest //= d
    dims.append(rest)
    rng.shuffle(dims)
    return tuple(dims)


def shape_text(rng, shape):
    if not shape:
        return "[]"
    style = rng.randrange(3)
    if style == 0:
        return ",".join(str(d) for d in shape)
    if style == 1:
        return "[" + ", ".join(str(d) for d in shape) + "]"
    return "[" + ",".join(str(d) for d in shape) + "]"


class Runner:
    def __init__(self, tc, seed):
        self.tc = tc
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = W.fs_dir(tc, "ckptfs_rand_")
        self.model = Model()
        self.log = []
        self.stats = dict(ops=0, commits=0, failed_commits=0, remounts=0,
                          recoveries=0, einval=0)
        self.src = self.make_source()
        self.committed_model = self.model.copy()
        self.committed_bytes = W.read_bytes(self.src)
        self.maybe_dirty = False
        self.m = M.mount(tc, self.src)
        self.counter = 0
        self.fds = {}   # open descriptor -> the Ent it refers to

    # -- what the runner is about (SafetensorsRunner changes these) --------

    DTYPES = MS_DTYPES          # what set_dtype picks from
    ALIASES = ALIASES           # other spellings -> the dtype shown
    BAD_DTYPES = BAD_DTYPES
    RARE = ("str",)             # picked less often:
    RARE_P = 0.6                # replaced by Float32 with this probability
    REFUSED = ()                # dtypes the format cannot hold (EINVAL)

    def make_source(self):
        """Writes the checkpoint to mount and fills self.model with it."""
        src = W.make_lenet(os.path.join(self.dir, "lenet.ckpt"))
        for p in W.lenet_params():
            self.model.add(p["name"], Ent(p["data"], p["dtype"],
                                          p["shape"]))
        return src

    # -- reporting ---------------------------------------------------------

    def fail(self, msg):
        tail = "\n  ".join(self.log[-40:])
        self.tc.fail("seed %s, op %d: %s\nlast operations:\n  %s" % (
            self.seed, self.stats["ops"], msg, tail))

    def note(self, s):
        self.log.append("%d: %s" % (self.stats["ops"], s))

    def expect_errno(self, want, fn, *args):
        """Runs fn; checks it raises OSError(want) (want=0: no error)."""
        try:
            fn(*args)
            got = 0
        except OSError as e:
            got = e.errno
        if got != want:
            self.fail("%s%r: expected %s, got %s" % (
                getattr(fn, "__name__", fn), args, W.errno_name(want),
                W.errno_name(got)))
        return got

    # -- helpers -----------------------------------------------------------

    def path(self, name):
        return self.m.p(name)

    def pick(self):
        return self.rng.choice(self.model.order) if self.model.order \
            else None

    def new_name(self):
        if self.rng.random() < 0.2:
            cands = [n for n in EXTRA_NAMES if n not in self.model.ents]
            if cands:
                return self.rng.choice(cands)
        self.counter += 1
        return "r%d.%s" % (self.counter, self.rng.choice(
            ["weight", "bias", "moments", "step"]))

    def rand_bytes(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n)) if n < 64 \
            else os.urandom(n)

    # -- operations --------------------------------------------------------

    def op_write(self):
        name = self.pick()
        if name is None:
            return self.op_create()
        e = self.model.ents[name]
        size = len(e.data)
        off = self.rng.randrange(0, size + 65)
        n = self.rng.choice([1, 2, 4, 8, self.rng.randrange(1, 513)])
        if self.rng.random() < 0.03:
            n = self.rng.randrange(1, 128 * 1024)
        if off + n > MAX_SIZE:
            return
        data = self.rand_bytes(n)
        self.note("write %r off=%d len=%d" % (name, off, n))
        W.pwrite_file(self.path(name), data, off)
        if off > size:
            e.data.extend(bytes(off - size))
        e.data[off:off + n] = data
        self.maybe_dirty = True

    def op_truncate(self, name=None, size=None):
        name = name or self.pick()
        if name is None:
            return
        e = self.model.ents[name]
        if size is None:
            cur = len(e.data)
            size = self.rng.choice([0, max(0, cur - 4), cur + 4,
                                    self.rng.randrange(0, 2 * cur + 65)])
            size = min(size, MAX_SIZE)
        self.note("truncate %r %d -> %d" % (name, len(e.data), size))
        os.truncate(self.path(name), size)
        if size < len(e.data):
            del e.data[size:]
        else:
            e.data.extend(bytes(size - len(e.data)))
        self.maybe_dirty = True

    def op_create(self):
        if len(self.model.order) >= MAX_ENTRIES:
            return self.op_unlink()
        if self.rng.random() < 0.05:
            # an existing name: EEXIST; an invalid escape: EINVAL
            name = self.pick()
            if name is not None:
                self.note("create existing %r" % name)
                self.expect_errno(errno.EEXIST, os.open, self.path(name),
                                  os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            bad = os.path.join(self.m.mnt, "bad%zz" + str(self.counter))
            self.note("create %r" % os.path.basename(bad))
            self.expect_errno(errno.EINVAL, os.open, bad,
                              os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            return
        name = self.new_name()
        n = self.rng.choice([0, 1, 4, 8, 12, self.rng.randrange(0, 300)])
        data = self.rand_bytes(n)
        self.note("create %r with %d bytes" % (name, n))
        fd = os.open(self.path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                     0o644)
        try:
            if data:
                os.write(fd, data)
        finally:
            os.close(fd)
        self.model.create(name, Ent(data, "UInt8", None, dset=False))
        self.maybe_dirty = True
        if self.rng.random() < 0.5:
            self.check_one(name)

    def op_unlink(self, name=None):
        name = name or self.pick()
        if name is None:
            return
        self.note("unlink %r" % name)
        self.close_fds_of(self.model.ents[name])
        os.unlink(self.path(name))
        self.model.remove(name)
        self.maybe_dirty = True
        if self.rng.random() < 0.2:
            self.expect_errno(errno.ENOENT, os.stat, self.path(name))

    def op_rename(self):
        src = self.pick()
        if src is None:
            return
        r = self.rng.random()
        if r < 0.45:
            dst = self.new_name()
        elif r < 0.95:
            dst = self.pick()
        else:
            self.note("rename missing")
            self.expect_errno(errno.ENOENT, os.rename,
                              os.path.join(self.m.mnt, "no-such-entry"),
                              self.path("whatever"))
            return
        self.note("rename %r -> %r" % (src, dst))
        if dst != src and dst in self.model.ents:
            self.close_fds_of(self.model.ents[dst])
        os.rename(self.path(src), self.path(dst))
        self.model.rename(src, dst)
        self.maybe_dirty = True

    def op_set_dtype(self):
        name = self.pick()
        if name is None:
            return
        e = self.model.ents[name]
        r = self.rng.random()
        if r < 0.12:
            bad = self.rng.choice(self.BAD_DTYPES)
            self.note("set dtype %r %r (bad)" % (name, bad))
            self.expect_errno(errno.EINVAL, W.setx, self.path(name),
                              "user.dtype", bad)
            self.stats["einval"] += 1
            return
        if r < 0.35:
            spelled = self.rng.choice(sorted(self.ALIASES))
            dtype = self.ALIASES[spelled]
        else:
            dtype = self.rng.choice(self.DTYPES)
            if dtype in self.RARE and self.rng.random() < self.RARE_P:
                dtype = "Float32"
            spelled = dtype
        if dtype in self.REFUSED:
            self.note("set dtype %r %r (%s: the format cannot hold it)" % (
                name, spelled, dtype))
            self.expect_errno(errno.EINVAL, W.setx, self.path(name),
                              "user.dtype", spelled)
            self.stats["einval"] += 1
            return
        # mostly pick a dtype the bytes fit
        if e.shape is None and dtype != "str" and \
                len(e.data) % isz(dtype) and self.rng.random() < 0.7:
            return
        self.note("set dtype %r %r (%s)" % (name, spelled, dtype))
        W.setx(self.path(name), "user.dtype", spelled)
        e.own_view()
        e.dtype = dtype
        e.dset = True
        self.maybe_dirty = True

    def op_set_shape(self):
        name = self.pick()
        if name is None:
            return
        e = self.model.ents[name]
        e.own_view()   # setxattr of user.shape does this first
        r = self.rng.random()
        if r < 0.15:
            bad = self.rng.choice(BAD_SHAPES)
            self.note("set shape %r %r (bad)" % (name, bad))
            self.expect_errno(errno.EINVAL, W.setx, self.path(name),
                              "user.shape", bad)
            self.stats["einval"] += 1
            return
        n = len(e.data)
        sz = isz(e.dtype)
        if r < 0.8 and n and n % sz == 0:
            shape = factor_shape(self.rng, n // sz)
        elif r < 0.85 and n == 0:
            shape = (0, self.rng.randrange(1, 5))       # empty, storable
        else:
            shape = tuple(self.rng.randrange(1, 7)
                          for _ in range(self.rng.randrange(0, 4)))
        text = shape_text(self.rng, shape)
        self.note("set shape %r %r" % (name, text))
        W.setx(self.path(name), "user.shape", text)
        e.shape = shape
        self.maybe_dirty = True

    def op_remove_shape(self):
        name = self.pick()
        if name is None:
            return
        self.note("removexattr user.shape %r" % name)
        os.removexattr(self.path(name), "user.shape")
        self.model.ents[name].own_view()
        self.model.ents[name].shape = None
        self.maybe_dirty = True

    def check_one(self, name):
        e = self.model.ents[name]
        fp = self.path(name)
        self.note("check %r" % name)
        st = os.stat(fp)
        if st.st_size != len(e.data):
            self.fail("%r: st_size %d, model %d" % (name, st.st_size,
                                                     len(e.data)))
        got = W.read_bytes(fp)
        if got != bytes(e.data):
            self.fail("%r: data differs at %d (%d bytes read, model %d)" % (
                name, W.first_diff(got, e.data), len(got), len(e.data)))
        dt = W.getx(fp, "user.dtype")
        sh = W.getx(fp, "user.shape")
        if dt != e.shown_dtype() or sh != W.shape_str(e.shown_shape()):
            self.fail("%r: xattrs dtype=%s shape=%s, model %s %s" % (
                name, dt, sh, e.shown_dtype(), W.shape_str(e.shown_shape())))
        if self.rng.random() < 0.3 and e.data:
            off = self.rng.randrange(0, len(e.data))
            k = self.rng.randrange(1, 300)
            fd = os.open(fp, os.O_RDONLY)
            try:
                part = os.pread(fd, k, off)
            finally:
                os.close(fd)
            if part != bytes(e.data[off:off + k]):
                self.fail("%r: pread(%d, %d) differs" % (name, k, off))

    def op_read(self):
        name = self.pick()
        if name is not None:
            self.check_one(name)

    def op_list(self):
        self.note("list")
        got = os.listdir(self.m.mnt)
        want = [W.escape_name(n) for n in self.model.order]
        if got != want:
            self.fail("listing %r, model %r" % (got, want))

    # -- open descriptors --------------------------------------------------

    def close_fds_of(self, ent):
        for fd in [fd for fd, e in self.fds.items() if e is ent]:
            self.note("close fd %d" % fd)
            os.close(fd)
            del self.fds[fd]

    def close_all_fds(self):
        for fd in list(self.fds):
            os.close(fd)
        self.fds.clear()

    def name_of(self, ent):
        for n in self.model.order:
            if self.model.ents[n] is ent:
                return n
        self.fail("open descriptor refers to no live parameter")

    def pick_fd(self):
        if not self.fds:
            return None, None
        fd = self.rng.choice(sorted(self.fds))
        return fd, self.fds[fd]

    def op_fd_open(self):
        if len(self.fds) >= 8:
            return self.op_fd_close()
        name = self.pick()
        if name is None:
            return
        fd = os.open(self.path(name), os.O_RDWR)
        self.note("open %r -> fd %d" % (name, fd))
        self.fds[fd] = self.model.ents[name]

    def op_fd_close(self):
        fd, ent = self.pick_fd()
        if fd is None:
            return self.op_fd_open()
        self.note("close fd %d" % fd)
        os.close(fd)
        del self.fds[fd]

    def op_fd_io(self):
        fd, ent = self.pick_fd()
        if fd is None:
            return self.op_fd_open()
        name = self.name_of(ent)
        r = self.rng.random()
        size = len(ent.data)
        if r < 0.45:
            off = self.rng.randrange(0, size + 33)
            n = self.rng.randrange(1, 300)
            if off + n > MAX_SIZE:
                return
            data = self.rand_bytes(n)
            self.note("pwrite fd %d (%r) off=%d len=%d" % (fd, name, off,
                                                          n))
            if os.pwrite(fd, data, off) != n:
                self.fail("short pwrite")
            if off > size:
                ent.data.extend(bytes(off - size))
            ent.data[off:off + n] = data
            self.maybe_dirty = True
        elif r < 0.85:
            self.note("pread fd %d (%r)" % (fd, name))
            got = os.pread(fd, size + 100, 0)
            if got != bytes(ent.data):
                self.fail("pread of fd %d (%r): %d bytes, model %d, first "
                          "difference at %d" % (fd, name, len(got), size,
                                                W.first_diff(got,
                                                             ent.data)))
            if os.fstat(fd).st_size != size:
                self.fail("fstat of fd %d (%r): size %d, model %d" % (
                    fd, name, os.fstat(fd).st_size, size))
        else:
            n = self.rng.randrange(0, 2 * size + 9)
            self.note("ftruncate fd %d (%r) %d -> %d" % (fd, name, size, n))
            os.ftruncate(fd, n)
            if n < size:
                del ent.data[n:]
            else:
                ent.data.extend(bytes(n - size))
            self.maybe_dirty = True

    # -- commits -----------------------------------------------------------

    def commit_target(self):
        """(function doing the fsync, label)."""
        name = self.pick()
        r = self.rng.random()
        if self.fds and r < 0.25:
            fd, ent = self.pick_fd()

            def by_fd():
                try:
                    os.fsync(fd)
                    return 0
                except OSError as e:
                    return e.errno
            return by_fd, "fd %d (%r)" % (fd, self.name_of(ent))
        if name is None or r < 0.55:
            return (lambda: self.m.commit()), "dir"
        path = self.path(name)
        return (lambda: self.m.commit(path)), name

    def verify_file(self, what):
        W.check_ckpt(self.tc, self.src, self.model.expected(),
                     label="seed %s op %d %s" % (self.seed,
                                                 self.stats["ops"], what))

    def commit_failure(self):
        """(errno, [(name, why)]) of the commit the model expects to fail
        now, or (0, [])."""
        problems = self.model.problems()
        return (errno.EINVAL, problems) if problems else (0, [])

    def prepare_commit(self):
        """What the runner does to the model before every commit."""

    def names_any(self, msg, problems):
        return any(W.escape_name(n) in msg for n, _ in problems)

    def count_failure(self, err):
        pass

    def fix_failure(self):
        """After a failed commit: fixes what made it fail."""
        self.fix_all()

    def after_commit(self):
        """The model and the file as they are after a commit."""
        self.model.committed()
        self.committed_model = self.model.copy()
        self.committed_bytes = W.read_bytes(self.src)
        self.maybe_dirty = False

    def back_to_committed(self):
        """The edits are gone (a recovery was saved): the last commit."""
        self.model = self.committed_model.copy()
        self.maybe_dirty = False

    def op_commit(self):
        self.prepare_commit()
        want, problems = self.commit_failure()
        fsync, label = self.commit_target()
        ino = os.stat(self.src).st_ino
        self.note("fsync %s (model: %s)" % (label, problems or "valid"))
        e = M.guarded(fsync, W.TIMEOUT, lambda: M.kill9(self.m.pid),
                      "fsync " + label)
        if problems:
            if e != want:
                self.fail("commit with %s: expected %s, got %s" % (
                    problems, W.errno_name(want), W.errno_name(e)))
            self.stats["failed_commits"] += 1
            self.count_failure(want)
            if W.read_bytes(self.src) != self.committed_bytes:
                self.fail("a failed commit changed the checkpoint")
            msg = self.m.error()
            if not self.names_any(msg, problems):
                self.fail("commit error %r names none of %s" % (msg,
                                                                problems))
            self.fix_failure()
            return self.op_commit()
        if e:
            self.fail("commit of a valid model failed with %s: %s" % (
                W.errno_name(e), self.m.error()))
        self.stats["commits"] += 1
        if not self.maybe_dirty and os.stat(self.src).st_ino != ino:
            self.fail("a commit without any change rewrote the file")
        self.verify_file("after commit")
        self.after_commit()

    def fix_all(self):
        for name, why in self.model.problems():
            e = self.model.ents[name]
            n = len(e.data)
            dtype, shape = e.view()   # what the fix sees
            sz = isz(dtype)
            choices = ["unlink"]
            if dtype == "str":
                choices += ["pad"]
            else:
                if n and n % sz == 0:
                    choices += ["shape", "unshape"] if shape is not None \
                        else ["shape"]
                if shape is not None and \
                        prod(shape) * sz <= MAX_SIZE and \
                        (prod(shape) or shape):
                    choices += ["resize"]
                choices += ["pad"]
            how = self.rng.choice(choices)
            self.note("fix %r (%s) by %s" % (name, why, how))
            if how == "unlink":
                self.op_unlink(name)
            elif how == "shape":
                shape = factor_shape(self.rng, n // sz)
                W.setx(self.path(name), "user.shape",
                       shape_text(self.rng, shape))
                e.own_view()
                e.shape = shape
            elif how == "unshape":
                os.removexattr(self.path(name), "user.shape")
                e.own_view()
                e.shape = None
            elif how == "resize":
                self.op_truncate(name, prod(shape) * sz)
            else:  # pad: up to whole elements, at least one
                step = 4 if dtype == "str" else sz
                target = max(step, (n + step - 1) // step * step)
                self.op_truncate(name, target)
                if dtype != "str" and shape is not None:
                    os.removexattr(self.path(name), "user.shape")
                    e.own_view()
                    e.shape = None
            self.maybe_dirty = True
        if self.model.problems():
            self.fail("fixing left problems: %s" % self.model.problems())

    # -- unmount / remount -------------------------------------------------

    def op_remount(self):
        self.stats["remounts"] += 1
        self.close_all_fds()
        self.prepare_commit()
        problems = self.commit_failure()[1]
        if problems and self.rng.random() < 0.25 and \
                self.recovery_possible():
            return self.remount_with_recovery(problems)
        if problems:
            self.fix_all()
        self.note("remount")
        before = W.file_state(self.src)
        if self.rng.random() < 0.5:
            r = self.m.ckpt_umount()
            if r.rc != 0:
                self.fail("ckpt umount: " + r.describe())
            if self.m.mounted():
                self.fail("still mounted after ckpt umount")
        else:
            self.m.unmount()
        if not self.maybe_dirty and W.file_state(self.src) != before:
            self.fail("an unmount without any change rewrote the file")
        self.verify_file("after unmount")
        self.after_commit()
        self.m = M.mount(self.tc, self.src)
        self.op_list()

    def remount_with_recovery(self, problems):
        self.note("unmount with problems %s" % problems)
        pid = self.m.pid
        self.m.unmount()
        self.stats["recoveries"] += 1
        if W.read_bytes(self.src) != self.committed_bytes:
            self.fail("an unmount whose commit failed changed the file")
        ext = ".safetensors" if self.src.endswith(".safetensors") \
            else ".ckpt"   # a recovery file has its format's extension
        rec = glob.glob(glob.escape(self.src) + ".recovery-*" + ext)
        if len(rec) != 1:
            self.fail("expected one recovery checkpoint, found %s" % rec)
        self.check_recovery(rec[0])
        os.unlink(rec[0])
        M.take_status(pid)
        # the edits are gone: back to the last commit
        self.back_to_committed()
        self.m = M.mount(self.tc, self.src)
        self.op_list()

    def recovery_possible(self):
        return True

    def check_recovery(self, path):
        try:
            got = ckref.load(path)
        except ckref.CheckpointError as e:
            self.fail("recovery checkpoint not loadable: %s" % e)
        # every non-empty pending parameter is in it with its bytes
        gotd = {p.name: p for p in got}
        for name in self.model.order:
            data = bytes(self.model.ents[name].data)
            if not data:
                continue
            if name not in gotd or gotd[name].data != data:
                self.fail("recovery checkpoint lacks the data of %r" % name)

    # -- driver ------------------------------------------------------------

    OPS = [("write", 22), ("read", 12), ("truncate", 6), ("create", 7),
           ("unlink", 4), ("rename", 6), ("set_dtype", 8), ("set_shape", 8),
           ("remove_shape", 3), ("list", 3), ("commit", 4), ("remount", 0.4),
           ("fd_open", 3), ("fd_close", 2), ("fd_io", 10)]

    def run(self, nops):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        t0 = time.monotonic()
        for _ in range(nops):
            self.stats["ops"] += 1
            op = self.rng.choices(names, weights)[0]
            try:
                getattr(self, "op_" + op)()
            except OSError as e:
                self.fail("%s raised %s" % (op, e))
        # final commit and unmount
        self.prepare_commit()
        if self.commit_failure()[1]:
            self.fix_all()
        self.op_commit()
        self.close_all_fds()
        self.m.unmount()
        self.verify_file("at the end")
        self.stats["seconds"] = round(time.monotonic() - t0, 1)
        return self.stats


# --------------------------------------------------------------------------
# the same on a safetensors mount

ST_DTYPES = sorted(set(ckref.ITEMSIZE) | set(SM.ST_ONLY))
ST_ALIASES = dict(ALIASES, **SM.ST_SPELLINGS)
ST_BAD_DTYPES = BAD_DTYPES + ["F33", "bf16", "I4", "F8", "f32", "U128"]
# metadata keys the operations use (never a tensor's name, except
# quant.weight: the Int4 marker of the file, EPERM while it is one)
META_KEYS = ["format", "remove_redundancy", "note", "k.1", "with space",
             "\u00fcn\u00ef/k\u00e9y", 'q"t\\b', "tab\tkey", "z",
             "quant.weight"]
META_CHARS = ('abcXYZ019 ._-/"\\\b\f\n\r\t\x01\x1f\x7f' +
              "\u00e9\u6743\U0001F600")


class SafetensorsRunner(Runner):
    """Runner on a MindSpore 2.7-style safetensors file (metadata with an
    Int4 marker and a crc_num, 0-d Int64 and Float32 tensors).  The model
    keeps the shown dtypes; every successful commit must write exactly
    stmodel.file_bytes() of it (stref.serialize: the serializer's order,
    the metadata's keys in their order with new ones appended, markers,
    crc_num recomputed in place), which both of stref's readers take.
    Extra: setxattr / removexattr / getxattr / listxattr of the root's
    user.metadata.* (EPERM for crc_num and the marker, EINVAL for an empty
    key or a value that is not UTF-8 without NUL, ENODATA for a missing
    key), dtypes only safetensors has, dtypes it cannot hold (str,
    Complex128, HiFloat8: setxattr user.dtype fails with EINVAL), and a
    0-d integer whose value crc_num cannot hash (negative or over 4 GiB:
    the commit fails with ENOTSUP naming it).
    The listing is compared as a set (its order after a commit is not
    specified); after every commit the mount must read back the model."""

    DTYPES = ST_DTYPES
    ALIASES = ST_ALIASES
    BAD_DTYPES = ST_BAD_DTYPES
    RARE = SM.UNREPRESENTABLE
    RARE_P = 0.6
    REFUSED = SM.UNREPRESENTABLE
    OPS = Runner.OPS + [("set_meta", 4), ("remove_meta", 1.5),
                        ("check_meta", 2), ("bad_zero_d", 0.6)]
    # 0-d integers above this are rewritten before a commit (crc_num hashes
    # that many zero bytes)
    CRC_VALUE_MAX = 1 << 16

    def make_source(self):
        src = os.path.join(self.dir, "model.safetensors")
        W.write_file(src, G.mindspore_style(crc=True))
        with stref.read(src) as st:
            for t in st.tensors:
                self.model.add(t.name, Ent(t.data, SM.shown_of(
                    t.dtype, t.name, st.metadata), t.shape))
            self.meta = SM.StMeta.of(st)
        assert self.meta.checksum and self.meta.find("quant.weight")[2]
        self.committed_meta = self.meta.copy()
        self.stats.update(meta_ops=0, enotsup=0)
        return src

    def tensors(self):
        return [(n, self.model.ents[n].shown_dtype(),
                 self.model.ents[n].shown_shape(),
                 bytes(self.model.ents[n].data)) for n in self.model.order]

    def verify_file(self, what):
        t = self.tensors()
        probs = SM.check_file(self.src, SM.file_bytes(t, self.meta),
                              "seed %s op %d %s" % (
                                  self.seed, self.stats["ops"], what),
                              ms=SM.ms_loadable(t, self.meta.written(t)))
        if probs:
            self.fail("\n".join(probs))

    # -- commits -----------------------------------------------------------

    def commit_failure(self):
        want, problems = super().commit_failure()
        if problems:
            return want, problems
        crc = SM.crc_problem(self.tensors()) if self.meta.checksum else None
        return (errno.ENOTSUP, [crc]) if crc else (0, [])

    def names_any(self, msg, problems):
        return any(W.escape_name(n) in msg or n in msg for n, _ in problems)

    def count_failure(self, err):
        if err == errno.ENOTSUP:
            self.stats["enotsup"] += 1

    def zero_d_ints(self):
        """The 0-d integer tensors (that fit: a misfit is EINVAL first)."""
        for n in self.model.order:
            e = self.model.ents[n]
            if e.shown_dtype() in SM.INTEGER and e.shown_shape() == () \
                    and e.problem() is None:
                yield n, e

    def small_value(self, name, e):
        v = self.rng.randrange(0, 100).to_bytes(len(e.data), "little")
        self.note("write %r the 0-d value %d" % (name, v[0]))
        W.pwrite_file(self.path(name), v, 0)
        e.data[:] = v
        self.maybe_dirty = True

    def op_bad_zero_d(self):
        """A 0-d integer crc_num cannot hash: negative, or over 4 GiB."""
        cands = [(n, e) for n, e in self.zero_d_ints()
                 if e.shown_dtype() in SM.SIGNED or len(e.data) == 8]
        if not cands:
            if len(self.model.order) >= MAX_ENTRIES:
                return
            name = self.new_name()
            dtype = self.rng.choice(["Int64", "UInt64", "Int32", "Int4"])
            data = bytes(isz(dtype))
            self.note("create %r, 0-d %s" % (name, dtype))
            W.write_file(self.path(name), data)
            self.model.create(name, Ent(data, "UInt8", None, dset=False))
            e = self.model.ents[name]
            W.set_meta(self.path(name), dtype, "[]")
            e.own_view()
            e.dtype, e.shape, e.dset = dtype, (), True
            cands = [(name, e)]
        name, e = self.rng.choice(cands)
        n = len(e.data)
        if e.shown_dtype() in SM.SIGNED and self.rng.random() < 0.5:
            v = (-self.rng.randrange(1, 100)).to_bytes(n, "little",
                                                       signed=True)
        elif n == 8:
            v = self.rng.randrange(SM.MAX_ZEROS + 1, 1 << 63).to_bytes(
                8, "little")
        else:
            v = (-1).to_bytes(n, "little", signed=True)
        self.note("write %r the 0-d value %s" % (name, v.hex()))
        W.pwrite_file(self.path(name), v, 0)
        e.data[:] = v
        self.maybe_dirty = True
        if self.rng.random() < 0.5:
            self.op_commit()

    def prepare_commit(self):
        """A 0-d integer adds its value's zeros to crc_num: big values
        (cheap to refuse only above 4 GiB) are made small."""
        if not self.meta.checksum:
            return
        for n, e in self.zero_d_ints():
            v = SM.zero_d_value(e.shown_dtype(), bytes(e.data))
            if v is not None and v > self.CRC_VALUE_MAX:
                self.small_value(n, e)

    def fix_failure(self):
        # one kind of problem at a time, so that each failure is seen
        if self.model.problems():
            super().fix_all()
        else:
            self.fix_all()

    def fix_all(self):
        if self.model.problems():
            super().fix_all()
        if self.meta.checksum:
            for n, e in list(self.zero_d_ints()):
                if SM.zero_d_value(e.shown_dtype(), bytes(e.data)) is None:
                    self.small_value(n, e)
        left = self.commit_failure()[1]
        if left:
            self.fail("fixing left problems: %s" % left)

    def after_commit(self):
        """The mount goes on with what it wrote: the metadata as written,
        markers making I8 tensors Int4."""
        want = SM.file_bytes(self.tensors(), self.meta)
        self.model.committed()
        with stref.read(want) as st:
            for t in st.tensors:
                e = self.model.ents[t.name]
                e.dtype = SM.shown_of(t.dtype, t.name, st.metadata)
                e.shape = tuple(t.shape)
            self.meta = SM.StMeta.of(st)
        self.committed_model = self.model.copy()
        self.committed_meta = self.meta.copy()
        self.committed_bytes = W.read_bytes(self.src)
        self.maybe_dirty = False

    def back_to_committed(self):
        super().back_to_committed()
        self.meta = self.committed_meta.copy()

    def op_commit(self):
        super().op_commit()
        # the mount shows what was committed
        self.op_list()
        for n in self.model.order:
            self.check_one(n)
        self.op_check_meta()

    # -- recovery ----------------------------------------------------------

    def check_recovery(self, path):
        """The recovery file: every non-empty tensor, misfits made to fit
        (1-D of their dtype if whole, else UInt8), no crc_num; exactly
        what the serializer writes for that."""
        out = []
        for n, dt, shape, data in self.tensors():
            if not data:
                continue
            if self.model.ents[n].problem():
                isz_ = isz(dt) if dt != "str" else 0
                if dt != "str" and len(data) % isz_ == 0:
                    shape = (len(data) // isz_,)
                else:
                    dt, shape = "UInt8", (len(data),)
            out.append((n, dt, shape, data))
        probs = SM.check_file(path, SM.file_bytes(out, self.meta,
                                                  recovery=True),
                              "recovery file", ms=False)
        if probs:
            self.fail("\n".join(probs))

    # -- listing and metadata ------------------------------------------------

    def op_list(self):
        self.note("list")
        got = sorted(os.listdir(self.m.mnt))
        want = sorted(W.escape_name(n) for n in self.model.order)
        if got != want:
            self.fail("listing %r, model %r" % (got, want))

    def meta_value(self):
        r = self.rng.random()
        if r < 0.05:
            return "Int4"
        if r < 0.1:
            return ""
        return "".join(self.rng.choice(META_CHARS)
                       for _ in range(self.rng.randrange(1, 24)))

    def meta_key(self):
        keys = [k for k, _, _ in self.meta.items]
        if keys and self.rng.random() < 0.4:
            return self.rng.choice(keys)
        return self.rng.choice(META_KEYS)

    def op_set_meta(self):
        self.stats["meta_ops"] += 1
        r = self.rng.random()
        mnt = self.m.mnt
        if r < 0.04:
            self.note("set metadata crc_num (EPERM)")
            self.expect_errno(errno.EPERM, os.setxattr, mnt,
                              SM.PREFIX + "crc_num", b"1")
            return
        if r < 0.06:
            self.note("set metadata with an empty key (EINVAL)")
            self.expect_errno(errno.EINVAL, os.setxattr, mnt, SM.PREFIX,
                              b"v")
            return
        key = self.meta_key()
        err = self.meta.editable(key)
        if r < 0.1:
            bad = self.rng.choice([b"\xff\xfe", b"a\x00b", b"\xc3",
                                   b"\xed\xa0\x80"])
            self.note("set metadata %r to %r (EINVAL)" % (key, bad))
            self.expect_errno(err or errno.EINVAL, os.setxattr, mnt,
                              SM.PREFIX + key, bad)
            return
        value = self.meta_value()
        self.note("set metadata %r = %r%s" % (key, value, " (%s)" % (
            W.errno_name(err)) if err else ""))
        if err:
            self.expect_errno(err, os.setxattr, mnt, SM.PREFIX + key,
                              value.encode())
            return
        os.setxattr(mnt, SM.PREFIX + key, value.encode())
        self.meta.set(key, value)
        self.maybe_dirty = True

    def op_remove_meta(self):
        self.stats["meta_ops"] += 1
        key = self.meta_key()
        it = self.meta.find(key)
        err = self.meta.editable(key) or (0 if it else errno.ENODATA)
        self.note("remove metadata %r%s" % (key, " (%s)" % (
            W.errno_name(err)) if err else ""))
        if err:
            self.expect_errno(err, os.removexattr, self.m.mnt,
                              SM.PREFIX + key)
            return
        os.removexattr(self.m.mnt, SM.PREFIX + key)
        self.meta.remove(key)
        self.maybe_dirty = True

    def op_check_meta(self):
        self.note("check metadata")
        got = list(SM.root_meta(self.m.mnt).items())
        want = list(self.meta.shown().items())
        if got != want:
            self.fail("user.metadata.* of the root %r, model %r" % (got,
                                                                    want))
        key = self.rng.choice(META_KEYS)
        it = self.meta.find(key)
        if not it or it[2]:
            self.expect_errno(errno.ENODATA, os.getxattr, self.m.mnt,
                              SM.PREFIX + key)


class TestRandomOps(unittest.TestCase):
    def test_random_ops(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        seed = int(SEED_ENV) if SEED_ENV else random.SystemRandom().randrange(
            1 << 31)
        print("\ntest_random_ops: seed %d (CKPT_RANDOM_SEED=%d to repeat), "
              "%d ops" % (seed, seed, NOPS), file=sys.stderr, flush=True)
        stats = Runner(self, seed).run(NOPS)
        print("test_random_ops: seed %d: %s" % (seed, stats),
              file=sys.stderr, flush=True)

    def test_random_ops_safetensors(self):
        common.require_bin(self, common.CKPTFS_BIN)
        common.require_bin(self, common.CKPT_BIN)
        seed = int(SEED_ENV) if SEED_ENV else random.SystemRandom().randrange(
            1 << 31)
        print("\ntest_random_ops_safetensors: seed %d (CKPT_RANDOM_SEED=%d "
              "to repeat), %d ops" % (seed, seed, ST_NOPS), file=sys.stderr,
              flush=True)
        stats = SafetensorsRunner(self, seed).run(ST_NOPS)
        print("test_random_ops_safetensors: seed %d: %s" % (seed, stats),
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    unittest.main()
