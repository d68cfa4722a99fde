#!/usr/bin/python3
"""gen_safetensors - generated safetensors test files, written with the
reference tests/ref/stref.py (run with /usr/bin/python3).

Functions (importable; each returns bytes unless said otherwise):
  all_dtypes()           every dtype of §2.3 (BF16, F8_*, F4, F6_*, C64, ...),
                         an I8 tensor with an Int4 marker, 0-d tensors and
                         zero-element tensors ([0], [3,0]); {"format":"ms"}
  odd_names()            names that need escaping in a mount (/ % . .. "",
                         control characters, quotes, non-ASCII)
  mindspore_style(crc=True, extra=True)
                         what MindSpore 2.7 save_checkpoint writes, with
                         crc_num (0-d Int64 epoch_num / step_num, a 0-d
                         Float32 learning_rate, an Int4 tensor, ...)
  mindspore_v25_crc()    a 2.5/2.6-style file: metadata only {"crc_num"}
  mindspore_v24()        a 2.4-style file: no metadata
  ms_params()            the MindSpore parameters behind mindspore_style
                         (dicts: name, dtype (MindSpore spelling), shape,
                         data)
  many(n)                n small tensors (default 100,000)
  write_big(path, ...)   a sparse file holding a tensor over 4 GiB (only the
                         header and a few bytes are written; the rest is a
                         hole of zeros), with tensors before and after it;
                         returns a dict describing it
  corrupt_variants(base=None)
                         [(label, bytes)] of broken files, every one refused
                         by stref.read (checked here); base: a valid file
                         whose bytes are truncated and flipped (default:
                         corrupt_base())
  lenient_variants()     [(label, bytes)] of odd files HF's loader (and
                         ckptfs) accept: unpadded, whitespace, JSON order
                         different from the data order, extra fields,
                         non-string metadata values, "__metadata__": null,
                         no tensors; each is valid for stref.read ("hf")
  ms_refused()           labels of lenient_variants() MindSpore 2.7 refuses

Script:  gen_safetensors.py OUTDIR [--many N] [--big]
  writes all_dtypes, odd_names, ms_crc, ms_plain, ms_v25_crc, ms_v24,
  many_N, lenient_*.safetensors (and big_4GiB.safetensors with --big) into
  OUTDIR, and corrupt variants into OUTDIR/corrupt/.
"""

import collections
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stref  # noqa: E402

OD = collections.OrderedDict


def _rng(seed):
    return np.random.default_rng(seed)


def _bytes(rng, n):
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------
# valid files

def all_dtypes_tensors():
    """(tensors [(name, dtype, shape, data)], metadata) of all_dtypes()."""
    rng = _rng(1)
    out = []
    for dt in stref.DTYPE_ORDER:
        shape = (2, 4) if dt in ("F4", "F6_E2M3", "F6_E3M2") else (2, 3)
        n = stref.tensor_nbytes(dt, shape)
        out.append(("t_" + dt.lower(), dt, shape, _bytes(rng, n)))
    # a few more with real values
    out.append(("f32_vals", "F32", (4,),
                np.array([1.5, -2.0, 0.0, 3.25], "<f4").tobytes()))
    out.append(("q_int4", "I8", (4, 2), _bytes(rng, 8)))   # Int4 marker
    # 0-d tensors
    out.append(("s_f32", "F32", (), np.float32(0.5).tobytes()))
    out.append(("s_i64", "I64", (), np.int64(12).tobytes()))
    out.append(("s_bool", "BOOL", (), b"\x01"))
    out.append(("s_bf16", "BF16", (), b"\x80\x3f"))
    out.append(("s_u8", "U8", (), b"\x07"))
    # zero-element tensors
    out.append(("z_f32_0", "F32", (0,), b""))
    out.append(("z_i32_3_0", "I32", (3, 0), b""))
    out.append(("z_u8_0", "U8", (0,), b""))
    out.append(("z_f8_0_2", "F8_E4M3", (0, 2), b""))
    meta = OD([("format", "ms"), ("q_int4", "Int4")])
    return out, meta


def all_dtypes():
    t, m = all_dtypes_tensors()
    return stref.serialize(t, m)


def odd_names_tensors():
    rng = _rng(2)
    names = ["model/layer.0/w", "50%_rate", "%2F", ".", "..", "", "a\x01b",
             "quote\"and\\back", "tab\there", "\u6743\u91cd.w",
             "emoji\U0001F600", "del\x7f", "sp ace", "...", "a.b.c"]
    return [(n, "F32", (2,), _bytes(rng, 8)) for n in names]


