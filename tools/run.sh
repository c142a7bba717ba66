#!/usr/bin/env bash
# tools/run.sh — THE main job (README): install what is missing, build Release, run the pipeline.
# Today the pipeline is DATA_PREP + PRETRAIN of configs/tiny.yaml (train/pretrain.h) on the Trainer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release >/dev/null
cmake --build build -j "$jobs"
build/bin/seekgrad pipeline "$@"
