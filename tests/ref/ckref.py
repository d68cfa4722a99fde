#!/usr/bin/python3
"""ckref - independent reference reader/writer for MindSpore .ckpt files.

This module is the test oracle of ckptfs.  It deliberately shares no code
with the C implementation: the schema (proto/checkpoint.proto) is compiled
with protoc at import time and every byte is parsed and serialized by the
official protobuf runtime (Debian python3-protobuf).  The reader never walks
the wire format by hand.

Reader semantics (MindSpore >= 2.3 load_checkpoint, see
shared/docs/ckpt-format.md sections 2.3, 3, 4, 5, 9), made strict where
MindSpore itself would crash, read garbage or accept a malformed message:

* A 17-byte "crc_num" trailer is stripped when bytes [-17:-10] spell it; the
  CRC-32 of the body must equal the 10-byte big-endian value.
* The rest is parsed with Checkpoint.ParseFromString.  A parse error, a
  top-level field 1 with the wrong wire type (parallel-strategy files), a
  missing proto2 required field (tag, tensor_type, tensor_content), a Value
  with neither tensor nor maptensor, and deprecated protobuf groups (wire
  types 3/4, never written by MindSpore) anywhere in the message are errors.
  Other unknown fields are skipped (e.g. v0.5 top-level model_type = 2).
  A top-level tag 0 or end-group tag, where the runtime stops early with
  only a warning (MindSpore would silently ignore the rest), is an error.
* Consecutive Values with the same tag are slices of one parameter: contents
  are joined in order, dims and tensor_type come from the last slice (every
  slice's tensor_type must still be known, as MindSpore looks each one up).  A tag
  that reappears later replaces the earlier data but keeps its position.
* tensor_type must be one of MindSpore's names (old "Uint8".."Uint64" are
  accepted and shown as "UInt8".."UInt64").  Scalars: dims [] or [0] hold one
  element (shape ()).  "str": content is any positive multiple of 4 bytes.
  Otherwise len(content) == prod(dims) * itemsize exactly; negative dims are
  errors.  BFloat16 whose content is 2x the expected size (the 2.2.10-2.2.14
  float32 form) is shown as 2-byte bf16 (bytes 2..3 of every float32).
* Map values (maptensor) hold exactly 3 tensors: keys, values, status; their
  tensor_type is kept as stored (numpy names such as "int64"); slices of a
  map concatenate per tensor and dims[0] adds up.
* Tags are shown as stored.  Tags that are not valid UTF-8 are accepted (the
  protobuf runtime accepts them too) and decoded with 'surrogateescape', so
  name.encode('utf-8', 'surrogateescape') gives back the stored bytes.

API:  load(path) -> [Param];  loads(bytes) -> [Param];
      write(path, params, crc=False, slice_size=..., scalar_form='[]');
      dumps(params, ...) -> bytes;  escape_name(tag) -> file name in the mount;
      shape_str(shape) -> "[6,1,5,5]";  pb -> the compiled checkpoint_pb2.
CLI:  ckref.py dump FILE   |   ckref.py check FILE
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(REPO, "proto")
PROTOC = "/usr/bin/protoc" if os.path.exists("/usr/bin/protoc") else "protoc"

SLICE_SIZE = 536870912  # 512 MiB, MindSpore >= 2.3 bytes path
CRC_MARK = b"crc_num"
CRC_TRAILER_LEN = 17


def _compile_schema():
    out = tempfile.mkdtemp(prefix="ckref_pb_")
    try:
        subprocess.run([PROTOC, "--python_out=" + out, "-I", PROTO_DIR,
                        "checkpoint.proto"], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sys.path.insert(0, out)
        try:
            mod = importlib.import_module("checkpoint_pb2")
        finally:
            sys.path.remove(out)
    finally:
        # the module is loaded; the generated source is no longer needed
        shutil.rmtree(out, ignore_errors=True)
    return mod


pb = _compile_schema()

# MindSpore tensor_type -> bytes per element (loader map + saved-only types)
ITEMSIZE = {
    "Bool": 1, "Int4": 1, "Int8": 1, "UInt8": 1,
    "Int16": 2, "UInt16": 2, "Float16": 2, "BFloat16": 2,
    "Int32": 4, "UInt32": 4, "Float32": 4,
    "Int64": 8, "UInt64": 8, "Float64": 8, "Complex64": 8,
    "Complex128": 16,
    "Float8E4M3FN": 1, "Float8E5M2": 1, "HiFloat8": 1,
    "str": 4,
}
OLD_SPELLING = {"Uint8": "UInt8", "Uint16": "UInt16", "Uint32": "UInt32",
                "Uint64": "UInt64"}
# numpy dtype names used by _write_mapparameter (2.1+) for map sub-tensors
NUMPY_ITEMSIZE = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2,
    "float16": 2, "bfloat16": 2, "int32": 4, "uint32": 4, "float32": 4,
    "int64": 8, "uint64": 8, "float64": 8, "complex64": 8, "complex128": 16,
}
NUMPY_DTYPE = {  # MindSpore name -> numpy dtype string (None: no numpy type)
    "Bool": "bool", "Int4": "int8", "Int8": "int8", "UInt8": "uint8",
    "Int16": "<i2", "UInt16": "<u2", "Float16": "<f2", "BFloat16": "<u2",
    "Int32": "<i4", "UInt32": "<u4", "Float32": "<f4",
    "Int64": "<i8", "UInt64": "<u8", "Float64": "<f8",
    "Complex64": "<c8", "Complex128": "<c16",
    "Float8E4M3FN": "uint8", "Float8E5M2": "uint8", "HiFloat8": "uint8",
    "str": "<U1",
}
MAP_NAMES = ("keys", "values", "status")


class CheckpointError(ValueError):
    """The file is not a valid checkpoint."""


class Param:
    """One parameter as ckptfs shows it.

    name  str (surrogateescape-decoded if the tag is not UTF-8)
    dtype MindSpore spelling for tensors; for map sub-tensors as stored
    shape tuple of ints, () for scalars
    data  bytes shown by ckptfs
    kind  'tensor' or 'map'; maps have .map = [keys, values, status] Params
    """
    __slots__ = ("name", "dtype", "shape", "data", "kind", "map",
                 "type_str", "nslices")

    def __init__(self, name, dtype=None, shape=(), data=b"", kind="tensor",
                 map=None, type_str=None, nslices=1):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.data = data
        self.kind = kind
        self.map = map
        self.type_str = type_str if type_str is not None else dtype
        self.nslices = nslices

    @property
    def nbytes(self):
        return len(self.data) if self.kind == "tensor" else \
            sum(len(m.data) for m in self.map)

    def __getitem__(self, key):  # dict-style access for convenience
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)

    def __repr__(self):
        if self.kind == "map":
            return "Param(%r, map=%r)" % (self.name, self.map)
        return "Param(%r, %s, %s, %d bytes)" % (
            self.name, self.dtype, shape_str(self.shape), len(self.data))


def shape_str(shape):
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def escape_name(name):
    """File name under which parameter `name` appears in the mount.

    '%' -> %25, '/' -> %2F, control characters (0x00-0x1F, 0x7F) -> %XX;
    "." and ".." are written %2E / %2E%2E; the empty name is shown as "%".
    (Only % and / occur in practice.)
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    if name == "":
        return "%"
    if name in (".", ".."):
        return "%2E" * len(name)
    return "".join("%%%02X" % ord(c) if c in "%/" or ord(c) < 0x20 or
                   ord(c) == 0x7F else c for c in name)


