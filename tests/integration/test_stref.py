#!/usr/bin/python3
"""The safetensors reference itself (tests/ref/stref.py and
tests/ref/gen_safetensors.py), before it is trusted as the oracle of the
safetensors tests.  No ckptfs binary is needed.

Covered: every valid real fixture is reproduced byte for byte by
serialize(read(f)) (and is in the serializer's order); NEG_ files are
refused; the worked example of safetensors-format.md §1.7 (220-byte JSON,
N = 224, 260-byte file); the 16-byte empty file; the serializer's order
over all 22 dtypes and byte-wise names, serde_json escaping; every corrupt
variant refused and every lenient one accepted (MindSpore's reader refusing
exactly the ones it should); duplicate keys at every level; MindSpore mode
(JSON order, 13 dtypes, tensor named like a metadata key); crc_num with the
0-d integer quirk (bytes(np.array(7, np.int64)) is 7 zero bytes) against
hand-computed values; mindspore_save's metadata; the generators.

Run:  /usr/bin/python3 -m unittest -v test_stref   (in tests/integration)
"""

import binascii
import collections
import glob
import json
import os
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REF_DIR = os.path.join(REPO, "tests", "ref")
if REF_DIR not in sys.path:
    sys.path.insert(0, REF_DIR)

import stref  # noqa: E402
import gen_safetensors as G  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "fixtures", "safetensors")
OD = collections.OrderedDict


def valid_fixtures():
    files = glob.glob(os.path.join(FIXTURES, "*.safetensors")) + \
        glob.glob(os.path.join(FIXTURES, "*", "*.safetensors"))
    return sorted(p for p in files
                  if not os.path.basename(p).startswith("NEG_"))


def neg_fixtures():
    return sorted(glob.glob(os.path.join(FIXTURES, "**", "NEG_*"),
                            recursive=True))


def read_bytes(p):
    with open(p, "rb") as f:
        return f.read()


# which fixtures MindSpore 2.7's reader loads (MANIFEST.md: F8 is refused)
MS_LOADS = {
    "fluxml_model.safetensors": False,
    "fluxml_model_with_metadata.safetensors": False,
    "model-00001-of-00006.safetensors": True,
    "model-00002-of-00006.safetensors": True,
    "model-00003-of-00006.safetensors": True,
    "model-00004-of-00006.safetensors": True,
    "model-00005-of-00006.safetensors": False,
    "model-00006-of-00006.safetensors": False,
    "syoyo_model_f64.safetensors": True,
}


class TestFixtures(unittest.TestCase):
    def test_fixtures_present(self):
        names = sorted(os.path.basename(p) for p in valid_fixtures())
        self.assertEqual(names, sorted(MS_LOADS))
        self.assertTrue(neg_fixtures())

    def test_every_fixture_reproduced_byte_for_byte(self):
        for p in valid_fixtures():
            with self.subTest(os.path.basename(p)):
                raw = read_bytes(p)
                st = stref.read(p)
                self.assertEqual(st.header_len,
                                 int.from_bytes(raw[:8], "little"))
                self.assertEqual(st.json_order, st.names(),
                                 "JSON order is the data order")
                out = stref.serialize(st.tensors, st.metadata)
                self.assertEqual(out, raw)
                # from bytes, too, and the tensors' data are the slices
                st2 = stref.read(raw)
                self.assertEqual([(t.name, t.dtype, t.shape, t.data)
                                  for t in st2.tensors],
                                 [(t.name, t.dtype, t.shape, t.data)
                                  for t in st.tensors])
                self.assertEqual(b"".join(t.data for t in st.tensors),
                                 raw[st.data_start:])
                self.assertEqual(stref.is_valid(p, "ms"),
                                 MS_LOADS[os.path.basename(p)])
                st.close()

    def test_sharded_index_matches_shards(self):
        d = os.path.join(FIXTURES, "fluxml_sharded")
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            idx = json.load(f)
        seen = {}
        total = 0
        for p in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
            st = stref.read(p)
            self.assertEqual(st.metadata, OD(format="pt"))
            for t in st.tensors:
                seen[t.name] = os.path.basename(p)
                total += t.nbytes
        self.assertEqual(seen, idx["weight_map"])
        self.assertEqual(total, idx["metadata"]["total_size"])

    def test_neg_refused(self):
        for p in neg_fixtures():
            for mode in ("hf", "ms"):
                with self.subTest(os.path.basename(p), mode=mode):
                    with self.assertRaises(stref.StError) as cm:
                        stref.read(p, mode)
                    self.assertIn(os.path.basename(p), str(cm.exception))


