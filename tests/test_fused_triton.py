"""adamlib's Triton kernels (the fused GPU path) equal the per-tensor loop, checked on a CPU.

Triton's interpreter (``TRITON_INTERPRET=1``) runs the kernels' code on CPU tensors with numpy:
the same pointer tables, block splits, masks, dtype casts and branches as on a GPU, though not
the GPU's compiler. Every case of tests/optim_cases.py (torch's configurations too, forced
onto Triton), float64 to 1e-12 relative and float32 to assert_close defaults. And the compiler
half: every kernel is compiled ahead of time, without a GPU, to machine code for Hopper and
Ampere GPUs. On a machine with a GPU these tests are skipped: tests/test_fused_cuda.py runs the
compiled kernels there.
"""
from __future__ import annotations

import os

import pytest
import torch

from adamlib.optim import _fused

if _fused.triton_available() and not torch.cuda.is_available():
    # Triton decides at decoration time; the kernels module is imported on first use, below.
    os.environ["TRITON_INTERPRET"] = "1"

from optim_cases import CASES, compare, make_params, run  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not _fused.triton_available(), reason="Triton is not installed"),
    pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs the compiled kernels instead"),
]



def _float64_scalars():
    """The interpreter hands a kernel Python floats as they are, which Triton then reads as float32;
    compiled, the kernels' ``tl.float64`` annotations make them float64. Do what the compiler does
    (every float argument of adamlib's kernels is annotated float64)."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter._implicit_cvt

    def cvt(arg):
        if isinstance(arg, float):
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float64), tl.float64), tl.float64)
        return original(arg)

    interpreter._implicit_cvt = cvt


if os.environ.get("TRITON_INTERPRET") == "1":
    _float64_scalars()

DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-15), torch.float32: dict(rtol=1.3e-6, atol=1e-5)}


@pytest.fixture
def launches(monkeypatch):
    """Count the kernels run_triton launches (so a silent fallback cannot pass)."""
    from triton.runtime.interpreter import InterpretedFunction
    kernels = _fused.triton_kernels()
    assert isinstance(kernels.adam, InterpretedFunction), "TRITON_INTERPRET was set too late"
    names = []
    real_run = _fused.run_triton

    def counting(name, rows, *args):
        names.append((name, len(rows)))
        real_run(name, rows, *args)

    monkeypatch.setattr(_fused, "run_triton", counting)
    return names


#: the interpreter runs a kernel's Python for every block (about 10 ms): 60 steps of the shared
#: schedule still cover its events (an empty step, a late parameter, a frozen one)
STEPS = 60


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_triton_fused_matches_per_tensor(case, dtype, launches):
    pa, pt = make_params(dtype), make_params(dtype)
    oa, ot = case.make(pa, foreach=False), case.make(pt, fused=True)
    ot._fused_backend = "triton"
    run(oa, pa, STEPS, sign=case.grad_sign)
    run(ot, pt, STEPS, sign=case.grad_sign)
    compare(pa, oa, pt, ot, **TOL[dtype], what=f"{case.id} triton vs loop")
    for p, q in zip(pa, pt):
        assert set(oa.state[p]) == set(ot.state[q])
        if "step" in oa.state[p]:
            assert float(oa.state[p]["step"]) == float(ot.state[q]["step"])
    # every step with a gradient went through Triton, all four params in one launch at some step
    assert len(launches) >= STEPS - 1 and max(k for _, k in launches) == 4


@pytest.mark.parametrize("name,kwargs,kernel", [
    ("RMSProp", dict(lr=1e-3, bias_correction=True, eps_inside_sqrt=True, maximize=True), "rmsprop"),
    ("RMSProp", dict(lr=1e-3, beta=0.3, centered=True, momentum=0.9, eps_inside_sqrt=True), "rmsprop"),
    ("Adam", dict(lr=1e-2, bias_correction=False, amsgrad=True, weight_decay=1e-2), "adam"),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1), "adam"),
    ("AdaMax", dict(eps=0.0, lr=1e-2, weight_decay=1e-3), "adamax"),
    ("Momentum", dict(lr=0.05, beta=0.3, weight_decay=1e-2), "momentum"),   # lerp weight >= 0.5
    ("SGD", dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=1e-3), "sgd"),
    ("Adagrad", dict(lr=0.1, weight_decay=1e-3, lr_decay=0.3), "adagrad"),
])
def test_complex_and_large_params_cross_block_edges(name, kwargs, kernel, launches):
    """A complex parameter (stepped as reals) and one of 2.5 blocks, so masks and owners matter."""
    import adamlib
    block = _fused.triton_kernels().BLOCK
    gen = torch.Generator().manual_seed(11)
    z0 = torch.randn(block // 3, dtype=torch.complex128, generator=gen)
    x0 = torch.randn(5 * block // 2, dtype=torch.float64, generator=gen)
    pa = [z0.clone().requires_grad_(), x0.clone().requires_grad_()]
    pt = [z0.clone().requires_grad_(), x0.clone().requires_grad_()]
    cls = getattr(adamlib, name)
    oa, ot = cls(pa, foreach=False, **kwargs), cls(pt, fused=True, **kwargs)
    ot._fused_backend = "triton"
    for t in range(8):
        for a, b in zip(pa, pt):
            g = torch.randn(a.shape, dtype=a.dtype, generator=gen) + a.detach()
            a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ot.step()
    compare(pa, oa, pt, ot, **TOL[torch.float64], what=f"{name} triton vs loop")
    assert launches == [(kernel, 2)] * 8


def test_block_table_is_cached_and_tracks_reallocation():
    """One table per set of tensors; a re-allocated tensor gets a new one (its address changed)."""
    a, b = torch.zeros(3000), torch.zeros(10)
    ptrs, owner, start, sizes = _fused.triton_table([[a, a], [b, b]])
    block = _fused.triton_kernels().BLOCK
    assert owner.tolist() == [0, 0, 0, 1] and start.tolist() == [0, block, 2 * block, 0]
    assert sizes.tolist() == [3000, 10] and ptrs[0, 0].item() == a.data_ptr()
    assert _fused.triton_table([[a, a], [b, b]])[0] is ptrs
    c = torch.zeros(3000)
    assert _fused.triton_table([[c, c], [b, b]])[0][0, 0].item() == c.data_ptr()


_COMPILE = r'''
import inspect, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from adamlib.optim import _triton_kernels as K

out = {}
for name in ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamax"):
    for dt in ("fp32", "fp64"):
        fn = getattr(K, name)
        params = inspect.signature(fn.fn).parameters.values()
        sig = {p.name: "*i64" if p.name in ("ptrs", "owner", "start", "sizes") else
                       "i32" if p.name == "S" else "*" + dt if p.name == "proto" else
                       "constexpr" if p.name == "BLOCK" else
                       "fp64" if "float64" in str(p.annotation) else "i1" for p in params}
        options = {k: v for k, v in K.LAUNCH.items() if k != "BLOCK"}
        kernel = triton.compile(
            ASTSource(fn=fn, signature=sig, constexprs={(list(sig).index("BLOCK"),): K.BLOCK}),
            target=GPUTarget("cuda", int(sys.argv[1]), 32), options=options)
        out[f"{name}-{dt}"] = dict(ptx=kernel.asm["ptx"], cubin=len(kernel.asm["cubin"]))
print(json.dumps(out))
'''


@pytest.mark.parametrize("arch", [90, 80], ids=["sm90-hopper", "sm80-ampere"])
def test_triton_kernels_compile_for_the_gpu(arch, tmp_path):
    """Compiled ahead of time (no GPU needed) down to machine code for Hopper (H100, H200) and
    Ampere (A100): the compiler checks what the interpreter does not (types across branches,
    the int-to-pointer casts), and the float32 arithmetic is the IEEE one, without contraction."""
    import json
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # compile for real, not from a cache
    done = subprocess.run([sys.executable, "-c", _COMPILE, str(arch)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    kernels = json.loads(done.stdout)
    assert len(kernels) == 12 and all(k["cubin"] > 0 for k in kernels.values())
    for name in ("adam-fp32", "rmsprop-fp32", "adagrad-fp32"):
        ptx = kernels[name]["ptx"]
        assert "sqrt.rn.f32" in ptx and "div.rn.f32" in ptx, name
        assert "sqrt.approx" not in ptx and "div.full" not in ptx and "fma." not in ptx, name
    assert "div.rn.f32" in kernels["adamax-fp32"]["ptx"]
    assert "sqrt.rn.f64" in kernels["adam-fp64"]["ptx"] and "div.rn.f64" in kernels["adam-fp64"]["ptx"]


def test_block_tables_start_on_16_byte_boundaries():
    """Triton specialises a kernel on its pointers' alignment: equal alignment, one compile."""
    for n_params in (1, 2, 3):
        rows = [[torch.zeros(5000 + i)] * 3 for i in range(n_params)]
        for part in _fused.triton_table(rows):
            assert part.data_ptr() % 16 == 0