def odd_names():
    return stref.serialize(odd_names_tensors(), OD(format="ms"))


def ms_params():
    """MindSpore-side parameters (MindSpore dtype names) of the
    MindSpore-style files: weights, 0-d append_dict values, Int4."""
    rng = _rng(3)
    f32 = lambda *s: rng.standard_normal(s).astype("<f4")  # noqa: E731
    return [
        dict(name="conv1.weight", dtype="Float32", shape=(4, 3, 2, 2),
             data=f32(4, 3, 2, 2).tobytes()),
        dict(name="conv1.bias", dtype="Float32", shape=(4,),
             data=f32(4).tobytes()),
        dict(name="fc.weight", dtype="Float16", shape=(3, 4),
             data=rng.standard_normal((3, 4)).astype("<f2").tobytes()),
        dict(name="fc.bias_bf16", dtype="BFloat16", shape=(3,),
             data=_bytes(rng, 6)),
        dict(name="moments.conv1.weight", dtype="Float32",
             shape=(4, 3, 2, 2), data=f32(4, 3, 2, 2).tobytes()),
        dict(name="global_step", dtype="Int32", shape=(1,),
             data=np.array([30], "<i4").tobytes()),
        dict(name="epoch_num", dtype="Int64", shape=(),
             data=np.int64(3).tobytes()),
        dict(name="step_num", dtype="Int64", shape=(),
             data=np.int64(30).tobytes()),
        dict(name="learning_rate", dtype="Float32", shape=(),
             data=np.float32(0.01).tobytes()),
        dict(name="mask", dtype="Bool", shape=(5,),
             data=bytes([1, 0, 1, 1, 0])),
        dict(name="ids", dtype="UInt8", shape=(3,), data=b"\x01\x02\x03"),
        dict(name="tokens", dtype="Int16", shape=(2,),
             data=np.array([-5, 9], "<i2").tobytes()),
        dict(name="big_ids", dtype="UInt64", shape=(2,),
             data=np.array([1, 2 ** 63], "<u8").tobytes()),
        dict(name="counts", dtype="UInt32", shape=(2,),
             data=np.array([7, 8], "<u4").tobytes()),
        dict(name="hist", dtype="UInt16", shape=(2,),
             data=np.array([7, 8], "<u2").tobytes()),
        dict(name="d64", dtype="Float64", shape=(2,),
             data=np.array([0.25, -1], "<f8").tobytes()),
        dict(name="quant.weight", dtype="Int4", shape=(4, 2),
             data=_bytes(rng, 8)),
        dict(name="i8", dtype="Int8", shape=(3,), data=b"\xff\x00\x01"),
    ]


def mindspore_style(crc=True, extra=True):
    """save_checkpoint(format="safetensors", crc_check=crc) of MindSpore
    2.7; extra adds "remove_redundancy": "False" as ModelCheckpoint does."""
    return stref.mindspore_save(
        ms_params(), OD(remove_redundancy="False") if extra else None,
        crc=crc)


def _st_tensors(params):
    return [(p["name"], stref.MS_TO_ST[p["dtype"]], p["shape"], p["data"])
            for p in params]


def mindspore_v25_crc():
    params = [p for p in ms_params() if p["dtype"] != "Int4"]
    t = _st_tensors(params)
    return stref.serialize(t, OD(crc_num=str(stref.crc_num(t))))


def mindspore_v24():
    params = [p for p in ms_params() if p["dtype"] != "Int4"]
    return stref.serialize(_st_tensors(params), None)


@stref._nogc
def many_tensors(n=100000):
    rng = _rng(4)
    blob = _bytes(rng, 16 * n)
    out = []
    dts = ("F32", "I64", "U8", "F16")
    for i in range(n):
        dt = dts[i % 4]
        shape = {"F32": (2,), "I64": (1,), "U8": (3,), "F16": (2, 2)}[dt]
        k = stref.tensor_nbytes(dt, shape)
        out.append(("layer.%06d.%s" % (i, dt.lower()), dt, shape,
                     blob[16 * i:16 * i + k]))
    return out


def many(n=100000):
    return stref.serialize(many_tensors(n), OD(format="ms"))


BIG_ELEMS = (1 << 30) + 16            # F32: 4 GiB + 64 bytes