class TestSerializer(unittest.TestCase):
    def test_worked_example(self):
        t = [("fc.weight", "F32", (2, 2), np.arange(4, dtype="<f4")),
             ("fc.bias", "F32", (2,), np.ones(2, "<f4")),
             ("global_step", "I32", (1,), np.array([5], "<i4"))]
        out = stref.serialize(t, OD(format="ms"))
        js = (b'{"__metadata__":{"format":"ms"},"fc.bias":{"dtype":"F32",'
              b'"shape":[2],"data_offsets":[0,8]},"fc.weight":{"dtype":'
              b'"F32","shape":[2,2],"data_offsets":[8,24]},"global_step":'
              b'{"dtype":"I32","shape":[1],"data_offsets":[24,28]}}')
        self.assertEqual(len(js), 220)
        self.assertEqual(out[:8], bytes.fromhex("e000000000000000"))
        self.assertEqual(out[8:8 + 224], js + b"    ")
        self.assertEqual(len(out), 260)
        self.assertEqual(out[232:], np.ones(2, "<f4").tobytes() +
                         np.arange(4, dtype="<f4").tobytes() +
                         np.array([5], "<i4").tobytes())
        # what MindSpore 2.7 writes for these parameters
        self.assertEqual(stref.mindspore_save(
            [("fc.weight", "Float32", (2, 2), np.arange(4, dtype="<f4")),
             ("fc.bias", "Float32", (2,), np.ones(2, "<f4")),
             ("global_step", "Int32", (1,), np.array([5], "<i4"))]), out)

    def test_empty_file(self):
        want = bytes.fromhex("0800000000000000") + b"{}" + b" " * 6
        self.assertEqual(len(want), 16)
        self.assertEqual(stref.serialize([]), want)
        self.assertEqual(stref.serialize({}), want)
        self.assertEqual(stref.EMPTY_FILE, want)
        self.assertEqual(stref.mindspore_save([], crc=True), want)
        st = stref.read(want, "both")
        self.assertEqual((st.tensors, st.metadata, st.header_len),
                         ([], None, 8))

    def test_dtype_order(self):
        # one tensor per dtype, given in a shuffled order
        t = [(dt.lower(), dt, (8,), bytes(stref.tensor_nbytes(dt, (8,))))
             for dt in stref.DTYPE_ORDER[::3] + stref.DTYPE_ORDER[1::3] +
             stref.DTYPE_ORDER[2::3]]
        st = stref.read(stref.serialize(t))
        self.assertEqual([x.dtype for x in st.tensors],
                         stref.DTYPE_ORDER[::-1])
        # MindSpore's 13, §1.7
        ms = [x.dtype for x in st.tensors if x.dtype in stref.MS_DTYPE_SIZE]
        self.assertEqual(ms, "U64 I64 F64 F32 U32 I32 BF16 F16 U16 I16 I8 "
                         "U8 BOOL".split())
        # sizes (§2.3)
        sizes = {x.dtype: x.nbytes for x in st.tensors}
        self.assertEqual((sizes["F4"], sizes["F6_E2M3"], sizes["C64"],
                          sizes["F8_E8M0"]), (4, 6, 64, 8))

    def test_name_order_bytewise(self):
        names = ["b", "a", "B", "\u00e9", "a.b", "a_b", "\U0001F600",
                 "\uffff", "", "a"[:0] + "z"]
        t = [(n, "U8", (1,), b"x") for n in names]
        st = stref.read(stref.serialize(t))
        self.assertEqual(st.names(), sorted(names,
                                            key=lambda n: n.encode()))
        self.assertEqual(st.names()[:3], ["", "B", "a"])

    def test_escaping(self):
        names = ["q\"uote", "back\\slash", "slash/x", "ctl\x00\x01\x1f",
                 "bs\b\t\n\f\r", "del\x7f", "\u00e9\u6743", "\u2028"]
        for n in names:
            self.assertEqual(stref.json_string(n),
                             json.dumps(n, ensure_ascii=False))
        t = [(n, "U8", (1,), b"x") for n in names]
        raw = stref.serialize(t, OD([("k\n", "v\"/\x02")]))
        self.assertIn(b'"slash/x"', raw)
        self.assertIn(b'"ctl\\u0000\\u0001\\u001f"', raw)
        self.assertIn(b'"bs\\b\\t\\n\\f\\r"', raw)
        self.assertIn(b'"del\x7f"', raw)
        self.assertIn("\u00e9\u6743".encode(), raw)
        self.assertIn(b'{"k\\n":"v\\"/\\u0002"}', raw)
        st = stref.read(raw)
        self.assertEqual(sorted(st.names()), sorted(names))
        self.assertEqual(st.metadata, OD([("k\n", "v\"/\x02")]))

    def test_metadata_order_and_non_string_values(self):
        meta = OD([("z", "1"), ("a", "2"), ("n", 3), ("b", True),
                   ("o", OD([("x", [1, "y", None])]))])
        raw = stref.serialize([("w", "F32", (1,), bytes(4))], meta)
        self.assertIn(b'{"__metadata__":{"z":"1","a":"2","n":3,"b":true,'
                      b'"o":{"x":[1,"y",null]}},"w":', raw)
        self.assertEqual(stref.read(raw).metadata, meta)
        # metadata is written only when given
        self.assertNotIn(b"__metadata__", stref.serialize(
            [("w", "F32", (1,), bytes(4))]))
        self.assertIn(b'{"__metadata__":{},', stref.serialize(
            [("w", "F32", (1,), bytes(4))], {}))

    def test_zero_size_and_0d(self):
        t = [("z0", "F32", (0,), b""), ("z30", "I32", (3, 0), b""),
             ("s", "F64", (), bytes(8)), ("a", "F32", (2,), bytes(8))]
        st = stref.read(stref.serialize(t), "both")
        self.assertEqual([(x.name, x.shape, x.begin, x.end)
                          for x in st.tensors],
                         [("s", (), 0, 8), ("a", (2,), 8, 16),
                          ("z0", (0,), 16, 16), ("z30", (3, 0), 16, 16)])

    def test_writer_refuses_bad_input(self):
        for t in ([("a", "F32", (2,), bytes(7))],
                  [("a", "F33", (2,), bytes(8))],
                  [("a", "U8", (1,), b"x"), ("a", "U8", (1,), b"y")],
                  [("__metadata__", "U8", (1,), b"x")],
                  [("f4", "F4", (3,), bytes(2))]):
            with self.assertRaises(stref.StError, msg=repr(t)):
                stref.serialize(t)

    def test_input_forms(self):
        want = stref.serialize([("a", "U8", (2,), b"xy")])
        self.assertEqual(stref.serialize({"a": ("U8", [2], b"xy")}), want)
        self.assertEqual(stref.serialize(
            [dict(name="a", dtype="U8", shape=[2], data=b"xy")]), want)
        self.assertEqual(stref.serialize(
            [("a", "U8", (2,), np.frombuffer(b"xy", np.uint8))]), want)


