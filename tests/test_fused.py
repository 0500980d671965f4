"""The fused path (``fused=True``) equals the per-tensor loop: params and every state tensor.

float64 to 1e-12 relative, float32 to torch.testing.assert_close defaults, over the shared
200-step run of tests/optim_cases.py (0-d params, a None-grad step, a late param, a frozen one),
for both fused back ends: numba on CPU, and torch's own fused kernels (the CUDA path, run here
on CPU tensors) where the configuration matches one of torch's.
"""
from __future__ import annotations

import copy
import functools
import subprocess
import sys

import pytest
import torch

import adamlib
from adamlib.optim import _base, _fused
from optim_cases import CASES, CASE_BY_ID, CLASS_CASES, compare, make_params, run, run_adamlib

pytestmark = pytest.mark.skipif(not _fused.numba_available(), reason="numba is not installed")

DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]
FUSED_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-15), torch.float32: dict(rtol=1.3e-6, atol=1e-5)}  # assert_close defaults
TORCH_FUSED_CASES = [c for c in CASES if c.cls._torch_fused_matches(c.make(make_params()).param_groups[0])]


@functools.lru_cache(maxsize=None)
def run_fused(case, dtype, backend="auto"):
    params = make_params(dtype)
    opt = case.make(params, fused=True)
    opt._fused_backend = backend
    run(opt, params, sign=case.grad_sign)
    return params, opt


