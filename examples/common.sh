# examples/common.sh - sourced by the example scripts: finds ckptfs and ckpt
# (CKPTFS and CKPT in the environment, else the build tree, else PATH),
# makes a mountpoint, and unmounts it again on exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")
if [ -z "${CKPTFS:-}" ]; then
	if [ -x "$top/build/ckptfs" ]; then CKPTFS=$top/build/ckptfs; else CKPTFS=ckptfs; fi
fi
if [ -z "${CKPT:-}" ]; then
	if [ -x "$top/build/ckpt" ]; then CKPT=$top/build/ckpt; else CKPT=ckpt; fi
fi
PY=/usr/bin/python3 # has numpy (Debian's python3-numpy)
mnt=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-example.XXXXXX")
cleanup() {
	if mountpoint -q "$mnt"; then fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"; fi
	rmdir "$mnt"
}
trap cleanup EXIT
# Shows a command (on stderr, so that pipes carry only its output), then
# runs it.
run() {
	printf '$ %s\n' "$*" >&2
	"$@"
}
