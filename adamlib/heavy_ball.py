"""The heavy ball on a quadratic, in closed form: Polyak's parameters and the noise floor.

Chapter 3 (momentum) uses these to test two claims against formulas rather than against one
run: that the heavy ball at Polyak's parameters needs a number of steps that grows like
sqrt(kappa), and where momentum's noise floor comes from.

On one direction of curvature ``lam`` the talk's momentum without bias correction,
m_t = beta m_{t-1} + (1 - beta) g_t, theta_t = theta_{t-1} - alpha m_t, is the heavy ball with
eta = alpha (1 - beta) and mu = beta. With gradient noise of standard deviation ``noise``,
g_t = lam theta_{t-1} + noise xi_t, the iterate is an AR(2) process whose stationary variance is

    E[theta^2] = (1 + mu) eta noise^2 / ((1 - mu) lam (2 (1 + mu) - eta lam)),

so the stationary mean of lam theta^2 / 2 (the direction's share of f - f_min) is
:func:`stationary_gap`. For beta = 0 (gradient descent) it is alpha noise^2 / (2 (2 - alpha lam)).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["polyak", "stationary_gap", "simulate_gaps"]


def polyak(largest: float, smallest: float = 1.0) -> tuple[float, float]:
    """Polyak's (eta*, mu*) for curvatures in [smallest, largest]: the fastest heavy ball.

    eta* = 4 / (sqrt(L) + sqrt(m))^2 and mu* = ((sqrt(L) - sqrt(m)) / (sqrt(L) + sqrt(m)))^2;
    every mode then contracts by sqrt(mu*) = (sqrt(kappa) - 1) / (sqrt(kappa) + 1) per step.
    """
    if not (math.isfinite(largest) and math.isfinite(smallest) and 0 < smallest <= largest):
        raise ValueError(f"largest={largest!r}, smallest={smallest!r} are not accepted: "
                         "expected 0 < smallest <= largest")
    a, b = math.sqrt(largest), math.sqrt(smallest)
    return 4.0 / (a + b) ** 2, ((a - b) / (a + b)) ** 2


def stationary_gap(lr: float, beta: float, curvature: float, noise: float) -> float:
    """The stationary mean of curvature * theta^2 / 2 for the talk's momentum (lr = alpha).

    ``beta = 0`` is gradient descent. Returns ``inf`` where the recursion is unstable
    (alpha (1 - beta) curvature >= 2 (1 + beta)).
    """
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"beta={beta!r} is not accepted: expected 0 <= beta < 1")
    if not (lr > 0 and curvature > 0 and noise >= 0):
        raise ValueError(f"lr={lr!r}, curvature={curvature!r}, noise={noise!r} are not accepted: "
                         "expected lr > 0, curvature > 0, noise >= 0")
    eta = lr * (1.0 - beta)
    room = 2.0 * (1.0 + beta) - eta * curvature
    if room <= 0:
        return math.inf
    return (1.0 + beta) * eta * noise**2 / (2.0 * (1.0 - beta) * room)


def simulate_gaps(lr: float, beta: float, curvatures: Sequence[float], noise: float, *,
                  steps: int = 20_000, burn: int = 1_000, seeds: int = 16, seed: int = 0) -> np.ndarray:
    """Time- and seed-averaged lam theta^2 / 2 per direction, simulated in float64 NumPy.

    ``seeds`` independent runs from theta = 0 of the uncorrected talk's momentum (beta = 0:
    gradient descent), each averaged over steps ``burn + 1 .. steps``; one value per curvature.
    """
    if not (isinstance(steps, int) and isinstance(burn, int) and 0 <= burn < steps):
        raise ValueError(f"steps={steps!r}, burn={burn!r} are not accepted: expected integers 0 <= burn < steps")
    lam = np.asarray(curvatures, dtype=np.float64)
    rng = np.random.default_rng(seed)
    theta = np.zeros((seeds, lam.size))
    m = np.zeros_like(theta)
    total = np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = lam * theta + noise * rng.standard_normal(theta.shape)
        m = beta * m + (1.0 - beta) * g
        theta = theta - lr * m
        if t > burn:
            total += 0.5 * lam * theta**2
    return (total / (steps - burn)).mean(axis=0)