def _compare(case, dtype, backend):
    pa, oa = run_adamlib(case, dtype, foreach=False)
    pf, of = run_fused(case, dtype, backend)
    for p, p0 in zip(pf, make_params(dtype)):
        assert not torch.equal(p, p0)  # the run moved every param
    compare(pa, oa, pf, of, **FUSED_TOL[dtype], what=f"{case.id} fused[{backend}] vs loop")
    for p, q in zip(pa, pf):
        assert set(oa.state[p]) == set(of.state[q])
        if "step" in oa.state[p]:
            assert float(oa.state[p]["step"]) == float(of.state[q]["step"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numba_fused_matches_per_tensor(case, dtype):
    _compare(case, dtype, "numba")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_default_fused_backend_matches_per_tensor(case, dtype):
    _compare(case, dtype, "auto")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_FUSED_CASES, ids=lambda c: c.id)
def test_torch_fused_matches_per_tensor(case, dtype):
    _compare(case, dtype, "torch")


def test_torch_fused_covers_what_torch_has():
    ids = {c.id for c in TORCH_FUSED_CASES}
    assert {"sgd", "sgd_nesterov", "adagrad", "adam", "adamw", "amsgrad", "momentum_no_bc"} <= ids
    assert not ids & {"rmsprop", "adamax"}
    group = adamlib.Adam(make_params(), bias_correction=False).param_groups[0]
    assert not adamlib.Adam._torch_fused_matches(group)


def _other_settings():
    return [
        ("Momentum", dict(lr=0.05, beta=0.9)),                        # bias-corrected
        ("Momentum", dict(lr=0.05, beta=0.3, weight_decay=1e-2)),      # lerp weight >= 0.5
        ("RMSProp", dict(lr=1e-3, bias_correction=True, eps_inside_sqrt=True)),
        ("RMSProp", dict(lr=1e-3, eps_inside_sqrt=True, maximize=True)),
        ("RMSProp", dict(lr=1e-3, beta=0.3, centered=True, eps_inside_sqrt=True)),   # lerp weight >= 0.5
        ("RMSProp", dict(lr=1e-4, beta=0.95, eps=1e-4, centered=True, momentum=0.9, eps_inside_sqrt=True)),
        ("RMSProp", dict(lr=1e-3, momentum=0.5, bias_correction=True, weight_decay=1e-2)),
        ("Adam", dict(lr=1e-2, bias_correction=False)),
        ("Adam", dict(lr=1e-2, bias_correction=False, amsgrad=True, weight_decay=1e-2)),
        ("AdaMax", dict(eps=0.0, lr=1e-2)),
        ("SGD", dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=1e-3)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", _other_settings(), ids=lambda x: str(x))
def test_knobs_outside_the_torch_table(name, kwargs, dtype):
    cls = getattr(adamlib, name)
    pa, pf = make_params(dtype), make_params(dtype)
    oa, of = cls(pa, foreach=False, **kwargs), cls(pf, fused=True, **kwargs)
    run(oa, pa, 60)
    run(of, pf, 60)
    compare(pa, oa, pf, of, **FUSED_TOL[dtype])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_complex_params(case):
    gen = torch.Generator().manual_seed(3)
    z0 = torch.randn(7, 3, dtype=torch.complex128, generator=gen)
    za, zf = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    oa, of = case.make([za], foreach=False), case.make([zf], fused=True)
    for t in range(30):
        g = case.grad_sign * (torch.randn(7, 3, dtype=torch.complex128, generator=gen) + z0)
        za.grad, zf.grad = g.clone(), g.clone()
        oa.step()
        of.step()
    compare([za], oa, [zf], of, **FUSED_TOL[torch.float64])
    assert all(v.is_complex() for k, v in of.state[zf].items() if k != "step")


@pytest.mark.parametrize("name", CLASS_CASES)
def test_noncontiguous_half_and_empty_params_fall_back_with_identical_numbers(name):
    case = CLASS_CASES[name]

    def params():
        gen = torch.Generator().manual_seed(5)
        base = torch.randn(6, 8, dtype=torch.float64, generator=gen)
        return [base.t().contiguous().t().requires_grad_(),  # non-contiguous
                torch.randn(5, generator=gen).to(torch.bfloat16).requires_grad_(),
                torch.empty(0, 3, dtype=torch.float64).requires_grad_(),
                torch.randn((), dtype=torch.float64, generator=gen).requires_grad_(),
                torch.randn(4, 5, dtype=torch.float64, generator=gen).requires_grad_()]

    pa, pf = params(), params()
    assert not pf[0].is_contiguous()
    oa, of = case.make(pa, foreach=False), case.make(pf, fused=True)
    for t in range(1, 21):
        for a, f in zip(pa, pf):
            g = torch.full_like(a, 0.1 * t).sin() + a.detach()
            a.grad, f.grad = g.clone(), g.clone()
        oa.step()
        of.step()
    for i, (a, f) in enumerate(zip(pa, pf)):
        if i in (0, 1, 2):  # fell back to the loop: bitwise the loop's numbers
            assert torch.equal(a, f), i
        else:
            torch.testing.assert_close(a, f, **FUSED_TOL[torch.float64])


def test_none_grads_and_frozen_params_get_no_update_and_no_state():
    p, q = torch.ones(300, requires_grad=True), torch.ones(5, requires_grad=True)
    opt = adamlib.Adam([p, q], fused=True)
    p.grad = torch.ones(300)
    opt.step()
    assert q not in opt.state and torch.equal(q, torch.ones(5))
    p.grad = None
    before = p.detach().clone()
    opt.step()
    assert torch.equal(p, before) and float(opt.state[p]["step"]) == 1


def test_mixed_dtypes_and_per_param_step_counts():
    a = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    b = torch.randn(300, dtype=torch.float32, requires_grad=True)
    ref = [a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()]
    of, oa = adamlib.AdaMax([a, b], fused=True), adamlib.AdaMax(ref, foreach=False)
    for t in range(12):
        for x, y in zip([a, b], ref):
            g = torch.cos(x.detach() * (t + 1))
            x.grad = g.clone() if t % 3 or x is a else None
            y.grad = None if x.grad is None else g.clone()
        of.step()
        oa.step()
    compare([a, b], of, ref, oa, rtol=1e-6, atol=1e-6)
    assert float(of.state[b]["step"]) != float(of.state[a]["step"])


def test_fused_and_foreach_together_is_refused():
    with pytest.raises(ValueError, match="foreach = True with fused = True"):
        adamlib.Adam([torch.zeros(2, requires_grad=True)], fused=True, foreach=True)
    with pytest.raises(ValueError, match="fused"):
        adamlib.SGD([torch.zeros(2, requires_grad=True)], fused="yes")


def test_fused_none_never_chooses_fused():
    # Opt-in: the fused numbers differ from torch.optim's default in the last bits, and a cold
    # numba compile costs seconds (see default_fused).
    for params in ([torch.zeros(10)], [torch.zeros(1 << 21)]):
        assert not _base.default_fused(params, None)
    p = torch.zeros(1 << 21, requires_grad=True)
    p.grad = torch.ones_like(p)
    opt = adamlib.Adam([p])
    calls = []
    opt._step_fused = lambda group, params: calls.append(len(params))
    opt.step()
    assert calls == []


def _python(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (numba's set-up is per process); it must succeed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


def test_without_numba_adamlib_imports_and_fused_true_names_what_to_install():
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import importlib.util\n"
        "importlib.util.find_spec = (lambda f: (lambda name, *a: None if name == 'numba' else f(name, *a)))"
        "(importlib.util.find_spec)\n"
        "import torch, adamlib\n"
        "p = torch.zeros(3, requires_grad=True); p.grad = torch.ones(3)\n"
        "adamlib.Adam([p]).step()\n"
        "adamlib.Adam([p], fused=True).step()\n"  # torch's own kernel: no numba needed
        "try:\n"
        "    adamlib.RMSProp([p], fused=True)\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = _python(code)
    assert "ERR" in out.stdout and "pip install numba" in out.stdout


def test_state_dict_moves_between_fused_and_unfused():
    case = CASE_BY_ID["adam_amsgrad"]
    pf = make_params()
    of = case.make(pf, fused=True)
    run(of, pf, 10)
    sd = copy.deepcopy(of.state_dict())  # state_dict() holds references to live state
    assert sd["param_groups"][0]["fused"] is True
    pt = [p.detach().clone().requires_grad_() for p in pf]
    ot = torch.optim.Adam(pt, amsgrad=True)
    ot.load_state_dict(copy.deepcopy(sd))
    pa = [p.detach().clone().requires_grad_() for p in pf]
    oa = case.make(pa, foreach=False)
    oa.load_state_dict(sd)
    oa.param_groups[0]["fused"] = False
    run(of, pf, 10, start=11)
    run(oa, pa, 10, start=11)
    compare(pa, oa, pf, of, **FUSED_TOL[torch.float64])


def test_numba_threads_follow_torch_and_leave_its_settings_alone():
    # numba's OpenMP layer is chosen exactly when it runs on torch's own runtime (Linux wheels),
    # and starting it must not change torch's thread count.
    code = (
        "import torch, adamlib, numba\n"
        "from adamlib.optim import _fused\n"
        "torch.set_num_threads(1)\n"
        "p = torch.zeros(1 << 20, requires_grad=True); p.grad = torch.ones_like(p)\n"
        "adamlib.RMSProp([p], fused=True).step()\n"
        "print(torch.get_num_threads(), numba.threading_layer(), _fused.shares_torch_openmp())\n"
    )
    out = _python(code)
    threads, layer, shared = out.stdout.split()
    assert threads == "1"
    assert layer == ("omp" if shared == "True" else "workqueue")



def test_step_counters_are_one_tensor_underneath_and_count_per_parameter():
    # _advance_steps packs a group's counters into views of one tensor (one increment per step)
    ps = [torch.zeros(4, requires_grad=True) for _ in range(3)]
    late = torch.zeros(4, requires_grad=True)
    opt = adamlib.Adam(ps + [late], fused=True)
    for t in range(1, 6):
        for p in ps + ([late] if t >= 3 else []):
            p.grad = torch.ones(4)
        opt.step()
    steps = [opt.state[p]["step"] for p in ps + [late]]
    assert [float(s) for s in steps] == [5.0, 5.0, 5.0, 3.0]
    assert all(s.dim() == 0 and s.dtype == torch.float32 for s in steps)
    base = steps[0]._base
    assert base is not None and all(s._base is base for s in steps)
    # a checkpoint of the packed counters resumes in torch.optim with the same numbers
    ref = [p.detach().clone().requires_grad_() for p in ps + [late]]
    torch_opt = torch.optim.Adam(ref, fused=True)
    torch_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p, q in zip(ps + [late], ref):
        p.grad, q.grad = torch.full((4,), 0.5), torch.full((4,), 0.5)
    opt.step()
    torch_opt.step()
    for p, q in zip(ps + [late], ref):
        assert torch.equal(p, q)
        assert float(opt.state[p]["step"]) == float(torch_opt.state[q]["step"])
