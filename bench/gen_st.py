#!/usr/bin/python3
"""bench/gen_st.py - writes the benchmark's safetensors files.

Written here from the format (docs/safetensors-format.md in the shared
docs), with the standard library and numpy only, by the rules of Hugging
Face's serializer as MindSpore 2.7's ckpt_to_safetensors uses it: tensors
sorted by dtype (all F32 here), then by name byte-wise; compact JSON with
`__metadata__` = {"format": "ms"} first; the header padded with spaces to a
multiple of 8; data back to back.  The header is written first and the
tensor bytes streamed after it, so a 4 GiB file never needs 4 GiB of
memory.

`uniform` writes the tensors of bench/gen.py uniform with the same
arguments (same names, same bytes from the same random pool), so `ckpt
convert X.ckpt Y.safetensors` of gen.py's file gives this file byte for
byte; `many` has gen.py many's names and shapes, not its bytes.

    gen_st.py uniform PATH COUNT BYTES_EACH   as gen.py uniform
    gen_st.py many    PATH COUNT              as gen.py many
"""

import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gen import _pool, _slice  # noqa: E402


def _write(path, tensors, metadata=None):
    """tensors: (name, dtype, shape, nbytes, data) with data() giving the
    bytes; written in name order (one dtype only: the dtype order does not
    arise)."""
    tensors = sorted(tensors, key=lambda t: t[0].encode("utf-8"))
    head = {}
    if metadata is not None:
        head["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, n, _data in tensors:
        head[name] = {"dtype": dtype, "shape": list(shape),
                      "data_offsets": [off, off + n]}
        off += n
    js = json.dumps(head, separators=(",", ":"),
                    ensure_ascii=False).encode("utf-8")
    js += b" " * (-len(js) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for _name, _d, _s, _n, data in tensors:
            f.write(data())
    os.rename(tmp, path)


def uniform(path, count, each, seed=1):
    """count Float32 tensors of `each` bytes (a multiple of 4)."""
    pool = _pool(seed)
    _write(path, [("model.layers.%d.mlp.weight" % i, "F32", (each // 4,),
                   each, lambda i=i: _slice(pool, i, each))
                  for i in range(count)], {"format": "ms"})


def many(path, count, seed=2):
    """count small Float32[16] tensors (64 bytes each): gen.py many's
    names and shapes; the bytes come from a pool of just their size
    (random.Random(seed)), not gen.py's 64 MiB one, which would cost more
    than the file (bench.quick)."""
    pool = memoryview(random.Random(seed).randbytes(count * 64))
    _write(path, [("encoder.block.%d.layer_norm.%s" % (
        i // 4, ("weight", "bias", "gamma", "beta")[i % 4]), "F32", (16,),
        64, lambda i=i: pool[64 * i:64 * i + 64]) for i in range(count)],
        {"format": "ms"})


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, nums = argv[1], argv[2], [int(a) for a in argv[3:]]
    if kind == "uniform" and len(nums) == 2:
        uniform(path, *nums)
    elif kind == "many" and len(nums) == 1:
        many(path, *nums)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
