"""adamlib.related: vSGD and natural gradient on the bowls of chapter 5."""
import math

import numpy as np
import pytest
import torch

from adamlib import problems, race, related


def test_bowl_curvature_is_the_hessian_diagonal():
    assert np.allclose(related.bowl_curvature(problems.quadratic(condition=10)), [1.0, 10.0])
    assert np.allclose(related.bowl_curvature(problems.noisy_quadratic(condition=4)), [1.0, 4.0])
    with pytest.raises(ValueError, match="surface"):
        related.bowl_curvature(problems.rosenbrock())


def test_preconditioned_is_newton_on_the_bowl():
    bowl = problems.quadratic()
    (run,) = race.run_grid(bowl, related.natural_gradient(bowl), [1.0], steps=3)
    assert run.gap[1] == 0.0                       # lr 1 with F = H: the minimum in one step
    p = torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
    opt = related.Preconditioned([p], lr=0.5, diag=(2.0, 4.0))
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([2.0 - 0.25, 3.0 - 0.125], dtype=torch.float64))
    with pytest.raises(ValueError, match="lr"):
        related.Preconditioned([p], lr=0.0)
    with pytest.raises(ValueError, match="diag"):
        related.Preconditioned([p], diag=(1.0, -1.0))


def test_vsgd_first_step_matches_its_formula():
    # Deterministic bowl: gbar = g0, vbar = 2 (g0^2 + eps), hbar = 2 max(h, 1), tau = 10 before the first update.
    bowl = problems.quadratic()
    h = np.array([1.0, 10.0])
    eps = 1e-9
    theta0 = np.array(bowl.start)
    g = h * theta0
    gbar, vbar, hbar, tau = g, 2 * (g**2 + eps), 2 * np.maximum(h, 1.0), np.full(2, (1 + eps) * 10)
    f = 1 / tau
    gbar = (1 - f) * gbar + f * g
    vbar = (1 - f) * vbar + f * g**2 + eps
    hbar = (1 - f) * hbar + f * (h + eps)
    expected = theta0 - gbar**2 / vbar / hbar * g
    run = related.vsgd(bowl, 2)
    assert np.allclose(run.xy[1], expected, rtol=1e-14)


def test_vsgd_converges_without_a_learning_rate():
    assert related.vsgd(problems.quadratic(), 300).final_gap < 1e-6
    noisy = [related.vsgd(problems.noisy_quadratic(), 300, seed=s).gap[-100:].mean() for s in range(3)]
    assert all(math.isfinite(x) and x < 0.05 for x in noisy)
    # The same seed gives the same run; another seed another.
    a, b = related.vsgd(problems.noisy_quadratic(), 50, seed=1), related.vsgd(problems.noisy_quadratic(), 50, seed=1)
    assert np.array_equal(a.xy, b.xy)
    assert not np.array_equal(a.xy, related.vsgd(problems.noisy_quadratic(), 50, seed=2).xy)
