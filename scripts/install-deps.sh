#!/bin/bash
# Installs the Debian 12 packages ckptfs needs to build, run and test.
# Run as root (or with sudo). Safe to run again.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libfuse3-dev fuse3 libprotobuf-c-dev protobuf-c-compiler libssl-dev
      libcmocka-dev libjansson-dev
      libisal-dev   # CRC-32 (crc32_gzip_refl); -DCKPT_ISAL=OFF builds without
      zlib1g-dev    # the unit tests check the CRC-32 against zlib's crc32
      protobuf-compiler python3-protobuf python3-numpy python3-cryptography
      attr clang clang-format valgrind openssl util-linux
      xfsprogs e2fsprogs   # test_reflink: an XFS image; filefrag
      vim rsync   # the editor and tool tests (test_scratch) run them for real
      dpkg-dev groff-base man-db)  # the .deb (scripts/package.sh), man pages
# the PyTorch example (examples/from_pytorch.sh, test_examples) writes a
# real .pth; torch's recommends (Qt, ...) are not needed
lean=(python3-torch)
# Installs those of the packages after "--" that are missing, with the
# apt-get options before it.
install_missing() {
  local opts=() missing=() p
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${opts[@]}" "${missing[@]}"
}
install_missing -- "${pkgs[@]}"
install_missing --no-install-recommends -- "${lean[@]}"
