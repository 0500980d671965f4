"""adamlib.limitations: Reddi et al.'s counterexamples, limit cycles, non-vanishing learning rates."""
import math

import numpy as np
import pytest
import torch

from adamlib import limitations as L
from adamlib import reference as R

VARIANTS = {"adam": None, "amsgrad_reddi": "reddi", "amsgrad_torch": "torch", "amsgrad_v_hat": "v_hat"}


# ---------------------------------------------------------------------------------------
# online linear problems


def test_projected_cumsum_is_the_clipped_loop():
    d = np.random.default_rng(0).normal(0.0, 0.4, 5000)
    x, expected = L.projected_cumsum(d, x0=0.3), [0.3]
    for step in d:
        expected.append(min(1.0, max(-1.0, expected[-1] + step)))
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-13)
    assert L.projected_cumsum([5.0, -0.5], bounds=(0.0, 2.0)).tolist() == [0.0, 2.0, 1.5]


def test_gradient_sequences():
    g = L.reddi_gradients(7, C=3.0)
    assert g.tolist() == [3.0, -1.0, -1.0, 3.0, -1.0, -1.0, 3.0]
    g = L.synthetic_gradients(303)
    assert g[0] == 1010 and g[101] == 1010 and g[202] == 1010 and g[1:101].tolist() == [-10.0] * 100
    s = L.stochastic_gradients(200_000, seed=0)
    assert set(np.unique(s)) == {-10.0, 1010.0}
    assert s.mean() == pytest.approx(0.2, abs=0.25)          # E[g] = 0.01 * 1010 - 0.99 * 10
    np.testing.assert_array_equal(s, L.stochastic_gradients(200_000, seed=0))


@pytest.mark.parametrize("method", L.ONLINE_METHODS)
@pytest.mark.parametrize("problem", ["reddi", "synthetic"])
def test_run_online_agrees_with_the_reference_boxes(method, problem):
    T = 2000
    if problem == "reddi":
        g, b1, b2, alpha = L.reddi_gradients(T, 3.0), 0.0, 0.1, L.inv_sqrt(0.5 * math.sqrt(0.9))
    else:
        g, b1, b2, alpha = L.synthetic_gradients(T), 0.9, 0.99, L.inv_sqrt(0.5)
    run = L.run_online(g, method, alpha=alpha, beta1=b1, beta2=b2)
    kw = dict(alpha=alpha, beta1=b1, beta2=b2, bounds=(-1.0, 1.0))
    if VARIANTS[method] is None:
        trace = R.adam(g[:, None], np.zeros(1), T, **kw)
    else:
        trace = R.amsgrad(g[:, None], np.zeros(1), T, variant=VARIANTS[method], **kw)
    np.testing.assert_allclose(run.x, trace.theta[:, 0], rtol=0, atol=1e-12)
    # the regret by brute force: losses paid minus the best fixed point's, at every horizon
    paid = np.cumsum(g * trace.theta[:-1, 0])
    best = np.minimum(np.cumsum(g) * -1.0, np.cumsum(g) * 1.0)
    np.testing.assert_allclose(run.regret, paid - best, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(run.average_regret, run.regret / np.arange(1, T + 1))


def test_amsgrad_torch_form_is_torch_adam_amsgrad():
    """The "torch" AMSGrad is torch.optim.Adam(amsgrad=True), projected after every step."""
    T, g = 600, L.synthetic_gradients(600)
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.5, betas=(0.9, 0.99), amsgrad=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))
    xs = [0.0]
    for t in range(T):
        x.grad = torch.tensor([g[t]], dtype=torch.float64)
        opt.step()
        sched.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
        xs.append(float(x.detach()))
    run = L.run_online(g, "amsgrad_torch", alpha=L.inv_sqrt(0.5), beta1=0.9, beta2=0.99)
    np.testing.assert_allclose(run.x, xs, rtol=0, atol=1e-12)


