#!/usr/bin/python3
"""What a commit of a safetensors mount must write, modelled in Python for
the stress suites (test_random_ops, test_crash, test_faults,
test_concurrency); the bytes come from the independent reference
tests/ref/stref.py (stref.serialize, stref.crc_num).

Tensors are kept with the dtype the mount shows (MindSpore's spelling,
"Int4" for an I8 tensor with a marker, the safetensors name for a dtype
MindSpore has no name for).  The metadata (StMeta) follows spec16 and the
encoder's rules: the file's keys in their order, new keys appended, the
Int4 markers where the file had them (a marker whose tensor is gone or no
longer Int4 goes; new ones last, in name order), crc_num recomputed in
place when the file had one; "__metadata__" written when the file had it
or something needs it; no tensors: the 16-byte file of save_file({}).
After a commit the mount continues on what it wrote: StMeta.of() and
StState.of() read that back.
"""

import collections
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402,F401  (puts tests/ref on sys.path)
import stref  # noqa: E402

OD = collections.OrderedDict
CRC_KEY = "crc_num"
PREFIX = "user.metadata."

# dtypes only safetensors has (shown under their safetensors name), whole
# bytes per element (F4 / F6 are left to test_safetensors)
ST_ONLY = {"F8_E8M0": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1}
# shown dtypes a safetensors mount cannot hold (setxattr user.dtype: EINVAL)
UNREPRESENTABLE = ("str", "Complex128", "HiFloat8")
INTEGER = ("Int4", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16",
           "UInt32", "UInt64")
SIGNED = ("Int4", "Int8", "Int16", "Int32", "Int64")
# the most zeros a 0-d integer may stand for in crc_num (crc.c MAX_ZEROS)
MAX_ZEROS = 1 << 32
# every spelling user.dtype takes for a safetensors dtype -> shown dtype
ST_SPELLINGS = dict({st: shown for st, shown in stref.SHOWN.items()},
                    **{n: n for n in ST_ONLY})
ST_SPELLINGS.update({"float8_e8m0fnu": "F8_E8M0",
                     "float8_e4m3fnuz": "F8_E4M3FNUZ",
                     "float8_e5m2fnuz": "F8_E5M2FNUZ",
                     "float8_e4m3fn": "Float8E4M3FN",
                     "float8_e5m2": "Float8E5M2"})


def st_dtype(shown):
    """The safetensors dtype written for a shown dtype."""
    if shown in ST_ONLY:
        return shown
    return stref.MS_TO_ST[shown]


def shown_of(st_dt, name, metadata):
    return stref.shown_dtype(st_dt, name, metadata)


def zero_d_value(shown, data):
    """The value a 0-d integer tensor feeds crc_num (as bytes(v)); None if
    MindSpore cannot compute it (negative, or over MAX_ZEROS)."""
    v = int.from_bytes(data, "little", signed=shown in SIGNED)
    return v if 0 <= v <= MAX_ZEROS else None


def crc_problem(tensors):
    """(name, why) of the first tensor, in name order, whose crc_num term
    cannot be computed (a 0-d integer holding a negative value or more
    than 4 GiB), or None.  tensors: [(name, shown, shape, data)]."""
    for name, shown, shape, data in sorted(tensors,
                                           key=lambda t: t[0].encode()):
        if shown in INTEGER and tuple(shape) == () and \
                zero_d_value(shown, data) is None:
            return name, "0-d %s holds %d" % (shown, int.from_bytes(
                data, "little", signed=shown in SIGNED))
    return None


class StMeta:
    """The metadata of a safetensors tree: items [key, value, marker] in
    order, whether the file had "__metadata__" and whether it had crc_num
    (every commit then recomputes it)."""

    def __init__(self, items=(), has_meta=False, checksum=False):
        self.items = [list(x) for x in items]
        self.has_meta = has_meta
        self.checksum = checksum

    @classmethod
    def of(cls, st):
        """The metadata of a stref.StFile, as the mount loads it."""
        meta = st.metadata
        i8 = {t.name for t in st.tensors if t.dtype == "I8"}
        items = [[k, v, v == "Int4" and k in i8]
                 for k, v in (meta or {}).items()]
        return cls(items, meta is not None,
                   bool(meta) and CRC_KEY in meta)

    def copy(self):
        return StMeta(self.items, self.has_meta, self.checksum)

    def find(self, key):
        for it in self.items:
            if it[0] == key:
                return it
        return None

    def shown(self):
        """OD of the user.metadata.* keys a mount lists (no markers), in
        order, with their values (strings)."""
        return OD((k, v if isinstance(v, str) else stref.json_value(v))
                  for k, v, mk in self.items if not mk)

    def editable(self, key):
        """0, or the errno setxattr / removexattr of key gives."""
        import errno
        it = self.find(key)
        if key == CRC_KEY or (it and it[2]):
            return errno.EPERM
        if not key:
            return errno.EINVAL
        return 0

    def set(self, key, value):
        it = self.find(key)
        if it:
            it[1] = value
        else:
            self.items.append([key, value, False])

    def remove(self, key):
        self.items.remove(self.find(key))

    def written(self, tensors, checksum=None, recovery=False):
        """The "__metadata__" a commit writes for tensors [(name, shown,
        shape, data)] (an OD, or None for none); crc_num computed (not in
        a recovery file)."""
        if not tensors:
            return None
        if checksum is None:
            checksum = self.checksum and not recovery
        int4 = {t[0] for t in tensors if t[1] == "Int4"}
        out = OD()
        marked = set()
        crc_done = False
        for k, v, mk in self.items:
            if k == CRC_KEY:
                if checksum and not crc_done:
                    out[k] = None      # its place; the value below
                crc_done = True
                continue
            if k in int4:
                if k not in marked:
                    out[k] = "Int4"
                    marked.add(k)
                continue
            if not mk:
                out[k] = v
        for n in sorted(int4 - marked, key=lambda s: s.encode()):
            out[n] = "Int4"
        if checksum:
            out[CRC_KEY] = str(stref.crc_num(
                [(n, st_dtype(d), s, b) for n, d, s, b in tensors]))
        if not out and not self.has_meta:
            return None
        return out


