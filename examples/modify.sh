#!/bin/bash
# modify.sh IN OUT: MindSpore's "modify and re-save" tutorial on a mount:
# delete conv1.weight, make conv2.weight a new parameter with value 0,
# set conv2.bias to 1 (a new parameter), and save the result as OUT.
#   ./examples/modify.sh examples/lenet.ckpt /tmp/lenet-modified.ckpt
. "$(dirname "$0")/common.sh"
in=${1:?usage: modify.sh IN OUT}
out=${2:?usage: modify.sh IN OUT}
run cp "$in" "$out"
run "$CKPTFS" "$out" "$mnt"
run rm "$mnt/conv1.weight"
# a Float32 scalar 0 replaces conv2.weight (setfattr: dtype and shape)
run "$PY" -c 'import numpy as np, sys; np.float32(0).tofile(sys.argv[1])' "$mnt/conv2.weight"
run setfattr -n user.shape -v '[]' "$mnt/conv2.weight"
run "$PY" -c 'import numpy as np, sys; np.float32(1).tofile(sys.argv[1])' "$mnt/conv2.bias"
run setfattr -n user.dtype -v Float32 "$mnt/conv2.bias"
run setfattr -n user.shape -v '[]' "$mnt/conv2.bias"
run "$CKPT" umount "$mnt" # commits: OUT is complete when this returns
run "$CKPT" ls -l "$out"