def test_issue_adam_goes_to_the_worst_point_and_amsgrad_to_the_best():
    """1010 / -10 with period 101, alpha_t = 0.5 / sqrt(t), betas (0.9, 0.99), 10^6 steps."""
    g = L.synthetic_gradients(1_000_000)
    ends = {m: L.run_online(g, m, alpha=L.inv_sqrt(0.5), beta1=0.9, beta2=0.99) for m in L.ONLINE_METHODS}
    assert ends["adam"].x[-1] > 0.9
    assert ends["adam"].average_regret[-1] > 0.2              # does not go to 0
    for m in L.ONLINE_METHODS[1:]:
        assert ends[m].x[-1] < -0.5, m
        assert ends[m].average_regret[-1] < 0.05, m


def test_reddi_period_three():
    C, T = 3.0, 100_000
    b2 = 1 / (1 + C**2)
    g = L.reddi_gradients(T, C)
    adam = L.run_online(g, "adam", alpha=L.inv_sqrt(0.5 * math.sqrt(1 - b2)), beta1=0.0, beta2=b2)
    ams = L.run_online(g, "amsgrad_reddi", alpha=L.inv_sqrt(0.5 * math.sqrt(1 - b2)), beta1=0.0, beta2=b2)
    assert adam.x[-3:].max() == 1.0 and adam.x[-3:].min() > 0.99   # the C step pulls it off +1 briefly
    assert adam.average_regret[-1] == pytest.approx(2 * (C - 2) / 3, abs=0.01)
    assert ams.x[-1] < -0.99


def test_reddi_drift_predicts_where_adam_fails():
    assert L.reddi_threshold(3.0) == pytest.approx(0.4723, abs=1e-4)
    assert L.reddi_drift(3.0, 0.1) > 0 > L.reddi_drift(3.0, 0.9)     # Reddi's beta2 = 1/(1 + C^2) fails
    for C, beta2 in [(3.0, 0.3), (3.0, 0.6), (5.0, 0.2), (5.0, 0.3), (20.0, 0.01), (20.0, 0.1)]:
        run = L.run_online(L.reddi_gradients(30_000, C), "adam", alpha=L.inv_sqrt(0.5), beta1=0.0, beta2=beta2)
        assert np.sign(run.x[-1]) == np.sign(L.reddi_drift(C, beta2)), (C, beta2)
        assert abs(run.x[-1]) > 0.99


def test_run_online_validates():
    g = L.reddi_gradients(10)
    with pytest.raises(ValueError, match="method"):
        L.run_online(g, "adamw")
    with pytest.raises(ValueError, match="beta2"):
        L.run_online(g, beta2=1.0)
    with pytest.raises(ValueError, match="C="):
        L.reddi_gradients(10, C=2.0)
    with pytest.raises(ValueError, match="alpha"):
        L.inv_sqrt(-1.0)


# ---------------------------------------------------------------------------------------
# limit cycles


def test_issue_measured_cycle_amplitude_matches_the_formula():
    """A stable setting (beta1 = 0.1, beta2 = 0.99): |x_T| = alpha (1 - beta1) / (2 (1 + beta1)) to 1e-6."""
    alpha, b1 = 0.1, 0.1
    predicted = L.cycle_amplitude(alpha, b1)
    assert predicted == pytest.approx(0.0409090909, abs=1e-10)
    c = np.array([0.01, 1.0, 50.0])
    tail = L.adam_on_quadratic(20_000, alpha=alpha, beta1=b1, beta2=np.array([[0.9], [0.99]]), c=c,
                               eps=0.0, keep=2)
    assert np.abs(np.abs(tail) - predicted).max() < 1e-6         # every c, both beta2
    np.testing.assert_allclose(tail[-1], -tail[-2], atol=1e-12)  # a 2-cycle: x -> -x


def test_cycle_with_torch_eps_and_without_bias_correction():
    tail = L.adam_on_quadratic(20_000, alpha=0.1, beta1=0.1, beta2=0.99, eps=1e-8, keep=2)
    assert np.abs(np.abs(tail) - L.cycle_amplitude(0.1, 0.1)).max() < 1e-6
    tail = L.adam_on_quadratic(20_000, alpha=0.1, beta1=0.0, beta2=0.9, bias_correction=False, keep=2)
    np.testing.assert_allclose(np.abs(tail), 0.05, atol=1e-9)


