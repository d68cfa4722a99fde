#!/usr/bin/python3
"""Invalid and damaged checkpoints.

* Every NEG_* fixture is refused by ckptfs (non-zero exit, stderr names the
  file, nothing left mounted) and by `ckpt verify`.
* Damaged variants of valid files -- truncations, single-byte changes and
  hand-made lying lengths / bad fields -- are judged by the reference
  reader ckref: if ckref.load raises, `ckpt verify` must exit non-zero with
  a message; if it loads, `ckpt verify` must exit 0 and `ckpt cat` of every
  parameter must equal the reference.  Death by a signal always fails.
* A handful of these are also mounted through ckptfs.

The damaged variants go through ckpt_batch (batch.py: the ckpt command
line, one process for all of them); every 16th call (64th under ASan)
also runs the real ckpt binary, which must answer exactly the same.

Failing cases are saved under $CKPT_GEN_DIR/../corrupt_failures/ for
debugging (the message says where).
"""

import os
import random
import shutil
import struct
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
from batch import Batch, Sampled  # noqa: E402
from common import ckref, escape_name  # noqa: E402
from wire import (  # noqa: E402
    key, ld, map_record, record as rec, tensor, value, varint)

FAIL_DIR = os.path.join(os.path.dirname(common.GEN_DIR), "corrupt_failures")
MAX_REPORTED = 15
BATCH = Batch()
CKPT = Sampled(BATCH)


def fixture(name):
    return os.path.join(common.FIXTURES, name)


def gen(name):
    common.ensure_generated()
    return os.path.join(common.GEN_DIR, name)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- hand encoding of test inputs (not the reader under test): wire.py

def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


GOOD = rec("w", tensor((2,), "Float32", f32(1, 2)))
GOOD2 = rec("b", tensor((), "Int64", struct.pack("<q", 5)))


def with_crc(body, crc=None):
    c = zlib.crc32(body) if crc is None else crc
    return body + b"crc_num" + c.to_bytes(10, "big")


KEYS = tensor((2,), "int64", struct.pack("<2q", 1, 2))
VALS = tensor((2, 1), "float32", f32(1, 2))
STAT = tensor((2,), "int32", struct.pack("<2i", 0, 0))

