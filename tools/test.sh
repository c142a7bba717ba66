#!/usr/bin/env bash
# tools/test.sh — THE test command (README, .ci/run): install what is missing, build Release,
# run every test with CTest. Ends with CTest's summary line.
#   tools/test.sh --sanitize   instead: the `sanitize` preset (ASan + UBSan, -O1 -g with asserts, no CUDA) in
#                              build-asan, building only what the unit suite runs and running it (ctest -L unit:
#                              every folder's unit tests, the CLI and bad-input tests, the fuzz targets over their
#                              seeds and regression inputs). The first sanitizer report fails the test it is in
#                              (halt_on_error). Not run there: the chapters, `slow`, `gradcheck` and `gpu` labels.
#                              Prints the build and the test time.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "--sanitize" ]; then
  start=$(date +%s)
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake --preset sanitize "${launcher[@]}" >/dev/null
  # The executables the unit tests run (from CTest's own list; test_tools brings bin/seekgrad and gdb_target).
  targets=$(cd build-asan && ctest -N -L unit --show-only=json-v1 | grep -o '/bin/[A-Za-z0-9_]*"' |
              sed 's|^/bin/||; s|"$||' | sort -u)
  # shellcheck disable=SC2086
  cmake --build build-asan -j "$jobs" --target $targets
  built=$(date +%s)
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
  status=0
  (cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 1800 -L unit) || status=$?
  echo "tools/test.sh --sanitize: build $(( built - start )) s, tests $(( $(date +%s) - built )) s, ctest exit status $status"
  exit $status
fi
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
cd build && ctest --output-on-failure -j "$jobs" --timeout 600
