#!/usr/bin/env bash
# The GPU checks of one device session, in one command: the GPU benchmarks (report overhead on
# ResNet-50 and ViT-B/16, its set-up part by part, host cost per level-1 call, sinusoidal_ against
# xavier_uniform_, a profile) and the CUDA tests. Runs with the machine's own python3 and packages; writes its log
# and the full test output to $OUT (default ./out). MEMORY="10 30" adds the peak-memory runs.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
  date +%T; echo "== bench_report (GPU)"
  timeout 150 $PY benchmarks/bench_report.py --device cuda --cases resnet50 vit_b_16 --gpu-cases --repeats 5 \
    --batches 10 --memory-batches ${MEMORY:-} --extra eager modules --json "$OUT/bench.json"
  date +%T; echo "== set-up part by part (GPU)"
  timeout 90 $PY benchmarks/bench_report_setup.py resnet50 vit_b_16 --device cuda --repeats 5
  date +%T; echo "== bench_launch"
  timeout 40 $PY benchmarks/bench_launch.py
  date +%T; echo "== CUDA tests"
  timeout 90 $PY -m pytest -q -p no:cacheprovider -rs tests/test_triton.py tests/test_analyzer_estimators.py \
    tests/test_init_apply.py tests/test_weights.py tests/test_state.py -k cuda > "$OUT/pytest.txt" 2>&1
  tail -4 "$OUT/pytest.txt"
  date +%T; echo "== bench_init (CUDA)"
  timeout 40 $PY benchmarks/bench_init.py --device cuda --repeats 7
  date +%T; echo "== bench_report, 50 batches (GPU)"
  timeout 60 $PY benchmarks/bench_report.py --device cuda --cases resnet50 --gpu-cases --repeats 3 --batches 50 \
    --memory-batches
  date +%T; echo "== profile (ResNet-50)"
  timeout 45 $PY benchmarks/profile_report.py --case resnet50 --device cuda --batches 3 --rows 16
  date +%T
} 2>&1 | tee "$OUT/log.txt"