# (name, bytes, expected validity).  The expectation is cross-checked
# against ckref so that a reference bug cannot silently invert a case.
HAND_CASES = [
    # lying lengths
    ("outer_len_too_big", ld(1, value("w", tensor((2,), "Float32",
                                                  f32(1, 2))), 31), False),
    ("outer_len_plus_one", GOOD[:1] + varint(GOOD[1] + 1) + GOOD[2:], False),
    ("outer_len_minus_one", GOOD[:1] + varint(GOOD[1] - 1) + GOOD[2:],
     False),
    ("outer_len_huge_varint", b"\x0a" + b"\xff" * 9 + b"\x01" + GOOD[2:],
     False),
    ("outer_len_2pow63", b"\x0a" + varint(1 << 63) + GOOD[2:], False),
    ("varint_11_bytes", b"\x0a" + b"\x80" * 10 + b"\x00", False),
    ("varint_10th_byte_7f", b"\x0a" + b"\xff" * 9 + b"\x7f", False),
    ("varint_unterminated_at_eof", b"\x0a\xff\xff", False),
    ("content_len_too_big",
     rec("w", tensor((2,), "Float32")[:-1] + b"\x09" + f32(1, 2)), False),
    ("content_len_huge",
     rec("w", tensor((2,), "Float32")[:-2] + b"\x1a" + varint(1 << 62) +
         f32(1, 2)), False),
    ("tag_len_too_big",
     ld(1, key(1, 2) + varint(200) + b"w" + ld(2, tensor((2,), "Float32",
                                                      f32(1, 2)))), False),
    ("packed_dims_len_too_big",
     rec("w", ld(1, varint(2), 9) + ld(2, b"Float32") + ld(3, f32(1, 2))),
     False),
    ("inner_tensor_len_too_big",
     ld(1, ld(1, b"w") + key(2, 2) + varint(40) +
        tensor((2,), "Float32", f32(1, 2))), False),
    # dims
    ("negative_dim", rec("w", tensor((-1,), "Float32", b"")), False),
    ("negative_dims_product_positive",
     rec("w", tensor((-2, -2), "Float32", f32(1, 2, 3, 4))), False),
    ("negative_dim_with_zero", rec("w", tensor((0, -3), "Float32", b"")),
     False),
    ("dims_overflow_2p32x2p32",
     rec("w", tensor((1 << 32, 1 << 32), "Float32", b"")), False),
    ("dims_overflow_bytes_2p62x4",
     rec("w", tensor((1 << 62, 4), "Float32", b"")), False),
    ("dims_overflow_bytes_2p61_f64",
     rec("w", tensor((1 << 61,), "Float64", b"")), False),
    ("dims_overflow_wraps_to_4",   # (2^62+1)*4 = 2^64 + 4
     rec("w", tensor(((1 << 62) + 1, 4), "Int8", b"\0" * 4)), False),
    ("dims_max_int64", rec("w", tensor(((1 << 63) - 1,), "Int8", b"")),
     False),
    ("dims_uint64_max", rec("w", tensor(((1 << 64) - 1,), "Int8", b"")),
     False),
    ("dims_many_large",
     rec("w", tensor((1 << 20,) * 8, "Float32", b"")), False),
    # content length vs dims
    ("content_short_by_one", rec("w", tensor((2,), "Float32", f32(1, 2)[:-1])),
     False),
    ("content_long_by_one",
     rec("w", tensor((2,), "Float32", f32(1, 2) + b"\0")), False),
    ("content_double_float32", rec("w", tensor((2,), "Float32",
                                               f32(1, 2, 3, 4))), False),
    ("scalar_zero_dims_no_content", rec("w", tensor((0,), "Float32", b"")),
     False),
    ("scalar_no_dims_two_elements",
     rec("w", tensor((), "Float32", f32(1, 2))), False),
    ("zero_elem_with_content", rec("w", tensor((0, 4), "Float32", f32(1))),
     False),
    ("bf16_triple_size", rec("w", tensor((2,), "BFloat16", b"\0" * 12)),
     False),
    ("str_empty_content", rec("s", tensor((0,), "str", b"")), False),
    ("str_not_multiple_of_4", rec("s", tensor((0,), "str", b"abcdef")), False),
    ("int4_half_bytes", rec("w", tensor((4,), "Int4", b"\0\0")), False),
    # tensor_type
    ("type_unknown", rec("w", tensor((2,), "Float128", f32(1, 2))), False),
    ("type_empty", rec("w", tensor((2,), "", f32(1, 2))), False),
    ("type_numpy_name_on_tensor", rec("w", tensor((2,), "float32",
                                                  f32(1, 2))), False),
    ("type_upper", rec("w", tensor((2,), "FLOAT32", f32(1, 2))), False),
    ("type_trailing_space", rec("w", tensor((2,), "Float32 ", f32(1, 2))),
     False),
    ("type_trailing_nul", rec("w", tensor((2,), b"Float32\0", f32(1, 2))),
     False),
    ("type_random_op", rec("w", tensor((2,), "random_op", f32(1, 2))), False),
    ("type_not_utf8", rec("w", tensor((2,), b"Float\xff2", f32(1, 2))),
     False),
    # crc trailer
    ("crc_wrong", with_crc(GOOD + GOOD2, zlib.crc32(GOOD + GOOD2) ^ 1),
     False),
    ("crc_value_over_32_bits",
     with_crc(GOOD, zlib.crc32(GOOD) + (1 << 32)), False),
    ("crc_zero", with_crc(GOOD, 0), False),
    ("crc_ok", with_crc(GOOD + GOOD2), True),
    ("crc_only_trailer_empty_body", with_crc(b""), True),
    ("crc_trailer_twice", with_crc(with_crc(GOOD)), False),
    # structure / required fields
    ("top_field1_varint", b"\x08\x01" + GOOD, False),
    ("top_field1_fixed32", GOOD + b"\x0d\x01\x02\x03\x04", False),
    ("top_field1_fixed64", GOOD + b"\x09" + b"\0" * 8, False),
    ("empty_value", b"\x0a\x00", False),
    ("value_without_tensor", ld(1, ld(1, b"w")), False),
    ("value_empty_tensor", ld(1, ld(1, b"w") + ld(2, b"")), False),
    ("missing_tag", ld(1, ld(2, tensor((2,), "Float32", f32(1, 2)))), False),
    ("missing_tensor_type",
     rec("w", key(1, 0) + varint(2) + ld(3, f32(1, 2))), False),
    ("missing_content", rec("w", key(1, 0) + varint(2) + ld(2, b"Float32")),
     False),
    ("missing_content_zero_elem",
     rec("w", key(1, 0) + varint(0) + key(1, 0) + varint(4) +
         ld(2, b"Float32")), False),
    ("trailing_nul_byte", GOOD + b"\x00", False),
    ("nul_byte_between_records", GOOD + b"\x00" + GOOD2, False),
    ("tag0_in_value", ld(1, ld(1, b"w") + b"\x00" +
                         ld(2, tensor((2,), "Float32", f32(1, 2)))), False),
    ("tag0_in_tensor", rec("w", tensor((2,), "Float32", f32(1, 2)) +
                           b"\x00"), False),
    ("trailing_ff", GOOD + b"\xff", False),
    ("trailing_partial_record", GOOD + GOOD2[:5], False),
    ("group_in_value",
     ld(1, ld(1, b"w") + key(9, 3) + key(9, 4) +
        ld(2, tensor((2,), "Float32", f32(1, 2)))), False),
    ("end_group_top_level", GOOD + key(5, 4), False),
    ("end_group_top_level_then_more", GOOD + key(5, 4) + GOOD2, False),
    ("end_group_in_tensor", rec("w", tensor((2,), "Float32", f32(1, 2)) +
                                key(4, 4)), False),
    ("wire_type_6", GOOD + b"\x0e", False),
    ("field_number_zero", GOOD + b"\x02\x00", False),
    # maps
    ("map_two_tensors", map_record("m", [KEYS, VALS]), False),
    ("map_four_tensors", map_record("m", [KEYS, VALS, STAT, STAT]), False),
    ("map_zero_tensors", map_record("m", []), False),
    ("map_unknown_type",
     map_record("m", [tensor((2,), "int65", b"\0" * 16), VALS, STAT]), False),
    ("map_values_short",
     map_record("m", [KEYS, tensor((2, 1), "float32", f32(1)), STAT]), False),
    ("map_sub_missing_content",
     map_record("m", [KEYS, VALS, key(1, 0) + varint(2) + ld(2, b"int32")]),
     False),
    ("map_ok", map_record("m", [KEYS, VALS, STAT]), True),
    # unusual but valid protobuf (the reference accepts these)
    ("fields_reordered",
     ld(1, ld(2, ld(3, f32(1, 2)) + ld(2, b"Float32") + key(1, 0) +
              varint(2)) + ld(1, b"w")), True),
    ("unknown_field_in_tensor",
     rec("w", tensor((2,), "Float32", f32(1, 2)) + key(9, 0) + varint(7)),
     True),
    ("unknown_fixed_fields_in_value",
     ld(1, ld(1, b"w") + key(7, 1) + b"\0" * 8 + key(8, 5) + b"\0" * 4 +
        ld(2, tensor((2,), "Float32", f32(1, 2)))), True),
    ("unknown_top_level_len_field", GOOD + ld(3, b"hello") + GOOD2, True),
    ("model_type_between_records", GOOD + ld(2, b"normal") + GOOD2, True),
    ("packed_dims", rec("w", tensor((2, 1), "Float32", f32(1, 2),
                                    packed=True)), True),
    ("packed_dims_empty_payload",
     rec("w", ld(1, b"") + ld(2, b"Float32") + ld(3, f32(1))), True),
    ("duplicate_type_last_wins",
     rec("w", key(1, 0) + varint(2) + ld(2, b"Int64") + ld(2, b"Float32") +
         ld(3, f32(1, 2))), True),
    ("empty_tag", rec("", tensor((2,), "Float32", f32(1, 2))), True),
    ("tag_not_utf8", rec(b"w\xff\xfe", tensor((2,), "Float32", f32(1, 2))),
     True),
    ("tag_with_nul", rec(b"a\0b", tensor((2,), "Float32", f32(1, 2))), True),
    ("tag_dot", rec(".", tensor((2,), "Float32", f32(1, 2))), True),
    ("tag_dotdot", rec("..", tensor((2,), "Float32", f32(1, 2))), True),
    ("tag_newline", rec("a\nb", tensor((2,), "Float32", f32(1, 2))), True),
    ("slices_differ_in_dims_last_wins",
     rec("w", tensor((9,), "Float32", f32(1))) +
     rec("w", tensor((2,), "Float32", f32(2))), True),
    ("slice_with_unknown_type_first",
     rec("w", tensor((2,), "Float3", f32(1))) +
     rec("w", tensor((2,), "Float32", f32(2))), False),
    ("slice_types_differ_last_wins",
     rec("w", tensor((2,), "Int32", f32(1))) +
     rec("w", tensor((2,), "Float32", f32(2))), True),
    ("map_slice_with_unknown_type_first",
     map_record("m", [KEYS, tensor((2, 1), "floa32", f32(1, 2)), STAT]) +
     map_record("m", [KEYS, VALS, STAT]), False),
    ("map_sliced_ok",
     map_record("m", [KEYS, VALS, STAT]) +
     map_record("m", [KEYS, VALS, STAT]), True),
    ("repeated_noncontiguous",
     GOOD + GOOD2 + rec("w", tensor((1,), "Int8", b"\x05")), True),
    ("bf16_float32_form", rec("w", tensor((2,), "BFloat16", f32(1, 2))),
     True),
    ("str_dims_empty", rec("s", tensor((), "str", b"a\0\0\0")), True),
    ("zero_elem_ok", rec("w", tensor((0, 4), "Float32", b"")), True),
    ("int4_ok", rec("w", tensor((4,), "Int4", b"\x01\xff\x07\x08")), True),
    ("complex128_ok", rec("w", tensor((1,), "Complex128", b"\1" * 16)),
     True),
    ("empty_file", b"", True),
]

