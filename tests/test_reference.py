"""adamlib's torch optimizers vs adamlib.reference (the paper's boxes in float64 NumPy), and
the paper's own checks (Sections 2, 2.1, 3, 7.1) as numbers.

The reference and adamlib are fed the same gradient function g_t = s * (z_t + theta_{t-1})
(a noisy quadratic, scales s from 1e-4 to 10), so a difference in theta feeds back.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import adamlib
from adamlib import reference as R

N = 12
STEPS = 200
RTOL = 1e-10
ALPHA = 1e-3


def _problem(n=N, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.logspace(-4, 1, n)
    noise = rng.standard_normal((steps, n))
    theta0 = rng.standard_normal(n)
    return scales, noise, theta0


SCALES, NOISE, THETA0 = _problem()


def noisy_quadratic(theta, t, c=1.0):
    return c * (SCALES * (NOISE[t - 1] + theta))


def run_adamlib(make_opt, grad=noisy_quadratic, theta0=THETA0, steps=STEPS, foreach=False):
    """Steps an adamlib optimizer with ``grad(theta, t)`` (NumPy in, NumPy out), float64.

    Returns (theta trajectory of shape (steps + 1, n), the optimizer, the param).
    """
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    opt = make_opt([p], foreach=foreach)
    thetas = [p.detach().numpy().copy()]
    for t in range(1, steps + 1):
        p.grad = torch.as_tensor(np.asarray(grad(p.detach().numpy().copy(), t), dtype=np.float64))
        opt.step()
        thetas.append(p.detach().numpy().copy())
    return np.stack(thetas), opt, p


def assert_traj(actual, expected, rtol=RTOL, atol=1e-14):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


PATHS = [pytest.param(False, id="per_tensor"), pytest.param(True, id="foreach")]


# ---------------------------------------------------------------------------------------
# adamlib == reference, 200 steps, float64


@pytest.mark.parametrize("foreach", PATHS)
def test_adam_is_algorithm_1(foreach):
    ref = R.adam(noisy_quadratic, THETA0, STEPS)
    theta, opt, p = run_adamlib(adamlib.Adam, foreach=foreach)
    assert_traj(theta, ref.theta)
    assert np.abs(theta[-1] - theta[0]).min() > 1e-3  # every coordinate moved
    state = opt.state[p]
    assert float(state["step"]) == STEPS
    assert_traj(state["exp_avg"].numpy(), ref.m[-1])
    assert_traj(state["exp_avg_sq"].numpy(), ref.v[-1], atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_adam_without_bias_correction_is_the_ablation(foreach):
    ref = R.adam(noisy_quadratic, THETA0, STEPS, bias_correction=False)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.Adam(ps, bias_correction=False, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    with_bc = R.adam(noisy_quadratic, THETA0, STEPS)
    assert np.abs(ref.theta - with_bc.theta).max() > 1e-3  # the switch is real


@pytest.mark.parametrize("foreach", PATHS)
def test_adamax_eps0_is_algorithm_2(foreach):
    ref = R.adamax(noisy_quadratic, THETA0, STEPS, eps=0.0)
    theta, opt, p = run_adamlib(lambda ps, **k: adamlib.AdaMax(ps, eps=0.0, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    assert_traj(opt.state[p]["exp_inf"].numpy(), ref.u[-1], atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_adamax_default_puts_eps_inside_the_max(foreach):
    # a gradient that is exactly zero in one coordinate at the start: eps decides the step there
    grad = lambda th, t: noisy_quadratic(th, t) * (np.arange(N) != 0 if t < 20 else 1.0)  # noqa: E731
    ref = R.adamax(grad, THETA0, STEPS, eps=1e-8)
    theta, _, _ = run_adamlib(adamlib.AdaMax, grad=grad, foreach=foreach)
    assert_traj(theta, ref.theta)


@pytest.mark.parametrize("foreach", PATHS)
def test_amsgrad_is_the_torch_variant(foreach):
    ref = R.amsgrad(noisy_quadratic, THETA0, STEPS, variant="torch")
    theta, opt, p = run_adamlib(adamlib.AMSGrad, foreach=foreach)
    assert_traj(theta, ref.theta)
    assert_traj(opt.state[p]["max_exp_avg_sq"].numpy(), ref.v_max[-1], atol=0)


def _shrinking(theta, t):
    # gradients that shrink over time, so that v falls and the max matters
    return SCALES * (NOISE[t - 1] + theta) * 10.0 * 0.97**t


def test_the_three_amsgrads_differ():
    variants = {v: R.amsgrad(_shrinking, THETA0, STEPS, variant=v) for v in ("reddi", "torch", "v_hat")}
    for a, b in (("reddi", "torch"), ("torch", "v_hat"), ("reddi", "v_hat")):
        diff = np.abs(variants[a].theta[-1] - variants[b].theta[-1]).max()
        assert diff > 1e-2, (a, b, diff)  # measured: reddi-torch 0.20, reddi-v_hat 0.22, torch-v_hat 0.021
    theta, _, _ = run_adamlib(adamlib.AMSGrad, grad=_shrinking)
    assert_traj(theta, variants["torch"].theta)
    # ... and torch's AMSGrad is not plain Adam on this stream
    assert np.abs(theta[-1] - R.adam(_shrinking, THETA0, STEPS).theta[-1]).max() > 1e-5  # measured 1.6e-4


@pytest.mark.parametrize("foreach", PATHS)
def test_amsgrad_max_never_decreases(foreach):
    seen = []

    def grad(theta, t):
        if t > 1:
            seen.append(opt_state["max_exp_avg_sq"].clone())
        return _shrinking(theta, t)

    p = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = adamlib.AMSGrad([p], foreach=foreach)
    for t in range(1, 101):
        p.grad = torch.as_tensor(_shrinking(p.detach().numpy().copy(), t))
        opt.step()
        opt_state = opt.state[p]
        seen.append(opt_state["max_exp_avg_sq"].clone())
        assert torch.equal(opt_state["max_exp_avg_sq"], torch.maximum(seen[-1], opt_state["exp_avg_sq"]))
    stack = torch.stack(seen)
    assert (stack[1:] >= stack[:-1]).all()
    assert (opt_state["exp_avg_sq"] < opt_state["max_exp_avg_sq"]).any()  # the max is doing something


@pytest.mark.parametrize("foreach", PATHS)
def test_rmsprop_slide_variant(foreach):
    ref = R.rmsprop(noisy_quadratic, THETA0, STEPS)  # the talk's slide: bias correction, eps in the sqrt
    theta, opt, p = run_adamlib(
        lambda ps, **k: adamlib.RMSProp(ps, bias_correction=True, eps_inside_sqrt=True, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    assert_traj(opt.state[p]["square_avg"].numpy(), ref.v[-1], atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_rmsprop_default_is_torch_form(foreach):
    ref = R.rmsprop(noisy_quadratic, THETA0, STEPS, bias_correction=False, eps_inside_sqrt=False)
    theta, _, _ = run_adamlib(adamlib.RMSProp, foreach=foreach)
    assert_traj(theta, ref.theta)
    slide = R.rmsprop(noisy_quadratic, THETA0, STEPS)
    assert np.abs(slide.theta - ref.theta).max() > 1e-3  # the two conventions are far apart


RMSPROP_VARIANTS = [
    pytest.param(dict(centered=True, bias_correction=False, eps_inside_sqrt=False), id="centered"),
    pytest.param(dict(momentum=0.9, bias_correction=False, eps_inside_sqrt=False), id="momentum"),
    pytest.param(dict(centered=True, momentum=0.5, beta=0.9, bias_correction=False, eps_inside_sqrt=True),
                 id="centered_momentum_eps_inside"),
    pytest.param(dict(momentum=0.5, bias_correction=True, eps_inside_sqrt=True), id="momentum_slide"),
]


@pytest.mark.parametrize("kwargs", RMSPROP_VARIANTS)
@pytest.mark.parametrize("foreach", PATHS)
def test_rmsprop_centered_and_momentum(foreach, kwargs):
    ref = R.rmsprop(noisy_quadratic, THETA0, STEPS, **kwargs)
    theta, opt, p = run_adamlib(lambda ps, **k: adamlib.RMSProp(ps, **kwargs, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    state = opt.state[p]
    if kwargs.get("centered"):
        assert_traj(state["grad_avg"].numpy(), ref.m[-1])
    if kwargs.get("momentum"):
        assert_traj(state["momentum_buffer"].numpy(), ref.b[-1])
    plain = R.rmsprop(noisy_quadratic, THETA0, STEPS, **{**kwargs, "centered": False, "momentum": 0.0})
    assert np.abs(plain.theta - ref.theta).max() > 1e-4  # the options do change the run


def test_graves_box_is_centered_rmsprop_with_momentum():
    """Graves (2013) eqs. 38-41, in his notation, is adamlib's RMSProp with his four numbers."""
    graves = R.rmsprop_graves(noisy_quadratic, THETA0, STEPS)
    ours = R.rmsprop(noisy_quadratic, THETA0, STEPS, alpha=1e-4, beta=0.95, eps=1e-4, bias_correction=False,
                     eps_inside_sqrt=True, centered=True, momentum=0.9)
    assert_traj(ours.theta, graves.theta)
    assert_traj(-1e-4 * ours.b, graves.Delta)  # Delta_t = -gimel b_t
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.RMSProp(
        ps, lr=1e-4, beta=0.95, eps=1e-4, eps_inside_sqrt=True, centered=True, momentum=0.9, **k))
    assert_traj(theta, graves.theta)


