#!/bin/bash
# no_fuse.sh IN OUT: MindSpore's "modify and re-save" tutorial without a
# mount, for a machine without /dev/fuse (most containers, CI runners):
# the ckpt editing commands.  Deletes conv1.weight, makes conv2.weight a
# Float32 scalar 0, adds conv2.bias = 1, and halves fc3.weight with numpy
# (out as a .npy file, back in), all in one commit of one edit list; then
# shows what changed with ckpt diff.
#   ./examples/no_fuse.sh examples/lenet.ckpt /tmp/lenet-modified.ckpt
. "$(dirname "$0")/common.sh"
in=$(realpath "${1:?usage: no_fuse.sh IN OUT}")
out=$(realpath -m "${2:?usage: no_fuse.sh IN OUT}")
data=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-example-data.XXXXXX")
trap 'rm -rf "$data"; cleanup' EXIT
cd "$data" # the edit list names its .npy files relative to here
run cp "$in" "$out"
run "$CKPT" get --npy "$out" fc3.weight >fc3.weight.npy
run "$PY" -c 'import numpy as np; a = np.load("fc3.weight.npy"); np.save("fc3.weight.npy", a * np.float32(0.5))'
run "$PY" -c 'import numpy as np; np.save("zero.npy", np.float32(0)); np.save("one.npy", np.float32(1))'
cat >edits <<'LIST'
# one operation a line; all of them are one commit, or none is
rm conv1.weight
put conv2.weight zero.npy npy
put conv2.bias one.npy npy
put fc3.weight fc3.weight.npy npy
LIST
run cat edits
run "$CKPT" edit "$out" <edits
run "$CKPT" ls -l "$out"
# exit 1: the two differ (0 would mean the same, 2 trouble)
run "$CKPT" diff "$in" "$out" || [ $? -eq 1 ]
