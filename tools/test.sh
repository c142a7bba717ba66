#!/usr/bin/env bash
# tools/test.sh — THE test command (README, .ci/run): install what is missing, build Release,
# run every test with CTest. Ends with CTest's summary line.
#   tools/test.sh --sanitize   the `sanitize` preset instead (Debug, ASan+UBSan, no CUDA) in build-asan,
#                              running the unit suite (the bad-input and fuzz regression tests are in it:
#                              label unit) and stopping at the first sanitizer report (halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "--sanitize" ]; then
  start=$(date +%s)
  cmake --preset sanitize >/dev/null
  cmake --build build-asan -j "$jobs"
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
  status=0
  (cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 1800 -L unit) || status=$?
  echo "tools/test.sh --sanitize: $(( $(date +%s) - start )) s, ctest exit status $status"
  exit $status
fi
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
cd build && ctest --output-on-failure -j "$jobs" --timeout 600
