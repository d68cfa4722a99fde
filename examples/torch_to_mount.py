#!/usr/bin/python3
"""torch_to_mount.py PTH NAME_MAP.json DIR: writes every tensor of the
PyTorch state dict PTH that NAME_MAP.json names into DIR (a ckptfs mount)
under its MindSpore name: the raw bytes, then user.dtype and user.shape.
Tensors the map leaves out (num_batches_tracked) are skipped, with a note.
Needs Debian's python3-torch."""

import json
import os
import sys

import torch

DTYPES = {torch.float32: "Float32", torch.float16: "Float16",
          torch.bfloat16: "BFloat16", torch.float64: "Float64",
          torch.int64: "Int64", torch.int32: "Int32", torch.int16: "Int16",
          torch.int8: "Int8", torch.uint8: "UInt8", torch.bool: "Bool"}


def raw_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same 2 bytes
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def main(argv):
    state = torch.load(argv[1], map_location="cpu")
    with open(argv[2]) as f:
        name_map = json.load(f)
    for name, t in state.items():
        if name not in name_map:
            print("skipped %s: no MindSpore name in %s" % (name, argv[2]),
                  file=sys.stderr)
            continue
        path = os.path.join(argv[3], name_map[name])
        with open(path, "wb") as f:
            f.write(raw_bytes(t))
        os.setxattr(path, "user.dtype", DTYPES[t.dtype].encode())
        shape = "[" + ",".join(str(d) for d in t.shape) + "]"
        os.setxattr(path, "user.shape", shape.encode())
        print("%s -> %s %s %s" % (name, name_map[name], DTYPES[t.dtype],
                                  shape))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
