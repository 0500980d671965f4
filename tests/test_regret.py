"""adamlib.regret: regret of a run, Theorem 4.1's bound evaluated on a trace, Gamma_t."""
import math

import numpy as np
import pytest

from adamlib import reference
from adamlib import regret as rg


def test_reddi_linear_losses_and_best_point():
    problem = rg.reddi_linear(C=3.0)
    thetas = np.array([[0.5], [0.5], [0.5], [-1.0]])
    assert problem.losses(thetas, np.array([1, 2, 3, 4])).tolist() == [1.5, -0.5, -0.5, -3.0]
    assert problem.grad(np.zeros(1), 7).tolist() == [3.0]
    assert problem.grad(np.zeros(1), 8).tolist() == [-1.0]
    # each period's slopes sum to C - 2 = 1 > 0 (and every prefix is positive): x* = -1
    assert all(problem.best(T).tolist() == [-1.0] for T in range(1, 10))
    assert problem.total_loss([-1.0], 6) == -2.0
    assert problem.G_inf == 3.0
    with pytest.raises(ValueError, match="C=2.0 is not accepted"):
        rg.reddi_linear(2.0)


def test_adam_online_is_reference_adam_with_the_theorem_schedules():
    problem = rg.online_logistic(steps=300, d=5, sparse=True, seed=1)
    alpha, beta1, beta2, lam = 0.3, 0.9, 0.999, 0.99
    fast = rg.adam_online(problem, 300, alpha=alpha, beta1=beta1, beta2=beta2, lam=lam)
    spec = reference.adam(problem.grad, np.zeros(5), 300, alpha=lambda t: alpha / math.sqrt(t),
                          beta1=lambda t: beta1 * lam ** (t - 1), beta2=beta2, eps=1e-8,
                          bounds=problem.bounds)
    for name in ("theta", "g", "m", "v", "m_hat", "v_hat"):
        assert np.abs(getattr(fast, name) - getattr(spec, name)).max() <= 1e-15, name
    assert np.abs(fast.theta).max() <= 2.0  # projected onto [-2, 2]^5


def test_adam_fails_on_reddi_problem_with_linear_regret():
    problem = rg.reddi_linear(3.0)
    beta2 = 1 / (1 + 3.0**2)
    trace = rg.adam_online(problem, 3000, alpha=0.5, beta1=0.0, beta2=beta2, lam=0.5)
    assert trace.theta[-1, 0] > 0.99  # the worst point of [-1, 1]
    result = rg.regret(problem, trace, T=[300, 3000])
    # linear losses: R(T) = sum_t g_t (x_{t-1} - x*) exactly
    direct = np.sum(trace.g[:3000, 0] * (trace.theta[:3000, 0] + 1.0))
    assert result.R[-1] == pytest.approx(direct, rel=1e-12)
    # the average regret stays near 2(C - 2)/3 = 2/3 instead of going to 0
    assert result.average[-1] == pytest.approx(0.6725, abs=1e-4)
    assert result.average[0] > 0.6


def test_regret_at_horizon_one_is_exact_for_logistic():
    problem = rg.online_logistic(steps=50, d=4, sparse=False, radius=2.0, seed=3)
    trace = rg.adam_online(problem, 50, alpha=0.1)
    # f_1(0) = log 2; the best point of the box makes the margin 2 * ||x_1||_1
    X1 = np.array([problem.grad(np.zeros(4), 1)]) * -2.0  # grad at 0 is -y x / 2: recover y x
    best_margin = 2.0 * np.abs(X1).sum()
    expected = math.log(2.0) - math.log1p(math.exp(-best_margin))
    assert rg.regret(problem, trace, T=[1]).R[0] == pytest.approx(expected, rel=1e-7)


def test_logistic_best_point_is_a_box_constrained_minimum():
    problem = rg.online_logistic(steps=400, d=6, sparse=True, seed=0)
    assert problem.G_inf == 1.0
    star = problem.best(400)
    base = problem.total_loss(star, 400)
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = np.clip(star + 1e-3 * rng.normal(size=6), -2.0, 2.0)
        assert problem.total_loss(other, 400) >= base - 1e-9
    np.testing.assert_array_equal(problem.best(400), star)  # cached


def test_diameters():
    D, D_inf = rg.diameters([[0.0, 0.0], [3.0, 4.0], [1.0, -1.0]])
    assert D == pytest.approx(math.sqrt(29.0))
    assert D_inf == 5.0


def _two_step_trace():
    # g = 1, -1 with beta2 = 1/4: v_hat_1 = 0.75/0.75 = 1, v_hat_2 = 0.9375/0.9375 = 1
    return reference.Trace(theta=np.zeros((3, 1)), g=np.array([[1.0], [-1.0]]),
                           delta=np.zeros((2, 1)), extras={"v_hat": np.ones((2, 1))})


