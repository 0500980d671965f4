"""Behaviour every adamlib optimizer shares (torch's TestOptimRenewed properties)."""
from __future__ import annotations

import copy

import pytest
import torch

import adamlib
from optim_cases import CASES, CLASS_CASES, CLASS_NAMES, SENSIBLE_LR, TOL, compare, make_params, run

PATHS = [pytest.param(False, id="per_tensor"), pytest.param(True, id="foreach")]
WD = [pytest.param(0.0, id="wd0"), pytest.param(1e-2, id="wd")]


def _opt(name, params, **kw):
    return getattr(adamlib, name)(params, **kw)


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("wd", WD)
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_maximize_is_negated_grads(name, wd, foreach):
    pa, pb = make_params(), make_params()
    oa = _opt(name, pa, maximize=True, weight_decay=wd, foreach=foreach)
    ob = _opt(name, pb, maximize=False, weight_decay=wd, foreach=foreach)
    run(oa, pa, 50, sign=-1.0)  # maximize f with grads -g  ==  minimize with g
    run(ob, pb, 50, sign=1.0)
    compare(pa, oa, pb, ob, rtol=1e-15, atol=0)


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_zero_grad_without_weight_decay_leaves_params_unchanged(name, foreach):
    params = make_params()
    before = [p.detach().clone() for p in params]
    opt = _opt(name, params, weight_decay=0.0, foreach=foreach)
    for _ in range(5):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    assert len(opt.state) == len(params) or name == "SGD"


def _wx_b(contiguous=True, dtype=torch.float64):
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(10, 5, generator=gen, dtype=dtype)
    if not contiguous:
        w = torch.randn(5, 10, generator=gen, dtype=dtype).t()  # a transposed view: strides (1, 10)
        assert not w.is_contiguous()
    b = torch.randn(10, generator=gen, dtype=dtype)
    x = torch.randn(5, generator=gen, dtype=dtype)
    return w.requires_grad_(), b.requires_grad_(), x


@pytest.mark.parametrize("maximize", [False, True], ids=["minimize", "maximize"])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "noncontiguous"])
@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_loss_goes_the_right_direction(name, foreach, contiguous, maximize):
    w, b, x = _wx_b(contiguous)
    opt = _opt(name, [w, b], lr=SENSIBLE_LR[name], maximize=maximize, foreach=foreach)

    def closure():
        opt.zero_grad()
        loss = (w @ x + b).pow(2).sum()
        loss.backward()
        return loss

    initial = closure().item()
    for _ in range(20):
        opt.step(closure)
    final = closure().item()
    if maximize:
        assert final > initial
    else:
        assert final < 0.9 * initial, (initial, final)
    assert w.is_contiguous() == contiguous  # the step did not replace the param's storage


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("case", [CLASS_CASES[n] for n in CLASS_NAMES], ids=lambda c: c.name)
def test_noncontiguous_param_steps_like_a_contiguous_one(case, foreach):
    def params(contiguous):
        w, b, _ = _wx_b(contiguous)
        return [w, b]
    pa, pb = params(False), params(True)
    pb = [pa[0].detach().contiguous().requires_grad_(), pa[1].detach().clone().requires_grad_()]
    oa, ob = case.make(pa, foreach=foreach), case.make(pb, foreach=foreach)
    gen = torch.Generator().manual_seed(4)
    for _ in range(30):
        for p, q in zip(pa, pb):
            g = torch.randn(q.shape, generator=gen, dtype=q.dtype)
            p.grad, q.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    compare(pa, oa, pb, ob, rtol=0, atol=0)


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("case", [CLASS_CASES[n] for n in CLASS_NAMES], ids=lambda c: c.name)
def test_empty_param(case, foreach):
    names = ("weight", "bias")
    pa = make_params(names=names)
    empty = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    pb = make_params(names=names)
    oa = case.make(pa + [empty], foreach=foreach)
    ob = case.make(pb, foreach=foreach)
    for t in range(1, 21):
        empty.grad = torch.zeros_like(empty)
        run(oa, pa, 1, names=names, start=t, schedule=False)  # sets grads for pa, steps oa (with empty)
        run(ob, pb, 1, names=names, start=t, schedule=False)
    compare(pa, oa, pb, ob, rtol=0, atol=0)
    assert empty.shape == (0, 3)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_foreach_none_on_cpu_is_one_of_the_explicit_paths(case):
    runs = {}
    for foreach in (None, False, True):
        params = make_params()
        opt = case.make(params, foreach=foreach)
        assert opt.param_groups[0]["foreach"] is foreach
        run(opt, params, 30, sign=case.grad_sign)
        runs[foreach] = (params, opt)

    def same(a, b):
        try:
            compare(*runs[a], *runs[b], rtol=0, atol=0)
            return True
        except AssertionError:
            return False
    assert same(None, False) or same(None, True)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_per_group_overrides(name):
    params = make_params()
    frozen, moving = params[:2], params[2:]
    before = [p.detach().clone() for p in frozen]
    opt = _opt(name, [{"params": frozen, "lr": 1e-28}, {"params": moving, "weight_decay": 0.5}])
    assert opt.param_groups[0]["weight_decay"] == opt.defaults["weight_decay"]
    assert opt.param_groups[1]["weight_decay"] == 0.5
    run(opt, params, 20, schedule=False)
    for p, b in zip(frozen, before):  # lr 1e-28: no visible change
        torch.testing.assert_close(p, b, rtol=1e-20, atol=1e-20)
    # the weight_decay override acts: compare with the same group at weight_decay = 0
    ref = make_params()
    ref_opt = _opt(name, [{"params": ref[:2], "lr": 1e-28}, {"params": ref[2:]}])
    run(ref_opt, ref, 20, schedule=False)
    assert not torch.equal(params[3], ref[3])


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("case", [CLASS_CASES[n] for n in CLASS_NAMES], ids=lambda c: c.name)
def test_add_param_group(case, foreach):
    pa, pt = make_params(), make_params()
    oa = case.make(pa[:2], foreach=foreach)
    ot = case.make_torch(pt[:2])
    run(oa, pa[:2], 5, names=("weight", "bias"), schedule=False)
    run(ot, pt[:2], 5, names=("weight", "bias"), schedule=False)
    oa.add_param_group({"params": pa[2:], "lr": 5e-3})
    ot.add_param_group({"params": pt[2:], "lr": case.torch_lr(5e-3)})
    group = oa.param_groups[1]
    for key, value in oa.defaults.items():
        if key != "lr":
            assert group[key] == value, key
    assert group["lr"] == 5e-3
    run(oa, pa, 20, start=6, schedule=False)
    run(ot, pt, 20, start=6, schedule=False)
    compare(pa, oa, pt, ot, **TOL[torch.float64], state_map=case.state_map, case=case)
    with pytest.raises(ValueError, match="more than one"):
        oa.add_param_group({"params": [pa[0]]})


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_step_hooks_fire_in_order(name):
    params = make_params()
    opt = _opt(name, params)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o)))
    h2 = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))
    run(opt, params, 2, schedule=False)
    assert calls == [("pre", opt), ("post", opt)] * 2
    h1.remove()
    h2.remove()
    run(opt, params, 1, start=3, schedule=False)
    assert len(calls) == 4


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_repr(name):
    opt = _opt(name, make_params())
    text = repr(opt)
    assert text.startswith(name) and "lr:" in text and "Parameter Group 0" in text


