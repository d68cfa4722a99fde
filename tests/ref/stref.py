#!/usr/bin/python3
"""stref - independent reference reader/writer for safetensors files.

The test oracle of ckptfs for the safetensors format.  Written from the
format document (shared/docs/safetensors-format.md, cited as "§") only,
with the Python standard library and numpy; it shares no code with the C
implementation and none with Hugging Face's or MindSpore's.  Run it with
/usr/bin/python3.

Reader semantics, read(path_or_bytes, mode):

mode="hf" (default): Hugging Face's loader (§2.2), checks in its order:
* the file has >= 8 bytes; N = u64 LE <= 100_000_000; 8 + N <= file size;
* the N header bytes are valid UTF-8 (strict: no overlong forms, no
  surrogates) and one JSON value (JSON whitespace before and after it,
  e.g. the space padding, is fine; anything else after it is not; no BOM,
  no NaN/Infinity, no unpaired \\uD800 escapes);
* the value is an object; "__metadata__", if present, is an object (its
  values are kept as parsed: non-string values are accepted, as ckptfs does
  per §2.5, although HF itself refuses them) or null (= no metadata);
* every other key is a tensor: an object with "dtype" (one of the 22
  strings of §2.3, exactly), "shape" (a list of integers 0 <= d < 2**64;
  not bools, not floats) and "data_offsets" (a list of exactly two such
  integers); other fields are ignored;
* duplicate keys anywhere (top level, inside an entry, inside the
  metadata) are refused (HF collapses them in a HashMap; §2.1 forbids
  them; object_pairs_hook detects them);
* entries are stably sorted by (begin, end) (so any JSON order is fine);
  walking them: begin == previous end (0 first) and end >= begin;
  nelements = product of shape with overflow checked at every step as
  u64 (so [2**40, 2**40, 0] overflows, as in Rust); nbits = nelements *
  bits (checked), nbits % 8 == 0, end - begin == nbits / 8;
* last end + 8 + N == file size (no truncation, no trailing bytes).

mode="ms": MindSpore 2.7's _fast_safe_open (§1.11):
* >= 8 bytes, N <= 100_000_000, N + 8 <= size;
* json.loads(bytes) (Python's own decoding: UTF-8, -16, -32 detected, a
  UTF-8 BOM accepted), duplicate keys refused (as above);
* "__metadata__" popped (object or null required here: anything else
  breaks load_checkpoint later);
* tensors walked in JSON order: begin == previous end, end >= begin,
  end - begin == prod(shape) * size, with only the 13 dtypes of §1.3
  (BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64); shape entries
  must be non-negative integers, offsets two integers (MindSpore would
  fail later when reshaping otherwise);
* last end + 8 + N == size;
* additionally (load_checkpoint, §1.9): a tensor whose name is a metadata
  key must have the value "Int4" (anything else is a KeyError there).

mode="both": the file must pass both.

Result (StFile): .header_len (N), .header (the N raw bytes), .metadata
(OrderedDict as in the file, or None), .tensors (StTensor list in data
order; for "ms" that is the JSON order), .json_order (tensor names in JSON
order), .size, .data_start (8 + N).  StTensor: name (str), dtype
(safetensors string), shape (tuple), begin, end (relative to the data
start), nbytes, data (bytes, read lazily from the file or buffer).
Errors raise StError (a ValueError) with a message naming the problem and
the tensor.

Writer semantics, serialize(tensors, metadata=None), HF's serializer (§1.7):
tensors sorted by dtype descending in the enum order of §1.7, then by name
byte-wise (UTF-8); offsets back to back from 0; compact JSON,
"__metadata__" first (only when metadata is not None; its keys in the
given order), entry fields dtype, shape, data_offsets; strings escaped as
serde_json does (only " \\ \\b \\t \\n \\f \\r and other < 0x20 as \\u00xx
lowercase; non-ASCII raw; / not escaped); padded with spaces to a multiple
of 8; N <= 100_000_000.  No tensors and no metadata: the 16-byte file.
Tensors: a list of (name, dtype, shape, data) tuples, dicts or objects with
those attributes, or a dict name -> (dtype, shape, data).  Data sizes are
checked against dtype and shape.

mindspore_save(tensors, metadata_extra, crc, int4): MindSpore 2.7's
_exec_save (§1.2, §1.6): metadata {"format": "ms"}, then metadata_extra
(e.g. {"remove_redundancy": "False"}), then "<name>": "Int4" per Int4
tensor in name order, then "crc_num" (crc_num(), §1.8) when crc; no
tensors: save_file({}) (16 bytes, no metadata).  dtypes may be MindSpore
names (Float32, Int4, ...) or safetensors names; str and map parameters
raise StError naming them.

crc_num(tensors): §1.8: crc32 chained over sorted names: name (UTF-8),
then bytes(ndarray) of the tensor, built as a real numpy array, so that a
0-d integer tensor of value v feeds v zero bytes (a negative v is an
error, as in MindSpore's save).  Types numpy has no integer/float type for
(BF16, F8, F4, F6) are void arrays: raw bytes.

CLI:  stref.py dump FILE [hf|ms]  |  stref.py check FILE [hf|ms]
"""