@pytest.mark.parametrize("name,kwargs,expect", [
    ("RMSProp", {}, "triton"),
    ("AdaMax", {}, "triton"),
    ("Adam", dict(bias_correction=False), "triton"),
    ("Adam", {}, "torch"),
    ("Momentum", {}, "torch"),
    ("Momentum", dict(beta=0.0), "triton"),   # torch's SGD kernel skips momentum at 0
    ("SGD", dict(momentum=0.9), "torch"),
])
@pytest.mark.parametrize("have_triton", [True, False], ids=["triton", "no-triton"])
def test_which_kernel_a_gpu_parameter_gets(name, kwargs, expect, have_triton, monkeypatch):
    """On a device other than the CPU ("meta" stands in for CUDA here): torch's kernel where
    torch has one for the configuration, else adamlib's Triton kernel, else (no Triton) the
    multi-tensor path. Only the choice is checked; nothing is computed."""
    import adamlib
    p = torch.zeros(10, device="meta", requires_grad=True)
    p.grad = torch.zeros(10, device="meta")
    opt = getattr(adamlib, name)([p], fused=True, **kwargs)
    chosen = []
    monkeypatch.setattr(_fused, "triton_available", lambda: have_triton)
    monkeypatch.setattr(_fused, "run_triton", lambda kernel, *a: chosen.append("triton"))
    monkeypatch.setattr(opt, "_fused_torch", lambda group, params: chosen.append("torch"))
    monkeypatch.setattr(opt, "_step_foreach", lambda group, params: chosen.append("foreach"))
    opt.step()
    assert chosen == [expect if expect == "torch" or have_triton else "foreach"]
