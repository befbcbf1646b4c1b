#!/usr/bin/env bash
# The project's GPU checks, as one prepared run on a CUDA machine (docs/gpu.md):
# CUDA tests, the shipped model on CUDA vs CPU and vs HF generate, and recipe variants trained
# with DeepSpeed over NCCL. Results go to $OUT (default /tmp/gpu_out).
# Where the machine lacks DeepSpeed/pydantic/hjson, they come from .gpu_site (see docs/gpu.md).
set -u
OUT=${OUT:-/tmp/gpu_out}
MINUTES=${MINUTES:-6}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
if [ -d .gpu_site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu_site/whl/*.whl
  cp -r .gpu_site/site/* /tmp/site/
  export PYTHONPATH=/tmp/site:$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  python3 -c "import torch, deepspeed; print('torch', torch.__version__, 'deepspeed', deepspeed.__version__, torch.cuda.get_device_name(0))"; } > "$OUT/env.txt" 2>&1
python3 benchmarks/gpu_train_variants.py --out "$OUT/variants.json" --minutes "$MINUTES" > "$OUT/variants.log" 2>&1 &
variants=$!
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gsot.py > "$OUT/pytest_gpu.txt" 2>&1
python3 benchmarks/gpu_engine_check.py --json "$OUT/engine_cuda.json" > "$OUT/engine_cuda.log" 2>&1
wait $variants
tail -n 3 "$OUT"/*.txt "$OUT"/*.log