@pytest.mark.parametrize("foreach", PATHS)
def test_adagrad_lr_decay(foreach):
    ref = R.adagrad(noisy_quadratic, THETA0, STEPS, alpha=0.1, lr_decay=0.5)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.Adagrad(ps, lr=0.1, lr_decay=0.5, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    schedule = R.adagrad(noisy_quadratic, THETA0, STEPS, alpha=lambda t: 0.1 / (1 + (t - 1) * 0.5))
    assert_traj(schedule.theta, ref.theta)  # lr_decay is the schedule alpha_t = alpha / (1 + (t - 1) d)


@pytest.mark.parametrize("bias_correction", [True, False], ids=["bias_corrected", "raw"])
@pytest.mark.parametrize("foreach", PATHS)
def test_momentum(foreach, bias_correction):
    ref = R.momentum(noisy_quadratic, THETA0, STEPS, bias_correction=bias_correction)
    theta, opt, p = run_adamlib(
        lambda ps, **k: adamlib.Momentum(ps, bias_correction=bias_correction, **k), foreach=foreach)
    assert_traj(theta, ref.theta)
    assert_traj(opt.state[p]["exp_avg"].numpy(), ref.m[-1])


def test_bias_corrected_momentum_is_not_torch_sgd():
    ref = R.momentum(noisy_quadratic, THETA0, STEPS)
    p = torch.tensor(THETA0, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1e-2 * (1 - 0.9), momentum=0.9)
    for t in range(1, STEPS + 1):
        p.grad = torch.as_tensor(noisy_quadratic(p.detach().numpy().copy(), t))
        opt.step()
    assert np.abs(p.detach().numpy() - ref.theta[-1]).max() > 1e-3


@pytest.mark.parametrize("foreach", PATHS)
def test_adagrad(foreach):
    ref = R.adagrad(noisy_quadratic, THETA0, STEPS)
    theta, opt, p = run_adamlib(adamlib.Adagrad, foreach=foreach)
    assert_traj(theta, ref.theta)
    assert_traj(opt.state[p]["sum"].numpy(), ref.G[-1], atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_sgd_is_gradient_descent(foreach):
    ref = R.gradient_descent(noisy_quadratic, THETA0, STEPS, alpha=1e-2)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.SGD(ps, lr=1e-2, **k), foreach=foreach)
    assert_traj(theta, ref.theta)


def test_alpha_schedule_matches_a_lambda_lr_scheduler():
    """alpha_t = alpha / sqrt(t) (Theorem 4.1) in the reference == LambdaLR in adamlib."""
    ref = R.adam(noisy_quadratic, THETA0, STEPS, alpha=lambda t: ALPHA / math.sqrt(t))
    p = torch.tensor(THETA0, requires_grad=True)
    opt = adamlib.Adam([p], lr=ALPHA)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1 / math.sqrt(epoch + 1))
    for t in range(1, STEPS + 1):
        p.grad = torch.as_tensor(noisy_quadratic(p.detach().numpy().copy(), t))
        opt.step()
        sched.step()
    assert_traj(p.detach().numpy(), ref.theta[-1], rtol=1e-9)