def _prod(dims):
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _fail(msg):
    raise CheckpointError(msg)


# --------------------------------------------------------------------------
# reader

def _check_no_groups(ufs, where):
    """Rejects deprecated protobuf groups among the unknown fields."""
    for f in ufs:
        if f.wire_type in (3, 4):
            _fail("%s: unknown field %d uses the deprecated protobuf group "
                  "wire type" % (where, f.field_number))


def _unknown(msg):
    try:
        return msg.UnknownFields()
    except (AttributeError, NotImplementedError):  # pragma: no cover
        return ()


def _tag_str(raw):
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", "surrogateescape")


def _type_str(raw):
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", "replace")


def _dims(t, where):
    dims = [int(d) for d in t.dims]
    for d in dims:
        if d < 0:
            _fail("%s: negative dimension %d in dims %s" % (where, d, dims))
    return dims


def _tensor_group(name, slices):
    """Finalizes consecutive tensor slices [(TensorProto-info)] of one tag."""
    last_dims, last_type = slices[-1][0], slices[-1][1]
    data = slices[0][2] if len(slices) == 1 else b"".join(s[2] for s in slices)
    where = "parameter %r" % name
    for s in slices:  # MindSpore looks every slice's type up
        if OLD_SPELLING.get(s[1], s[1]) not in ITEMSIZE:
            _fail("%s: unknown tensor_type %r" % (where, s[1]))
    type_str = last_type
    dtype = OLD_SPELLING.get(type_str, type_str)
    isz = ITEMSIZE[dtype]
    shape = () if last_dims in ([], [0]) else tuple(last_dims)
    if dtype == "str":
        if len(data) == 0 or len(data) % 4:
            _fail("%s: str content of %d bytes is not a positive multiple "
                  "of 4" % (where, len(data)))
    else:
        expect = _prod(shape) * isz
        if len(data) != expect:
            if dtype == "BFloat16" and len(data) == 2 * expect:
                import numpy as np
                data = np.frombuffer(data, dtype="<u2")[1::2].tobytes()
            else:
                _fail("%s: tensor_content is %d bytes but %s %s needs %d"
                      % (where, len(data), dtype, shape_str(last_dims),
                         expect))
    return Param(name, dtype, shape, data, "tensor", None, type_str,
                 len(slices))


