"""Checkpoints: resume bitwise, move between adamlib and torch.optim both ways, torch's layout,
and old checkpoints (a Python-number ``step``, missing flags) still load."""
from __future__ import annotations

import copy
import io

import pytest
import torch

from optim_cases import CASE_BY_ID, CASES, PARAM_NAMES, TOL, compare, make_params, run

FIRST, SECOND = 10, 10  # steps before and after the checkpoint (the first half has a None-grad step)

INTEROP = [CASE_BY_ID[i] for i in (
    "adam", "adam_l2", "adam_amsgrad", "adam_decoupled", "adamw", "amsgrad", "sgd_momentum",
    "sgd_nesterov", "adagrad", "adagrad_wd_init_maximize", "adagrad_lr_decay", "rmsprop",
    "rmsprop_beta_wd_maximize", "rmsprop_centered", "rmsprop_momentum", "rmsprop_centered_momentum_wd_maximize",
    "adamax", "adamax_wd_maximize",
)]


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _checkpoint(params, opt):
    return _roundtrip({"params": [p.detach().clone() for p in params], "optim": opt.state_dict()})


def _restore(ckpt, make_opt, dtype=torch.float64):
    params = [t.clone().requires_grad_() for t in ckpt["params"]]
    opt = make_opt(params)
    opt.load_state_dict(ckpt["optim"])
    return params, opt


def _exact(params_a, opt_a, params_b, opt_b):
    for p, q in zip(params_a, params_b):
        assert torch.equal(p, q)
        sa, sb = opt_a.state.get(p, {}), opt_b.state.get(q, {})
        assert set(sa) == set(sb)
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