def write_big(path, elems=BIG_ELEMS):
    """Writes a sparse file: "head" I64 [2], "big" F32 [elems] (zeros but
    for its last 64 bytes), "tail" U8 [16], in the serializer's order
    (I64 > F32 > U8).  Returns dict(path, size, tensors=[(name, dtype,
    shape, begin, end)], data_start, head, big_last (its last 64 bytes),
    tail)."""
    head = np.array([11, -12], "<i8").tobytes()
    tail = bytes(range(1, 17))
    big_last = bytes((i * 7 + 3) % 256 for i in range(64))
    big_n = elems * 4
    # "big" cannot be handed to the serializer (4 GiB of bytes): the JSON
    # is built here, in the serializer's form (big_header_check() compares
    # the two on a small element count)
    text = ('{"head":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},'
            '"big":{"dtype":"F32","shape":[%d],"data_offsets":[16,%d]},'
            '"tail":{"dtype":"U8","shape":[16],"data_offsets":[%d,%d]}}'
            % (elems, 16 + big_n, 16 + big_n, 32 + big_n))
    hb = text.encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    start = 8 + len(hb)
    size = start + 32 + big_n
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little") + hb)
        f.write(head)
        f.truncate(size)
        f.seek(start + 16 + big_n - 64)
        f.write(big_last)
        f.write(tail)
    return dict(path=path, size=size, data_start=start, head=head,
                big_last=big_last, tail=tail, big_bytes=big_n,
                tensors=[("head", "I64", (2,), 0, 16),
                         ("big", "F32", (elems,), 16, 16 + big_n),
                         ("tail", "U8", (16,), 16 + big_n, 32 + big_n)])