def file_bytes(tensors, meta, checksum=None, recovery=False):
    """The bytes a commit writes for tensors [(name, shown dtype, shape,
    data)] and meta (StMeta)."""
    if not tensors:
        return stref.EMPTY_FILE
    return stref.serialize([(n, st_dtype(d), tuple(s), bytes(b))
                            for n, d, s, b in tensors],
                           meta.written(tensors, checksum, recovery))


class StState:
    """Tensors (OD name -> [shown dtype, shape, data]) and metadata of a
    safetensors tree: what the mount shows, what a commit writes."""

    def __init__(self, tensors, meta):
        self.t = OD((n, [d, tuple(s), bytes(b)]) for n, d, s, b in tensors)
        self.meta = meta

    @classmethod
    def of(cls, path_or_bytes):
        with stref.read(path_or_bytes) as st:
            return cls([(t.name, shown_of(t.dtype, t.name, st.metadata),
                         t.shape, t.data) for t in st.tensors],
                       StMeta.of(st))

    def copy(self):
        return StState([(n, d, s, b) for n, (d, s, b) in self.t.items()],
                       self.meta.copy())

    def tensors(self):
        return [(n, d, s, b) for n, (d, s, b) in self.t.items()]

    def bytes(self):
        return file_bytes(self.tensors(), self.meta)

    def committed(self):
        """The state the mount continues on after committing this one."""
        return StState.of(self.bytes())

    # edits
    def set(self, name, dtype=None, shape=None, data=None):
        e = self.t[name]
        if dtype is not None:
            e[0] = dtype
        if shape is not None:
            e[1] = tuple(shape)
        if data is not None:
            e[2] = bytes(data)
        return self

    def add(self, name, dtype, shape, data):
        assert name not in self.t
        self.t[name] = [dtype, tuple(shape), bytes(data)]
        return self

    def remove(self, name):
        del self.t[name]
        return self

    def rename(self, old, new):
        self.t = OD((new if n == old else n, v) for n, v in self.t.items())
        return self

    def set_meta(self, key, value):
        self.meta.set(key, value)
        return self


def check_file(path_or_bytes, want, label, ms=True):
    """Problems ([] = none) of a committed file against the bytes it must
    be; both of the reference's readers must take it (the MindSpore one
    when ms)."""
    if isinstance(path_or_bytes, bytes):
        raw = path_or_bytes
    else:
        with open(path_or_bytes, "rb") as f:
            raw = f.read()
    probs = []
    if raw != want:
        try:
            st = stref.read(raw)
            got = "%s; metadata %r" % ([(t.name, t.dtype, t.shape, t.nbytes)
                                        for t in st.tensors][:12],
                                       st.metadata)
        except stref.StError as e:
            got = "invalid: %s" % e
        n = min(len(raw), len(want))
        diff = next((i for i in range(n) if raw[i] != want[i]), n)
        probs.append("%s: the file is not what the serializer writes (%d "
                     "bytes, expected %d, first difference at %d); got %s"
                     % (label, len(raw), len(want), diff, got))
    for mode in ("hf", "ms") if ms else ("hf",):
        try:
            stref.read(raw, mode).close()
        except stref.StError as e:
            probs.append("%s: stref.read(%s) refuses the file: %s"
                         % (label, mode, e))
    return probs


def root_meta(mnt):
    """OD of the root's user.metadata.* as listed, with their values."""
    out = OD()
    for x in os.listxattr(mnt):
        if x.startswith(PREFIX):
            out[x[len(PREFIX):]] = os.getxattr(mnt, x).decode(
                "utf-8", "surrogateescape")
    return out


def ms_loadable(tensors, meta_written):
    """Whether MindSpore 2.7's reader takes the file (its 13 dtypes, no
    tensor named like a metadata key other than an Int4 marker)."""
    if any(st_dtype(t[1]) not in stref.MS_DTYPE_SIZE for t in tensors):
        return False
    names = {t[0] for t in tensors}
    return not any(k in names and v != "Int4"
                   for k, v in (meta_written or {}).items())
