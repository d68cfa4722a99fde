#!/bin/bash
# bench/ab_convert.sh - `ckpt convert` of one checkpoint (a commit that
# copies every record) with several builds, alternating, with the source in
# the page cache and cold, against dd with and without O_DIRECT.  Needs
# root (drop_caches).  docs/performance.md, section 6, "Direct output".
#
#   bench/ab_convert.sh FILE.ckpt REPS CKPT_BINARY...
#
# Prints "STATE ROUND WHAT SECONDS"; the output goes to FILE.ckpt.out.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,8p "$0"; exit 2; }
src=$1 reps=$2; shift 2
out=$src.out
trap 'rm -f "$out"' EXIT
t() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2
      awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }'; }
for state in warm cold; do
  for rep in $(seq "$reps"); do
    for b in "$@" dd_direct dd_buffered; do
      sync
      if [ $state = cold ]; then echo 3 > /proc/sys/vm/drop_caches
      else cat "$src" > /dev/null; fi
      case $b in
        dd_direct) x=$(t dd if="$src" of="$out" bs=16M oflag=direct conv=fsync);;
        dd_buffered) x=$(t dd if="$src" of="$out" bs=1M conv=fsync);;
        *) x=$(t "$b" convert -q "$src" "$out")
           cmp -s "$src" "$out" || echo "$b: the output differs" >&2;;
      esac
      rm -f "$out"
      echo "$state $rep $b $x"
    done
  done
done
