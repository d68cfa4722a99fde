#!/bin/bash
# Builds the libFuzzer harnesses with clang (into build-fuzz/) and runs each
# for SECONDS (default 60), all at once, seeded from the real and generated
# checkpoints.
# A crash leaves its input in build-fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# Long runs: scripts/fuzz.sh 3600 fuzz_scan
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(fuzz_scan fuzz_crypt fuzz_parsers fuzz_safetensors)
command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq clang; }
CC=clang "$top/scripts/build.sh" build-fuzz -DCKPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
out=$top/build-fuzz
mkdir -p "$out/artifacts"
fixtures=${CKPT_FIXTURES:-$top/tests/fixtures/real}
# The harnesses run at the same time; each one's summary is printed when
# all are done.  The first (fuzz_scan: the scanner reads untrusted files)
# keeps its priority, the others run at nice 10: on 2 cores the scanner
# gets about a core of its own and the others share the second.
fuzz_one() {
  local h=$1 corpus=$out/corpus/$1 seeds=() nice=$2
  mkdir -p "$corpus"
  case $h in
    fuzz_scan) seeds=("$fixtures" "$top/examples") ;;
    fuzz_crypt) seeds=("$top/tests/fuzz/seeds/crypt") ;;
    fuzz_parsers) seeds=("$top/tests/fuzz/seeds/parsers") ;;
    fuzz_safetensors) seeds=("$top/tests/fuzz/seeds/safetensors") ;;
  esac
  nice -n "$nice" "$out/tests/fuzz/$h" -max_total_time="$secs" \
      -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$h-" \
      -print_final_stats=1 "$corpus" "${seeds[@]}" >"$out/$h.log" 2>&1
}
echo "== ${harnesses[*]}: ${secs}s each, at the same time =="
pids=()
for i in "${!harnesses[@]}"; do
  fuzz_one "${harnesses[$i]}" $((i ? 10 : 0)) &
  pids+=($!)
done
rc=0
for i in "${!harnesses[@]}"; do
  h=${harnesses[$i]} status=0
  wait "${pids[$i]}" || status=$?
  echo "== $h =="
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|INFO: seed|==[0-9]+==ERROR|SUMMARY)" "$out/$h.log" || true
  if ((status)) || compgen -G "$out/artifacts/$h-*" >/dev/null; then
    echo "$h: failed (exit $status); crash inputs are in $out/artifacts, the log is $out/$h.log"
    rc=1
  fi
done
exit $rc
