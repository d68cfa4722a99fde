#!/bin/bash
# Installs dependencies, builds, and shows the main job of ckptfs on the
# bundled example checkpoint (examples/lenet.ckpt, copied first): mount
# it, browse it, edit one tensor in place, delete one, add one with numpy,
# rename one, retype one with setfattr, commit with 'ckpt umount', and
# show what changed with 'ckpt diff' against the original.  Unmounts at
# the end whatever happens.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" build
ckptfs=$top/build/ckptfs
ckpt=$top/build/ckpt
work=$(mktemp -d /tmp/ckptfs-demo.XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
trap 'fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
run() { printf '\n$ %s\n' "$*"; "$@"; }
cp "$top/examples/lenet.ckpt" "$work/lenet.ckpt"
cd "$work"
run "$ckptfs" lenet.ckpt mnt
run ls -l mnt
run getfattr -d mnt/conv1.weight mnt/learning_rate mnt/global_step
run od -A d -t f4 -N 24 mnt/conv1.weight
# edit one tensor in place: fc3.bias[2] = 1.5, through numpy's memmap
run /usr/bin/python3 -c 'import numpy as np; b = np.memmap("mnt/fc3.bias", "<f4", "r+"); b[2] = 1.5; b.flush()'
# delete one
run rm mnt/momentum
# add one with numpy: a new Float32 [10] tensor, dtype and shape set by xattr
run /usr/bin/python3 -c 'import numpy as np; np.linspace(0, 1, 10, dtype="<f4").tofile("mnt/fc3.scale")'
run setfattr -n user.dtype -v Float32 mnt/fc3.scale
run setfattr -n user.shape -v '[10]' mnt/fc3.scale
# rename one
run mv mnt/epoch_num mnt/epoch
# retype one: global_step's 4 bytes as UInt32
run setfattr -n user.dtype -v UInt32 mnt/global_step
# commit: 'ckpt umount' returns once the new checkpoint is durable
run "$ckpt" umount mnt
run "$ckpt" ls -l lenet.ckpt
# what changed against the original (exit status 1: they differ)
run "$ckpt" diff "$top/examples/lenet.ckpt" lenet.ckpt || [ $? -eq 1 ]