# a few of the cases that are also mounted through ckptfs
MOUNT_CASES = ["outer_len_too_big", "dims_overflow_2p32x2p32",
               "content_short_by_one", "type_unknown", "crc_wrong",
               "top_field1_varint", "negative_dim", "fields_reordered",
               "tag_with_nul", "empty_tag", "duplicate_type_last_wins"]


class CorruptBase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        common.require_bin(self, common.CKPT_BIN)
        self.tmp = tempfile.mkdtemp(prefix="ckpt_corrupt_")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.failures = []
        self.saved = 0

    def ckpt(self, *args):
        """`ckpt ARGS` through the batch driver (batch.Sampled: a sample
        through the binary too, which must agree)."""
        return CKPT.ckpt(self, *args)

    # -- the oracle ---------------------------------------------------------

    def judge(self, data, label):
        """Checks `ckpt verify` (and cat) on data against ckref.

        Returns (ref_valid, problem-or-None)."""
        path = os.path.join(self.tmp, "case.ckpt")
        with open(path, "wb") as f:
            f.write(data)
        try:
            params = ckref.loads(data, "case.ckpt")
            ref_err = None
        except ValueError as e:
            params, ref_err = None, e
        res = self.ckpt("verify", path)
        if res.rc < 0:
            return params is not None, "ckpt verify killed by signal %d" % (
                -res.rc)
        if params is None:
            if res.rc == 0:
                return False, "ckpt verify accepted it, but the reference " \
                    "says: %s" % ref_err
            if not res.err.strip():
                return False, "ckpt verify exited %d without a message" % (
                    res.rc)
            return False, None
        if res.rc != 0:
            return True, "ckpt verify rejected a file the reference loads " \
                "(%d params): %s" % (len(params), res.errtext.strip()[:300])
        items = common.tensors_of(params)
        if not items:
            return True, None
        # One process for all names; one per name only to explain a failure.
        r_all = self.ckpt("cat", path, *[os.fsencode(s) for s, _ in items])
        if r_all.rc == 0 and r_all.out == b"".join(t.data for _, t in items):
            return True, None
        for shown, t in items:
            r = self.ckpt("cat", path, os.fsencode(shown))
            if r.rc < 0:
                return True, "ckpt cat %r killed by signal %d" % (shown,
                                                                 -r.rc)
            if r.rc != 0:
                return True, "ckpt cat %r failed: %s" % (
                    shown, r.errtext.strip()[:300])
            if r.out != t.data:
                return True, "ckpt cat %r: %d bytes differ from the " \
                    "reference (%d bytes)" % (shown, len(r.out),
                                              len(t.data))
        return True, "ckpt cat of all %d names (rc %d) differs from the " \
            "reference, though each name alone is right: %s" % (
                len(items), r_all.rc, r_all.errtext.strip()[:300])

    def check(self, data, label):
        valid, problem = self.judge(data, label)
        if problem:
            saved = self.save(data, label)
            self.failures.append("%s [%s]: %s%s" % (
                label, "valid" if valid else "invalid", problem,
                " (saved as %s)" % saved if saved else ""))
        return valid

    def save(self, data, label):
        if self.saved >= 50:
            return None
        self.saved += 1
        try:
            os.makedirs(FAIL_DIR, exist_ok=True)
            name = "".join(c if c.isalnum() or c in "._-" else "_"
                           for c in label) + ".ckpt"
            p = os.path.join(FAIL_DIR, name)
            with open(p, "wb") as f:
                f.write(data)
            return p
        except OSError:
            return None

    def report(self, what, total):
        if self.failures:
            self.fail("%d of %d %s cases failed:\n  %s%s" % (
                len(self.failures), total, what,
                "\n  ".join(self.failures[:MAX_REPORTED]),
                "\n  ..." if len(self.failures) > MAX_REPORTED else ""))


