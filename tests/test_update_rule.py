"""adamlib.update_rule: Section 2.1's step bounds as numbers, and the recorder against Adam."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import adamlib
from adamlib import reference as R
from adamlib import update_rule as U


def test_bounds_with_the_defaults():
    assert U.sparse_bound() == pytest.approx(3.16227766, abs=1e-8)
    assert U.paper_bound() == pytest.approx(3.1623, abs=1e-4)
    assert U.sup_step_ratio() == pytest.approx(7.2703, abs=1e-4)
    # (1 - beta1) = sqrt(1 - beta2): the paper's two cases meet at 1
    assert U.paper_bound(0.9, 0.99) == pytest.approx(1.0)
    assert U.paper_bound(0.99, 0.999) == 1.0


def test_constant_gradient_steps_alpha():
    np.testing.assert_allclose(U.step_ratio_pattern("constant", steps=500), 1.0, rtol=1e-12)


@pytest.mark.parametrize("T, expected", [(1, 1.0), (10, 0.4844), (100, 0.9758), (1000, 2.5146),
                                         (5000, 3.1516), (20000, 3.1623)])
def test_sparse_table(T, expected):
    g = np.zeros(T)
    g[-1] = 1.0
    assert U.step_ratios(g)[-1] == pytest.approx(expected, abs=1e-4)
    assert U.sparse_step_ratio(T) == pytest.approx(U.step_ratios(g)[-1], rel=1e-9)


def test_growing_gradients_exceed_the_paper_bound():
    ratios = U.step_ratio_pattern("growing")
    assert ratios[-1] == pytest.approx(7.2703, abs=1e-4)
    assert ratios[-1] == pytest.approx(U.sup_step_ratio(), rel=1e-8)
    assert ratios.max() <= U.sup_step_ratio() * (1 + 1e-12)
    assert ratios[-1] / U.paper_bound() == pytest.approx(2.299, abs=1e-3)


@pytest.mark.parametrize("beta1, beta2", [(0.5, 0.99), (0.9, 0.99), (0.95, 0.9999)])
def test_sup_is_attained_and_not_beaten(beta1, beta2):
    sup = U.sup_step_ratio(beta1, beta2)
    growing = U.step_ratio_pattern("growing", beta1, beta2, steps=200_000, growth_steps=3000)
    assert growing[-1] == pytest.approx(sup, rel=1e-6)
    rng = np.random.default_rng(0)
    # random positive sequences with random growth never beat it (after bias correction ~ 1)
    g = np.concatenate([np.zeros((200_000, 50)), np.exp(rng.normal(0, 1, (300, 50)).cumsum(0) * 0.05)])
    assert U.step_ratios(g, beta1, beta2).max() <= sup * (1 + 1e-9)


def test_noisy_gradients_stay_below_one():
    ratios = U.step_ratio_pattern("noisy")
    assert ratios[0] == pytest.approx(1.0)
    assert ratios.max() <= 1.0 + 1e-12


def test_step_ratios_match_the_reference_trace():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(300, 4)) * np.array([1e-3, 1.0, 10.0, 1e3])
    trace = R.adam(g, np.zeros(4), 300, alpha=1e-3, eps=0.0)
    np.testing.assert_allclose(U.step_ratios(g), np.abs(trace.delta) / 1e-3, rtol=1e-9)


def test_scale_invariance():
    g = np.random.default_rng(2).normal(size=(200, 3))
    np.testing.assert_allclose(U.step_ratios(g), U.step_ratios(1e-6 * g), rtol=1e-12)


def test_recorder_agrees_with_parameter_differences():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(20, dtype=torch.float64))
    opt = adamlib.Adam([p], lr=0.01)
    rec = U.StepRecorder(opt)
    steps = []
    for _ in range(50):
        before = p.detach().clone()
        opt.zero_grad()
        (p**4).sum().backward()
        opt.step()
        steps.append(((p.detach() - before).abs() / 0.01).numpy())
    np.testing.assert_allclose(rec.array(), np.stack(steps), rtol=1e-9)
    rec.remove()
    opt.step()
    assert len(rec.ratios) == 50


def test_errors():
    with pytest.raises(ValueError, match="pattern"):
        U.gradient_pattern("bursty", 10)
    with pytest.raises(ValueError, match="beta1"):
        U.step_ratios(np.ones(3), beta1=1.0)
    with pytest.raises(ValueError, match="beta1"):
        U.sup_step_ratio(0.99, 0.9)
    with pytest.raises(ValueError, match="optimizer"):
        U.StepRecorder(adamlib.Adam([torch.nn.Parameter(torch.zeros(1))], amsgrad=True))
    with pytest.raises(ValueError, match="steps"):
        U.gradient_pattern("constant", 0)
    assert math.isfinite(U.sparse_step_ratio(1))
