#!/usr/bin/env bash
# The CUDA half of the fused-step work, as one run on a machine with an NVIDIA GPU and a
# python3 that has torch (CUDA build) and Triton; nothing is installed or downloaded.
#
#   bash tools/gpu_check.sh            # writes results/ (or $OUT when set)
#
# 1. tests/test_cuda.py and tests/test_fused_cuda.py: every optimizer on CUDA against the
#    CPU loop; fused=True through torch's kernels and adamlib's Triton kernels (float64 to
#    1e-12, float32 to assert_close defaults).
# 2. python -m adamlib.bench --device cuda --large: the benchmark table on the GPU, with the
#    streaming bandwidth it is measured against (fused Adam at 10M should be >= 80 % of it).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-results}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/gpu_machine.txt" || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch: nothing to check here")
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton missing: fused RMSProp/AdaMax fall back to the multi-tensor path")
PY
status=0
# -W default: that machine's own packages may warn where the book's pinned ones do not; a warning
# there is reported, not turned into a failure as in CI
python3 -m pytest -q -p no:cacheprovider -o addopts="" -W default tests/test_cuda.py tests/test_fused_cuda.py \
    2>&1 | tee "$out/gpu_tests.log" || status=1
python3 -m adamlib.bench --device cuda --large --json "$out/bench_cuda.json" \
    2>&1 | tee "$out/bench_cuda.txt" || status=1
exit $status
