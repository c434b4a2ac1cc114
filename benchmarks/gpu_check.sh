#!/usr/bin/env bash
# The GPU checks of issue #14 item 5, as one short script for a lent GPU machine (nothing can be
# installed there from a registry: the project's dependencies that machine's image lacks travel as
# wheels in .whl/ and go into its Python, so the tests' subprocesses find them too). Figures and
# logs go to $OUT (default ./gpu-out):
#
#   bash benchmarks/gpu_check.sh [IMAGES] [BATCH] [ROUNDS]
#
# 1. inference_bench.py on CUDA: a RetinaNet-50 detector (640x480 images at their own size) and a
#    ResNet-18 classifier, fp32 then fp16, pipeline against model-only, GPU utilisation sampled;
#    then predict's steps timed apart (tensors, forward, outputs; the device synchronized after
#    each) over PHASES batches (default 8), with torch.profiler's table per model and precision
#    in $OUT/profile-*.txt; with SWITCH_INTERVAL=S, the detector again with that GIL switch
#    interval (Python's is 0.005);
# 2. the inference and model tests on that machine (CUDA present: the fp16 test runs, not skipped).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
IMAGES=${1:-1024}
BATCH=${2:-16}
ROUNDS=${3:-2}
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc;
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"; } \
    2>&1 | tee "$OUT/machine.txt"
bench=(python3 benchmarks/inference_bench.py --device cuda --images "$IMAGES" --batch-size "$BATCH"
       --image-size 640x480 --rounds "$ROUNDS")
timeout ${BENCH_TIMEOUT:-200} "${bench[@]}" --model retinanet50,resnet18 --json "$OUT/inference.json" \
    --phases "${PHASES:-8}" --phases-table "$OUT" 2>&1 \
    | tee "$OUT/inference.log"
if [ -n "${SWITCH_INTERVAL:-}" ]; then  # the detector again with another GIL switch interval
    timeout 70 "${bench[@]}" --model retinanet50 --switch-interval "$SWITCH_INTERVAL" \
        --json "$OUT/inference-switch.json" 2>&1 | tee "$OUT/inference-switch.log"
fi
timeout ${TESTS_TIMEOUT:-60} python3 -m pytest -q -p no:cacheprovider --timeout 60 -rf --tb=short \
    ${TESTS:-tests/test_models_loading.py tests/test_models_transfers.py tests/test_models_heads.py} > "$OUT/tests.log" 2>&1
tail -25 "$OUT/tests.log"
