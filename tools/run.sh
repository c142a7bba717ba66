#!/usr/bin/env bash
# tools/run.sh — THE main job (README): install what is missing, build Release, run the pipeline.
# The pipeline (tools/cli/pipeline.h): DATA_PREP -> PRETRAIN -> SFT -> GRPO -> EXPORT of configs/tiny.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
build/bin/seekgrad pipeline "$@"
