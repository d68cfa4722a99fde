#!/bin/bash
# inspect.sh CKPT: what MindSpore's load_checkpoint + print does, without
# MindSpore: the names, dtypes and shapes, and the values of one parameter.
#   ./examples/inspect.sh examples/lenet.ckpt
. "$(dirname "$0")/common.sh"
ckpt=${1:?usage: inspect.sh CKPT}
run "$CKPT" ls -l "$ckpt"
run "$CKPTFS" -o ro "$ckpt" "$mnt"
run getfattr -n user.dtype -n user.shape "$mnt/fc3.bias"
# numpy reads a parameter file as it is: dtype and shape from the xattrs
run "$PY" - "$mnt/fc3.bias" <<'PYEOF'
import os, sys, numpy as np
path = sys.argv[1]
dtype = os.getxattr(path, "user.dtype").decode()
shape = eval(os.getxattr(path, "user.shape").decode())  # "[10]" -> [10]
np_type = {"Float32": "<f4", "Float16": "<f2", "Int32": "<i4", "Int64": "<i8"}[dtype]
print(np.fromfile(path, dtype=np_type).reshape(shape))
PYEOF
run fusermount3 -u "$mnt"
