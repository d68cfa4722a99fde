#!/usr/bin/python3
"""Helpers of the memory tests (test_memory): a fast writer of checkpoints
with very many small parameters, and the daemon's resident set size.

The writer builds the protobuf wire format directly (struct and bytes
joins, no protobuf runtime), so that a 1,000,000-parameter checkpoint takes
about a second to write.  Its output is checked against the reference
reader tests/ref/ckref.py by `memutil.py check` and by test_memory.

  memutil.py write FILE N     writes an N-parameter checkpoint
  memutil.py check [N]        compares the writer with ckref (default 2000)
  memutil.py rss PID          prints the VmRSS of PID in KiB

Layout of parameter i (see name(), shape()):  tag "l{i}.attn.w", Float32,
shape [4] for every tenth parameter and [1] for the others, content the
little-endian uint32 i repeated.  With these names a million parameters
make a file of about 38 MB (the ~37 MB of docs/spec section 5).
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
REF_DIR = os.path.join(os.path.dirname(HERE), "ref")
if REF_DIR not in sys.path:
    sys.path.insert(0, REF_DIR)

import wire  # noqa: E402

NAME_FMT = "l%d.attn.w"
DTYPE = "Float32"


def name(i):
    """Tag of parameter i."""
    return NAME_FMT % i


def shape(i):
    return (4,) if i % 10 == 0 else (1,)


def data(i):
    """Content bytes of parameter i."""
    return struct.pack("<I", i & 0xFFFFFFFF) * shape(i)[0]


def _tensor_head(dims, dtype, content_len):
    """TensorProto bytes up to (and including) the content length."""
    return wire.dims_field(dims) + wire.ld(2, dtype.encode()) + \
        wire.key(3, wire.LEN) + wire.varint(content_len)


def write(path, n, name_fmt=NAME_FMT, chunk=65536):
    """Writes the n-parameter checkpoint described at the top of this file
    (with tags name_fmt % i) to path.  Returns the file size."""
    heads = {}
    for dims in ((1,), (4,)):
        nbytes = 4 * dims[0]
        th = _tensor_head(dims, DTYPE, nbytes)
        heads[dims[0]] = (th, len(th) + nbytes)
    pack = struct.pack
    ld, varint = wire.ld, wire.varint
    key1, key2 = wire.key(1, wire.LEN), wire.key(2, wire.LEN)
    total = 0
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            parts = []
            add = parts.append
            for i in range(start, min(n, start + chunk)):
                tag = (name_fmt % i).encode()
                k = 4 if i % 10 == 0 else 1
                th, tlen = heads[k]
                value = ld(1, tag) + key2 + varint(tlen)
                add(key1 + varint(len(value) + tlen) + value + th +
                    pack("<I", i & 0xFFFFFFFF) * k)
            buf = b"".join(parts)
            f.write(buf)
            total += len(buf)
    return total


def rss_kib(pid):
    """VmRSS of process pid in KiB (from /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def check(n=2000, name_fmt=NAME_FMT):
    """Writes n parameters to a temporary file and compares every one with
    what the reference reader finds.  Raises AssertionError on a
    difference."""
    import tempfile
    import common  # noqa: F401  (puts tests/ref on sys.path)
    import ckref
    with tempfile.TemporaryDirectory(prefix="memutil_") as d:
        p = os.path.join(d, "m.ckpt")
        size = write(p, n, name_fmt, chunk=max(1, n // 3))
        if os.path.getsize(p) != size:
            raise AssertionError("write() returned %d, file is %d bytes"
                                 % (size, os.path.getsize(p)))
        got = ckref.load(p)
    if len(got) != n:
        raise AssertionError("ckref reads %d parameters, expected %d"
                             % (len(got), n))
    for i, q in enumerate(got):
        want = (name_fmt % i, DTYPE, shape(i), data(i))
        have = (q.name, q.dtype, q.shape, q.data)
        if q.kind != "tensor" or have != want:
            raise AssertionError("parameter %d: ckref reads %r, expected %r"
                                 % (i, have, want))
    return size


def main(argv):
    if len(argv) == 4 and argv[1] == "write":
        print(write(argv[2], int(argv[3])))
    elif len(argv) in (2, 3) and argv[1] == "check":
        n = int(argv[2]) if len(argv) == 3 else 2000
        print("ok: %d parameters, %d bytes" % (n, check(n)))
    elif len(argv) == 3 and argv[1] == "rss":
        print(rss_kib(int(argv[2])))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
