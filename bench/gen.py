#!/usr/bin/python3
"""bench/gen.py - writes the benchmark's checkpoints.

Every record is serialized by the official protobuf runtime through the
reference writer (tests/ref/ckref.py, iter_records), one parameter at a
time, so a 4 GiB checkpoint never needs 4 GiB of memory.  Tensor bytes are
slices of a random pool (their values do not matter to anything measured,
but they are not all zeros, so nothing can short-cut them).

    gen.py uniform PATH COUNT BYTES_EACH    COUNT Float32 parameters
    gen.py crc     PATH COUNT BYTES_EACH    the same, with a crc_num trailer
                                            (save_checkpoint(crc_check=True))
    gen.py many    PATH COUNT               COUNT Float32[16] parameters
    gen.py one     PATH BYTES               one UInt8 parameter ("huge")
"""

import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "ref"))

POOL_SIZE = 64 << 20


def _pool(seed):
    import numpy as np
    return np.random.default_rng(seed).bytes(POOL_SIZE)


def _slice(pool, i, n):
    """n bytes of the pool starting at a parameter-dependent offset."""
    if n <= POOL_SIZE // 2:
        start = (i * 4099 * 64) % (POOL_SIZE - n + 1)
        return memoryview(pool)[start:start + n]
    reps = -(-n // POOL_SIZE)
    return memoryview(pool * reps)[:n]


def _write(path, params, crc=False):
    """The records of params; crc: then the crc_num trailer, zlib.crc32 of
    them all (tests/ref/ckref.py, write)."""
    import ckref    # here: bench/gen_st.py imports this module without it
    tmp = path + ".part"
    c = 0
    with open(tmp, "wb") as f:
        for rec in ckref.iter_records(params):
            if crc:
                c = zlib.crc32(rec, c)
            f.write(rec)
        if crc:
            f.write(ckref.CRC_MARK + c.to_bytes(10, "big"))
    os.rename(tmp, path)


def uniform(path, count, each, seed=1, crc=False):
    """count Float32 parameters of `each` bytes (a multiple of 4)."""
    pool = _pool(seed)
    el = each // 4

    def params():
        for i in range(count):
            yield {"name": "model.layers.%d.mlp.weight" % i,
                   "dtype": "Float32", "shape": (el,),
                   "data": _slice(pool, i, each)}
    _write(path, params(), crc)


def many(path, count, seed=2):
    """count small Float32[16] parameters (64 bytes each)."""
    pool = _pool(seed)

    def params():
        for i in range(count):
            yield {"name": "encoder.block.%d.layer_norm.%s" % (
                       i // 4, ("weight", "bias", "gamma", "beta")[i % 4]),
                   "dtype": "Float32", "shape": (16,),
                   "data": _slice(pool, i, 64)}
    _write(path, params())


def one(path, size, seed=3):
    """A single UInt8 parameter 'huge' of `size` bytes (sliced every
    512 MiB like MindSpore does)."""
    pool = _pool(seed)
    _write(path, [{"name": "huge", "dtype": "UInt8", "shape": (size,),
                   "data": _slice(pool, 0, size)}])


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, nums = argv[1], argv[2], [int(a) for a in argv[3:]]
    if kind == "uniform" and len(nums) == 2:
        uniform(path, *nums)
    elif kind == "crc" and len(nums) == 2:
        uniform(path, *nums, crc=True)
    elif kind == "many" and len(nums) == 1:
        many(path, *nums)
    elif kind == "one" and len(nums) == 1:
        one(path, *nums)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