def test_reference_callable_beta1_equals_constant():
    const = R.adam(noisy_quadratic, THETA0, 50)
    called = R.adam(noisy_quadratic, THETA0, 50, beta1=lambda t: 0.9)
    np.testing.assert_array_equal(called.theta, const.theta)
    decayed = R.adam(noisy_quadratic, THETA0, 50, beta1=lambda t: 0.9 * 0.99 ** (t - 1))
    assert np.abs(decayed.theta - const.theta).max() > 1e-6


def test_reference_bounds_project():
    tr = R.gradient_descent(lambda th, t: -np.ones_like(th), np.zeros(3), 50, alpha=0.1, bounds=(-1, 1))
    assert tr.theta.max() == 1.0 and tr.theta[-1].tolist() == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------------------
# Section 2 / 2.1 / 3: the paper's checks as numbers


POW2 = np.array([s * 2.0**k for k, s in zip(range(-20, 8), [1, -1] * 14)])


@pytest.mark.parametrize("foreach", PATHS)
def test_first_adam_step_is_exactly_alpha_sign_g(foreach):
    """eps = 0: m_hat_1 = g, v_hat_1 = g^2, so theta_1 = theta_0 - alpha sign(g).

    Bitwise for gradients whose products are exact (powers of two, 2^-20 ... 2^7); for any
    other g the float64 rounding of (1 - beta1) g / (1 - beta1) leaves up to 2 ulp of alpha.
    """
    theta0 = np.random.default_rng(1).standard_normal(POW2.shape)
    ref = R.adam(POW2[None], theta0, 1, eps=0.0)
    np.testing.assert_array_equal(ref.theta[1], theta0 - ALPHA * np.sign(POW2))
    np.testing.assert_array_equal(ref.m_hat[0], POW2)
    np.testing.assert_array_equal(ref.v_hat[0], POW2**2)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.Adam(ps, eps=0.0, **k), grad=lambda th, t: POW2, theta0=theta0, steps=1, foreach=foreach)
    np.testing.assert_array_equal(theta[1], theta0 - ALPHA * np.sign(POW2))
    np.testing.assert_array_equal(theta[1], ref.theta[1])

    g = np.random.default_rng(2).standard_normal(1000) * np.logspace(-4, 1, 1000)
    ref = R.adam(g[None], np.zeros_like(g), 1, eps=0.0)
    np.testing.assert_allclose(ref.delta[0], -ALPHA * np.sign(g), rtol=4.5e-16, atol=0)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.Adam(ps, eps=0.0, **k), grad=lambda th, t: g,
                              theta0=np.zeros_like(g), steps=1, foreach=foreach)
    np.testing.assert_allclose(theta[1], -ALPHA * np.sign(g), rtol=4.5e-16, atol=0)


