#!/usr/bin/python3
"""ckpt ls --json and ckpt info --json against the reference readers.

  every fixture    tests/fixtures/real, the generated .ckpt files (maps,
                   slices, bf16 stored as float32, str, scalars, a CRC),
                   tests/fixtures/safetensors and the generated
                   safetensors files (metadata, Int4 markers, a CRC):
                   names, dtypes, shapes, byte counts and slices as
                   tests/ref/ckref.py (protobuf runtime) and stref.py read
                   them; the bytes at each extent's offsets, read straight
                   from the file, are the reference's tensor bytes
  info             counts, data bytes, dtypes, records (protobuf), header
                   size, crc state and value (trailer / metadata read
                   here), the whole __metadata__ object (json module)
  encrypted        AES-GCM (cryptref): extents null, the rest as plain;
                   info: mode and block count
  names            not UTF-8, NUL, '%', '/': name, stored_name,
                   stored_name_base64 as docs/json.md says; ASCII output
  options          --include/--exclude, --ignore-crc on a damaged CRC;
                   a bad file: exit 1, the error on stderr, nothing on
                   stdout; --json for other commands: exit 2
  schema           the fields of every object are those docs/json.md
                   lists

The ckpt calls go through one ckpt_batch process (batch.py); a few also
through the binary, which must agree.  About 2 s.

Run:  /usr/bin/python3 -m unittest -v test_json   (in tests/integration)
"""

import base64
import collections
import fnmatch
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402
import cryptref  # noqa: E402
import stref  # noqa: E402
import gen_safetensors as G  # noqa: E402
from batch import Batch  # noqa: E402
from wire import raw_record as record  # noqa: E402

ST_FIXTURES = os.path.join(common.REPO, "tests", "fixtures", "safetensors")
DOC = os.path.join(common.REPO, "docs", "json.md")
BATCH = Batch()
KEY = bytes(range(32))


def ckpt(*args):
    """`ckpt ARGS`, through the batch driver when it is built."""
    return BATCH.ckpt(*args) if BATCH.available() else M.ckpt(*args)


def tearDownModule():
    BATCH.close()


# --------------------------------------------------------------------------
# what the documents must say, computed here

def json_name(shown):
    """The JSON "name" of a name ls shows as the bytes shown: every byte
    outside a valid UTF-8 sequence as %XX."""
    s = shown.decode("utf-8", "surrogateescape")
    return "".join("%%%02X" % (ord(c) - 0xDC00)
                   if 0xDC80 <= ord(c) <= 0xDCFF else c for c in s)


def pct_decode(s):
    """The bytes of a "name" with every %XX decoded (docs/json.md)."""
    if s == "%":
        return b""
    return re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m[1], 16)]),
                  s.encode("utf-8"))


def stored_fields(raw):
    """(stored_name, stored_name_base64) of the stored name raw."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(raw).decode("ascii")


def extent_bytes(path, extents):
    out = bytearray()
    with open(path, "rb") as f:
        for e in extents:
            f.seek(e["offset"])
            out += f.read(e["length"])
    return bytes(out)


def doc_fields():
    """{heading: [field, ...]} of the tables in docs/json.md."""
    out, head = {}, None
    with open(DOC) as f:
        for line in f:
            m = re.match(r"#+ (.*)", line)
            if m:
                head = m[1].strip()
            m = re.match(r"\| `([a-z0-9_]+)` \|", line)
            if m:
                out.setdefault(head, []).append(m[1])
    return out


FIELDS = doc_fields()


def ckpt_files():
    return common.real_files() + common.generated_files()


def st_files(tmp):
    """The safetensors fixtures and the generated valid files."""
    G.write_all(tmp, many_n=0)
    files = glob.glob(os.path.join(ST_FIXTURES, "*.safetensors")) + \
        glob.glob(os.path.join(ST_FIXTURES, "*", "*.safetensors")) + \
        glob.glob(os.path.join(tmp, "*.safetensors"))
    return sorted(p for p in files
                  if not os.path.basename(p).startswith("NEG_"))


def ckpt_body(path):
    """The protobuf stream of a plain .ckpt and its crc trailer value (or
    None), read here."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) >= 17 and buf[-17:-10] == b"crc_num":
        return buf[:-17], int.from_bytes(buf[-10:], "big")
    return buf, None


