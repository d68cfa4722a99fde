#!/usr/bin/python3
"""Every script in examples/ runs, and does what it says: the checkpoints
they write are read back with the independent reader (tests/ref/ckref.py,
the official protobuf runtime) and compared with examples/lenet.ckpt.

  inspect.sh         lists, mounts read-only, prints fc3.bias with numpy
  modify.sh          conv1.weight gone, conv2.weight = 0, conv2.bias = 1
  no_fuse.sh         the same and fc3.weight halved with numpy, without a
                     mount (ckpt get --npy, ckpt edit), then ckpt diff
  custom_values.sh   a new checkpoint of epoch_size and learning_rate
  inference_only.sh  the network without the optimizer's state
  encrypted.sh       AES-GCM round trip with an edit in between
  from_pytorch.sh    a real .pth (torch.save) into a MindSpore checkpoint
                     with a name map (skipped without python3-torch)
  surgery.sh         the README's demo: edit, delete, add, rename, retype,
                     commit, list, and 'ckpt diff' against the original
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
except ImportError:  # Debian's python3-torch (scripts/install-deps.sh)
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import mounting as M  # noqa: E402
import ckref  # noqa: E402

EXAMPLES = os.path.join(common.REPO, "examples")
NETWORK = ["conv1.weight", "conv2.weight", "fc1.weight", "fc1.bias",
           "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]


class Examples(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptfs-examples-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.orig = ckref.load_dict(common.EXAMPLE)

    def script(self, name, *args):
        """Runs examples/NAME ARGS with this build's binaries; its stdout."""
        env = dict(os.environ, CKPTFS=common.CKPTFS_BIN, CKPT=common.CKPT_BIN,
                   TMPDIR=self.tmp)
        res = subprocess.run([os.path.join(EXAMPLES, name)] + list(args),
                             env=env, capture_output=True, text=True,
                             timeout=common.TIMEOUT)
        self.assertEqual(res.returncode, 0, "%s failed:\n%s\n%s" % (
            name, res.stdout, res.stderr))
        # (other suites may be mounting elsewhere at the same time)
        left = [e["mnt"] for e in M.mountinfo()
                if e["mnt"].startswith(self.tmp + os.sep)]
        self.assertEqual(left, [], "%s left a mount behind" % name)
        return res.stdout

    def out(self, name):
        return os.path.join(self.tmp, name)

    def value(self, p):
        return np.frombuffer(p.data, dtype="<f4")

    def test_inspect(self):
        text = self.script("inspect.sh", common.EXAMPLE)
        for name in NETWORK:
            self.assertIn(name, text)
        first = "%.8f" % self.value(self.orig["fc3.bias"])[0]
        self.assertIn(first[:7], text)  # numpy's print of the values

    def test_modify(self):
        out = self.out("modified.ckpt")
        self.script("modify.sh", common.EXAMPLE, out)
        got = ckref.load_dict(out)
        self.assertNotIn("conv1.weight", got)
        for name, value in (("conv2.weight", 0.0), ("conv2.bias", 1.0)):
            self.assertEqual((got[name].dtype, got[name].shape),
                             ("Float32", ()), name)
            self.assertEqual(self.value(got[name]).tolist(), [value], name)
        for name, p in self.orig.items():
            if name not in ("conv1.weight", "conv2.weight"):
                self.assertEqual(got[name].data, p.data, name)
        self.assertEqual(list(got)[-1], "conv2.bias")  # new ones go last

    def test_no_fuse(self):
        out = self.out("modified.ckpt")
        text = self.script("no_fuse.sh", common.EXAMPLE, out)
        got = ckref.load_dict(out)
        self.assertNotIn("conv1.weight", got)
        for name, value in (("conv2.weight", 0.0), ("conv2.bias", 1.0)):
            self.assertEqual((got[name].dtype, got[name].shape),
                             ("Float32", ()), name)
            self.assertEqual(self.value(got[name]).tolist(), [value], name)
        half = self.value(self.orig["fc3.weight"]) * np.float32(0.5)
        self.assertEqual(got["fc3.weight"].data, half.tobytes())
        self.assertEqual((got["fc3.weight"].dtype, got["fc3.weight"].shape),
                         ("Float32", (10, 84)))
        for name, p in self.orig.items():
            if name not in ("conv1.weight", "conv2.weight", "fc3.weight"):
                self.assertEqual(got[name].data, p.data, name)
        self.assertEqual(list(got)[-1], "conv2.bias")
        self.assertIn("only in A: conv1.weight", text)
        self.assertIn("values: fc3.weight: 840 of 840 elements differ", text)

    def test_custom_values(self):
        out = self.out("custom.ckpt")
        self.script("custom_values.sh", out)
        got = ckref.load(out)
        self.assertEqual([(p.name, p.dtype, p.shape) for p in got],
                         [("epoch_size", "Int64", ()),
                          ("learning_rate", "Float32", ())])
        self.assertEqual(np.frombuffer(got[0].data, "<i8").tolist(), [10])
        self.assertEqual(self.value(got[1]).tolist(),
                         [float(np.float32(0.01))])

    def test_inference_only(self):
        out = self.out("net.ckpt")
        self.script("inference_only.sh", common.EXAMPLE, out)
        got = ckref.load(out)
        keep = [n for n in self.orig
                if not n.startswith("moments.") and
                n not in ("learning_rate", "momentum")]
        self.assertEqual([p.name for p in got], keep)
        for p in got:
            self.assertEqual(p.data, self.orig[p.name].data, p.name)

    def test_encrypted(self):
        out = self.out("plain.ckpt")
        text = self.script("encrypted.sh", common.EXAMPLE, out)
        got = ckref.load_dict(out)
        self.assertEqual(list(got), list(self.orig))
        want = self.value(self.orig["fc3.bias"]).copy()
        want[0] = 0.5
        self.assertEqual(self.value(got["fc3.bias"]).tolist(), want.tolist())
        for name, p in self.orig.items():
            if name != "fc3.bias":
                self.assertEqual(got[name].data, p.data, name)
        self.assertIn("0.5", text)

    def test_surgery(self):
        out = self.out("edited.ckpt")
        text = self.script("surgery.sh", common.EXAMPLE, out)
        got = ckref.load_dict(out)
        want = [n for n in self.orig if n != "momentum"]
        want[want.index("epoch_num")] = "epoch"
        self.assertEqual(list(got), want + ["fc3.scale"])
        bias = self.value(self.orig["fc3.bias"]).copy()
        bias[2] = 1.5
        self.assertEqual(self.value(got["fc3.bias"]).tolist(), bias.tolist())
        scale = got["fc3.scale"]
        self.assertEqual((scale.dtype, scale.shape), ("Float32", (10,)))
        self.assertEqual(self.value(scale).tolist(),
                         np.linspace(0, 1, 10, dtype="<f4").tolist())
        self.assertEqual(got["epoch"].data, self.orig["epoch_num"].data)
        step = got["global_step"]
        self.assertEqual((step.dtype, step.data),
                         ("UInt32", self.orig["global_step"].data))
        listed = [line.split()[-1] for line in text.splitlines()
                  if line.startswith(("Float32", "Int", "UInt"))]
        self.assertEqual(listed, list(got))  # the listing at the end
        for line in ("only in A: momentum", "only in A: epoch_num",
                     "only in B: epoch", "only in B: fc3.scale",
                     "dtype: global_step: Int32 -> UInt32",
                     "values: fc3.bias: 1 of 10 elements differ"):
            self.assertIn(line, text)  # what ckpt diff says

    @unittest.skipIf(torch is None, "python3-torch is not installed")
    def test_from_pytorch(self):
        pth, out = self.out("net.pth"), self.out("net.ckpt")
        subprocess.run([os.path.join(EXAMPLES, "make_torch_model.py"), pth],
                       check=True, timeout=common.TIMEOUT)
        name_map = os.path.join(EXAMPLES, "torch_name_map.json")
        self.script("from_pytorch.sh", pth, name_map, out)
        with open(name_map) as f:
            names = json.load(f)
        state = torch.load(pth)
        got = ckref.load(out)
        self.assertEqual([p.name for p in got], list(names.values()))
        for p in got:
            want = [t for n, t in state.items() if names.get(n) == p.name]
            self.assertEqual(len(want), 1, p.name)
            t = want[0]
            self.assertEqual((p.dtype, p.shape),
                             ("Float32", tuple(t.shape)), p.name)
            self.assertEqual(p.data, t.numpy().tobytes(), p.name)


if __name__ == "__main__":
    unittest.main()
