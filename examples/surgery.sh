#!/bin/bash
# surgery.sh IN OUT: the main job of ckptfs, end to end, on a copy OUT of
# IN (a LeNet-5 such as examples/lenet.ckpt): mount it, browse it, edit one
# tensor in place, delete one, add one with numpy, rename one, retype one
# with setfattr, commit with 'ckpt umount', list the result and show what
# changed with 'ckpt diff' against IN.
#   ./examples/surgery.sh examples/lenet.ckpt /tmp/lenet-edited.ckpt
. "$(dirname "$0")/common.sh"
in=${1:?usage: surgery.sh IN OUT}
out=${2:?usage: surgery.sh IN OUT}
run cp "$in" "$out"
run "$CKPTFS" "$out" "$mnt"
run ls -l "$mnt"
run getfattr -d "$mnt/conv1.weight" "$mnt/learning_rate" "$mnt/global_step"
run od -A d -t f4 -N 24 "$mnt/conv1.weight"
# edit one tensor in place: fc3.bias[2] = 1.5, through numpy's memmap
run "$PY" -c 'import numpy as np, sys; b = np.memmap(sys.argv[1], "<f4", "r+"); b[2] = 1.5; b.flush()' "$mnt/fc3.bias"
# delete one
run rm "$mnt/momentum"
# add one with numpy: a new Float32 [10] tensor; dtype and shape by xattr
run "$PY" -c 'import numpy as np, sys; np.linspace(0, 1, 10, dtype="<f4").tofile(sys.argv[1])' "$mnt/fc3.scale"
run setfattr -n user.dtype -v Float32 "$mnt/fc3.scale"
run setfattr -n user.shape -v '[10]' "$mnt/fc3.scale"
# rename one
run mv "$mnt/epoch_num" "$mnt/epoch"
# retype one: the 4 bytes of global_step as UInt32
run setfattr -n user.dtype -v UInt32 "$mnt/global_step"
# commit: 'ckpt umount' returns once the new checkpoint is durable
run "$CKPT" umount "$mnt"
run "$CKPT" ls -l "$out"
# what changed (exit status 1: they differ)
status=0
run "$CKPT" diff "$in" "$out" || status=$?
[ "$status" -eq 1 ]