import binascii
import collections
import gc
import json
import math
import mmap
import os
import re
import sys

import numpy as np

MAX_HEADER = 100_000_000
U64_MAX = (1 << 64) - 1

# §1.7: the Dtype enum order (HEAD), ascending
DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2",
               "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16",
               "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64",
               "I64", "U64"]
DTYPE_RANK = {d: i for i, d in enumerate(DTYPE_ORDER)}

# §2.3: bits per element
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64,
    "U64": 64, "F8_E5M2": 8, "F8_E4M3": 8, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6, "F8_E8M0": 8, "C64": 64, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
}
assert set(DTYPE_BITS) == set(DTYPE_ORDER)

# §1.3 / §1.11: MindSpore 2.7's readers, bytes per element
MS_DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "I32": 4,
                 "U32": 4, "I64": 8, "U64": 8, "F16": 2, "BF16": 2,
                 "F32": 4, "F64": 8}

# spec16: safetensors -> the user.dtype ckptfs shows
SHOWN = {
    "BOOL": "Bool", "U8": "UInt8", "I8": "Int8", "I16": "Int16",
    "U16": "UInt16", "F16": "Float16", "BF16": "BFloat16", "I32": "Int32",
    "U32": "UInt32", "F32": "Float32", "F64": "Float64", "I64": "Int64",
    "U64": "UInt64", "F8_E4M3": "Float8E4M3FN", "F8_E5M2": "Float8E5M2",
    "C64": "Complex64",
}
# MindSpore tensor_type -> safetensors dtype (what asnumpy() hands to HF)
MS_TO_ST = {
    "Bool": "BOOL", "UInt8": "U8", "Int8": "I8", "Int16": "I16",
    "UInt16": "U16", "Float16": "F16", "BFloat16": "BF16", "Int32": "I32",
    "UInt32": "U32", "Float32": "F32", "Float64": "F64", "Int64": "I64",
    "UInt64": "U64", "Int4": "I8", "Float8E4M3FN": "F8_E4M3",
    "Float8E5M2": "F8_E5M2", "Complex64": "C64",
}
# safetensors dtype -> a numpy dtype whose bytes() behaves as MindSpore's
# array would (integers get the 0-d quirk; the rest are raw bytes)
_NP = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2",
    "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8", "F16": "<f2",
    "F32": "<f4", "F64": "<f8", "C64": "<c8",
}
INTEGER_DTYPES = ("U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64")

EMPTY_FILE = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "


class StError(ValueError):
    """The file (or the tensors given) is not valid safetensors."""


def _fail(msg):
    raise StError(msg)


