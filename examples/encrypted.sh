#!/bin/bash
# encrypted.sh IN OUT: an encrypted round trip.  IN is encrypted with a
# fresh AES-GCM key (as save_checkpoint(..., enc_key=KEY,
# enc_mode="AES-GCM") does), mounted with the key, one weight is edited in
# place, and the result is decrypted again into OUT.  The key is read from
# a file (never from the command line).
#   ./examples/encrypted.sh examples/lenet.ckpt /tmp/lenet-plain.ckpt
. "$(dirname "$0")/common.sh"
in=${1:?usage: encrypted.sh IN OUT}
out=${2:?usage: encrypted.sh IN OUT}
work=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-enc.XXXXXX")
trap 'cleanup; rm -rf "$work"' EXIT
head -c 16 /dev/urandom >"$work/key" # a 16-byte AES-128 key, raw bytes
run "$CKPT" convert --out-enc-mode AES-GCM --out-keyfile "$work/key" "$in" "$work/enc.ckpt"
run "$CKPTFS" -o enc_mode=AES-GCM,keyfile="$work/key" "$work/enc.ckpt" "$mnt"
# fc3.bias[0] = 0.5, in place (4 bytes at offset 0)
run "$PY" -c 'import numpy as np, sys; m = np.memmap(sys.argv[1], "<f4", "r+"); m[0] = 0.5; m.flush()' "$mnt/fc3.bias"
run "$CKPT" umount "$mnt"
run "$CKPT" verify --enc-mode AES-GCM --keyfile "$work/key" "$work/enc.ckpt"
run "$CKPT" convert --enc-mode AES-GCM --keyfile "$work/key" --decrypt "$work/enc.ckpt" "$out"
run "$CKPT" cat "$out" fc3.bias | od -A d -t f4 -N 8