@pytest.mark.parametrize("case", [CLASS_CASES[n] for n in CLASS_NAMES], ids=lambda c: c.name)
def test_deepcopy(case):
    params = make_params()
    opt = case.make(params)
    run(opt, params, 10)
    params2, opt2 = copy.deepcopy((params, opt))
    # torch's Optimizer.__setstate__ (run by deepcopy) adds 'differentiable' to the defaults
    assert {k: v for k, v in opt2.defaults.items() if k != "differentiable"} == opt.defaults
    assert opt2.param_groups[0]["params"][0] is params2[0]
    run(opt, params, 10, start=11)
    run(opt2, params2, 10, start=11)
    compare(params, opt, params2, opt2, rtol=0, atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_adam_l2_and_adamw_differ_and_agree_at_zero_decay(foreach):
    def go(cls, **kw):
        params = make_params()
        opt = cls(params, foreach=foreach, **kw)
        run(opt, params, 50)
        return params, opt
    l2, dec = go(adamlib.Adam, weight_decay=0.1), go(adamlib.AdamW, weight_decay=0.1)
    assert (l2[0][0] - dec[0][0]).abs().max() > 1e-4
    plain, w0 = go(adamlib.Adam), go(adamlib.AdamW, weight_decay=0.0)
    compare(*plain, *w0, rtol=0, atol=0)
    assert adamlib.AdamW(make_params()).defaults["weight_decay"] == 1e-2
    assert adamlib.AdamW(make_params()).defaults["decoupled_weight_decay"] is True


def test_constructor_defaults_are_the_design_table():
    p = make_params()
    d = lambda cls: {k: v for k, v in getattr(adamlib, cls)(p).defaults.items()  # noqa: E731
                     if k not in ("differentiable",)}
    assert d("SGD") == dict(lr=1e-3, momentum=0, dampening=0, nesterov=False, weight_decay=0, maximize=False,
                            foreach=None, fused=None)
    assert d("Momentum") == dict(lr=1e-2, beta=0.9, bias_correction=True, weight_decay=0, maximize=False,
                                 foreach=None, fused=None)
    assert d("Adagrad") == dict(lr=1e-2, lr_decay=0, eps=1e-10, initial_accumulator_value=0, weight_decay=0,
                                maximize=False, foreach=None, fused=None)
    assert d("RMSProp") == dict(lr=1e-2, beta=0.99, eps=1e-8, bias_correction=False, eps_inside_sqrt=False,
                                weight_decay=0, maximize=False, centered=False, momentum=0, foreach=None,
                                fused=None, capturable=False)
    adam = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, bias_correction=True,
                decoupled_weight_decay=False, maximize=False, foreach=None, fused=None, capturable=False)
    assert d("Adam") == adam
    assert d("AdamW") == {**adam, "weight_decay": 1e-2, "decoupled_weight_decay": True}
    assert d("AMSGrad") == {**adam, "amsgrad": True}
    assert d("AdaMax") == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False, foreach=None, fused=None,
                               capturable=False)
    for cls in CLASS_NAMES:
        assert issubclass(getattr(adamlib, cls), torch.optim.Optimizer)


def test_named_parameters_are_accepted():
    w, b, _ = _wx_b()
    opt = adamlib.Adam([("w", w), ("b", b)])
    w.grad, b.grad = torch.ones_like(w), torch.ones_like(b)
    opt.step()
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
