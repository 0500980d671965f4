"""adamlib.averaging: the bias-corrected parameter EMA of Section 7.2 and the Polyak average."""
import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from adamlib import Adam
from adamlib import averaging as AV


def _walk(steps=50, shape=(3, 2), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(steps, *shape, generator=gen, dtype=torch.float64).cumsum(0)


def _feed(avg, param, values):
    out = []
    for value in values:
        with torch.no_grad():
            param.copy_(value)
        avg.update()
        out.append(avg.averaged()[0].clone())
    return torch.stack(out)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999])
def test_ema_is_the_bias_corrected_weighted_mean(beta):
    values = _walk()
    p = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    got = _feed(AV.ParameterAverage([p], beta=beta), p, values)
    T = len(values)
    for t in (1, 2, 10, T):
        w = (1 - beta) * beta ** np.arange(t - 1, -1, -1) / (1 - beta**t)
        expected = np.tensordot(w, values[:t].numpy(), axes=1)
        np.testing.assert_allclose(got[t - 1].numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), AV.ema_path(values.numpy(), beta), rtol=1e-12, atol=1e-12)


def test_constant_parameters_average_to_themselves():
    p = torch.full((4,), 2.5, dtype=torch.float64)
    avg = AV.ParameterAverage([p], beta=0.999)
    for _ in range(5):
        avg.update()
        torch.testing.assert_close(avg.averaged()[0], p, rtol=1e-13, atol=0)  # no pull towards 0


def test_polyak_is_the_running_mean_and_tail_average():
    values = _walk()
    p = torch.zeros(3, 2, dtype=torch.float64)
    got = _feed(AV.ParameterAverage([p], kind="polyak"), p, values)
    expected = values.cumsum(0) / torch.arange(1, len(values) + 1).reshape(-1, 1, 1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(AV.polyak_path(values.numpy()), expected.numpy(), rtol=1e-12)
    tail = AV.polyak_path(values.numpy(), start=20)
    np.testing.assert_allclose(tail[:20], values[:20].numpy())
    np.testing.assert_allclose(tail[-1], values[20:].mean(0).numpy(), rtol=1e-12)


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2).double()


def _train(model, steps, averagers, seed=0):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(8, 3, generator=gen, dtype=dtype)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        for a in averagers:
            a.update() if isinstance(a, AV.ParameterAverage) else a.update_parameters(model)


def test_agrees_with_torch_averaged_model_where_they_coincide():
    beta, steps = 0.9, 40
    model = _model()
    ours_ema = AV.ParameterAverage(model.parameters(), beta=beta)
    ours_polyak = AV.ParameterAverage(model.parameters(), kind="polyak")
    swa = AveragedModel(model)                                              # equal weights
    ema_first = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(beta))  # starts at theta_1
    ema_zero = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(beta))
    zero = _model()
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    ema_zero.update_parameters(zero)                                        # theta_bar_0 = 0
    _train(model, steps, [ours_ema, ours_polyak, swa, ema_first, ema_zero])
    for ours, theirs in zip(ours_polyak.averaged(), swa.module.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(ours_ema.averaged(), ema_zero.module.parameters()):
        torch.testing.assert_close(ours, theirs / (1 - beta**steps), rtol=1e-12, atol=1e-12)
    # torch's EMA from theta_1 differs from theta_hat_t, by O(beta^t)
    gap = max((a - b).abs().max().item() for a, b in zip(ours_ema.averaged(), ema_first.module.parameters()))
    assert 0 < gap < 10 * beta**steps


def test_torch_ema_path_is_averaged_model():
    beta, values = 0.99, _walk(30, (4,))
    model = torch.nn.Linear(4, 1, bias=False).double()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(beta))
    got = []
    for v in values:
        with torch.no_grad():
            model.weight.copy_(v)
        ema.update_parameters(model)
        got.append(ema.module.weight.detach()[0].clone())
    np.testing.assert_allclose(torch.stack(got).numpy(), AV.torch_ema_path(values.numpy(), beta),
                               rtol=1e-12, atol=1e-12)


def test_state_dict_resumes_exactly_and_applied_restores():
    values = _walk(20)
    p = torch.zeros(3, 2, dtype=torch.float64)
    full = AV.ParameterAverage([p], beta=0.9)
    _feed(full, p, values)
    first = AV.ParameterAverage([p], beta=0.9)
    _feed(first, p, values[:10])
    state = first.state_dict()
    resumed = AV.ParameterAverage([p], beta=0.9)
    resumed.load_state_dict(state)
    assert resumed.t == 10
    _feed(resumed, p, values[10:])
    torch.testing.assert_close(resumed.averaged()[0], full.averaged()[0], rtol=0, atol=0)
    before = p.clone()
    with full.applied():
        torch.testing.assert_close(p, full.averaged()[0])
    torch.testing.assert_close(p, before)
    target = torch.zeros(3, 2, dtype=torch.float64)
    full.copy_to([target])
    torch.testing.assert_close(target, full.averaged()[0])


def test_float32_param_groups_and_several_tensors():
    model = torch.nn.Linear(3, 2)
    opt = Adam(model.parameters(), lr=0.01)
    avg = AV.ParameterAverage(opt.param_groups, beta=0.99)
    assert len(avg.params) == 2
    _train(model, 5, [avg])
    out = avg.averaged()
    assert [o.dtype for o in out] == [torch.float32, torch.float32]
    assert [o.shape for o in out] == [(2, 3), (2,)]
    assert "ema, beta=0.99" in repr(avg) and "t=5" in repr(avg)


def test_errors():
    p = torch.zeros(2)
    with pytest.raises(ValueError, match="kind"):
        AV.ParameterAverage([p], kind="swa")
    with pytest.raises(ValueError, match="beta"):
        AV.ParameterAverage([p], beta=1.0)
    with pytest.raises(ValueError, match="params"):
        AV.ParameterAverage([])
    with pytest.raises(RuntimeError, match="before any update"):
        AV.ParameterAverage([p]).averaged()
    with pytest.raises(ValueError, match="beta"):
        AV.ParameterAverage([p], beta=0.9).load_state_dict(AV.ParameterAverage([p], beta=0.99).state_dict())
    with pytest.raises(ValueError, match="shapes"):
        AV.ParameterAverage([p]).load_state_dict(AV.ParameterAverage([torch.zeros(3)]).state_dict())


def test_issue_averaged_parameters_beat_the_last_iterate_on_the_noisy_problem():
    torch.set_num_threads(1)
    problem = AV.noisy_regression(seed=0)
    out = AV.train_with_averages(problem, lambda params: Adam(params, lr=1e-2), steps=3000, batch=8,
                                 beta=0.999, seed=0)
    last = problem.excess(torch.as_tensor(out["last"][-1]))
    ema = problem.excess(out["ema"].averaged()[0])
    polyak = problem.excess(out["polyak"].averaged()[0])
    assert ema < last / 3
    assert polyak < last
    # the class and the vectorised path agree
    np.testing.assert_allclose(out["ema"].averaged()[0].numpy(), AV.ema_path(out["last"], 0.999)[-1],
                               rtol=1e-10, atol=1e-12)
    # over the last 500 steps too, not only at the end
    path = torch.as_tensor(AV.ema_path(out["last"][-500:], 0.999))
    assert problem.excess(torch.as_tensor(out["last"][-500:])).mean() > 3 * problem.excess(
        torch.as_tensor(AV.ema_path(out["last"], 0.999)[-500:])).mean()
    assert path.shape == (500, 20)
