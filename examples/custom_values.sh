#!/bin/bash
# custom_values.sh OUT: save custom values (epoch_size, learning_rate) as a
# new checkpoint, as save_checkpoint([{"name": ..., "data": ...}]) does.
#   ./examples/custom_values.sh /tmp/custom.ckpt
. "$(dirname "$0")/common.sh"
out=${1:?usage: custom_values.sh OUT}
run "$CKPTFS" -o create "$out" "$mnt"
run "$PY" -c 'import numpy as np, sys; np.int64(10).tofile(sys.argv[1])' "$mnt/epoch_size"
run setfattr -n user.dtype -v Int64 "$mnt/epoch_size"
run setfattr -n user.shape -v '[]' "$mnt/epoch_size"
run "$PY" -c 'import numpy as np, sys; np.float32(0.01).tofile(sys.argv[1])' "$mnt/learning_rate"
run setfattr -n user.dtype -v Float32 "$mnt/learning_rate"
run setfattr -n user.shape -v '[]' "$mnt/learning_rate"
run "$CKPT" umount "$mnt"
run "$CKPT" ls -l "$out"