class TestNegFixtures(CorruptBase):
    def test_neg_fixtures_exist(self):
        self.assertTrue(common.neg_files(), "no NEG_* fixtures in %s"
                        % common.FIXTURES)

    def test_verify_refuses_neg(self):
        for path in common.neg_files():
            with self.subTest(os.path.basename(path)):
                self.assertRaises(ValueError, ckref.load, path)
                res = M.ckpt("verify", path)
                common.assert_not_signal(self, res, "ckpt verify")
                self.assertNotEqual(res.rc, 0, res.describe())
                self.assertTrue(res.err.strip(), "no message on stderr")
                res = M.ckpt("ls", path)
                common.assert_not_signal(self, res, "ckpt ls")
                self.assertNotEqual(res.rc, 0, "ckpt ls of an invalid file "
                                    "must fail\n" + res.describe())

    def test_ckptfs_refuses_neg(self):
        for path in common.neg_files():
            with self.subTest(os.path.basename(path)):
                copy = common.private_copy(self, path)
                res, m = M.try_mount(self, copy)
                mnt = res.mnt
                common.assert_not_signal(self, res, "ckptfs")
                self.assertNotEqual(res.rc, 0, res.describe())
                self.assertIn(os.path.basename(path), res.errtext,
                              "stderr does not name the file\n" +
                              res.describe())
                self.assertFalse(M.is_mounted(mnt),
                                 "%s left mounted" % mnt)
                self.assertEqual(common.sha256_file(copy),
                                 common.sha256_file(path),
                                 "ckptfs modified a file it refused")