@pytest.mark.parametrize("foreach", PATHS)
def test_constant_gradient_keeps_m_hat_equal_to_g(foreach):
    g = np.array([1e-4, -3e-2, 0.5, -7.0, 10.0])
    ref = R.adam(lambda th, t: g, np.zeros(5), 100, eps=0.0)
    np.testing.assert_allclose(ref.m_hat, np.broadcast_to(g, ref.m_hat.shape), rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.sqrt(ref.v_hat), np.broadcast_to(np.abs(g), ref.v_hat.shape), rtol=1e-13)
    # |Delta_t| / alpha = 1.0000 at every step
    assert np.all(np.round(np.abs(ref.delta) / ALPHA, 4) == 1.0)

    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = adamlib.Adam([p], eps=0.0, foreach=foreach)
    for t in range(1, 101):
        before = p.detach().clone()
        p.grad = torch.as_tensor(g)
        opt.step()
        s = opt.state[p]
        m_hat = s["exp_avg"] / (1 - 0.9 ** float(s["step"]))
        torch.testing.assert_close(m_hat, torch.as_tensor(g), rtol=1e-13, atol=0)
        torch.testing.assert_close((p.detach() - before).abs() / ALPHA, torch.ones(5, dtype=torch.float64),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("c", [1e-3, 1e3], ids=["c=1e-3", "c=1e3"])
def test_scale_invariance_with_eps_0(c):
    base = R.adam(noisy_quadratic, THETA0, STEPS, eps=0.0)
    scaled = R.adam(lambda th, t: noisy_quadratic(th, t, c), THETA0, STEPS, eps=0.0)
    np.testing.assert_allclose(scaled.theta, base.theta, rtol=1e-12, atol=0)
    theta_1, _, _ = run_adamlib(lambda ps, **k: adamlib.Adam(ps, eps=0.0, **k))
    theta_c, _, _ = run_adamlib(lambda ps, **k: adamlib.Adam(ps, eps=0.0, **k),
                                grad=lambda th, t: noisy_quadratic(th, t, c))
    np.testing.assert_allclose(theta_c, theta_1, rtol=1e-12, atol=0)
    np.testing.assert_allclose(theta_1, base.theta, rtol=RTOL)
    # with the default eps the invariance is broken where eps is not small against |g|
    eps_run = R.adam(lambda th, t: noisy_quadratic(th, t, 1e-3), THETA0, STEPS)
    assert np.abs(eps_run.theta - base.theta).max() > 1e-6


# zeros before the single nonzero gradient: eps = 1e-300 keeps 0/0 from being NaN and is
# negligible against sqrt(v_hat) once the gradient arrives.
TINY = 1e-300

SPARSE_TABLE = {1: 1.0000, 10: 0.4844, 100: 0.9758, 1000: 2.5146}


def _sparse_ratio(T, beta1=0.9, beta2=0.999):
    return (1 - beta1) / math.sqrt(1 - beta2) * math.sqrt(1 - beta2**T) / (1 - beta1**T)


@pytest.mark.parametrize("T", SPARSE_TABLE)
def test_section_2_1_single_nonzero_gradient_reference(T):
    grads = np.zeros((T, 1))
    grads[-1] = 0.37
    tr = R.adam(grads, np.zeros(1), T, eps=TINY)
    ratio = abs(tr.delta[-1, 0]) / ALPHA
    assert round(ratio, 4) == SPARSE_TABLE[T]
    assert ratio == pytest.approx(_sparse_ratio(T), rel=1e-12)
    np.testing.assert_array_equal(tr.delta[:-1], 0.0)


@pytest.mark.parametrize("foreach", PATHS)
def test_section_2_1_single_nonzero_gradient_adamlib(foreach):
    Ts = list(SPARSE_TABLE)
    p = torch.zeros(len(Ts), dtype=torch.float64, requires_grad=True)
    opt = adamlib.Adam([p], eps=TINY, foreach=foreach)
    ratios = {}
    for t in range(1, max(Ts) + 1):
        before = p.detach().clone()
        after = p.detach()
        p.grad = torch.tensor([-2.5 if t == T else 0.0 for T in Ts], dtype=torch.float64)
        opt.step()
        for k, T in enumerate(Ts):
            if t == T:
                ratios[T] = abs(float(after[k] - before[k])) / ALPHA
    assert {T: round(r, 4) for T, r in ratios.items()} == SPARSE_TABLE
    assert ratios[1000] > 1.0  # the "first case" bound alpha (1 - beta1)/sqrt(1 - beta2) is the one that applies
    assert ratios[1000] < (1 - 0.9) / math.sqrt(1 - 0.999)


def test_section_2_1_iid_gradients_stay_within_alpha():
    g = np.random.default_rng(0).standard_normal((20000, 1))
    tr = R.adam(g, np.zeros(1), 20000, eps=0.0)
    ratio = np.abs(tr.delta[:, 0]) / ALPHA
    assert ratio.max() <= 1.0 + 1e-12
    assert round(ratio.max(), 4) == 1.0000   # attained at t = 1 (m_hat = g, v_hat = g^2)
    assert ratio[1:].max() < 1.0
    assert np.median(ratio) < 0.5  # and the usual step is well inside the trust region


BOUND_SPARSE = (1 - 0.9) / math.sqrt(1 - 0.999)                             # 3.1623
BOUND_GEOMETRIC = (1 - 0.9) / math.sqrt((1 - 0.999) * (1 - 0.9**2 / 0.999))  # 7.2703


def _geometric_grads(zeros=10_000, growing=300, rate=0.999 / 0.9):
    g = np.zeros((zeros + growing, 1))
    g[zeros:, 0] = rate ** np.arange(growing)
    return g


def test_section_2_1_bound_is_exceeded_by_geometric_growth():
    g = _geometric_grads()
    tr = R.adam(g, np.zeros(1), len(g), eps=TINY)
    peak = (np.abs(tr.delta[:, 0]) / ALPHA).max()
    assert round(BOUND_SPARSE, 4) == 3.1623
    assert round(peak, 2) == 7.27
    assert peak > BOUND_SPARSE
    assert peak == pytest.approx(BOUND_GEOMETRIC, rel=1e-4)
    slower = R.adam(_geometric_grads(rate=1.05), np.zeros(1), len(g), eps=TINY)
    assert round((np.abs(slower.delta[:, 0]) / ALPHA).max(), 2) == 6.98


def test_section_2_1_geometric_growth_in_adamlib():
    g = _geometric_grads()
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = adamlib.Adam([p], eps=TINY)
    peak = 0.0
    for row in g:
        before = float(p.detach())
        p.grad = torch.as_tensor(row)
        opt.step()
        peak = max(peak, abs(float(p.detach()) - before) / ALPHA)
    assert round(peak, 2) == 7.27 and peak > BOUND_SPARSE


@pytest.mark.parametrize("foreach", PATHS)
def test_adamax_bound_exceeded_by_gradient_decaying_at_beta2(foreach):
    steps = 2000
    g = 0.999 ** np.arange(1, steps + 1)[:, None]
    tr = R.adamax(g, np.zeros(1), steps, eps=0.0)
    peak = (np.abs(tr.delta[:, 0]) / 2e-3).max()
    assert round(peak, 4) == 1.0091 and peak > 1.0
    assert peak == pytest.approx((1 - 0.9) / (1 - 0.9 / 0.999), rel=1e-9)
    theta, _, _ = run_adamlib(lambda ps, **k: adamlib.AdaMax(ps, eps=0.0, **k), grad=lambda th, t: g[t - 1],
                              theta0=np.zeros(1), steps=steps, foreach=foreach)
    assert round((np.abs(np.diff(theta[:, 0])) / 2e-3).max(), 4) == 1.0091
    # a constant gradient steps exactly alpha; a sparse one alpha (1 - beta1)/(1 - beta1^t)
    const = R.adamax(np.ones((50, 1)), np.zeros(1), 50, eps=0.0)
    np.testing.assert_allclose(np.abs(const.delta[:, 0]) / 2e-3, 1.0, rtol=1e-13)


def test_efficient_form_with_eps_hat_rescaled_is_algorithm_1():
    eps = 1e-4  # large, so that a mismatch would show
    alg1 = R.adam(noisy_quadratic, THETA0, STEPS, eps=eps)
    eff = R.adam_efficient(noisy_quadratic, THETA0, STEPS, eps_hat=lambda t: eps * math.sqrt(1 - 0.999**t))
    np.testing.assert_allclose(eff.theta, alg1.theta, rtol=1e-12, atol=0)


def test_efficient_form_with_eps_0_is_algorithm_1():
    alg1 = R.adam(noisy_quadratic, THETA0, STEPS, eps=0.0)
    eff = R.adam_efficient(noisy_quadratic, THETA0, STEPS, eps_hat=0.0)
    np.testing.assert_allclose(eff.theta, alg1.theta, rtol=1e-12, atol=0)


def test_efficient_form_with_same_eps_differs_by_the_predicted_amount():
    """With eps_hat = eps the efficient form's effective eps is eps / sqrt(1 - beta2^t).

    Fed the same gradients (so m and v are the same), each step differs by
    alpha_t |m| eps (1 - sqrt(b2_t)) / ((sqrt(v) + eps sqrt(b2_t)) (sqrt(v) + eps)), b2_t = 1 - beta2^t.
    """
    eps = 1e-8
    grads = SCALES * NOISE  # precomputed: theta does not feed back, m and v agree exactly
    alg1 = R.adam(grads, THETA0, STEPS, eps=eps)
    eff = R.adam_efficient(grads, THETA0, STEPS, eps_hat=eps)
    np.testing.assert_array_equal(eff.m, alg1.m)
    t = np.arange(1, STEPS + 1)[:, None]
    b1_t, b2_t = 1 - 0.9**t, 1 - 0.999**t
    alpha_t = ALPHA * np.sqrt(b2_t) / b1_t
    sv = np.sqrt(alg1.v)
    predicted = alpha_t * np.abs(alg1.m) * eps * (1 - np.sqrt(b2_t)) / ((sv + eps * np.sqrt(b2_t)) * (sv + eps))
    measured = np.abs(eff.delta - alg1.delta)
    # delta = theta_t - theta_{t-1} carries ~ulp(theta) = 2e-16 of rounding each: hence atol
    np.testing.assert_allclose(measured, predicted, rtol=1e-3, atol=1e-15)
    big = predicted > 1e-13
    assert big.sum() > 100
    np.testing.assert_allclose(measured[big], predicted[big], rtol=1e-2)
    assert 1e-6 < predicted.max() < 1e-4  # the order: largest at the first steps, ~alpha eps/|g| ...
    # the efficient form always steps less (its eps is larger) and the gap is real
    assert np.all(np.abs(eff.delta[big]) < np.abs(alg1.delta[big]))
    assert np.abs(eff.theta[-1] - alg1.theta[-1]).max() > 1e-9


@pytest.mark.parametrize("betas, expected", [((0.9, 0.999), 3.1623), ((0.9, 0.9999), 10.0), ((0.0, 0.9999), 100.0)])
def test_first_step_without_bias_correction(betas, expected):
    b1, b2 = betas
    g = np.array([0.3, -4.0, 1e-3])
    tr = R.adam(g[None], np.zeros(3), 1, beta1=b1, beta2=b2, eps=0.0, bias_correction=False)
    ratio = np.abs(tr.delta[0]) / ALPHA
    np.testing.assert_allclose(ratio, (1 - b1) / math.sqrt(1 - b2), rtol=1e-13)
    assert np.all(np.round(ratio, 4) == expected)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = adamlib.Adam([p], betas=betas, eps=0.0, bias_correction=False)
    p.grad = torch.as_tensor(g)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), tr.theta[1], rtol=1e-14, atol=0)
    # with bias correction the same first step is alpha
    with_bc = R.adam(g[None], np.zeros(3), 1, beta1=b1, beta2=b2, eps=0.0)
    np.testing.assert_allclose(np.abs(with_bc.delta[0]) / ALPHA, 1.0, rtol=1e-15)