def big_header_check():
    """The JSON write_big builds by hand equals what the serializer would
    write (checked on a small element count)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "b.safetensors")
        info = write_big(p, elems=40)
        with open(p, "rb") as f:
            raw = f.read()
    st = stref.read(raw)
    want = stref.serialize([(t.name, t.dtype, t.shape, t.data)
                            for t in st.tensors])
    return raw == want and len(raw) == info["size"]


# --------------------------------------------------------------------------
# hand-made files

def raw_file(header, data=b"", n=None, pad=True):
    """8-byte length + header (str or bytes, padded with spaces to 8 when
    pad) + data; n overrides the length field."""
    hb = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        hb += b" " * ((8 - len(hb) % 8) % 8)
    if n is None:
        n = len(hb)
    return int(n).to_bytes(8, "little") + hb + data


class Raw(str):
    """JSON text used as is by entry() (a name or dtype already quoted)."""


def entry(name, dtype, shape, offs, extra=""):
    """One tensor entry; name and dtype are JSON-quoted unless Raw, shape
    and offs are JSON text when str."""
    return "%s:{\"dtype\":%s,\"shape\":%s,\"data_offsets\":%s%s}" % (
        name if isinstance(name, Raw) else stref.json_string(name),
        dtype if isinstance(dtype, Raw) else stref.json_string(dtype),
        shape if isinstance(shape, str) else
        "[" + ",".join(str(d) for d in shape) + "]",
        offs if isinstance(offs, str) else "[%d,%d]" % tuple(offs), extra)


def obj(*entries):
    return "{" + ",".join(entries) + "}"


# the base of the corrupt variants: "a" F32 [2,2] (16), "b" I16 [3] (6),
# "c" U8 [5] (5), metadata {"format":"ms","k":"v"}; data starts with 0x01
BASE_DATA = bytes(range(1, 28))
BASE_META = '"__metadata__":{"format":"ms","k":"v"}'


def base_entries(a=("a", "F32", (2, 2), (0, 16)), b=("b", "I16", (3,),
                                                      (16, 22)),
                 c=("c", "U8", (5,), (22, 27))):
    return [entry(*a), entry(*b), entry(*c)]


def corrupt_base():
    raw = raw_file(obj(BASE_META, *base_entries()), BASE_DATA)
    st = stref.read(raw)      # valid, and what the serializer writes
    assert raw == stref.serialize(st.tensors, st.metadata)
    return raw


def _with(a=None, b=None, c=None, data=BASE_DATA, meta=BASE_META, n=None,
          pad=True):
    kw = {}
    if a:
        kw["a"] = a
    if b:
        kw["b"] = b
    if c:
        kw["c"] = c
    parts = ([meta] if meta else []) + base_entries(**kw)
    return raw_file(obj(*parts), data, n=n, pad=pad)


def _header_span(raw):
    n = int.from_bytes(raw[:8], "little")
    return 8, 8 + n


def corrupt_variants(base=None):
    """[(label, bytes)]: every one is refused by stref.read (asserted)."""
    base = corrupt_base() if base is None else base
    stref.read(base)
    out = []
    add = lambda label, b: out.append((label, b))  # noqa: E731
    size = len(base)
    h0, h1 = _header_span(base)

    # truncations
    cuts = sorted({0, 1, 4, 7, 8, 9, 10, h1 // 2, h1 - 9, h1 - 1, h1,
                   h1 + 1, h1 + 8, h1 + 16, h1 + 17, size - 2, size - 1})
    for k in cuts:
        if 0 <= k < size:
            add("truncated_at_%d" % k, base[:k])

    # flipped bytes in the header (ASCII ^ 0x80: never valid UTF-8 there)
    n_hdr = h1 - h0
    for i in sorted({0, 1, 2, n_hdr // 4, n_hdr // 3, n_hdr // 2,
                     (2 * n_hdr) // 3, n_hdr - 5, n_hdr - 2, n_hdr - 1}):
        b = bytearray(base)
        b[h0 + i] ^= 0x80
        add("flip80_header_%d" % i, bytes(b))
    # flipped bits of the length
    for bit in (0, 1, 3, 5, 8, 20, 31, 40, 63):
        b = bytearray(base)
        b[bit // 8] ^= 1 << (bit % 8)
        add("flip_length_bit_%d" % bit, bytes(b))
    # structural characters replaced by other ASCII
    hdr = base[h0:h1]
    for label, old, new in (("brace", b"{", b"["), ("colon", b":", b";"),
                            ("comma", b",", b" "), ("quote", b'"', b"'"),
                            ("bracket", b"]", b")")):
        i = hdr.index(old, 1) if old != b"{" else 0
        b = bytearray(base)
        b[h0 + i:h0 + i + 1] = new
        add("replaced_%s" % label, bytes(b))

    # lying offsets
    d1 = BASE_DATA[:16] + b"\x00" + BASE_DATA[16:]
    add("offsets_hole", _with(b=("b", "I16", (3,), (17, 23)),
                              c=("c", "U8", (5,), (23, 28)), data=d1))
    add("offsets_hole_at_start", _with(a=("a", "F32", (2, 2), (1, 17)),
                                       b=("b", "I16", (3,), (17, 23)),
                                       c=("c", "U8", (5,), (23, 28)),
                                       data=b"\x00" + BASE_DATA))
    add("offsets_overlap", _with(b=("b", "I16", (3,), (15, 21)),
                                 c=("c", "U8", (5,), (21, 26)),
                                 data=BASE_DATA[:26]))
    add("offsets_end_before_begin", _with(b=("b", "I16", (3,), (22, 16))))
    add("offsets_too_long", _with(b=("b", "I16", (3,), (16, 23)),
                                  c=("c", "U8", (5,), (23, 28)), data=d1))
    add("offsets_too_short", _with(b=("b", "I16", (3,), (16, 21)),
                                   c=("c", "U8", (5,), (21, 26)),
                                   data=BASE_DATA[:26]))
    add("offsets_past_end", _with(c=("c", "U8", (5,), (22, 28))))
    add("offsets_same_range", _with(b=("b", "F32", (2, 2), (0, 16)),
                                    c=("c", "U8", (5,), (16, 21)),
                                    data=BASE_DATA[:21]))
    add("offsets_one_element", _with(c=("c", "U8", (5,), "[22]")))
    add("offsets_three_elements", _with(c=("c", "U8", (5,), "[22,27,27]")))
    add("offsets_negative", _with(c=("c", "U8", (5,), "[-22,27]")))
    add("offsets_float", _with(c=("c", "U8", (5,), "[22.0,27]")))
    add("offsets_string", _with(c=("c", "U8", (5,), '["22",27]')))
    add("offsets_not_a_list", _with(c=("c", "U8", (5,), "22")))
    add("offsets_2_64", _with(c=("c", "U8", (5,),
                                 "[22,18446744073709551616]")))
    add("offsets_u64_max", _with(c=("c", "U8", (5,),
                                    "[22,18446744073709551615]")))
    add("offsets_huge_begin", _with(c=("c", "U8", (0,),
                                       "[18446744073709551615,"
                                       "18446744073709551615]")))
    add("offsets_huge_and_shape", _with(
        c=("c", "U8", (18446744073709551615,),
           "[22,18446744073709551615]")))

    # duplicate keys
    e = base_entries()
    add("duplicate_tensor", raw_file(obj(BASE_META, e[0], e[0], e[1], e[2]),
                                     BASE_DATA))
    add("duplicate_tensor_other_range", raw_file(
        obj(BASE_META, e[0], e[1], e[2],
            entry("a", "U8", (0,), (27, 27))), BASE_DATA))
    add("duplicate_metadata", raw_file(obj(BASE_META, BASE_META, *e),
                                       BASE_DATA))
    add("duplicate_field_dtype", _with(
        c=("c", "U8", (5,), (22, 27), ',"dtype":"U8"')))
    add("duplicate_metadata_key", _with(
        meta='"__metadata__":{"format":"ms","format":"ms"}'))

    # bad UTF-8 in a name (and in a metadata value)
    for label, bad in (("ff", b"\xff"), ("lone_continuation", b"\x80"),
                       ("overlong_slash", b"\xc0\xaf"),
                       ("surrogate", b"\xed\xa0\x80"),
                       ("truncated_sequence", b"\xe2\x82"),
                       ("above_10ffff", b"\xf4\x90\x80\x80"),
                       ("overlong_nul", b"\xc0\x80")):
        hdr = obj(BASE_META, *base_entries()).encode()
        hdr = hdr.replace(b'"c":', b'"c' + bad + b'":')
        add("bad_utf8_name_%s" % label, raw_file(hdr, BASE_DATA))
    hdr = obj(BASE_META, *base_entries()).encode().replace(
        b'"k":"v"', b'"k":"v\xfe"')
    add("bad_utf8_metadata_value", raw_file(hdr, BASE_DATA))
    add("lone_surrogate_escape_name", _with(
        c=(Raw("\"c\\ud800\""), "U8", (5,), (22, 27))))
    add("raw_control_char_in_name", _with(
        c=(Raw("\"c\x01\""), "U8", (5,), (22, 27))))

    # header length
    add("header_len_past_file", _with(n=size - 8 + 1))
    add("header_len_file_size", _with(n=size))
    add("header_len_2_32", _with(n=1 << 32))
    add("header_len_u64_max", _with(n=(1 << 64) - 1))
    add("header_len_over_limit", _with(n=100_000_001))
    add("header_len_over_limit_2", _with(n=100_000_008))
    add("header_len_zero", raw_file(b"", BASE_DATA))
    add("header_only_spaces", raw_file(b" " * 16, b""))
    add("header_len_short_by_one", _with(n=h1 - 8 - 1))

    # trailing bytes
    add("trailing_byte", base + b"\x00")
    add("trailing_bytes", base + b"xxxxxxxx")
    add("trailing_page", base + bytes(4096))

    # dtypes
    for label, dt in (("F128", '"F128"'), ("lowercase", '"f32"'),
                      ("empty", '""'), ("FLOAT32", '"FLOAT32"'),
                      ("F8_E4M3FN", '"F8_E4M3FN"'),
                      ("bfloat16", '"bfloat16"'), ("number", "7"),
                      ("null", "null"), ("list", '["F32"]'),
                      ("trailing_space", '"F32 "')):
        add("dtype_%s" % label, _with(a=("a", Raw(dt), (2, 2), (0, 16))))
    # a size the dtype cannot fill
    add("f4_misaligned", raw_file(obj(entry("x", "F4", (3,), (0, 2))),
                                  b"\x11\x22"))
    add("f6_misaligned", raw_file(obj(entry("x", "F6_E2M3", (1,), (0, 1))),
                                  b"\x11"))
    add("dtype_size_mismatch", _with(a=("a", "F64", (2, 2), (0, 16))))

    # shapes
    for label, sh in (("negative", "[-2,-2]"), ("negative_one", "[-1,4]"),
                      ("float", "[2.0,2]"), ("fraction", "[2,2.5]"),
                      ("exponent", "[2e0,2]"), ("string", '["2",2]'),
                      ("bool", "[true,4]"), ("null_entry", "[null,4]"),
                      ("number", "4"), ("null", "null"),
                      ("object", '{"0":4}'), ("nested", "[[2,2]]"),
                      ("2_64", "[18446744073709551616,0]"),
                      ("overflow", "[4294967296,4294967296]"),
                      ("overflow_bits", "[4611686018427387904]"),
                      ("overflow_before_zero",
                       "[1099511627776,1099511627776,0]"),
                      ("wrong_count", "[2,3]"), ("empty_for_4", "[]")):
        add("shape_%s" % label, _with(a=("a", "F32", sh, (0, 16))))

    # non-object top level
    for label, top in (("array", "[]"), ("string", '"x"'), ("number", "1"),
                       ("null", "null"), ("true", "true"),
                       ("open_brace", "{"), ("array_of_entries",
                                             "[" + entry("a", "U8", (1,),
                                                         (0, 1))[4:] + "]")):
        add("top_level_%s" % label, raw_file(top, b"\x01" if "entries" in
                                             label else b""))

    # missing fields, entries that are not objects
    add("missing_dtype", raw_file(obj(BASE_META, e[0], e[1],
                                      '"c":{"shape":[5],'
                                      '"data_offsets":[22,27]}'),
                                  BASE_DATA))
    add("missing_shape", raw_file(obj(BASE_META, e[0], e[1],
                                      '"c":{"dtype":"U8",'
                                      '"data_offsets":[22,27]}'),
                                  BASE_DATA))
    add("missing_data_offsets", raw_file(obj(BASE_META, e[0], e[1],
                                             '"c":{"dtype":"U8",'
                                             '"shape":[5]}'), BASE_DATA))
    for label, v in (("string", '"x"'), ("null", "null"), ("number", "5"),
                     ("empty_array", "[]"), ("empty_object", "{}"),
                     ("true", "true")):
        add("entry_%s" % label, raw_file(obj(BASE_META, e[0], e[1],
                                             '"c":' + v), BASE_DATA[:22]))

    # metadata that is not an object
    for label, v in (("string", '"x"'), ("array", '["a","b"]'),
                     ("number", "1"), ("true", "true")):
        add("metadata_%s" % label, _with(meta='"__metadata__":' + v))

    # JSON syntax
    hdr = obj(BASE_META, *base_entries())
    add("json_trailing_comma", raw_file(hdr[:-1] + ",}", BASE_DATA))
    add("json_single_quotes", raw_file(hdr.replace('"k"', "'k'"),
                                       BASE_DATA))
    add("json_comment", raw_file("/*x*/" + hdr, BASE_DATA))
    add("json_garbage_after", raw_file(hdr + "x", BASE_DATA))
    add("json_two_objects", raw_file(hdr + "{}", BASE_DATA))
    add("json_nan_shape", _with(a=("a", "F32", "[NaN]", (0, 16))))
    add("json_infinity_metadata", _with(
        meta='"__metadata__":{"format":"ms","k":Infinity}'))
    add("json_nul_padding", raw_file(hdr.encode() + b"\0" * 7, BASE_DATA,
                                     pad=False))
    add("json_bom", raw_file(b"\xef\xbb\xbf" + hdr.encode(), BASE_DATA))
    add("json_ff_padding", raw_file(hdr.encode() + b"\xff" * 7, BASE_DATA,
                                    pad=False))
    add("json_unterminated_string", raw_file(hdr[:-3], BASE_DATA))
    add("json_deep_nesting", _with(
        meta='"__metadata__":{"k":' + "[" * 100000 + "]" * 100000 + "}"))
    add("json_leading_zero", _with(a=("a", "F32", "[02,2]", (0, 16))))
    add("json_plus_sign", _with(a=("a", "F32", "[+2,2]", (0, 16))))
    add("json_hex", _with(a=("a", "F32", "[0x2,2]", (0, 16))))
    add("json_utf16", raw_file(hdr.encode("utf-16-le"), BASE_DATA))

    for label, b in out:
        try:
            stref.read(b, "hf")
        except stref.StError:
            continue
        raise AssertionError("corrupt variant %s is accepted by stref" %
                             label)
    labels = [x[0] for x in out]
    assert len(set(labels)) == len(labels), "duplicate labels"
    return out


def lenient_variants():
    """[(label, bytes)] HF's loader accepts (stref.read "hf" checked)."""
    out = []
    add = lambda label, b: out.append((label, b))  # noqa: E731
    e = base_entries()
    hdr = obj(BASE_META, *e)
    add("unpadded", raw_file(hdr, BASE_DATA, pad=False))
    add("leading_whitespace", raw_file(" \t\n\r" + hdr, BASE_DATA,
                                       pad=False))
    add("pretty_printed", raw_file(
        "{\n  " + ",\n  ".join([BASE_META] + e).replace(":", ": ") + "\n}\n",
        BASE_DATA))
    add("tab_padding", raw_file(hdr + "\t\n\r ", BASE_DATA, pad=False))
    add("json_order_not_data_order", raw_file(obj(e[2], BASE_META, e[0],
                                                  e[1]), BASE_DATA))
    add("metadata_last", raw_file(obj(*(e + [BASE_META])), BASE_DATA))
    add("extra_field", _with(b=("b", "I16", (3,), (16, 22),
                                ',"extra":{"x":[1,2]}')))
    add("field_order", raw_file(obj(
        '"a":{"data_offsets":[0,16],"shape":[2,2],"dtype":"F32"}', e[1],
        e[2], BASE_META), BASE_DATA))
    add("metadata_non_string", _with(
        meta='"__metadata__":{"format":"ms","num":1,"flag":true,'
             '"nil":null,"obj":{"x":"y"},"list":[1,"a"]}'))
    add("metadata_null", _with(meta='"__metadata__":null'))
    add("metadata_empty", _with(meta='"__metadata__":{}'))
    add("no_metadata", _with(meta=None))
    add("escaped_names", raw_file(obj(
        BASE_META, entry(Raw('"\\u0061"'), "F32", (2, 2), (0, 16)),
        entry(Raw('"b\\/x"'), "I16", (3,), (16, 22)),
        entry(Raw('"c\\u00e9\\ud83d\\ude00"'), "U8", (5,), (22, 27))),
        BASE_DATA))
    add("zero_size_shared_offsets", raw_file(obj(
        entry("a", "F32", (2, 2), (0, 16)), entry("z1", "F32", (0,),
                                                  (16, 16)),
        entry("z2", "U8", (3, 0), (16, 16)), entry("b", "I16", (3,),
                                                   (16, 22))),
        BASE_DATA[:22]))
    add("only_metadata", raw_file('{"__metadata__":{"format":"ms"}}', b""))
    add("empty_unpadded", raw_file("{}", b"", pad=False))
    add("empty_16_bytes", stref.EMPTY_FILE)
    add("unsorted_names", raw_file(obj(
        entry("z", "F32", (2, 2), (0, 16)), entry("a", "F32", (0,),
                                                  (16, 16)),
        entry("m", "I16", (3,), (16, 22))), BASE_DATA[:22]))
    add("big_padding", raw_file(hdr + " " * 1000, BASE_DATA, pad=False))
    add("f8_dtype", raw_file(obj(entry("f", "F8_E5M2", (4,), (0, 4))),
                             b"\x01\x02\x03\x04"))
    for label, b in out:
        stref.read(b, "hf")      # raises if not accepted
    return out


