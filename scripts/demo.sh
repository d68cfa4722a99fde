#!/bin/bash
# Installs dependencies, builds, and shows the main job of ckptfs on the
# bundled example checkpoint (examples/lenet.ckpt, made by
# examples/make_lenet.py), edited as a copy: examples/surgery.sh mounts
# it, edits one tensor, deletes one, adds one with numpy, renames one,
# retypes one, commits with 'ckpt umount', lists the result and shows what
# changed with 'ckpt diff'.  Unmounts at the end whatever happens.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" build
out=$(mktemp -d /tmp/ckptfs-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT
CKPTFS=$top/build/ckptfs CKPT=$top/build/ckpt \
	"$top/examples/surgery.sh" "$top/examples/lenet.ckpt" "$out/lenet.ckpt"