def duplicate_names(values):
    """Names that reappear after other records (ckref's rule)."""
    seen, last, dup = set(), None, set()
    for v in values:
        if v.tag != last and v.tag in seen:
            dup.add(v.tag)
        seen.add(v.tag)
        last = v.tag
    return len(dup)


class Json(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ckptfs-json-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_json(self, *args, binary=False):
        res = M.ckpt(*args) if binary else ckpt(*args)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertTrue(res.out.isascii(), "output is not ASCII")
        return json.loads(res.out)

    def ls(self, path, *opts, binary=False):
        return self.run_json("ls", "--json", *opts, path, binary=binary)

    def info(self, path, *opts, binary=False):
        return self.run_json("info", "--json", *opts, path, binary=binary)

    def ls_lines(self, path, *opts):
        res = ckpt("ls", *opts, path)
        self.assertEqual(res.rc, 0, res.describe())
        return res.out.split(b"\n")[:-1]

    # ---- the checks of one document ----------------------------------

    def check_keys(self, obj, heading):
        self.assertEqual(list(obj), FIELDS[heading],
                         "fields of %s (docs/json.md)" % heading)

    def check_tensor(self, path, j, shown, dtype, stored_dtype, shape, data,
                     plain=True):
        """A tensor entry j against the reference: shown name (bytes as
        ls prints it), dtypes, shape, the shown bytes data."""
        self.assertEqual(j["name"], json_name(shown))
        self.assertEqual(j["dtype"], dtype)
        self.assertEqual(j["stored_dtype"], stored_dtype)
        self.assertEqual(j["shape"], [int(d) for d in shape])
        self.assertEqual(j["bytes"], len(data))
        if j["layout"] == "raw":
            self.assertEqual(j["stored_bytes"], len(data))
        else:
            self.assertEqual(j["layout"], "bfloat16_in_float32")
            self.assertEqual(j["dtype"], "BFloat16")
            self.assertEqual(j["stored_bytes"], 2 * len(data))
        if not plain:
            self.assertIsNone(j["extents"])
            return
        for e in j["extents"]:
            self.check_keys(e, "An extent")
            self.assertGreater(e["length"], 0)
            self.assertLessEqual(e["offset"] + e["length"],
                                 os.path.getsize(path))
        self.assertEqual(sum(e["length"] for e in j["extents"]),
                         j["stored_bytes"])
        got = extent_bytes(path, j["extents"])
        if j["layout"] == "bfloat16_in_float32":
            got = np.frombuffer(got, "<u2")[1::2].tobytes()
        self.assertEqual(got, data, "bytes at the extents of %s" %
                         j["name"])

    def check_ckpt_ls(self, path, doc, params, plain=True):
        """The ls document of a .ckpt against ckref's params."""
        self.check_keys(doc, "The listing")
        self.assertEqual((doc["schema"], doc["format"], doc["encrypted"]),
                         (1, "ckpt", not plain))
        self.assertEqual(len(doc["parameters"]), len(params))
        for j, p in zip(doc["parameters"], params):
            self.check_keys(j, "A parameter")
            raw = p.name.encode("utf-8", "surrogateescape")
            shown = ckref.escape_name(p.name).encode("utf-8",
                                                     "surrogateescape")
            self.assertEqual(pct_decode(j["name"]), raw)
            self.assertEqual((j["stored_name"], j["stored_name_base64"]),
                             stored_fields(raw))
            self.assertEqual(j["slices"], p.nslices)
            if p.kind == "tensor":
                self.assertEqual((j["kind"], j["map"]), ("tensor", None))
                self.check_tensor(path, j, shown, p.dtype, p.type_str,
                                  p.shape, p.data, plain)
                continue
            self.assertEqual(j["kind"], "map")
            for k in ("dtype", "stored_dtype", "shape", "stored_bytes",
                      "layout", "extents"):
                self.assertIsNone(j[k], k)
            self.assertEqual(j["bytes"], p.nbytes)
            self.assertEqual(list(j["map"]), list(ckref.MAP_NAMES))
            for m in p.map:
                t = j["map"][m.name]
                self.check_keys(t, "`map`")
                # MindSpore's spelling of the stored (often numpy) name
                self.assertEqual(np.dtype(ckref.NUMPY_DTYPE[t["dtype"]]),
                                 np.dtype(m.dtype.lower()))
                self.check_tensor(path, t, shown + b"/" + m.name.encode(),
                                  t["dtype"], m.dtype, m.shape, m.data,
                                  plain)

    def check_ckpt_info(self, path, doc, params):
        self.check_keys(doc, "The summary")
        body, crc = ckpt_body(path)
        msg = ckref.pb.Checkpoint()
        msg.ParseFromString(body)
        tensors = [p for p in params if p.kind == "tensor"]
        want = {"schema": 1, "file": path, "format": "ckpt",
                "size": os.path.getsize(path), "header_bytes": None,
                "records": len(msg.value), "selection": False,
                "parameters": len(params), "all_parameters": len(params),
                "maps": len(params) - len(tensors),
                "sliced": sum(p.nslices > 1 for p in params),
                "data_bytes": sum(p.nbytes for p in params),
                "dtypes": dict(collections.Counter(p.dtype
                                                   for p in tensors)),
                "encryption": {"mode": "none", "blocks": 0,
                               "legacy": False},
                "crc": {"state": "absent" if crc is None else "verified",
                        "value": crc},
                "duplicate_names": duplicate_names(msg.value),
                "metadata": None}
        got = {k: v for k, v in doc.items() if k != "unknown_fields"}
        self.assertEqual(got, want)
        self.assertEqual(doc["unknown_fields"] > 0,
                         "v05_model_type" in path)

    # ---- every fixture ---------------------------------------------------

    def test_ckpt_files(self):
        for path in ckpt_files():
            with self.subTest(common.test_id(path)):
                params = common.ref(path)
                doc = self.ls(path)
                self.check_ckpt_ls(path, doc, params)
                self.assertEqual(shown_lines(doc),
                                 self.ls_lines(path))
                self.check_ckpt_info(path, self.info(path), params)

    def test_special_ckpt_files(self):
        """The generated files exercise what they are named for."""
        gen = {os.path.basename(p): p for p in common.generated_files()}
        doc = self.ls(gen["bf16_fp32_form.ckpt"])
        self.assertEqual([p["name"] for p in doc["parameters"]
                          if p["layout"] == "bfloat16_in_float32"],
                         ["w.bf16_as_fp32", "s.bf16_as_fp32"])
        doc = self.ls(gen["sliced_small.ckpt"])
        self.assertTrue(any(len(p["extents"]) > 1
                            for p in doc["parameters"]))
        doc = self.ls(gen["map.ckpt"])
        self.assertEqual(sum(p["kind"] == "map" for p in doc["parameters"]),
                         3)
        self.assertEqual(self.info(gen["crc.ckpt"])["crc"]["state"],
                         "verified")

    def test_safetensors_files(self):
        for path in st_files(self.tmp):
            with self.subTest(os.path.basename(path)):
                st = stref.read(path)
                try:
                    self.check_st(path, st)
                finally:
                    st.close()

    def check_st(self, path, st):
        doc = self.ls(path)
        self.check_keys(doc, "The listing")
        self.assertEqual((doc["schema"], doc["format"], doc["encrypted"]),
                         (1, "safetensors", False))
        self.assertEqual(shown_lines(doc), self.ls_lines(path))
        got = {j["stored_name"]: j for j in doc["parameters"]}
        self.assertEqual(sorted(got), sorted(st.names()))
        meta = st.metadata or {}
        for t in st.tensors:
            j = got[t.name]
            self.check_keys(j, "A parameter")
            self.assertEqual((j["kind"], j["slices"], j["map"],
                              j["stored_name_base64"]),
                             ("tensor", 1, None, None))
            self.check_tensor(path, j, ckref.escape_name(t.name).encode(),
                              stref.shown_dtype(t.dtype, t.name, meta),
                              t.dtype, t.shape, t.data)
            self.assertLessEqual(len(j["extents"]), 1)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        crc = header.get("__metadata__") or {}
        crc = crc.get("crc_num")
        doc = self.info(path)
        self.check_keys(doc, "The summary")
        want = {"schema": 1, "file": path, "format": "safetensors",
                "size": os.path.getsize(path), "header_bytes": n,
                "records": None, "selection": False,
                "parameters": len(st.tensors),
                "all_parameters": len(st.tensors), "maps": 0, "sliced": 0,
                "data_bytes": sum(t.nbytes for t in st.tensors),
                "dtypes": dict(collections.Counter(
                    stref.shown_dtype(t.dtype, t.name, meta)
                    for t in st.tensors)),
                "encryption": {"mode": "none", "blocks": 0,
                               "legacy": False},
                "crc": {"state": "absent" if crc is None else "verified",
                        "value": None if crc is None else int(crc)},
                "unknown_fields": 0, "duplicate_names": 0,
                "metadata": header.get("__metadata__")}
        self.assertEqual(doc, want)

    # ---- encrypted, names, options ----------------------------------------

    def test_encrypted(self):
        src = os.path.join(common.GEN_DIR, "map.ckpt")
        common.ensure_generated()
        params = common.ref(src)
        enc = os.path.join(self.tmp, "map_gcm.ckpt")
        keyfile = os.path.join(self.tmp, "key")
        with open(src, "rb") as f:
            data = cryptref.encrypt(f.read(), KEY, "AES-GCM", block=300)
        with open(enc, "wb") as f:
            f.write(data)
        with open(keyfile, "wb") as f:
            f.write(KEY)
        opts = ("--enc-mode", "AES-GCM", "--keyfile", keyfile)
        self.check_ckpt_ls(enc, self.ls(enc, *opts), params, plain=False)
        doc = self.info(enc, *opts, binary=True)
        self.assertEqual(doc["encryption"],
                         {"mode": "AES-GCM", "legacy": False,
                          "blocks": len(cryptref.parse_blocks(data))})
        self.assertGreater(doc["encryption"]["blocks"], 1)
        self.assertEqual((doc["size"], doc["parameters"]),
                         (len(data), len(params)))

    def test_names_not_utf8(self):
        names = [b"ok", b"\xff\xfe.w", b"mixed\xc3\x28\xe6\x9d\x83",
                 b"nul\x00in", b"a/b%c", b"%", b"",
                 "权重\x1b[31m".encode()]
        body = b"".join(record(n, "Int8", (i + 1,), bytes(range(i + 1)))
                        for i, n in enumerate(names))
        # a map named with '/' and '%' (framed by ckref: UTF-8 names only)
        body += ckref.dumps([{"name": "emb/x%", "kind": "map", "map": [
            ckref.Param("keys", "int64", (2,), bytes(16)),
            ckref.Param("values", "float32", (2, 1), bytes(8)),
            ckref.Param("status", "int32", (2,), bytes(8))]}])
        path = os.path.join(self.tmp, "names.ckpt")
        with open(path, "wb") as f:
            f.write(body)
        res = M.ckpt("ls", "--json", path)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertTrue(res.out.isascii())
        doc = json.loads(res.out)   # strict: valid JSON, valid strings
        self.check_ckpt_ls(path, doc, ckref.load(path))
        got = [(p["name"], p["stored_name"], p["stored_name_base64"])
               for p in doc["parameters"]]
        self.assertEqual(got, [
            ("ok", "ok", None),
            ("%FF%FE.w", None, "//4udw=="),
            ("mixed%C3(\u6743", None, "bWl4ZWTDKOadgw=="),
            ("nul%00in", "nul\x00in", None),
            ("a%2Fb%25c", "a/b%c", None),
            ("%25", "%", None),
            ("%", "", None),
            ("\u6743\u91cd%1B[31m", "\u6743\u91cd\x1b[31m", None),
            ("emb%2Fx%25", "emb/x%", None)])
        self.assertEqual([t["name"] for t in doc["parameters"][-1]["map"]
                          .values()],
                         ["emb%2Fx%25/keys", "emb%2Fx%25/values",
                          "emb%2Fx%25/status"])

    def test_include_exclude(self):
        path = os.path.join(common.FIXTURES,
                            "ict2021_checkpoint_lenet-1_1875.ckpt")
        params = common.ref(path)
        for inc, exc in ((["conv*"], []), (["*"], ["*.bias", "moments.*"]),
                         ([], ["*"]), (["fc*", "conv1*"], ["*weight"])):
            opts = [a for g in inc for a in ("--include", g)] + \
                   [a for g in exc for a in ("--exclude", g)]
            with self.subTest(opts=opts):
                keep = [p for p in params
                        if (not inc or any(fnmatch.fnmatchcase(p.name, g)
                                           for g in inc)) and
                        not any(fnmatch.fnmatchcase(p.name, g)
                                for g in exc)]
                doc = self.ls(path, *opts)
                self.assertEqual([j["name"] for j in doc["parameters"]],
                                 [p.name for p in keep])
                self.check_ckpt_ls(path, doc, keep)
                info = self.info(path, *opts)
                self.assertEqual(
                    (info["selection"], info["parameters"],
                     info["all_parameters"], info["data_bytes"]),
                    (True, len(keep), len(params),
                     sum(p.nbytes for p in keep)))
                self.assertEqual(sum(info["dtypes"].values()), len(keep))

    def test_ignored_crc(self):
        src = os.path.join(common.GEN_DIR, "crc.ckpt")
        common.ensure_generated()
        bad = os.path.join(self.tmp, "crc_damaged.ckpt")
        with open(src, "rb") as f:
            data = bytearray(f.read())
        body, crc = ckpt_body(src)
        doc = self.ls(src)
        off = doc["parameters"][0]["extents"][0]["offset"]
        data[off] ^= 0xFF
        with open(bad, "wb") as f:
            f.write(data)
        for cmd in ("ls", "info"):
            res = ckpt(cmd, "--json", bad)
            self.assertEqual((res.rc, res.out), (1, b""), res.describe())
            self.assertIn(b"CRC", res.err)
        doc = self.info(bad, "--ignore-crc")
        self.assertEqual(doc["crc"], {"state": "ignored", "value": crc})
        self.assertEqual(self.info(src, "--ignore-crc")["crc"]["state"],
                         "ignored")

    def test_bad_files(self):
        files = common.neg_files() + glob.glob(
            os.path.join(ST_FIXTURES, "NEG_*")) + \
            [os.path.join(self.tmp, "missing.ckpt")]
        for path in files:
            for cmd in ("ls", "info"):
                with self.subTest(os.path.basename(path), cmd=cmd):
                    res = M.ckpt(cmd, "--json", path)
                    self.assertEqual(res.rc, 1, res.describe())
                    self.assertEqual(res.out, b"")
                    self.assertTrue(res.err.startswith(b"ckpt: "),
                                    res.describe())

    def test_usage(self):
        for args in (("cat", "--json", "f", "n"), ("verify", "--json", "f"),
                     ("convert", "--json", "a", "b"),
                     ("ls", "--json", "a", "b")):
            with self.subTest(args=args):
                res = M.ckpt(*args)
                self.assertEqual(res.rc, 2, res.describe())
                self.assertEqual(res.out, b"")

    def test_binary_agrees(self):
        """The batch driver answers as the binary does."""
        if not BATCH.available():
            self.skipTest("ckpt_batch not built")
        common.ensure_generated()
        for path in (os.path.join(common.GEN_DIR, "map.ckpt"),
                     os.path.join(ST_FIXTURES,
                                  "fluxml_model_with_metadata.safetensors")):
            for cmd in ("ls", "info"):
                BATCH.compare_with_binary(self, cmd, "--json", path)


def ckpt_shown(j):
    """The bytes ls prints for entry j: its name with the %XX of bytes
    0x80-0xFF decoded (docs/json.md)."""
    return re.sub(rb"%([89A-F][0-9A-F])", lambda m: bytes([int(m[1], 16)]),
                  j["name"].encode("utf-8"))


def shown_lines(doc):
    """The lines `ckpt ls` prints for the entries of an ls document."""
    out = []
    for j in doc["parameters"]:
        if j["kind"] == "map":
            out += [ckpt_shown(j["map"][k]) for k in ckref.MAP_NAMES]
        else:
            out.append(ckpt_shown(j))
    return out


if __name__ == "__main__":
    unittest.main()
