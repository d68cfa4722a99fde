#!/bin/bash
# Checks that every C source and header is formatted as .clang-format says
# (kernel style), and shows what differs; exit 1 if anything does.
#   scripts/check-format.sh         check (scripts/test.sh runs this first)
#   scripts/check-format.sh --fix   reformat the files in place
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null ||
                     find src tests -name '*.[ch]')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" 2>/dev/null; then
    bad+=("$f")
  fi
done
if ((${#bad[@]})); then
  echo "not formatted as .clang-format says (run scripts/check-format.sh --fix):"
  for f in "${bad[@]}"; do
    diff -u "$f" <(clang-format "$f") | head -20 || true
  done
  exit 1
fi
echo "format: ${#files[@]} files as .clang-format says"
