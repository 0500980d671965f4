"""adamlib.heavy_ball, used by chapter 3 (momentum)."""
import math

import numpy as np
import pytest

from adamlib import SGD, Momentum, heavy_ball, problems, race


def test_polyak_round_bowl_is_newton():
    assert heavy_ball.polyak(1.0) == (1.0, 0.0)


def test_polyak_rate_is_sqrt_kappa_law():
    eta, mu = heavy_ball.polyak(100.0)
    assert eta == pytest.approx(4 / 121) and mu == pytest.approx((9 / 11) ** 2)
    # both roots of z^2 - (1 + mu - eta lam) z + mu have modulus sqrt(mu) at lam = 1 and lam = 100
    for lam in (1.0, 100.0):
        roots = np.roots([1.0, -(1 + mu - eta * lam), mu])
        assert np.allclose(np.abs(roots), math.sqrt(mu), rtol=1e-6)


def test_polyak_validates():
    with pytest.raises(ValueError, match="largest"):
        heavy_ball.polyak(0.5, 1.0)


def test_stationary_gap_gradient_descent():
    assert heavy_ball.stationary_gap(0.01, 0.0, 100.0, 1.0) == pytest.approx(0.01 / 2)
    assert heavy_ball.stationary_gap(0.01, 0.0, 1.0, 1.0) == pytest.approx(0.01 / (2 * 1.99))
    assert heavy_ball.stationary_gap(0.03, 0.0, 100.0, 1.0) == math.inf


@pytest.mark.parametrize("lr, beta, lam", [(0.01, 0.0, 100.0), (0.01, 0.9, 100.0), (0.0316, 0.9, 100.0),
                                           (0.05, 0.0, 10.0)])
def test_simulation_matches_formula(lr, beta, lam):
    simulated = heavy_ball.simulate_gaps(lr, beta, [lam], 1.0, steps=20_000, burn=500, seeds=16)[0]
    assert simulated == pytest.approx(heavy_ball.stationary_gap(lr, beta, lam, 1.0), rel=0.05)


def test_formula_assumes_the_heavy_ball_with_scaled_lr():
    # stationary_gap treats the talk's uncorrected momentum as the heavy ball with eta = alpha (1 - beta)
    surface = problems.quadratic(10)
    dampened = race.run_grid(surface, lambda p, lr: Momentum(p, lr=lr, beta=0.9, bias_correction=False),
                             [0.05], steps=50)[0]
    heavy = race.run_grid(surface, lambda p, lr: SGD(p, lr=lr * (1 - 0.9), momentum=0.9), [0.05], steps=50)[0]
    assert np.allclose(dampened.xy, heavy.xy, rtol=1e-12, atol=1e-14)


def test_simulation_without_noise_stays_at_the_minimum():
    assert heavy_ball.simulate_gaps(0.05, 0.9, [1.0, 10.0], 0.0, steps=10, burn=0, seeds=2).tolist() == [0.0, 0.0]


def test_simulate_validates():
    with pytest.raises(ValueError, match="burn"):
        heavy_ball.simulate_gaps(0.01, 0.9, [1.0], 1.0, steps=10, burn=10)
