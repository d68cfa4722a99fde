#!/usr/bin/python3
"""The one hand encoder of protobuf wire bytes of the tests.

Writer side only: the tests build inputs with it (odd names the runtime
refuses, packed dims, lying lengths, bad varints, a million parameters in a
second); what reads checkpoints is always the reference ckref.py (the
official runtime) or the code under test.

  varint(n)                      base-128 varint (n taken modulo 2**64)
  key(field, wiretype)           a field key
  ld(field, payload, length)     a length-delimited field (length: what
                                 the field says, default the true one)
  tensor(dims, ttype, content)   a TensorProto (dims unpacked, packed, or
                                 the first unpacked and the rest packed)
  value(tag, tensor_bytes)       a Checkpoint.Value (tag, tensor)
  record(tag, tensor_bytes)      one Checkpoint.value entry (field 1)
  map_record(tag, tensors)       one entry whose value is a map tensor
  raw_record(name, dtype, shape, data)
                                 a record whose TensorProto comes from the
                                 protobuf runtime and whose tag is any bytes
"""

VARINT = 0
LEN = 2

_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def varint(n):
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(field, wiretype):
    return varint((field << 3) | wiretype)


def _bytes(s):
    return s.encode() if isinstance(s, str) else s


def ld(field, payload, length=None):
    """A length-delimited field; length is what the field claims (default
    len(payload))."""
    return key(field, LEN) + varint(len(payload) if length is None
                                    else length) + payload


def dims_field(dims, packed=False, mixed=False):
    """The dims (field 1) of a TensorProto: one varint field a dim, one
    packed field (also for no dims: an empty one), or the first dim
    unpacked and the rest packed (protobuf joins them)."""
    if mixed:
        return key(1, VARINT) + varint(dims[0]) + \
            ld(1, b"".join(varint(x) for x in dims[1:]))
    if packed:
        return ld(1, b"".join(varint(x) for x in dims))
    return b"".join(key(1, VARINT) + varint(x) for x in dims)


def tensor(dims=(), ttype="Float32", content=b"", packed=False,
           mixed=False):
    """TensorProto bytes: dims (1), tensor_type (2), tensor_content (3)."""
    return dims_field(dims, packed, mixed) + ld(2, _bytes(ttype)) + \
        ld(3, content)


def value(tag, tensor_bytes):
    return ld(1, _bytes(tag)) + ld(2, tensor_bytes)


def record(tag, tensor_bytes):
    """One parameter of a Checkpoint message (its repeated field 1)."""
    return ld(1, value(tag, tensor_bytes))


def map_record(tag, tensors):
    """One parameter whose value is a map tensor (field 3) of tensors."""
    mt = b"".join(ld(1, t) for t in tensors)
    return ld(1, ld(1, _bytes(tag)) + ld(3, mt))


def raw_record(name, dtype, shape, data):
    """One parameter as MindSpore >= 2.3 writes it, with any bytes as the
    tag (the runtime refuses bytes that are not UTF-8 in a string field):
    the TensorProto comes from the protobuf runtime, only the framing is
    written here."""
    import ckref  # the runtime's schema, compiled once at its import
    t = ckref.pb.TensorProto()
    t.dims.extend(shape)
    t.tensor_type = dtype
    t.tensor_content = data
    return record(name, t.SerializeToString())
