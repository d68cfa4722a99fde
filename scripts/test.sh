#!/bin/bash
#   scripts/test.sh          the test command (README.md): about 7 minutes
#                            on a 2-core development machine (the CI
#                            machine is slower)
#   scripts/test.sh --long   the same with the long counts (docs/testing.md):
#                            100,000 random operations, 200 crash trials,
#                            20 minutes per fuzzer (an hour in all), every
#                            allocation-failure point (plain build), 2-minute
#                            stress runs
#
# Installs dependencies, checks the C formatting (scripts/check-format.sh),
# that no tracked file outside docs/ and *.md refers to the shared/ folder
# next to the repository, checks the
# fixtures against tests/fixtures/MANIFEST.md (tests/fixtures/check.sh),
# builds ckptfs twice (plain, and with ASan+UBSan),
# runs the libFuzzer harnesses for a minute, at the same time
# (CKPT_FUZZ_SECONDS), and runs the
# whole test suite (unit and integration) against both builds, two suites
# at a time (tests/CMakeLists.txt says which run alone).
# Needs root and /dev/fuse: the integration tests mount for real.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
long=0
case ${1:-} in
  "") ;;
  --long)
    # the suites read CKPT_LONG through tests/integration/common.py count()
    # (every allocation-failure point: in the plain pass, below)
    export CKPT_LONG=1
    long=1
    : "${CKPT_FUZZ_SECONDS:=1200}" ;;
  *) echo "usage: scripts/test.sh [--long]" >&2; exit 2 ;;
esac
"$top/scripts/install-deps.sh"
echo "== format (.clang-format, kernel style) =="
"$top/scripts/check-format.sh"
echo "== self-contained: nothing refers to the shared/ folder outside the repository; fixtures as in their MANIFEST.md =="
# Everything the build and the tests read is in the repository (the format
# specifications in shared/docs next to it may be named in docs/ and *.md;
# the pattern is written so that this file does not match itself).
if git -C "$top" grep -n '\.\./shared' -- ':!docs/' ':!*.md'; then
  echo "the tracked files above refer to the shared/ folder outside the repository" >&2
  exit 1
fi
"$top/tests/fixtures/check.sh"
"$top/scripts/build.sh" build -DCMAKE_BUILD_TYPE=RelWithDebInfo
"$top/scripts/build.sh" build-asan -DCMAKE_BUILD_TYPE=Debug -DCKPT_SANITIZE=ON

echo "== fuzzing, ${CKPT_FUZZ_SECONDS:=60}s per harness =="
"$top/scripts/fuzz.sh" "$CKPT_FUZZ_SECONDS"

echo "== tests, plain build =="
CKPT_NOMEM_FULL=${CKPT_NOMEM_FULL:-$long} ctest --test-dir "$top/build" --output-on-failure -j2
echo "== tests, ASan+UBSan build (the cases over 100 MiB skipped) =="
# A daemonized ckptfs has no stderr: sanitizer reports go to log files,
# and any such file fails the run.
logs="$top/build-asan/sanitizer-logs"
rm -rf "$logs" && mkdir -p "$logs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$logs/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan
rc=0
# (valgrind cannot run sanitizer binaries: test_valgrind uses the plain build)
# Suites choose smaller counts under CKPT_SANITIZED (docs/testing.md).
CKPT_BIG=0 CKPT_NO_VALGRIND=1 CKPT_SANITIZED=1 \
  ctest --test-dir "$top/build-asan" --output-on-failure -j2 || rc=$?
if compgen -G "$logs/*" >/dev/null; then
  echo "sanitizer reports found:"; cat "$logs"/*; rc=1
fi
exit $rc
