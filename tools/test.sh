#!/usr/bin/env bash
# tools/test.sh — THE test command (README, .ci/run): install what is missing, build Release,
# run every test with CTest. Ends with CTest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
cd build && ctest --output-on-failure -j "$jobs" --timeout 600
