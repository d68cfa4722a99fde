#!/bin/bash
# from_pytorch.sh PTH NAME_MAP.json OUT: converts a PyTorch state dict (a
# real .pth written by torch.save; make_torch_model.py makes one) into a
# MindSpore checkpoint: a new checkpoint is mounted with -o create, every
# tensor is written into it under the MindSpore name the map gives
# (torch_name_map.json: BatchNorm's weight/bias/running_* become
# gamma/beta/moving_*), and 'ckpt umount' commits it.  Needs Debian's
# python3-torch.
#   ./examples/make_torch_model.py /tmp/net.pth
#   ./examples/from_pytorch.sh /tmp/net.pth examples/torch_name_map.json /tmp/net.ckpt
. "$(dirname "$0")/common.sh"
pth=${1:?usage: from_pytorch.sh PTH NAME_MAP.json OUT}
map=${2:?usage: from_pytorch.sh PTH NAME_MAP.json OUT}
out=${3:?usage: from_pytorch.sh PTH NAME_MAP.json OUT}
run "$CKPTFS" -o create "$out" "$mnt"
run "$PY" "$here/torch_to_mount.py" "$pth" "$map" "$mnt"
run "$CKPT" umount "$mnt"
run "$CKPT" ls -l "$out"
