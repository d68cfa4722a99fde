#!/bin/bash
# Configures and builds ckptfs into build/ (or $1), passing any further
# arguments to cmake.  Example: scripts/build.sh build-asan -DCKPT_SANITIZE=ON
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
cmake -S "$top" -B "$top/$dir" "$@" >/dev/null
cmake --build "$top/$dir" -j "$(nproc)"
