#!/usr/bin/python3
"""gen_fixtures.py OUTDIR [--big | --only-big]

Writes generated (valid) checkpoints for the ckptfs tests into OUTDIR using
the reference writer ckref.write, plus a few hand-built files for encodings
the protobuf writer cannot produce (packed dims, v0.5 model_type).  With
--big also big_600MiB.ckpt (one 600 MiB Float32 parameter in two slices).
Prints the files written.  Output is deterministic.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckref  # noqa: E402
from wire import ld, record, tensor  # noqa: E402

BIG_NAME = "big_600MiB.ckpt"
BIG_SHAPE = (40960, 3840)          # 157286400 Float32 elements = 600 MiB
BIG_PARAM = "model.embedding.weight"


def T(name, dtype, shape, data):
    return {"name": name, "dtype": dtype, "shape": tuple(shape), "data": data}


def rand_bytes(rng, n):
    return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()


def rand_for(rng, dtype, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    if dtype == "Bool":
        return rng.integers(0, 2, size=n, dtype=np.uint8).tobytes()
    if dtype == "Int4":
        return rng.integers(-8, 8, size=n, dtype=np.int8).tobytes()
    if dtype in ("Float16",):
        return rng.standard_normal(n).astype("<f2").tobytes()
    if dtype == "Float32":
        return rng.standard_normal(n).astype("<f4").tobytes()
    if dtype == "Float64":
        return rng.standard_normal(n).astype("<f8").tobytes()
    if dtype == "BFloat16":
        f = rng.standard_normal(n).astype("<f4")
        return f.view("<u2")[1::2].tobytes()
    if dtype == "Complex64":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) \
            .astype("<c8").tobytes()
    if dtype == "Complex128":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) \
            .astype("<c16").tobytes()
    return rand_bytes(rng, n * ckref.ITEMSIZE[ckref.OLD_SPELLING.get(dtype,
                                                                   dtype)])


# ---- the fixtures ---------------------------------------------------------

ALL_DTYPES = [
    ("Bool", (3, 4)), ("Int4", (2, 3, 4)), ("Int8", (17,)),
    ("Int16", (4, 5)), ("Int32", (2, 3, 4, 5)), ("Int64", (7,)),
    ("UInt8", (1, 2, 3, 4)), ("UInt16", (9,)), ("UInt32", (3, 3)),
    ("UInt64", (5,)), ("Float16", (8, 8)), ("Float32", (2, 3, 5, 7)),
    ("Float64", (6,)), ("BFloat16", (4, 6)), ("Complex64", (3,)),
    ("Complex128", (2, 2)), ("Float8E4M3FN", (16,)),
    ("Float8E5M2", (2, 8)), ("HiFloat8", (5,)),
]


def gen_all(out):
    rng = np.random.default_rng(20240601)
    files = {}

    files["all_dtypes.ckpt"] = lambda p: ckref.write(p, [
        T("dt.%s" % dt, dt, shape, rand_for(rng, dt, shape))
        for dt, shape in ALL_DTYPES])

    files["old_uint_spelling.ckpt"] = lambda p: ckref.write(p, [
        T("u8", "Uint8", (4,), rand_bytes(rng, 4)),
        T("u16", "Uint16", (2, 2), rand_bytes(rng, 8)),
        T("u32", "Uint32", (3,), rand_bytes(rng, 12)),
        T("u64", "Uint64", (2,), rand_bytes(rng, 16)),
        T("u8_scalar", "Uint8", (), b"\x7f"),
    ], scalar_form="[0]")

    def scalars():
        return [
            T("learning_rate", "Float32", (), np.float32(0.01).tobytes()),
            T("momentum", "Float32", (), np.float32(0.9).tobytes()),
            T("half", "Float16", (), np.float16(1.5).tobytes()),
            T("double", "Float64", (), np.float64(3.25).tobytes()),
            T("bf16", "BFloat16", (), np.float32([2.0]).view("<u2")[1:].tobytes()),
            T("current_iterator_step", "Int32", (), np.int32(18751).tobytes()),
            T("epoch_num", "Int64", (), np.int64(3).tobytes()),
            T("step_num", "Int64", (), np.int64(1875).tobytes()),
            T("flag", "Bool", (), b"\x01"),
            T("byte", "UInt8", (), b"\xfe"),
            T("global_step", "Int32", (1,), np.int32(7).tobytes()),
            T("one_by_one", "Float32", (1, 1), np.float32(-1).tobytes()),
        ]
    files["scalars_empty_dims.ckpt"] = lambda p: ckref.write(
        p, scalars(), scalar_form="[]")
    files["scalars_zero_dims.ckpt"] = lambda p: ckref.write(
        p, scalars(), scalar_form="[0]")

    files["strings.ckpt"] = lambda p: ckref.write(p, [
        T("weight", "Float32", (2,), np.float32([1, 2]).tobytes()),
        T("model_name", "str", (), ckref.str_content("lenet")),
        T("empty_string", "str", (), ckref.str_content("")),
        T("unicode", "str", (), ckref.str_content("héllo wörld 世界 🎉")),
        T("long", "str", (), ckref.str_content("x" * 300)),
    ])

    def map_params():
        k1 = np.arange(5, dtype="<i8")
        v1 = rng.standard_normal((5, 4)).astype("<f4")
        s1 = np.zeros(5, dtype="<i4")
        m = {"name": "emb.table", "kind": "map", "map": [
            T("keys", "int64", (5,), k1.tobytes()),
            T("values", "float32", (5, 4), v1.tobytes()),
            T("status", "int32", (5,), s1.tobytes())]}
        parts = []
        for rows in (3, 2):
            parts.append({"name": "emb.sliced", "kind": "map", "map": [
                T("keys", "int64", (rows,),
                  rng.integers(0, 1 << 40, rows, dtype="<i8").tobytes()),
                T("values", "float32", (rows, 8),
                  rng.standard_normal((rows, 8)).astype("<f4").tobytes()),
                T("status", "int32", (rows,),
                  rng.integers(0, 3, rows, dtype="<i4").tobytes())]})
        v20 = {"name": "emb.v20", "kind": "map", "map": [
            T("keys", "Int32", (3,), np.int32([4, 8, 15]).tobytes()),
            T("values", "Float32", (3, 2),
              rng.standard_normal((3, 2)).astype("<f4").tobytes()),
            T("status", "Int32", (3,), np.int32([0, 1, 2]).tobytes())]}
        return [T("dense.weight", "Float32", (2, 2),
                  rng.standard_normal(4).astype("<f4").tobytes()),
                m] + parts + [v20, T("dense.bias", "Float32", (2,),
                                     np.float32([0.5, -0.5]).tobytes())]
    files["map.ckpt"] = lambda p: ckref.write(p, map_params())

    def bf16_fp32(p):
        f = rng.standard_normal(15).astype("<f4")
        ckref.write(p, [
            T("w.bf16_as_fp32", "BFloat16", (3, 5), f.tobytes()),
            T("s.bf16_as_fp32", "BFloat16", (),
              np.float32(-3.5).tobytes()),
            T("w.bf16_native", "BFloat16", (3, 5),
              f.view("<u2")[1::2].tobytes()),
        ], scalar_form="[0]")
    files["bf16_fp32_form.ckpt"] = bf16_fp32

    def packed(p):
        a = rng.standard_normal(24).astype("<f4").tobytes()
        b = rng.integers(-1000, 1000, 5, dtype="<i2").tobytes()
        c = rng.standard_normal(60).astype("<f4").tobytes()
        body = (record("packed.f32", tensor((2, 3, 4), "Float32", a,
                                             packed=True)) +
                record("packed.i16", tensor((5,), "Int16", b, packed=True)) +
                record("packed.empty_scalar",
                       tensor((), "Float32", np.float32(4).tobytes(),
                              packed=True)) +
                record("packed.mixed",
                       tensor((3, 4, 5), "Float32", c, mixed=True)))
        with open(p, "wb") as f:
            f.write(body)
    files["packed_dims.ckpt"] = packed

    def v05(p):
        body = ckref.dumps([
            T("conv1.weight", "Float32", (2, 1, 3, 3),
              rng.standard_normal(18).astype("<f4").tobytes()),
            T("learning_rate", "Float32", (),
              np.float32(0.1).tobytes()),
        ], scalar_form="[0]")
        with open(p, "wb") as f:
            f.write(body + ld(2, b"normal"))
    files["v05_model_type.ckpt"] = v05

    files["crc.ckpt"] = lambda p: ckref.write(p, [
        T("fc.weight", "Float32", (3, 4),
          rng.standard_normal(12).astype("<f4").tobytes()),
        T("fc.bias", "Float32", (3,), np.float32([1, 2, 3]).tobytes()),
        T("global_step", "Int32", (1,), np.int32(42).tobytes()),
    ], crc=True)

    odd = ["a/b/c", "100%", "with space", "ünïcödé.权重", ".hidden",
           "a%2Fb", "%", "//", "emoji🎉.w", "trailing.dot.", "x%25y/z"]
    files["odd_names.ckpt"] = lambda p: ckref.write(p, [
        T(n, "Float32", (i + 1,),
          rng.standard_normal(i + 1).astype("<f4").tobytes())
        for i, n in enumerate(odd)])

    files["empty.ckpt"] = lambda p: open(p, "wb").close()

    def many(p):
        dts = ["Float32", "Float16", "Int32", "Int8"]
        data = rng.integers(0, 256, 10000 * 16, dtype=np.uint8).tobytes()
        ps = []
        for i in range(10000):
            dt = dts[i % 4]
            n = 4 // ckref.ITEMSIZE[dt] * (1 + i % 3)
            nb = n * ckref.ITEMSIZE[dt]
            ps.append(T("layers.%d.block.w%d" % (i // 10, i % 10), dt, (n,),
                        data[i * 16:i * 16 + nb]))
        ckref.write(p, ps)
    files["many_10000.ckpt"] = many

    files["zero_elem.ckpt"] = lambda p: ckref.write(p, [
        T("empty.f32", "Float32", (0, 4), b""),
        T("empty.i8", "Int8", (3, 0, 2), b""),
        T("after", "Float32", (2,), np.float32([7, 8]).tobytes()),
    ])

    files["repeated_tag_noncontiguous.ckpt"] = lambda p: ckref.write(p, [
        T("dup", "Float32", (2,), np.float32([1, 2]).tobytes()),
        T("other", "Int64", (1,), np.int64(5).tobytes()),
        T("dup", "Int32", (3, 3), np.arange(9, dtype="<i4").tobytes()),
        T("last", "Float16", (2,), np.float16([1, 2]).tobytes()),
    ])

    def sliced_small(p):
        x = rng.standard_normal(1000).astype("<f4").tobytes()
        y = rng.integers(-9, 9, 777, dtype="<i8").tobytes()
        z = rng.standard_normal((10, 10)).astype("<f2").tobytes()
        body = (ckref.dumps([T("sliced.aligned", "Float32", (1000,), x)],
                            slice_size=1000) +
                ckref.dumps([T("sliced.unaligned", "Int64", (7, 111), y)],
                            slice_size=999) +
                ckref.dumps([T("single", "Float16", (10, 10), z)]))
        with open(p, "wb") as f:
            f.write(body)
    files["sliced_small.ckpt"] = sliced_small

    written = []
    for name, fn in files.items():
        path = os.path.join(out, name)
        tmp = path + ".tmp"
        fn(tmp)
        os.replace(tmp, path)
        written.append(path)
    return written


def gen_big(out):
    path = os.path.join(out, BIG_NAME)
    data = np.arange(BIG_SHAPE[0] * BIG_SHAPE[1], dtype="<u4")
    tmp = path + ".tmp"
    ckref.write(tmp, [T(BIG_PARAM, "Float32", BIG_SHAPE, data)])
    os.replace(tmp, path)
    return path


def big_expected_chunk(off, n):
    """Expected shown bytes [off, off+n) of the big parameter (cheap)."""
    first = off // 4
    last = (off + n + 3) // 4
    arr = np.arange(first, last, dtype="<u4").tobytes()
    return arr[off - first * 4:off - first * 4 + n]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    opts = [a for a in argv[1:] if a.startswith("--")]
    if len(args) != 1 or any(o not in ("--big", "--only-big") for o in opts):
        print(__doc__, file=sys.stderr)
        return 2
    big = "--big" in opts or "--only-big" in opts
    out = args[0]
    os.makedirs(out, exist_ok=True)
    written = [] if "--only-big" in opts else gen_all(out)
    if big:
        written.append(gen_big(out))
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