def _map_group(name, slices):
    """slices: list of [(dims, type, content)] * 3 per record."""
    where = "map parameter %r" % name
    subs = []
    for i, sub_name in enumerate(MAP_NAMES):
        parts = [s[i] for s in slices]
        for part in parts:
            dt = OLD_SPELLING.get(part[1], part[1])
            if dt == "str" or (dt not in ITEMSIZE and
                               dt not in NUMPY_ITEMSIZE):
                _fail("%s: %s: unknown tensor_type %r" % (where, sub_name,
                                                         part[1]))
        type_str = parts[-1][1]
        dtype = OLD_SPELLING.get(type_str, type_str)
        isz = ITEMSIZE.get(dtype) or NUMPY_ITEMSIZE.get(dtype)
        for dims, _, _ in parts:
            if len(dims) == 0:
                _fail("%s: %s: a map tensor needs at least one dimension"
                      % (where, sub_name))
        shape = tuple([sum(p[0][0] for p in parts)] + list(parts[-1][0][1:]))
        data = parts[0][2] if len(parts) == 1 else \
            b"".join(p[2] for p in parts)
        expect = _prod(shape) * isz
        if len(data) != expect:
            _fail("%s: %s: content is %d bytes but %s %s needs %d"
                  % (where, sub_name, len(data), type_str, shape_str(shape),
                     expect))
        subs.append(Param(sub_name, type_str, shape, data, "tensor", None,
                          type_str, len(parts)))
    return Param(name, None, (), b"", "map", subs, None, len(slices))


