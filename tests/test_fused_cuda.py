"""fused=True on CUDA tensors (skipped without a GPU).

On CUDA adamlib's fused path is torch's own fused kernels where the configuration is one of
torch's (SGD, Momentum, Adagrad, Adam/AdamW/AMSGrad with bias correction) and adamlib's Triton
kernels otherwise ("auto"); "triton" forces the Triton kernels for every case. Either way it
must equal adamlib's per-tensor loop on the CPU: float64 to 1e-12 relative, float32 to
assert_close defaults, params and every state tensor.
"""
from __future__ import annotations

import pytest
import torch

from adamlib.optim import _fused
from optim_cases import CASES, make_params, run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-15), torch.float32: dict(rtol=1.3e-6, atol=1e-5)}


BACKENDS = ["auto", pytest.param("triton", marks=pytest.mark.skipif(
    not _fused.triton_available(), reason="Triton is not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cuda_fused_matches_cpu_per_tensor(case, dtype, backend, monkeypatch):
    pa = make_params(dtype)
    oa = case.make(pa, foreach=False)
    run(oa, pa, sign=case.grad_sign)
    pc = make_params(dtype, device="cuda")
    oc = case.make(pc, fused=True)
    oc._fused_backend = backend
    launched = []
    real_run = _fused.run_triton
    monkeypatch.setattr(_fused, "run_triton", lambda *a: (launched.append(a[0]), real_run(*a)))
    run(oc, pc, sign=case.grad_sign)
    if backend == "triton" or (not case.cls._torch_fused_matches(oc.param_groups[0])
                               and _fused.triton_available()):
        assert launched, "no Triton kernel ran"
    pc_cpu = [p.detach().cpu() for p in pc]
    for p, q in zip(pa, pc_cpu):
        torch.testing.assert_close(p.detach(), q, **TOL[dtype])
    for p, q in zip(pa, pc):
        for k, v in oa.state[p].items():
            w = oc.state[q][k]
            if k == "step":
                assert float(v) == float(w) and w.device.type == "cpu"
            else:
                assert w.device.type == "cuda"
                torch.testing.assert_close(v, w.cpu(), **TOL[dtype])