def test_adam_on_quadratic_is_algorithm_1():
    x = L.adam_on_quadratic(300, alpha=0.05, beta1=0.9, beta2=0.999, c=2.0, eps=1e-8)
    trace = R.adam(lambda th, t: 2.0 * th, np.ones(1), 300, alpha=0.05, eps=1e-8)
    np.testing.assert_allclose(x, trace.theta[1:, 0], rtol=1e-12, atol=1e-14)


def test_cycle_stability():
    assert L.cycle_spectral_radius(0.0, 0.9) == pytest.approx(0.9)     # beta1 = 0: rho = beta2
    assert L.cycle_spectral_radius(0.9, 0.999) == pytest.approx(1.1013, abs=1e-4)  # defaults repel
    assert L.stability_threshold(0.99) == pytest.approx(0.1724, abs=1e-4)
    assert L.stability_threshold(0.9) == pytest.approx(0.1806, abs=1e-4)
    rho = L.cycle_spectral_radius(np.array([0.1, 0.3]), np.array([[0.9], [0.99]]))
    assert rho.shape == (2, 2)
    # measured: a perturbation of the cycle grows (or shrinks) by about rho every two steps
    b1 = np.array([0.1, 0.3])
    xs = L.cycle_amplitude(0.1, b1)
    K = 400
    x = L.adam_on_quadratic(2 * K, alpha=0.1, beta1=b1, beta2=0.99, bias_correction=False,
                            x0=xs * (1 + 1e-7), m0=-xs * (1 - b1) / (1 + b1), v0=xs**2)
    rate = (np.abs(x[-1] - xs) / np.abs(x[1] - xs)) ** (1 / (K - 1))
    np.testing.assert_allclose(rate, L.cycle_spectral_radius(b1, 0.99), rtol=3e-3)


def test_defaults_do_not_settle():
    tail = np.abs(L.adam_on_quadratic(20_000, alpha=0.1, beta1=0.9, beta2=0.999, eps=1e-8, keep=5000))
    x_star = L.cycle_amplitude(0.1, 0.9)
    assert tail.max() > 5 * x_star            # bursts far beyond the cycle's amplitude ...
    assert tail.min() < x_star / 10           # ... between quiet stretches: neither a 2-cycle nor 0
    assert (tail[-2500:] > x_star).any()      # and they recur


# ---------------------------------------------------------------------------------------
# non-vanishing learning rates


def test_mean_estimation_bias_and_spread():
    r = L.mean_estimation(6000, alpha=1e-2, beta2=np.array([0.9, 0.999]), data="skewed", chains=50,
                          theta0=1.0, seed=0)
    skewed = r["time_average"].mean(axis=-1)
    assert skewed[0] < 0.8 and abs(skewed[1] - 1) < 0.02        # beta2 = 0.9 biased, 0.999 nearly not
    r = L.mean_estimation(6000, alpha=1e-2, beta2=0.9, data="symmetric", chains=50, theta0=1.0, seed=0)
    assert abs(r["time_average"].mean() - 1) < 0.01
    # the spread of the last iterate shrinks like sqrt(alpha)
    r = L.mean_estimation(20_000, alpha=np.array([1e-2, 1e-3]), beta2=0.99, data="symmetric", chains=100,
                          theta0=1.0, seed=1, record_every=10_000)
    ratio = r["last"].std(axis=-1)[0] / r["last"].std(axis=-1)[1]
    assert 2.4 < ratio < 4.0
    assert r["path"].shape == (2, 2, 100) and r["t"].tolist() == [10_000, 20_000]


def test_mean_estimation_validates():
    with pytest.raises(ValueError, match="data"):
        L.mean_estimation(10, data="uniform")
    with pytest.raises(ValueError, match="average_from"):
        L.mean_estimation(10, average_from=10)