def test_theorem41_bound_terms_in_closed_form():
    # alpha = 1, beta1 = 1/2, beta2 = 1/4 (gamma = 1/2), lambda = 1/2, G_inf = 1, D = D_inf = 2
    bound = rg.theorem41_bound(_two_step_trace(), T=[1, 2], alpha=1.0, beta1=0.5, beta2=0.25,
                               lam=0.5, G_inf=1.0, D=2.0, D_inf=2.0)
    assert bound.gamma == 0.5
    np.testing.assert_allclose(bound.first, [4.0, 4 * math.sqrt(2)], rtol=1e-14)
    np.testing.assert_allclose(bound.second, [8 * math.sqrt(3), 8 * math.sqrt(6)], rtol=1e-14)
    np.testing.assert_allclose(bound.third, [8 * math.sqrt(3)] * 2, rtol=1e-14)
    assert bound.total[-1] == pytest.approx(4 * math.sqrt(2) + 8 * math.sqrt(6) + 8 * math.sqrt(3))


def test_theorem41_bound_checks_its_conditions():
    trace = _two_step_trace()
    with pytest.raises(ValueError, match="gamma"):
        rg.theorem41_bound(trace, [2], alpha=1.0, beta1=0.9, beta2=0.5, lam=0.5, G_inf=1.0)
    with pytest.raises(ValueError, match="lam"):
        rg.theorem41_bound(trace, [2], alpha=1.0, beta1=0.5, beta2=0.25, lam=1.0, G_inf=1.0)
    with pytest.raises(ValueError, match="G_inf"):
        rg.theorem41_bound(trace, [2], alpha=1.0, beta1=0.5, beta2=0.25, lam=0.5, G_inf=0.5)


def test_reddi_regret_overtakes_the_theorem41_bound():
    problem = rg.reddi_linear(3.0)
    trace = rg.adam_online(problem, 3000, alpha=0.5, beta1=0.0, beta2=0.1, lam=0.5)
    T = rg.horizons(3000, 30)
    result = rg.regret(problem, trace, T)
    bound = rg.theorem41_bound(trace, T, alpha=0.5, beta1=0.0, beta2=0.1, lam=0.5,
                               G_inf=problem.G_inf, theta_star=result.theta_star)
    assert (bound.D, bound.D_inf) == (2.0, 2.0)
    assert bound.third[0] == pytest.approx(4 * 3 * math.sqrt(0.9) / (2 * 0.5 * 0.25))
    assert result.R[0] < bound.total[0]
    assert result.R[-1] > 1.5 * bound.total[-1]  # Theorem 4.1 as printed is false here


def test_inverse_step_change():
    gamma = rg.inverse_step_change([1.0, 4.0, 1.0], [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3)])
    np.testing.assert_allclose(gamma, [1.0, 2 * math.sqrt(2) - 1, math.sqrt(3) - 2 * math.sqrt(2)],
                               rtol=1e-14)
    with pytest.raises(ValueError, match="alphas"):
        rg.inverse_step_change([1.0, 2.0], [1.0])


def test_gamma_goes_negative_for_adam_but_not_for_amsgrad():
    problem = rg.reddi_linear(3.0)
    steps = 300
    alphas = 0.5 / np.sqrt(np.arange(1, steps + 1))
    adam = rg.adam_online(problem, steps, alpha=0.5, beta1=0.0, beta2=0.1, lam=0.5)
    ams = reference.amsgrad(problem.grad, np.zeros(1), steps, alpha=lambda t: 0.5 / math.sqrt(t),
                            beta1=0.0, beta2=0.1, variant="reddi", bounds=problem.bounds)
    gamma_adam = rg.inverse_step_change(adam.v_hat, alphas)[:, 0]
    gamma_ams = rg.inverse_step_change(ams.v_max, alphas)[:, 0]
    # after each large gradient (t = 1 mod 3) v falls ninefold-ish: two negative steps per period
    assert np.mean(gamma_adam < 0) == pytest.approx(2 / 3, abs=0.01)
    # t = 1: g = 3, v_hat_1 = 9, sqrt(v_hat_1)/alpha_1 = 6; t = 2: g = -1, v_2 = 0.81 + 0.9 = 1.71
    assert gamma_adam[0] == pytest.approx(6.0, rel=1e-12)
    assert gamma_adam[1] == pytest.approx(math.sqrt(1.71 / 0.99) * math.sqrt(2) / 0.5 - 6.0, rel=1e-12)
    assert gamma_ams.min() >= 0


def test_diameters_of_many_points_bound_D_by_the_box_diagonal():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(rg.EXACT_DIAMETER_POINTS + 1, 3))
    D, D_inf = rg.diameters(points)
    ranges = points.max(axis=0) - points.min(axis=0)
    assert D == pytest.approx(math.sqrt((ranges**2).sum()))
    assert D_inf == pytest.approx(ranges.max())
    assert D >= rg.diameters(points[:1000])[0]
