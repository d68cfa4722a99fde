#!/bin/bash
# Builds the libFuzzer harnesses with clang (into build-fuzz/) and runs each
# for SECONDS (default 60), seeded from the real and generated checkpoints.
# A crash leaves its input in build-fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# Long runs: scripts/fuzz.sh 3600 fuzz_scan
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(fuzz_scan fuzz_crypt fuzz_parsers)
command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq clang; }
CC=clang "$top/scripts/build.sh" build-fuzz -DCKPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
out=$top/build-fuzz
mkdir -p "$out/artifacts"
fixtures=${CKPT_FIXTURES:-$top/tests/fixtures/real}
for h in "${harnesses[@]}"; do
  corpus=$out/corpus/$h
  mkdir -p "$corpus"
  seeds=()
  case $h in
    fuzz_scan) seeds=("$fixtures" "$top/examples") ;;
    fuzz_crypt) seeds=("$top/tests/fuzz/seeds/crypt") ;;
    fuzz_parsers) seeds=("$top/tests/fuzz/seeds/parsers") ;;
  esac
  echo "== $h: ${secs}s =="
  "$out/tests/fuzz/$h" -max_total_time="$secs" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$h-" \
      -print_final_stats=1 "$corpus" "${seeds[@]}" 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|INFO: seed|==[0-9]+==ERROR|SUMMARY)" || true
  if compgen -G "$out/artifacts/$h-*" >/dev/null; then
    echo "$h: crash inputs in $out/artifacts"; exit 1
  fi
done