class _quiet_stderr:
    """Silences libprotobuf's C++ log lines (e.g. "String field ... contains
    invalid UTF-8") on fd 2 while parsing; Python warnings are unaffected."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        return False


def loads(buf, label="<bytes>"):
    """Parses checkpoint bytes; returns [Param] in file order."""
    if not isinstance(buf, (bytes, bytearray)):
        buf = bytes(buf)
    n = len(buf)
    if n >= CRC_TRAILER_LEN and bytes(buf[-17:-10]) == CRC_MARK:
        stored = int.from_bytes(bytes(buf[-10:]), "big")
        body = memoryview(buf)[:-CRC_TRAILER_LEN]
        crc = zlib.crc32(body)
        if crc != stored:
            _fail("%s: crc check failed: trailer says 0x%x, data has 0x%08x"
                  % (label, stored, crc))
        buf = bytes(body)
        del body
    msg = pb.Checkpoint()
    nbuf = len(buf)
    try:
        with warnings.catch_warnings(record=True) as caught, _quiet_stderr():
            warnings.simplefilter("always")
            used = msg.ParseFromString(buf)
    except Exception as e:  # google.protobuf.message.DecodeError
        _fail("%s: protobuf parse failed: %s" % (label, e))
    del buf
    # A top-level tag 0 or end-group makes the runtime stop early and only
    # warn ("Not all data was converted"); MindSpore would silently drop the
    # rest of the file.  The reference treats that as corruption.
    for w in caught:
        _fail("%s: protobuf parse stopped early: %s" % (label, w.message))
    if used is not None and used != nbuf:
        _fail("%s: protobuf parse consumed %d of %d bytes" % (label, used,
                                                              nbuf))
    top = _unknown(msg)
    for f in top:
        if f.field_number == 1:
            _fail("%s: top-level field 1 has wire type %d, not a checkpoint "
                  "(parallel strategy file?)" % (label, f.wire_type))
    _check_no_groups(top, label + ": top level")
    if not msg.IsInitialized():
        _fail("%s: missing required field(s): %s"
              % (label, ", ".join(msg.FindInitializationErrors())))

    # walk values, group consecutive tags
    order = []           # names in first-seen order
    result = {}          # name -> Param
    cur_name = None
    cur_kind = None
    cur = []

    def flush():
        if cur_name is None:
            return
        p = _tensor_group(cur_name, cur) if cur_kind == "tensor" \
            else _map_group(cur_name, cur)
        if cur_name not in result:
            order.append(cur_name)
        result[cur_name] = p

    for idx, v in enumerate(msg.value):
        name = _tag_str(v.tag)
        where = "%s: value #%d (%r)" % (label, idx, name)
        _check_no_groups(_unknown(v), where)
        which = v.WhichOneof("value")
        if which == "tensor":
            t = v.tensor
            _check_no_groups(_unknown(t), where + " tensor")
            item = (_dims(t, where), _type_str(t.tensor_type),
                    t.tensor_content)
            # release the message's copy of the content as we go
            t.ClearField("tensor_content")
            kind = "tensor"
        elif which == "maptensor":
            mt = v.maptensor
            _check_no_groups(_unknown(mt), where + " maptensor")
            if len(mt.tensor) != 3:
                _fail("%s: maptensor holds %d tensors, expected 3 (keys, "
                      "values, status)" % (where, len(mt.tensor)))
            item = []
            for t in mt.tensor:
                _check_no_groups(_unknown(t), where + " maptensor tensor")
                item.append((_dims(t, where), _type_str(t.tensor_type),
                             t.tensor_content))
            kind = "map"
        else:
            _fail("%s: value has neither tensor nor maptensor" % where)
        if name == cur_name:
            if kind != cur_kind:
                _fail("%s: slices of one parameter mix tensor and maptensor"
                      % where)
            cur.append(item)
        else:
            flush()
            cur_name, cur_kind, cur = name, kind, [item]
    flush()
    return [result[k] for k in order]


def load(path):
    """Loads a checkpoint file; raises CheckpointError (a ValueError)."""
    with open(path, "rb") as f:
        buf = f.read()
    return loads(buf, os.path.basename(path))


def load_dict(path):
    return {p.name: p for p in load(path)}


# --------------------------------------------------------------------------
# writer (what MindSpore >= 2.3 writes, spec section 11)

def _g(p, key, default=None):
    if isinstance(p, dict):
        return p.get(key, default)
    return getattr(p, key, default)


def _as_bytes_view(data):
    if isinstance(data, str):
        data = data.encode("utf-32-le")
    if hasattr(data, "tobytes") and not isinstance(data, (bytes, bytearray,
                                                          memoryview)):
        data = data.tobytes()  # numpy array
    return memoryview(data).cast("B")


def _fill_tensor(t, dims, tensor_type, content):
    t.dims.extend(int(d) for d in dims)
    t.tensor_type = tensor_type
    t.tensor_content = content


def str_content(s):
    """np.array(s).tobytes(): UTF-32LE code points, at least 4 bytes."""
    b = s.encode("utf-32-le")
    return b if b else b"\0\0\0\0"


def iter_records(params, slice_size=SLICE_SIZE, scalar_form="[]"):
    """Yields the serialized Checkpoint messages MindSpore would append."""
    if scalar_form not in ("[]", "[0]"):
        raise ValueError("scalar_form must be '[]' or '[0]'")
    for p in params:
        name = _g(p, "name")
        kind = _g(p, "kind", "tensor") or "tensor"
        msg = pb.Checkpoint()
        v = msg.value.add()
        v.tag = name.encode("utf-8", "surrogateescape") \
            if isinstance(name, str) else name
        if kind == "map":
            subs = _g(p, "map")
            mt = v.maptensor
            for s in subs:
                _fill_tensor(mt.tensor.add(), tuple(_g(s, "shape")),
                             _g(s, "dtype"), bytes(_as_bytes_view(_g(s, "data"))))
            yield msg.SerializePartialToString()
            continue
        dtype = _g(p, "dtype")
        shape = tuple(_g(p, "shape", ()))
        if dtype == "str":
            dims = (0,)
        elif len(shape) == 0:
            dims = () if scalar_form == "[]" else (0,)
        else:
            dims = shape
        data = _as_bytes_view(_g(p, "data", b""))
        n = len(data)
        offsets = range(0, n, slice_size) if n else [0]
        for off in offsets:
            msg = pb.Checkpoint()
            v = msg.value.add()
            v.tag = name.encode("utf-8", "surrogateescape") \
                if isinstance(name, str) else name
            _fill_tensor(v.tensor, dims, dtype,
                         bytes(data[off:off + slice_size]))
            out = msg.SerializePartialToString()
            del msg, v
            yield out


def dumps(params, crc=False, slice_size=SLICE_SIZE, scalar_form="[]"):
    parts = list(iter_records(params, slice_size, scalar_form))
    body = b"".join(parts)
    if crc:
        body += CRC_MARK + zlib.crc32(body).to_bytes(10, "big")
    return body


def write(path, params, crc=False, slice_size=SLICE_SIZE, scalar_form="[]"):
    """Writes params the way MindSpore >= 2.3 save_checkpoint does.

    params: iterable of objects or dicts with name, dtype (tensor_type,
    written verbatim), shape, data (bytes / memoryview / numpy array / str
    for dtype 'str'); maps: kind='map' and map=[keys, values, status], each
    with dtype, shape, data.  Data are written verbatim (no validation), so
    invalid files can be produced on purpose.
    """
    c = 0
    with open(path, "wb") as f:
        for rec in iter_records(params, slice_size, scalar_form):
            if crc:
                c = zlib.crc32(rec, c)
            f.write(rec)
            del rec
        if crc:
            f.write(CRC_MARK + c.to_bytes(10, "big"))


# --------------------------------------------------------------------------
# CLI

def _dump_lines(params):
    for p in params:
        if p.kind == "map":
            items = [(p.name + "/" + s.name, s) for s in p.map]
        else:
            items = [(p.name, p)]
        for name, t in items:
            yield "%s\t%s\t%s\t%d\t%s" % (
                name, t.dtype, shape_str(t.shape), len(t.data),
                hashlib.sha256(t.data).hexdigest())


def main(argv):
    usage = "usage: ckref.py dump FILE | ckref.py check FILE"
    if len(argv) != 3 or argv[1] not in ("dump", "check"):
        print(usage, file=sys.stderr)
        return 2
    try:
        params = load(argv[2])
    except CheckpointError as e:
        print("ckref: invalid checkpoint: %s" % e, file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print("ckref: %s: %s" % (argv[2], e), file=sys.stderr)
        return 1
    if argv[1] == "dump":
        out = sys.stdout.buffer
        try:
            for line in _dump_lines(params):
                out.write(line.encode("utf-8", "surrogateescape") + b"\n")
            out.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
