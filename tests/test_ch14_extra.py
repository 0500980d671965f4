"""adamlib.averaging.adam_denominator_runs, used by chapter 14 (why the last iterate's noise floor rises)."""
import numpy as np
import pytest

from adamlib import Adam
from adamlib import averaging as AV


def test_unfrozen_runs_are_train_with_averages():
    problem = AV.noisy_regression(n=200, d=5, seed=0)
    runs = AV.adam_denominator_runs(problem, steps=200, seeds=(0, 3))
    for k, seed in enumerate((0, 3)):
        ref = AV.train_with_averages(problem, lambda p: Adam(p, lr=1e-2), steps=200, seed=seed)["last"]
        np.testing.assert_allclose(runs["last"][k], ref, rtol=0, atol=1e-12)


def test_frozen_denominator_stays_fixed():
    problem = AV.noisy_regression(n=200, d=5, seed=0)
    runs = AV.adam_denominator_runs(problem, steps=100, seeds=(1,), freeze_at=40)
    den = runs["denominator"][0]
    assert np.all(den[40:] == den[39])
    assert not np.all(den[39] == den[38])
    free = AV.adam_denominator_runs(problem, steps=100, seeds=(1,))
    np.testing.assert_array_equal(free["last"][0, :40], runs["last"][0, :40])


def test_bad_freeze_at():
    problem = AV.noisy_regression(n=50, d=3, seed=0)
    with pytest.raises(ValueError, match="freeze_at"):
        AV.adam_denominator_runs(problem, steps=10, freeze_at=11)


def test_sgd_runs_are_train_with_averages():
    import torch
    problem = AV.noisy_regression(n=200, d=5, seed=0)
    runs = AV.sgd_runs(problem, lr=0.05, steps=150, batch=4, seeds=(2,))
    ref = AV.train_with_averages(problem, lambda p: torch.optim.SGD(p, lr=0.05), steps=150, batch=4, seed=2)["last"]
    np.testing.assert_allclose(runs[0], ref, rtol=0, atol=1e-12)
