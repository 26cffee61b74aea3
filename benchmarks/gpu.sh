#!/usr/bin/env bash
# The GPU figures of issue 15 in one prepared run (under 8 minutes on one GPU), written to OUT/figures.{json,md}.
#
#   bash benchmarks/gpu.sh outputs/gpu-figures                 # on a GPU machine, from the repository root
#   bash benchmarks/gpu.sh /tmp/gpu-smoke --smoke              # CPU check of the script: tiny sizes, 2 steps
#   WHISPER=real:whisper-tiny.en bash benchmarks/gpu.sh OUT    # another Whisper (large-v3 needs its weights cached)
#
# Needs the project installed (scripts/setup.sh); no download: the UNets are random weights built from the
# SD-1.5 config. Extra arguments go to benchmarks/gpu_figures.py (--sections, --batch-sizes, --no-compile ...).
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [--smoke] [gpu_figures.py options]}
shift
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
EXTRA=()
[[ -n "${WHISPER:-}" ]] && EXTRA+=(--whisper "$WHISPER")
[[ -n "${CLIP:-}" ]] && EXTRA+=(--clip "$CLIP")
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/gpu.txt"
timeout "${TIMEOUT:-470}" "$PYTHON" benchmarks/gpu_figures.py --out "$OUT" "${EXTRA[@]}" "$@" 2>&1 | tee "$OUT/log.txt"