class TestReader(unittest.TestCase):
    def test_corrupt_variants_refused(self):
        variants = G.corrupt_variants()
        self.assertGreater(len(variants), 100)
        labels = [v[0] for v in variants]
        for prefix in ("truncated_at_", "flip80_header_", "flip_length_bit_",
                       "offsets_hole", "offsets_overlap",
                       "offsets_end_before_begin", "offsets_too_long",
                       "offsets_too_short", "duplicate_tensor",
                       "bad_utf8_name_", "header_len_past_file",
                       "header_len_over_limit", "trailing_byte",
                       "dtype_F128", "shape_negative", "shape_float",
                       "top_level_array", "missing_dtype", "missing_shape",
                       "missing_data_offsets"):
            self.assertTrue(any(x.startswith(prefix) for x in labels),
                            prefix)
        for label, raw in variants:
            with self.subTest(label):
                with self.assertRaises(stref.StError):
                    stref.read(raw)

    def test_truncations_of_a_fixture(self):
        raw = read_bytes(os.path.join(FIXTURES, "syoyo_model_f64.safetensors"))
        for k in range(0, len(raw), 7):
            with self.assertRaises(stref.StError, msg="cut at %d" % k):
                stref.read(raw[:k])

    def test_lenient_variants_accepted(self):
        for label, raw in G.lenient_variants():
            with self.subTest(label):
                st = stref.read(raw)
                # the serializer's form of it reads back the same tensors
                out = stref.serialize(st.tensors, st.metadata)
                st2 = stref.read(out, "hf")
                self.assertEqual(
                    [(t.name, t.dtype, t.shape, t.data) for t in st2.tensors],
                    sorted([(t.name, t.dtype, t.shape, t.data)
                            for t in st.tensors],
                           key=lambda x: (-stref.DTYPE_RANK[x[1]],
                                          x[0].encode())))
        self.assertEqual(G.ms_refused(), {"f8_dtype",
                                          "json_order_not_data_order"})

    def test_lenient_details(self):
        v = dict(G.lenient_variants())
        st = stref.read(v["json_order_not_data_order"])
        self.assertEqual(st.json_order, ["c", "a", "b"])
        self.assertEqual(st.names(), ["a", "b", "c"])
        self.assertEqual(stref.read(v["metadata_null"]).metadata, None)
        self.assertEqual(stref.read(v["metadata_empty"]).metadata, OD())
        st = stref.read(v["metadata_non_string"])
        self.assertEqual(st.metadata["num"], 1)
        self.assertEqual(st.metadata["obj"], {"x": "y"})
        st = stref.read(v["escaped_names"])
        self.assertEqual(st.names(), ["a", "b/x", "c\u00e9\U0001F600"])
        st = stref.read(v["zero_size_shared_offsets"])
        self.assertEqual(st.names(), ["a", "z1", "z2", "b"])
        self.assertEqual(stref.read(v["unpadded"]).header_len % 8, 5)

    def test_duplicates_refused_everywhere(self):
        e = G.base_entries()
        for label, hdr in (
                ("top", G.obj(G.BASE_META, e[0], e[1], e[2], e[2])),
                ("meta key", G.obj('"__metadata__":{"a":"1","a":"1"}', *e)),
                ("field", G.obj(G.BASE_META, e[0], e[1],
                                e[2][:-1] + ',"shape":[5]}'))):
            raw = G.raw_file(hdr, G.BASE_DATA)
            for mode in ("hf", "ms"):
                with self.assertRaises(stref.StError, msg=label) as cm:
                    stref.read(raw, mode)
                self.assertIn("duplicate", str(cm.exception))

    def test_ms_mode(self):
        # JSON order must be the data order
        e = G.base_entries()
        raw = G.raw_file(G.obj(e[1], e[0], e[2]), G.BASE_DATA)
        stref.read(raw, "hf")
        with self.assertRaises(stref.StError):
            stref.read(raw, "ms")
        # only 13 dtypes
        raw = stref.serialize([("f", "F8_E4M3", (2,), b"\1\2")])
        stref.read(raw)
        with self.assertRaises(stref.StError) as cm:
            stref.read(raw, "ms")
        self.assertIn("13", str(cm.exception))
        # a tensor named like a metadata key
        raw = stref.serialize([("format", "U8", (1,), b"x")],
                              OD(format="ms"))
        stref.read(raw)
        with self.assertRaises(stref.StError):
            stref.read(raw, "ms")
        # an Int4 marker is fine
        raw = stref.serialize([("q", "I8", (2,), b"xy")],
                              OD([("format", "ms"), ("q", "Int4")]))
        stref.read(raw, "both")
        # MindSpore's json.loads takes a UTF-8 BOM; HF does not
        hdr = b"\xef\xbb\xbf" + G.obj(*G.base_entries()).encode()
        raw = G.raw_file(hdr, G.BASE_DATA)
        stref.read(raw, "ms")
        with self.assertRaises(stref.StError):
            stref.read(raw, "hf")
        with self.assertRaises(stref.StError):
            stref.read(raw, "both")

    def test_file_and_lazy_data(self):
        raw = G.all_dtypes()
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.safetensors")
            with open(p, "wb") as f:
                f.write(raw)
            with stref.read(p) as st:
                t = st.tensor("f32_vals")
                self.assertEqual(t.data, np.array([1.5, -2, 0, 3.25],
                                                  "<f4").tobytes())
                self.assertEqual(t.read(4, 8), t.data[4:12])
                self.assertEqual(t.read(14, 100), t.data[14:])

    def test_shown_dtype(self):
        meta = OD([("format", "ms"), ("q", "Int4")])
        self.assertEqual(stref.shown_dtype("I8", "q", meta), "Int4")
        self.assertEqual(stref.shown_dtype("I8", "p", meta), "Int8")
        self.assertEqual(stref.shown_dtype("I8", "q", None), "Int8")
        want = dict(BOOL="Bool", U8="UInt8", I16="Int16", U16="UInt16",
                    F16="Float16", BF16="BFloat16", I32="Int32",
                    U32="UInt32", F32="Float32", F64="Float64", I64="Int64",
                    U64="UInt64", F8_E4M3="Float8E4M3FN",
                    F8_E5M2="Float8E5M2", C64="Complex64", F8_E8M0="F8_E8M0",
                    F8_E4M3FNUZ="F8_E4M3FNUZ", F8_E5M2FNUZ="F8_E5M2FNUZ",
                    F4="F4", F6_E2M3="F6_E2M3", F6_E3M2="F6_E3M2")
        for st, ms in want.items():
            self.assertEqual(stref.shown_dtype(st, "x", meta), ms)