@pytest.mark.parametrize("foreach", [False, True], ids=["per_tensor", "foreach"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_resume_is_bitwise_identical(case, foreach):
    params = make_params()
    opt = case.make(params, foreach=foreach)
    run(opt, params, FIRST, sign=case.grad_sign)
    ckpt = _checkpoint(params, opt)
    run(opt, params, SECOND, start=FIRST + 1, sign=case.grad_sign)  # uninterrupted

    p2, o2 = _restore(ckpt, lambda ps: case.make(ps, foreach=foreach))
    run(o2, p2, SECOND, start=FIRST + 1, sign=case.grad_sign)
    _exact(params, opt, p2, o2)
    sd1, sd2 = opt.state_dict(), o2.state_dict()
    # torch's Optimizer.__setstate__ adds 'differentiable' to the defaults, and adamlib copies
    # the defaults into the loaded groups: the one key a resumed optimizer gains.
    strip = lambda gs: [{k: v for k, v in g.items() if k != "differentiable"} for g in gs]  # noqa: E731
    assert strip(sd1["param_groups"]) == strip(sd2["param_groups"])


def test_state_dict_is_deterministic_and_independent():
    """torch's test_state_dict_deterministic: a loaded copy steps like the original."""
    case = CASE_BY_ID["adam_amsgrad"]
    params = make_params()
    opt = case.make(params)
    run(opt, params, FIRST)
    clone = [p.detach().clone().requires_grad_() for p in params]
    opt2 = case.make(clone)
    # like torch.optim, load_state_dict keeps the given tensors (no copy): deepcopy, as torch's test does
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    before = {k: v.clone() for k, v in opt2.state[clone[0]].items()}
    run(opt, params, SECOND, start=FIRST + 1)
    for k, v in before.items():
        assert torch.equal(opt2.state[clone[0]][k], v)
    run(opt2, clone, SECOND, start=FIRST + 1)
    _exact(params, opt, clone, opt2)


@pytest.mark.parametrize("case", INTEROP, ids=lambda c: c.id)
def test_adamlib_checkpoint_continues_in_torch(case):
    params = make_params()
    opt = case.make(params, foreach=False)
    run(opt, params, FIRST, sign=case.grad_sign)
    ckpt = _checkpoint(params, opt)
    run(opt, params, SECOND, start=FIRST + 1, sign=case.grad_sign)

    pt, ot = _restore(ckpt, lambda ps: case.make_torch(ps))
    run(ot, pt, SECOND, start=FIRST + 1, sign=case.grad_sign)
    compare(params, opt, pt, ot, **TOL[torch.float64], what=f"{case.id} adamlib->torch")


@pytest.mark.parametrize("foreach", [False, True], ids=["per_tensor", "foreach"])
@pytest.mark.parametrize("case", INTEROP, ids=lambda c: c.id)
def test_torch_checkpoint_continues_in_adamlib(case, foreach):
    pt = make_params()
    ot = case.make_torch(pt)
    run(ot, pt, FIRST, sign=case.grad_sign)
    ckpt = _checkpoint(pt, ot)
    run(ot, pt, SECOND, start=FIRST + 1, sign=case.grad_sign)

    pa, oa = _restore(ckpt, lambda ps: case.make(ps, foreach=foreach))
    run(oa, pa, SECOND, start=FIRST + 1, sign=case.grad_sign)
    compare(pa, oa, pt, ot, **TOL[torch.float64], what=f"{case.id} torch->adamlib")
    # adamlib's own keys are back after loading a torch checkpoint
    for key in case.make(make_params()).defaults:
        assert key in oa.param_groups[0], key


def _torch_required_group_keys(case, sd) -> set:
    """Group keys torch.optim cannot do without: those its __setstate__ does not fill in."""
    required = set()
    for key in sd["param_groups"][0]:
        if key == "params":
            continue
        trimmed = copy.deepcopy(sd)
        for g in trimmed["param_groups"]:
            g.pop(key)
        opt = case.make_torch(make_params())
        try:
            opt.load_state_dict(trimmed)
        except (KeyError, ValueError):
            required.add(key)
            continue
        if key not in opt.param_groups[0]:
            required.add(key)
    return required


@pytest.mark.parametrize("case", INTEROP, ids=lambda c: c.id)
def test_layout_matches_torch(case):
    pa, pt = make_params(), make_params()
    oa, ot = case.make(pa, foreach=False), case.make_torch(pt)
    run(oa, pa, FIRST, sign=case.grad_sign)
    run(ot, pt, FIRST, sign=case.grad_sign)
    sa, st = oa.state_dict(), ot.state_dict()
    assert set(sa) == set(st) == {"state", "param_groups"}
    assert sorted(sa["state"]) == sorted(st["state"]) == list(range(len(PARAM_NAMES)))
    for i in st["state"]:
        assert sorted(sa["state"][i]) == sorted(st["state"][i]), i
        for k, vt in st["state"][i].items():
            va = sa["state"][i][k]
            assert type(va) is type(vt)
            assert va.shape == vt.shape and va.dtype == vt.dtype and va.device == vt.device, (i, k)
            torch.testing.assert_close(va, vt, **TOL[torch.float64])
    assert len(sa["param_groups"]) == len(st["param_groups"])
    ga, gt = sa["param_groups"][0], st["param_groups"][0]
    assert ga["params"] == gt["params"] == list(range(len(PARAM_NAMES)))
    required = _torch_required_group_keys(case, st)
    missing = required - set(ga)
    assert not missing, f"adamlib's state_dict lacks torch's group keys {missing}"
    for key in set(ga) & set(gt) - {"params", "foreach"}:
        assert ga[key] == gt[key] or (isinstance(gt[key], tuple) and tuple(ga[key]) == gt[key]), key


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_old_checkpoint_still_loads(case):
    """A Python-number ``step`` and no flags at their default value (an older writer)."""
    params = make_params()
    opt = case.make(params, foreach=False)
    run(opt, params, FIRST, sign=case.grad_sign)
    ckpt = _checkpoint(params, opt)
    run(opt, params, SECOND, start=FIRST + 1, sign=case.grad_sign)

    old = copy.deepcopy(ckpt)
    defaults = case.make(make_params()).defaults
    for group in old["optim"]["param_groups"]:
        for key in list(group):
            if key != "params" and isinstance(defaults.get(key, 0), (bool, type(None))) \
                    and group[key] == defaults.get(key, "absent"):
                del group[key]
    for state in old["optim"]["state"].values():
        if "step" in state:
            state["step"] = int(state["step"].item())
    p2, o2 = _restore(old, lambda ps: case.make(ps))
    for s in o2.state.values():
        if "step" in s:
            assert torch.is_tensor(s["step"]) and s["step"].dtype == torch.float32
    run(o2, p2, SECOND, start=FIRST + 1, sign=case.grad_sign)
    _exact(params, opt, p2, o2)


def test_state_is_cast_to_the_param_dtype_on_load():
    case = CASE_BY_ID["adam_amsgrad"]
    params = make_params(torch.float64)
    opt = case.make(params)
    run(opt, params, FIRST)
    p32 = make_params(torch.float32)
    o32 = case.make(p32)
    o32.load_state_dict(opt.state_dict())
    for p in p32:
        s = o32.state[p]
        assert s["exp_avg"].dtype == s["max_exp_avg_sq"].dtype == torch.float32
        assert s["step"].dtype == torch.float32 and s["step"].device.type == "cpu"
    run(o32, p32, SECOND, start=FIRST + 1)  # and it steps
