#!/bin/bash
# Installs the Debian 12 packages ckptfs needs to build, run and test.
# Run as root (or with sudo). Safe to run again.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libfuse3-dev fuse3 libprotobuf-c-dev protobuf-c-compiler libssl-dev
      libcmocka-dev libjansson-dev
      protobuf-compiler python3-protobuf python3-numpy python3-cryptography
      attr clang clang-format valgrind openssl util-linux
      vim rsync   # the editor and tool tests (test_scratch) run them for real
      dpkg-dev groff-base man-db)  # the .deb (scripts/package.sh), man pages
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