def ms_refused():
    """Labels of lenient_variants() MindSpore 2.7's reader refuses."""
    return {label for label, b in lenient_variants()
            if not stref.is_valid(b, "ms")}


def _safe(label):
    return re.sub(r"[^0-9A-Za-z_.-]", "_", label)


def write_all(outdir, many_n=100000, big=False):
    os.makedirs(outdir, exist_ok=True)
    files = {
        "all_dtypes.safetensors": all_dtypes(),
        "odd_names.safetensors": odd_names(),
        "ms_crc.safetensors": mindspore_style(crc=True),
        "ms_plain.safetensors": mindspore_style(crc=False, extra=False),
        "ms_v25_crc.safetensors": mindspore_v25_crc(),
        "ms_v24.safetensors": mindspore_v24(),
    }
    if many_n:
        files["many_%d.safetensors" % many_n] = many(many_n)
    for label, b in lenient_variants():
        files["lenient_%s.safetensors" % label] = b
    for name, b in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(b)
    cdir = os.path.join(outdir, "corrupt")
    os.makedirs(cdir, exist_ok=True)
    for label, b in corrupt_variants():
        with open(os.path.join(cdir, _safe(label) + ".safetensors"),
                  "wb") as f:
            f.write(b)
    if big:
        write_big(os.path.join(outdir, "big_4GiB.safetensors"))
    return sorted(files)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--many", type=int, default=100000)
    ap.add_argument("--big", action="store_true")
    a = ap.parse_args(argv[1:])
    for name in write_all(a.outdir, a.many, a.big):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