def _nogc(fn):
    """Runs fn with the cyclic garbage collector off (100,000 tensors make
    it dominate the run time)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*a, **kw)
        finally:
            if was:
                gc.enable()
    return wrapper


# --------------------------------------------------------------------------
# sizes

def tensor_nbytes(dtype, shape, checked=True):
    """Bytes of a tensor (HF's rules, §2.2 rows 8-10); StError if the
    product overflows u64 or the bits are not a whole number of bytes."""
    if dtype not in DTYPE_BITS:
        _fail("unknown dtype %r" % (dtype,))
    n = 1
    for d in shape:
        n *= int(d)
        if checked and n > U64_MAX:
            _fail("shape %s: element count overflows 64 bits" % (list(shape),))
    nbits = n * DTYPE_BITS[dtype]
    if checked and nbits > U64_MAX:
        _fail("shape %s of %s: bit count overflows 64 bits" % (list(shape),
                                                             dtype))
    if nbits % 8:
        _fail("shape %s of %s: %d bits is not a whole number of bytes"
              % (list(shape), dtype, nbits))
    return nbits // 8


def shape_str(shape):
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def shown_dtype(st_dtype, name=None, metadata=None):
    """user.dtype as ckptfs shows it (spec16): MindSpore's spelling, Int4
    for an I8 tensor marked "Int4" in the metadata, else the safetensors
    name."""
    if st_dtype == "I8" and metadata and name is not None and \
            metadata.get(name) == "Int4":
        return "Int4"
    return SHOWN.get(st_dtype, st_dtype)


# --------------------------------------------------------------------------
# reader

class StTensor:
    __slots__ = ("name", "dtype", "shape", "begin", "end", "_src", "_base")

    def __init__(self, name, dtype, shape, begin, end, src=None, base=0):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.begin = begin
        self.end = end
        self._src = src
        self._base = base

    @property
    def nbytes(self):
        return self.end - self.begin

    @property
    def data(self):
        if self._src is None:
            return b""
        return bytes(self._src[self._base + self.begin:self._base + self.end])

    def read(self, off, n):
        """n bytes at offset off of the tensor (clipped)."""
        lo = self._base + self.begin + max(0, off)
        hi = min(self._base + self.end, lo + max(0, n))
        return bytes(self._src[lo:hi]) if hi > lo else b""

    def __getitem__(self, key):
        return getattr(self, key)

    def __repr__(self):
        return "StTensor(%r, %s, %s, [%d,%d])" % (
            self.name, self.dtype, shape_str(self.shape), self.begin,
            self.end)


class StFile:
    def __init__(self):
        self.header_len = 0
        self.header = b""
        self.metadata = None
        self.tensors = []
        self.json_order = []
        self.size = 0
        self.data_start = 0
        self._mm = None
        self._fobj = None

    def tensor(self, name):
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def names(self):
        return [t.name for t in self.tensors]

    def close(self):
        for t in self.tensors:
            t._src = None
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fobj is not None:
            self._fobj.close()
            self._fobj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _dup_hook(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                _fail("duplicate JSON key %r" % (k,))
            seen.add(k)
    return d


def _refuse_constant(s):
    _fail("JSON constant %s is not valid JSON" % s)


def _has_surrogate(s):
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _check_strings(v, where):
    """Unpaired \\uD800-\\uDFFF escapes: Python accepts them, serde_json and
    jansson do not."""
    if isinstance(v, str):
        if _has_surrogate(v):
            _fail("%s: string with an unpaired surrogate escape" % where)
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_strings(k, where)
            _check_strings(x, where)
    elif isinstance(v, list):
        for x in v:
            _check_strings(x, where)


def _is_uint(x):
    return type(x) is int and 0 <= x <= U64_MAX


def _entry(name, info, mode):
    """(dtype, shape, begin, end) of one tensor entry."""
    where = "tensor %r" % name
    if not isinstance(info, dict):
        _fail("%s: entry is %s, not an object" % (where,
                                                  type(info).__name__))
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            _fail("%s: missing field %r" % (where, field))
    dtype = info["dtype"]
    known = DTYPE_BITS if mode == "hf" else MS_DTYPE_SIZE
    if not isinstance(dtype, str) or dtype not in known:
        _fail("%s: unknown dtype %r%s" % (
            where, dtype, "" if mode == "hf" or dtype not in DTYPE_BITS
            else " (MindSpore reads only 13 dtypes)"))
    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        _fail("%s: shape %r is not a list of non-negative integers"
              % (where, shape))
    offs = info["data_offsets"]
    if not isinstance(offs, list) or len(offs) != 2 or \
            not all(_is_uint(o) for o in offs):
        _fail("%s: data_offsets %r is not two non-negative integers"
              % (where, offs))
    return dtype, tuple(shape), offs[0], offs[1]


def _parse_header(raw, mode, label):
    if mode == "hf":
        try:
            text = raw.decode("utf-8", "strict")
        except UnicodeDecodeError as e:
            _fail("%s: header is not valid UTF-8 (%s)" % (label, e))
        try:
            obj = json.loads(text, object_pairs_hook=_dup_hook,
                             parse_constant=_refuse_constant)
        except StError as e:
            _fail("%s: header: %s" % (label, e))
        except (ValueError, RecursionError) as e:
            _fail("%s: header is not valid JSON (%s)" % (label, e))
        if b"\\u" in raw:       # only an escape can make a surrogate
            _check_strings(obj, label + ": header")
    else:
        try:
            obj = json.loads(raw, object_pairs_hook=_dup_hook)
        except StError as e:
            _fail("%s: header: %s" % (label, e))
        except (ValueError, RecursionError) as e:
            _fail("%s: header is not valid JSON (%s)" % (label, e))
    if not isinstance(obj, dict):
        _fail("%s: header is a JSON %s, not an object" % (
            label, type(obj).__name__))
    return obj


def _validate(buf, size, mode, label):
    st = StFile()
    st.size = size
    if size < 8:
        _fail("%s: file of %d bytes is shorter than the 8-byte header "
              "length (HeaderTooSmall)" % (label, size))
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > MAX_HEADER:
        _fail("%s: header length %d is over the limit of %d (HeaderTooLarge)"
              % (label, n, MAX_HEADER))
    if 8 + n > size:
        _fail("%s: header length %d runs past the end of the %d-byte file "
              "(InvalidHeaderLength)" % (label, n, size))
    raw = bytes(buf[8:8 + n])
    st.header_len, st.header, st.data_start = n, raw, 8 + n
    obj = _parse_header(raw, mode, label)
    meta = obj.pop("__metadata__", None)
    if meta is not None and not isinstance(meta, dict):
        _fail("%s: __metadata__ is a JSON %s, not an object" % (
            label, type(meta).__name__))
    st.metadata = collections.OrderedDict(meta) if meta is not None \
        else None
    entries = []
    for name, info in obj.items():
        try:
            dtype, shape, b, e = _entry(name, info, mode)
        except StError as ex:
            _fail("%s: %s" % (label, ex))
        entries.append([name, dtype, shape, b, e])
    st.json_order = [x[0] for x in entries]
    if mode == "hf":
        entries.sort(key=lambda x: (x[3], x[4]))   # stable
    pos = 0
    for name, dtype, shape, b, e in entries:
        if b != pos or e < b:
            _fail("%s: tensor %r: data_offsets [%d,%d] %s (InvalidOffset)"
                  % (label, name, b, e,
                     "end before begin" if e < b else
                     "leave a hole after offset %d" % pos if b > pos else
                     "overlap the data before offset %d" % pos))
        pos = e
        try:
            if mode == "hf":
                want = tensor_nbytes(dtype, shape)
            else:
                want = math.prod(shape) * MS_DTYPE_SIZE[dtype]
        except StError as ex:
            _fail("%s: tensor %r: %s" % (label, name, ex))
        if e - b != want:
            _fail("%s: tensor %r: data_offsets [%d,%d] give %d bytes but "
                  "%s %s needs %d (TensorInvalidInfo)" % (
                      label, name, b, e, e - b, dtype, shape_str(shape),
                      want))
    if pos + 8 + n != size:
        _fail("%s: the data ends at %d but the file has %d bytes after the "
              "header: %s (MetadataIncompleteBuffer)" % (
                  label, pos, size - 8 - n,
                  "truncated" if pos + 8 + n > size else "trailing bytes"))
    if mode == "ms" and meta:
        for name, *_ in entries:
            if name in meta and meta[name] != "Int4":
                _fail("%s: tensor %r is also a metadata key (value %r): "
                      "MindSpore's load_checkpoint fails on it" % (
                          label, name, meta[name]))
    st.tensors = [StTensor(name, dtype, shape, b, e, buf, 8 + n)
                  for name, dtype, shape, b, e in entries]
    return st


def read(path_or_bytes, mode="hf", label=None):
    """Parses and validates a safetensors file (a path, or bytes).  See
    the module docstring for the rules of mode "hf", "ms" and "both"."""
    if mode not in ("hf", "ms", "both"):
        raise ValueError("mode must be 'hf', 'ms' or 'both'")
    fobj = mm = None
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf = bytes(path_or_bytes)
        size = len(buf)
        label = label or "<bytes>"
    else:
        path = os.fspath(path_or_bytes)
        label = label or os.path.basename(path)
        fobj = open(path, "rb")
        size = os.fstat(fobj.fileno()).st_size
        if size < (1 << 20):
            buf = fobj.read()
            fobj.close()
            fobj = None
        else:
            mm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ)
            buf = mm
    gc_was = gc.isenabled()
    gc.disable()        # 100,000 entries: the collector would dominate
    try:
        if mode == "both":
            _validate(buf, size, "ms", label)
            st = _validate(buf, size, "hf", label)
        else:
            st = _validate(buf, size, mode, label)
    except BaseException:
        if mm is not None:
            mm.close()
        if fobj is not None:
            fobj.close()
        raise
    finally:
        if gc_was:
            gc.enable()
    st._mm, st._fobj = mm, fobj
    return st


def loads(buf, mode="hf"):
    return read(bytes(buf), mode)


def is_valid(path_or_bytes, mode="hf"):
    try:
        read(path_or_bytes, mode).close()
        return True
    except StError:
        return False


# --------------------------------------------------------------------------
# writer

_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\]')


def json_string(s):
    """serde_json's escaping (§1.7 rule 3)."""
    if not _NEEDS_ESCAPE.search(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_value(v):
    """Compact JSON of a metadata value (strings as serde_json escapes
    them; other values as Python's json writes them, compact)."""
    if isinstance(v, str):
        return json_string(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if type(v) is int:
        return str(v)
    if isinstance(v, float):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ",".join(json_string(str(k)) + ":" + json_value(x)
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(json_value(x) for x in v) + "]"
    raise TypeError("not a JSON value: %r" % (v,))


def _g(t, key, idx):
    if isinstance(t, (tuple, list)):
        return t[idx]
    if isinstance(t, dict):
        return t[key]
    return getattr(t, key)


def _as_bytes(data):
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).tobytes()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if hasattr(data, "tobytes"):
        return data.tobytes()
    return bytes(data)


def normalize(tensors):
    """[(name, dtype, shape tuple, bytes)] from the accepted forms."""
    out = []
    if isinstance(tensors, dict):
        for name, v in tensors.items():
            if isinstance(v, (tuple, list)):
                out.append((name, v[0], tuple(v[1]), _as_bytes(v[2])))
            else:
                out.append((name, _g(v, "dtype", 0), tuple(_g(v, "shape", 1)),
                            _as_bytes(_g(v, "data", 2))))
        return out
    for t in tensors:
        out.append((_g(t, "name", 0), _g(t, "dtype", 1),
                    tuple(int(d) for d in _g(t, "shape", 2)),
                    _as_bytes(_g(t, "data", 3))))
    return out


def write_order(tensors):
    """The serializer's order (§1.7 rule 1) of normalized tensors."""
    return sorted(tensors, key=lambda t: (-DTYPE_RANK[t[1]],
                                          t[0].encode("utf-8")))


def header_json(tensors, metadata=None):
    """(JSON text without padding, [(name, dtype, shape, data, begin,
    end)] in data order) of the serializer for normalized tensors."""
    for name, dtype, shape, data in tensors:
        if not isinstance(name, str):
            raise StError("tensor name %r is not a str" % (name,))
        if name == "__metadata__":
            raise StError("a tensor cannot be named __metadata__")
        if dtype not in DTYPE_BITS:
            raise StError("tensor %r: unknown dtype %r" % (name, dtype))
        want = tensor_nbytes(dtype, shape)
        if len(data) != want:
            raise StError("tensor %r: %d bytes of data, %s %s needs %d"
                          % (name, len(data), dtype, shape_str(shape), want))
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        raise StError("duplicate tensor names")
    parts = []
    if metadata is not None:
        parts.append(json_string("__metadata__") + ":" + "{" + ",".join(
            json_string(k) + ":" + json_value(v)
            for k, v in metadata.items()) + "}")
    placed = []
    pos = 0
    for name, dtype, shape, data in write_order(tensors):
        b, e = pos, pos + len(data)
        pos = e
        placed.append((name, dtype, shape, data, b, e))
        parts.append(json_string(name) + ':{"dtype":' + json_string(dtype) +
                     ',"shape":[' + ",".join(str(int(d)) for d in shape) +
                     '],"data_offsets":[%d,%d]}' % (b, e))
    return "{" + ",".join(parts) + "}", placed


@_nogc
def serialize_header(tensors, metadata=None):
    """The 8 + N header bytes (length, JSON, padding) and the placed
    tensors."""
    text, placed = header_json(normalize(tensors), metadata)
    hb = text.encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    if len(hb) > MAX_HEADER:
        raise StError("header of %d bytes is over the limit of %d"
                      % (len(hb), MAX_HEADER))
    return len(hb).to_bytes(8, "little") + hb, placed


def serialize(tensors, metadata=None):
    """The file HF's serializer writes (see the module docstring)."""
    head, placed = serialize_header(tensors, metadata)
    return head + b"".join(t[3] for t in placed)


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


# --------------------------------------------------------------------------
# MindSpore

def _st_dtype(dtype, name):
    if dtype in DTYPE_BITS:
        return dtype, False
    if dtype in MS_TO_ST:
        return MS_TO_ST[dtype], dtype == "Int4"
    _fail("parameter %r: dtype %r cannot be represented in safetensors"
          % (name, dtype))


def as_array(dtype, shape, data):
    """The numpy array MindSpore would hold for a tensor (void for types
    numpy does not have)."""
    npd = _NP.get(dtype)
    if npd is None:
        if DTYPE_BITS[dtype] % 8:
            return np.frombuffer(data, dtype="V1")   # packed F4/F6: raw
        return np.frombuffer(data, dtype="V%d" % (DTYPE_BITS[dtype] // 8)
                             ).reshape(shape)
    return np.frombuffer(data, dtype=npd).reshape(shape)


_ZEROS = bytes(1 << 20)


def _crc_update(crc, name, dtype, shape, data):
    crc = binascii.crc32(name.encode("utf-8"), crc)
    arr = as_array(dtype, shape, data)
    if arr.ndim == 0 and dtype in INTEGER_DTYPES:
        v = int(arr)
        if v < 0:
            _fail("tensor %r: 0-d integer %d: bytes() of a negative value "
                  "fails (MindSpore cannot compute its crc)" % (name, v))
        if v >= 1 << 63:
            _fail("tensor %r: 0-d integer %d is too large for bytes()"
                  % (name, v))
        if v <= (1 << 24):
            return binascii.crc32(bytes(arr), crc)   # the real quirk
        while v > 0:      # same as bytes(arr), without allocating v bytes
            k = min(v, len(_ZEROS))
            crc = binascii.crc32(_ZEROS[:k], crc)
            v -= k
        return crc
    return binascii.crc32(bytes(arr), crc)


def crc_num(tensors):
    """MindSpore's crc_num (§1.8) of tensors (safetensors dtypes)."""
    crc = 0
    for name, dtype, shape, data in sorted(normalize(tensors),
                                           key=lambda t: t[0]):
        crc = _crc_update(crc, name, dtype, shape, data)
    return crc


def check_crc(path_or_bytes, mode="hf"):
    """None if the file has no crc_num, else whether it matches."""
    with read(path_or_bytes, mode) as st:
        if not st.metadata or "crc_num" not in st.metadata:
            return None
        stored = st.metadata["crc_num"]
        got = crc_num(st.tensors)
        return isinstance(stored, str) and stored.isdigit() and \
            int(stored) == got


def mindspore_save(tensors, metadata_extra=None, crc=False, int4=()):
    """The file MindSpore 2.7 save_checkpoint(format="safetensors") writes
    (see the module docstring)."""
    norm = []
    int4 = set(int4)
    if isinstance(tensors, dict):
        tensors = [(k,) + tuple(v) if isinstance(v, (tuple, list)) else v
                   for k, v in tensors.items()]
    items = []
    for t in tensors:
        kind = t.get("kind", "tensor") if isinstance(t, dict) else \
            getattr(t, "kind", "tensor")
        name = _g(t, "name", 0)
        if kind == "map":
            _fail("parameter %r: map parameters cannot be saved as "
                  "safetensors" % (name,))
        items.append((name, _g(t, "dtype", 1),
                      tuple(int(d) for d in _g(t, "shape", 2)),
                      _as_bytes(_g(t, "data", 3))))
    for name, dtype, shape, data in items:
        if dtype == "str":
            _fail("parameter %r: str parameters cannot be saved as "
                  "safetensors" % (name,))
        st, is4 = _st_dtype(dtype, name)
        if is4:
            int4.add(name)
        norm.append((name, st, shape, data))
    if not norm:
        return serialize([], None)
    meta = collections.OrderedDict(format="ms")
    for k, v in (metadata_extra or {}).items():
        meta[k] = v
    c = 0
    for name, st, shape, data in sorted(norm, key=lambda t: t[0]):
        if name in int4:
            meta[name] = "Int4"
        if crc:
            c = _crc_update(c, name, st, shape, data)
    if crc:
        meta["crc_num"] = str(c)
    return serialize(norm, meta)


def to_ckpt_params(st):
    """safetensors_to_ckpt (§1.10): parameters in name order as dicts
    (name, dtype MindSpore spelling, shape, data) for ckref.dumps; Int4
    markers give dtype Int4."""
    out = []
    for t in sorted(st.tensors, key=lambda t: t.name):
        out.append(dict(name=t.name,
                        dtype=shown_dtype(t.dtype, t.name, st.metadata),
                        shape=t.shape, data=t.data))
    return out


# --------------------------------------------------------------------------
# CLI

def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in ("dump", "check"):
        print("usage: stref.py dump|check FILE [hf|ms|both]",
              file=sys.stderr)
        return 2
    mode = argv[3] if len(argv) == 4 else "hf"
    try:
        st = read(argv[2], mode)
    except StError as e:
        print("stref: invalid safetensors: %s" % e, file=sys.stderr)
        return 1
    if argv[1] == "dump":
        import hashlib
        print("header %d metadata %s" % (st.header_len,
                                         json.dumps(st.metadata)))
        for t in st.tensors:
            print("%s\t%s\t%s\t[%d,%d]\t%s" % (
                t.name, t.dtype, shape_str(t.shape), t.begin, t.end,
                hashlib.sha256(t.data).hexdigest()))
    st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