class TestCrc(unittest.TestCase):
    def test_bytes_quirk_of_numpy(self):
        # the measurements of §1.8, on this numpy
        self.assertEqual(bytes(np.array(7, np.int64)), bytes(7))
        self.assertEqual(bytes(np.array(0, np.uint8)), b"")
        with self.assertRaises(ValueError):
            bytes(np.array(-1, np.int64))
        self.assertEqual(bytes(np.array(True)), b"\x01")
        self.assertEqual(bytes(np.array(1.5, np.float32)),
                         np.float32(1.5).tobytes())
        self.assertEqual(bytes(np.array([7], np.int64)),
                         np.int64(7).tobytes())

    def test_crc_by_hand(self):
        ep = ("epoch_num", "I64", (), np.int64(7).tobytes())
        lr = ("learning_rate", "F32", (), np.float32(0.5).tobytes())
        w = ("w", "F32", (2,), np.array([1, 2], "<f4").tobytes())
        gs = ("global_step", "I32", (1,), np.array([9], "<i4").tobytes())
        want = 0
        want = binascii.crc32(b"epoch_num", want)
        want = binascii.crc32(b"\0" * 7, want)        # not the 8 raw bytes
        want = binascii.crc32(b"global_step", want)
        want = binascii.crc32(np.array([9], "<i4").tobytes(), want)
        want = binascii.crc32(b"learning_rate", want)
        want = binascii.crc32(np.float32(0.5).tobytes(), want)
        want = binascii.crc32(b"w", want)
        want = binascii.crc32(np.array([1, 2], "<f4").tobytes(), want)
        self.assertEqual(stref.crc_num([w, lr, gs, ep]), want)
        # a fixed value, so that a change of numpy would show
        self.assertEqual(stref.crc_num([ep]), 996374528)
        self.assertEqual(stref.crc_num([]), 0)

    def test_crc_integer_quirk_every_integer_type(self):
        for dt, npd in (("U8", "u1"), ("I8", "i1"), ("I16", "<i2"),
                        ("U16", "<u2"), ("I32", "<i4"), ("U32", "<u4"),
                        ("I64", "<i8"), ("U64", "<u8")):
            t = ("x", dt, (), np.array(5, npd).tobytes())
            self.assertEqual(stref.crc_num([t]),
                             binascii.crc32(bytes(5), binascii.crc32(b"x")),
                             dt)
        # 0-d non-integers: raw bytes
        for dt, data in (("BOOL", b"\x01"), ("F16", b"\x00\x3c"),
                         ("BF16", b"\x80\x3f"), ("F64", bytes(8))):
            self.assertEqual(stref.crc_num([("x", dt, (), data)]),
                             binascii.crc32(data, binascii.crc32(b"x")), dt)
        # a negative 0-d integer cannot be hashed (MindSpore's save fails)
        with self.assertRaises(stref.StError):
            stref.crc_num([("x", "I32", (), np.int32(-1).tobytes())])
        # the chunked path for large values agrees with bytes()
        v = (1 << 24) + 5
        arr = np.array(v, np.int64)
        self.assertEqual(stref.crc_num([("x", "I64", (), arr.tobytes())]),
                         binascii.crc32(bytes(arr), binascii.crc32(b"x")))
        # a zero value hashes nothing
        self.assertEqual(stref.crc_num([("x", "U8", (), b"\0")]),
                         binascii.crc32(b"x"))

    def test_sorted_names_not_file_order(self):
        a = ("b", "U64", (1,), bytes(8))
        b = ("a", "U8", (1,), b"\x01")
        # file order: b (U64) then a (U8); the crc hashes a first
        want = binascii.crc32(bytes(8), binascii.crc32(
            b"b", binascii.crc32(b"\x01", binascii.crc32(b"a"))))
        self.assertEqual(stref.crc_num([a, b]), want)

    def test_mindspore_save(self):
        raw = G.mindspore_style(crc=True)
        st = stref.read(raw, "both")
        self.assertEqual(list(st.metadata),
                         ["format", "remove_redundancy", "quant.weight",
                          "crc_num"])
        self.assertEqual(st.metadata["format"], "ms")
        self.assertEqual(st.metadata["quant.weight"], "Int4")
        self.assertEqual(st.tensor("quant.weight").dtype, "I8")
        self.assertEqual(st.tensor("epoch_num").shape, ())
        self.assertEqual(st.tensor("learning_rate").shape, ())
        self.assertTrue(stref.check_crc(raw))
        self.assertEqual(int(st.metadata["crc_num"]),
                         stref.crc_num(st.tensors))
        # a data byte changed: the crc no longer matches
        b = bytearray(raw)
        b[-1] ^= 1
        self.assertIs(stref.check_crc(bytes(b)), False)
        # epoch_num's value counts, its raw bytes do not (quirk)
        params = G.ms_params()
        for p in params:
            if p["name"] == "epoch_num":
                p["data"] = np.int64(4).tobytes()
        other = stref.mindspore_save(params, OD(remove_redundancy="False"),
                                     crc=True)
        self.assertNotEqual(stref.read(other).metadata["crc_num"],
                            st.metadata["crc_num"])
        self.assertIsNone(stref.check_crc(G.mindspore_style(crc=False)))
        self.assertTrue(stref.check_crc(G.mindspore_v25_crc()))
        # plain: only format and the marker
        st = stref.read(G.mindspore_style(crc=False, extra=False), "both")
        self.assertEqual(st.metadata, OD([("format", "ms"),
                                          ("quant.weight", "Int4")]))

    def test_mindspore_save_refuses_str_and_map(self):
        with self.assertRaises(stref.StError) as cm:
            stref.mindspore_save([("w", "Float32", (1,), bytes(4)),
                                  ("note", "str", (), b"x\0\0\0")])
        self.assertIn("note", str(cm.exception))
        with self.assertRaises(stref.StError) as cm:
            stref.mindspore_save([dict(name="emb", kind="map", dtype=None,
                                       shape=(), data=b"")])
        self.assertIn("emb", str(cm.exception))

    def test_to_ckpt_params(self):
        st = stref.read(G.mindspore_style(crc=True))
        params = stref.to_ckpt_params(st)
        self.assertEqual([p["name"] for p in params],
                         sorted(p["name"] for p in G.ms_params()))
        by = {p["name"]: p for p in params}
        for p in G.ms_params():
            self.assertEqual((by[p["name"]]["dtype"], by[p["name"]]["shape"],
                              by[p["name"]]["data"]),
                             (p["dtype"], p["shape"], p["data"]), p["name"])


