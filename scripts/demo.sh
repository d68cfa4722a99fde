#!/bin/bash
# Installs dependencies, builds, and mounts the bundled example checkpoint
# (examples/lenet.ckpt) to show what ckptfs does.  Unmounts at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" build
mnt=$(mktemp -d /tmp/ckptfs-demo.XXXXXX)
trap 'fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null; rmdir "$mnt"' EXIT
run() { printf '\n$ %s\n' "$*"; "$@"; }
run "$top/build/ckptfs" "$top/examples/lenet.ckpt" "$mnt"
run ls -l "$mnt"
run getfattr -d "$mnt/conv1.weight" "$mnt/learning_rate" "$mnt/global_step"
run od -A d -t f4 -N 24 "$mnt/conv1.weight"
run od -A d -t d8 "$mnt/epoch_num"
run "$top/build/ckpt" info "$top/examples/lenet.ckpt"
