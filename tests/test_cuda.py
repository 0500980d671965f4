"""The same checks on CUDA tensors. Skipped (whole module) without a CUDA device."""
from __future__ import annotations

import io

import pytest
import torch

from optim_cases import CASE_BY_ID, CASES, PATH_TOL, TOL, compare, make_params, run, run_pair

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]
PATHS = [pytest.param(False, id="per_tensor"), pytest.param(True, id="foreach")]


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_torch_on_cuda(case, dtype, foreach):
    (pa, oa), (pt, ot) = run_pair(case, dtype, device="cuda", foreach=foreach)
    assert all(p.is_cuda for p in pa)
    compare(pa, oa, pt, ot, **TOL[dtype], state_map=case.state_map, case=case, what=case.id)
    for p in pa:
        for k, v in oa.state[p].items():
            if k == "step":
                assert v.device.type == "cpu"  # like torch without capturable/fused
            else:
                assert v.device == p.device, k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_foreach_matches_per_tensor_on_cuda(case, dtype):
    (pa, oa), _ = run_pair(case, dtype, device="cuda", foreach=False)
    (pb, ob), _ = run_pair(case, dtype, device="cuda", foreach=True)
    compare(pa, oa, pb, ob, **PATH_TOL[dtype], what=f"{case.id} foreach vs loop")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_foreach_none_picks_foreach_on_cuda(case):
    (pa, oa), _ = run_pair(case, torch.float64, device="cuda", foreach=None)
    (pb, ob), _ = run_pair(case, torch.float64, device="cuda", foreach=True)
    compare(pa, oa, pb, ob, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cpu_and_cuda_trajectories_agree(case, dtype):
    (pc, oc), _ = run_pair(case, dtype, device="cpu", foreach=False)
    (pg, og), _ = run_pair(case, dtype, device="cuda", foreach=True)
    for a, b in zip(pc, pg):
        torch.testing.assert_close(a, b.cpu())
        for k, v in oc.state[a].items():
            torch.testing.assert_close(torch.as_tensor(v), og.state[b][k].cpu(), check_dtype=True)


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("case", [CASE_BY_ID[i] for i in ("adam", "adam_amsgrad", "adamw", "sgd_momentum", "adagrad",
                                                            "rmsprop", "adamax", "momentum_no_bc")],
                         ids=lambda c: c.id)
def test_cpu_checkpoint_loads_into_cuda_params(case, foreach):
    params = make_params()
    opt = case.make(params, foreach=False)
    run(opt, params, 10, sign=case.grad_sign)
    buf = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True, map_location="cpu")
    run(opt, params, 10, start=11, sign=case.grad_sign)

    gparams = [t.cuda().requires_grad_() for t in ckpt["params"]]
    gopt = case.make(gparams, foreach=foreach)
    gopt.load_state_dict(ckpt["optim"])
    for p in gparams:
        for k, v in gopt.state[p].items():
            if k == "step":
                assert v.device.type == "cpu", "step stays a CPU tensor, as in torch"
            else:
                assert v.device == p.device, k
    run(gopt, gparams, 10, start=11, sign=case.grad_sign)  # no "expected all tensors on the same device"
    for a, b in zip(params, gparams):
        torch.testing.assert_close(a, b.cpu(), **TOL[torch.float64])


# ---------------------------------------------------------------------------------------
# torch's optimizer database: the configurations it keeps for CUDA (tests/test_torch_optim_db.py
# runs the CPU ones). All of them set capturable=True, which adamlib refuses (its step reads t on
# the host): each must be refused by name, and without the flag give torch's capturable numbers.
# torch's capturable step computes its bias corrections in float32 on the device, whatever the
# parameters' dtype, so float64 runs are held to float32's tolerances here.

def _cuda_only_inputs():
    from torch_db import infos
    out = []
    for info in infos():
        on_cpu = {oi.desc for oi in info.optim_inputs_func("cpu", None)}
        for index, oi in enumerate(info.optim_inputs_func("cuda", None)):
            if oi.desc not in on_cpu:
                for path in ["default", "foreach", "for-loop"] + (["fused"] if "cuda" in info.supports_fused_on else []):
                    out.append(pytest.param(info, index, path, id=f"{info.name}-{oi.desc}-{path}"))
    return out


CUDA_ONLY = _cuda_only_inputs()
DB_PATH_FLAGS = {"default": {}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


def test_the_databases_cuda_only_inputs_are_all_there():
    # capturable configurations: Adam 5, AdamW 5, Adamax 5, RMSprop 3; Adam and AdamW also fused
    assert len(CUDA_ONLY) == 18 * 3 + 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("info, index, path", CUDA_ONLY)
def test_cuda_only_configuration_refused_by_name_and_matched_without_the_flag(info, index, path, dtype):
    import adamlib
    from torch_db import SHARED, adamlib_kwargs, same_run
    kwargs = {**info.optim_inputs_func("cuda", None)[index].kwargs, **DB_PATH_FLAGS[path]}
    if path == "fused":
        kwargs.pop("foreach", None)
    ours = adamlib_kwargs(info.name, kwargs)
    assert ours.pop("capturable") is True
    with pytest.raises(ValueError, match=r"invalid capturable = True"):
        getattr(adamlib, SHARED[info.name])(make_params(dtype, "cuda"), capturable=True, **ours)
    same_run(info, kwargs, ours, dtype, device="cuda", tol=TOL[torch.float32])
