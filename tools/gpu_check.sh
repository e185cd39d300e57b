#!/usr/bin/env bash
# The prepared GPU check of the compiled ops (about 3-5 minutes on one GPU):
#   1. builds rlipv2._C in place with the CUDA kernels, for this GPU's architecture only;
#   2. runs the gpu-marked tests of the ops (CUDA vs pytorch parity, gradcheck, fp16/bf16);
#   3. prints the CUDA-kernel vs pytorch-path benchmark of ms_deform_attn in float32 and bfloat16.
# Run from anywhere on a machine with a GPU, torch (CUDA build) and the project's requirements:
#   bash tools/gpu_check.sh              # PYTHON=/path/to/python to choose the interpreter
# CUDA_HOME defaults to the toolkit of the nvcc on PATH (see setup.py); the build log is build/build_cuda.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA device"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {torch.cuda.get_device_name(0)}")
PYEOF
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')"
  export TORCH_CUDA_ARCH_LIST
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

echo "== build rlipv2._C with CUDA (arch $TORCH_CUDA_ARCH_LIST) =="
mkdir -p build
start=$(date +%s)
if ! FORCE_CUDA=1 "$PY" setup.py build_ext --inplace > build/build_cuda.log 2>&1; then
  tail -n 60 build/build_cuda.log
  echo "CUDA build FAILED (full log: build/build_cuda.log)"
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
"$PY" -c 'from rlipv2.utils.extension import extension_info as e; i = e(); print(i); assert i["cuda"], i'

echo "== gpu tests =="
"$PY" -m pytest -q -m gpu tests/layers/test_ms_deform_attn.py tests/layers/test_triplet_nms.py

echo "== benchmark: CUDA kernel vs pytorch path =="
"$PY" tools/benchmark_ops.py --device cuda --dtype float32 bfloat16 --repeats 20
