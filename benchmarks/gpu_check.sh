#!/usr/bin/env bash
# The GPU check: the test suite on CuPy and on PyTorch CUDA (the parity tests
# compare every module and loss with NumPy there), then the benchmarks with the
# GPU contenders up to batch 8192. Logs and results.json go to $OUT (or
# results/gpu). Run from the repository root on a machine with an NVIDIA GPU:
#
#   bash benchmarks/gpu_check.sh
#
# Machines without internet: put wheels of the pure-Python dependencies in .whl/
# first (here: bash benchmarks/gpu_check.sh --fetch-wheels); they are installed
# into /tmp/site. Budget: about 8 minutes in all (each step has its own limit).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  python3 -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat array-api-strict
  exit $?
fi

OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS
status=0

step() {  # step NAME LIMIT_SECONDS COMMAND...: run, log to $OUT/NAME.log, remember failures
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s) ==="
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - start)) s in all ==="
  [ "$rc" -eq 0 ] || status=1
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  $PY - <<'PY'
import importlib
for name in ("numpy", "array_api_compat", "array_api_strict", "cupy", "torch", "sklearn", "pytest", "hypothesis"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {module.__version__}")
    except Exception as exc:
        print(f"{name}: {type(exc).__name__}: {exc}")
try:
    import cupy
    print("cupy device:", cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), "CUDA", cupy.cuda.runtime.runtimeGetVersion())
except Exception as exc:
    print("cupy device: none", exc)
try:
    import torch
    print("torch CUDA:", torch.cuda.is_available(), torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as exc:
    print("torch:", exc)
PY
  $PY -m backprop info
} 2>&1 | tee "$OUT/environment.log"

usable() {  # usable BACKEND [DEVICE]: can backprop compute there?
  $PY -c "import sys, backprop.backends as b; b.make_backend(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)" "$@" \
    >/dev/null 2>&1
}

if usable cupy; then
  step tests-cupy 200 env BACKPROP_BACKEND=cupy $PY -m pytest -q -p no:cacheprovider -ra tests
else
  echo "=== tests-cupy: skipped, CuPy has no usable CUDA device here ===" | tee "$OUT/tests-cupy.log"
  status=1
fi
if usable torch cuda; then
  step tests-torch-cuda 150 env BACKPROP_BACKEND=torch BACKPROP_DEVICE=cuda $PY -m pytest -q -p no:cacheprovider -ra tests \
    --deselect tests/test_sklearn.py --deselect tests/test_benchmarks.py
else
  echo "=== tests-torch-cuda: skipped, PyTorch sees no CUDA device here ===" | tee "$OUT/tests-torch-cuda.log"
  status=1
fi
step benchmarks 110 $PY -m benchmarks --backends numpy cupy torch:cuda --peers numpy torch torch:cuda \
  --models seed_mlp seed_cnn --batch-sizes 256 2048 8192 --repeats 5 --min-block 0.05 --gap 0.05 --out "$OUT"

echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo SOME STEPS FAILED) in $((SECONDS - start)) s; logs in $OUT"
exit $status