class TestGenerators(unittest.TestCase):
    def test_all_dtypes(self):
        raw = G.all_dtypes()
        st = stref.read(raw)
        self.assertEqual(stref.serialize(st.tensors, st.metadata), raw)
        self.assertEqual(set(t.dtype for t in st.tensors),
                         set(stref.DTYPE_ORDER))
        self.assertEqual(stref.shown_dtype("I8", "q_int4", st.metadata),
                         "Int4")
        shapes = {t.name: t.shape for t in st.tensors}
        self.assertEqual(shapes["s_f32"], ())
        self.assertEqual(shapes["z_i32_3_0"], (3, 0))
        self.assertEqual(shapes["z_f32_0"], (0,))

    def test_odd_names(self):
        st = stref.read(G.odd_names(), "both")
        self.assertIn("", st.names())
        self.assertIn("model/layer.0/w", st.names())

    def test_many(self):
        n = 10000
        raw = G.many(n)
        st = stref.read(raw, "both")
        self.assertEqual(len(st.tensors), n)
        self.assertEqual(stref.serialize(st.tensors, st.metadata), raw)

    def test_big_header(self):
        self.assertTrue(G.big_header_check())

    def test_big_sparse_small(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "b.safetensors")
            info = G.write_big(p, elems=1000)
            st = stref.read(p, "both")
            self.assertEqual([(t.name, t.dtype, t.shape, t.begin, t.end)
                              for t in st.tensors], info["tensors"])
            self.assertEqual(st.tensor("tail").data, info["tail"])
            self.assertEqual(st.tensor("head").data, info["head"])
            self.assertEqual(st.tensor("big").data[-64:], info["big_last"])
            self.assertEqual(st.tensor("big").data[:-64], bytes(4000 - 64))
            self.assertEqual(os.path.getsize(p), info["size"])
            st.close()

    def test_write_all(self):
        with tempfile.TemporaryDirectory() as d:
            names = G.write_all(d, many_n=100)
            for n in names:
                stref.read(os.path.join(d, n)).close()
            corrupt = glob.glob(os.path.join(d, "corrupt", "*"))
            self.assertEqual(len(corrupt), len(G.corrupt_variants()))
            for p in corrupt:
                self.assertFalse(stref.is_valid(p), p)


if __name__ == "__main__":
    unittest.main()
