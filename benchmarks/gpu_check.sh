#!/usr/bin/env bash
# One prepared GPU check: smoke test of every stage on CUDA, fitting frames/s
# (small and paper scale, batch 1-256), training steps/s at paper scale, peak memory and
# a NaN hunt over 256 HMC fits. Under 8 minutes on one H100/H200; prints everything.
#   bash benchmarks/gpu_check.sh            # on a machine with a GPU, after `pip install -e .`
#   bash benchmarks/gpu_check.sh --device cpu --tiny   # dry run of every stage on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec timeout 470 python benchmarks/gpu_check.py "$@"
