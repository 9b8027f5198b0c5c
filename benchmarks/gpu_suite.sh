#!/usr/bin/env bash
# The GPU table of issue 14 in one go (< 8 minutes on an H100/H200): sets the environment and runs
# benchmarks/gpu_suite.py, which writes gpu_suite.md into $OUT (the device tool's folder), else into
# the folder given as the first argument, else benchmarks/out.  Extra arguments go to gpu_suite.py.
# Needs python3 with torch (CUDA) and transformers; nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/out}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then     # a first argument that is not a flag: the folder
  [ -z "${OUT:-}" ] && out="$1"
  shift
fi
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export UER_TEST_COMPILE=1     # tests/unit/test_compile_switch.py's parity test, if run after the suite
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1 | tee "$out/nvidia_smi.txt" || true
# The suite's own budget is 420 s; the outer limit stops a hung compile, keeping the rows written so far.
timeout 470 python3 benchmarks/gpu_suite.py --out "$out" "$@" 2>&1 | tee "$out/gpu_suite.log"
