#!/usr/bin/python3
"""make_lenet.py [OUT]   (default: examples/lenet.ckpt next to this script)

Writes a small, deterministic LeNet-5 checkpoint the way MindSpore >= 2.3
save_checkpoint / ModelCheckpoint would: network parameters, Momentum
optimizer state (learning_rate, momentum, moments.*), global_step, then the
epoch_num / step_num append entries.  Uses the reference writer in
tests/ref/ckref.py (python3-protobuf + python3-numpy only).
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "ref"))
import ckref  # noqa: E402

NETWORK = [
    ("conv1.weight", (6, 1, 5, 5)),
    ("conv2.weight", (16, 6, 5, 5)),
    ("fc1.weight", (120, 400)),
    ("fc1.bias", (120,)),
    ("fc2.weight", (84, 120)),
    ("fc2.bias", (84,)),
    ("fc3.weight", (10, 84)),
    ("fc3.bias", (10,)),
]


def lenet_params(seed=1):
    rng = np.random.default_rng(seed)
    params = []
    weights = {}
    for name, shape in NETWORK:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        if name.endswith(".bias"):
            w = rng.uniform(-0.05, 0.05, shape)
        else:
            w = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        weights[name] = w.astype("<f4")
        params.append({"name": name, "dtype": "Float32", "shape": shape,
                       "data": weights[name].tobytes()})

    def f32(x):
        return np.float32(x).tobytes()

    params.append({"name": "learning_rate", "dtype": "Float32", "shape": (),
                   "data": f32(0.01)})
    params.append({"name": "momentum", "dtype": "Float32", "shape": (),
                   "data": f32(0.9)})
    for name, shape in NETWORK:
        m = (rng.normal(0.0, 1e-3, shape)).astype("<f4")
        params.append({"name": "moments." + name, "dtype": "Float32",
                       "shape": shape, "data": m.tobytes()})
    params.append({"name": "global_step", "dtype": "Int32", "shape": (1,),
                   "data": np.array([1875], dtype="<i4").tobytes()})
    params.append({"name": "epoch_num", "dtype": "Int64", "shape": (),
                   "data": np.int64(1).tobytes()})
    params.append({"name": "step_num", "dtype": "Int64", "shape": (),
                   "data": np.int64(1875).tobytes()})
    return params


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(HERE, "lenet.ckpt")
    params = lenet_params()
    tmp = out + ".tmp"
    ckref.write(tmp, params)
    os.replace(tmp, out)
    check = ckref.load(out)
    assert [p.name for p in check] == [p["name"] for p in params]
    print("%s: %d parameters, %d bytes" % (out, len(check),
                                           os.path.getsize(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
