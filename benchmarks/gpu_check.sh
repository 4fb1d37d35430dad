#!/usr/bin/env bash
# The GPU checks of one device session, in one command: the CUDA tests, then the GPU benchmarks
# (report overhead on ResNet-50 and ViT-B/16, sinusoidal_ against xavier_uniform_, a profile).
# Runs with the machine's own python3 and packages; writes its log to $OUT (default ./out).
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
  date +%T; echo "== bench_report (GPU)"
  timeout 200 $PY benchmarks/bench_report.py --cases --gpu-cases resnet50 vit_b_16 --repeats 5 --batches 10 \
    --memory-batches --extra eager modules --json "$OUT/bench.json"
  date +%T; echo "== bench_init (CUDA)"
  timeout 60 $PY benchmarks/bench_init.py --device cuda --repeats 7
  date +%T; echo "== CUDA tests"
  timeout 200 $PY -m pytest -q -p no:cacheprovider tests/test_triton.py tests/test_analyzer_estimators.py \
    tests/test_init_apply.py -k cuda 2>&1 | tail -40
  date +%T; echo "== profile (ResNet-50)"
  timeout 90 $PY benchmarks/profile_report.py --case resnet50 --device cuda --batches 3 --rows 14
  date +%T
} 2>&1 | tee "$OUT/log.txt"