class TestTruncated(CorruptBase):
    def truncations(self, path, offsets):
        data = read(path)
        base = os.path.basename(path)
        offsets = sorted(set(o for o in offsets if 0 <= o < len(data)))
        for off in offsets:
            self.check(data[:off], "%s[:%d]" % (base, off))
        self.report("truncation of " + base, len(offsets))

    def test_truncate_every_offset_golden_router(self):
        p = fixture("mindformers_golden_router.ckpt")
        self.truncations(p, range(os.path.getsize(p)))

    def test_truncate_every_offset_linearnet_64B(self):
        p = fixture("nsu2022_LinearNet_1_step_64B.ckpt")
        self.truncations(p, range(os.path.getsize(p)))

    def test_truncate_every_offset_crc(self):
        p = gen("crc.ckpt")
        self.truncations(p, range(os.path.getsize(p)))

    def test_truncate_every_offset_map(self):
        p = gen("map.ckpt")
        self.truncations(p, range(os.path.getsize(p)))

    def test_truncate_spread_lenet(self):
        p = fixture("serving_lenet_ascend_v111_int32_scalars.ckpt")
        n = os.path.getsize(p)
        rng = random.Random(1)
        offs = [n * i // 150 for i in range(150)]
        offs += [rng.randrange(n) for _ in range(30)]
        offs += [n - k for k in range(1, 21)]
        self.truncations(p, offs)

    def test_truncate_spread_sciai_adam(self):
        p = fixture("sciai_example_net_10000_adam.ckpt")
        n = os.path.getsize(p)
        self.truncations(p, range(0, n, 7))


class TestFlippedBytes(CorruptBase):
    def flips(self, path, count, seed):
        data = read(path)
        base = os.path.basename(path)
        rng = random.Random("%s-%d" % (base, seed))
        positions = list(range(len(data))) if count >= len(data) else \
            [rng.randrange(len(data)) for _ in range(count)]
        nvalid = 0
        for pos in positions:
            b = bytearray(data)
            new = rng.randrange(255)
            b[pos] = new if new < data[pos] else new + 1   # a different byte
            nvalid += self.check(bytes(b), "%s@%d:%02x->%02x" % (
                base, pos, data[pos], b[pos]))
        self.report("byte flip in " + base, len(positions))
        return nvalid

    def test_flip_every_byte_linearnet_64B(self):
        self.flips(fixture("nsu2022_LinearNet_1_step_64B.ckpt"), 64, 1)

    def test_flip_golden_router(self):
        self.flips(fixture("mindformers_golden_router.ckpt"), 150, 2)

    def test_flip_sciai_adam(self):
        self.flips(fixture("sciai_example_net_10000_adam.ckpt"), 150, 3)

    def test_flip_sequential_mlp(self):
        self.flips(fixture("mindformers_golden_sequential_mlp.ckpt"), 80, 4)

    def test_flip_map(self):
        self.flips(gen("map.ckpt"), 150, 5)

    def test_flip_strings(self):
        self.flips(gen("strings.ckpt"), 100, 6)

    def test_flip_packed_dims(self):
        self.flips(gen("packed_dims.ckpt"), 100, 7)

    def test_flip_scalars(self):
        self.flips(gen("scalars_empty_dims.ckpt"), 80, 8)
        self.flips(gen("scalars_zero_dims.ckpt"), 80, 9)

    def test_flip_crc(self):
        self.flips(gen("crc.ckpt"), 60, 10)

    def test_flip_bf16(self):
        self.flips(gen("bf16_fp32_form.ckpt"), 80, 11)


class TestOracle(unittest.TestCase):
    """The reference itself (no binaries involved)."""

    def test_reference_agrees_with_expectations(self):
        """Sanity check of the oracle itself (no binaries involved)."""
        wrong = []
        for name, data, valid in HAND_CASES:
            try:
                ckref.loads(data)
                got = True
            except ValueError:
                got = False
            if got != valid:
                wrong.append(name)
        self.assertEqual(wrong, [], "ckref disagrees with the case table")

    def test_reference_on_fixtures(self):
        for p in common.real_files() + common.generated_files():
            ckref.load(p)
        for p in common.neg_files():
            self.assertRaises(ValueError, ckref.load, p)


class TestHandMade(CorruptBase):

    def test_hand_made_cases(self):
        for name, data, _ in HAND_CASES:
            self.check(data, name)
        self.report("hand-made", len(HAND_CASES))

    def test_lying_lengths_in_real_file(self):
        """Length prefixes of a real file made to lie in both directions."""
        data = read(fixture("mindformers_golden_sequential_mlp.ckpt"))
        # first record: 0a <varint len> ...
        cases = []
        # outer length of the first record +-1, +1000, and of the last one
        first_len, sz = _read_varint(data, 1)
        for delta in (1, -1, 1000, -first_len):
            cases.append(("first_outer%+d" % delta,
                          data[:1] + varint(first_len + delta) +
                          data[1 + sz:]))
        # content length of the first record: find the tensor_content key
        # as the last 0x1a whose varint reaches exactly the record end
        end = 1 + sz + first_len
        for i in range(1 + sz, end):
            if data[i] == 0x1A:
                ln, s2 = _read_varint(data, i + 1)
                if i + 1 + s2 + ln == end:
                    for delta in (1, -1, 4):
                        cases.append(("content%+d" % delta,
                                      data[:i + 1] + varint(ln + delta) +
                                      data[i + 1 + s2:]))
                    break
        for name, d in cases:
            self.check(d, "sequential_mlp:" + name)
        self.report("lying length", len(cases))


def _read_varint(b, pos):
    v = shift = 0
    start = pos
    while True:
        c = b[pos]
        v |= (c & 0x7F) << shift
        pos += 1
        shift += 7
        if not c & 0x80:
            return v, pos - start


class TestCorruptMount(CorruptBase):
    """A handful of the hand-made cases through ckptfs."""

    def setUp(self):
        super().setUp()
        common.require_bin(self, common.CKPTFS_BIN)

    def test_mount_cases(self):
        table = {n: (d, v) for n, d, v in HAND_CASES}
        for name in MOUNT_CASES:
            data, valid = table[name]
            with self.subTest(name):
                path = os.path.join(self.tmp, name + ".ckpt")
                with open(path, "wb") as f:
                    f.write(data)
                res, m = M.try_mount(self, path)
                mnt = res.mnt
                common.assert_not_signal(self, res, "ckptfs")
                if not valid:
                    self.assertNotEqual(res.rc, 0, "ckptfs mounted an "
                                        "invalid file\n" + res.describe())
                    self.assertIn(os.path.basename(path), res.errtext,
                                  "stderr does not name the file\n" +
                                  res.describe())
                    self.assertFalse(M.is_mounted(mnt))
                    continue
                self.assertEqual(res.rc, 0, res.describe())
                self.assertTrue(M.is_mounted(mnt))
                params = ckref.loads(data)
                self.assertEqual(sorted(os.listdir(mnt)),
                                 sorted(escape_name(p.name) for p in params))
                for shown, t in common.tensors_of(params):
                    with open(os.path.join(mnt, shown), "rb") as f:
                        self.assertEqual(f.read(), t.data, shown)
                m.unmount()

    def test_mount_truncated_real(self):
        data = read(fixture("serving_lenet_ascend_v111_int32_scalars.ckpt"))
        path = os.path.join(self.tmp, "lenet_truncated.ckpt")
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        res, m = M.try_mount(self, path)
        mnt = res.mnt
        common.assert_not_signal(self, res, "ckptfs")
        self.assertNotEqual(res.rc, 0, res.describe())
        self.assertIn("lenet_truncated.ckpt", res.errtext, res.describe())
        self.assertFalse(M.is_mounted(mnt))

    def test_mount_missing_file(self):
        res, m = M.try_mount(self, os.path.join(self.tmp, "nope.ckpt"))
        mnt = res.mnt
        common.assert_not_signal(self, res, "ckptfs")
        self.assertNotEqual(res.rc, 0)
        self.assertIn("nope.ckpt", res.errtext, res.describe())
        self.assertFalse(M.is_mounted(mnt))


def setUpModule():
    common.snapshot_inputs()


def tearDownModule():
    BATCH.close()
    common.check_inputs()


if __name__ == "__main__":
    unittest.main()
