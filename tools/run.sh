#!/usr/bin/env bash
# tools/run.sh — THE main job (README): install what is missing, build Release, run the pipeline.
# Today the pipeline is chapter 1 (the autograd engine on a 2-layer MLP) plus a short training demo.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
build/bin/seekgrad pipeline "$@"
