#!/bin/bash
# inference_only.sh IN OUT: keep only the network for inference: drop the
# optimizer's state (moments.*, learning_rate, momentum), on a mount; the
# same in one command without mounting is
#   ckpt convert --exclude 'moments.*' --exclude learning_rate \
#       --exclude momentum IN OUT
. "$(dirname "$0")/common.sh"
in=${1:?usage: inference_only.sh IN OUT}
out=${2:?usage: inference_only.sh IN OUT}
run cp "$in" "$out"
run "$CKPTFS" "$out" "$mnt"
run rm -f "$mnt"/moments.* "$mnt/learning_rate" "$mnt/momentum"
run "$CKPT" umount "$mnt"
run "$CKPT" ls -l "$out"
