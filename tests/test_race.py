"""adamlib.race: the batched grid runner equals separate runs, tuning is deterministic and fair."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adamlib import problems, race, selection


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(race.RACERS))
@pytest.mark.parametrize("surface", ["quadratic", "beale", "saddle"])
def test_run_grid_equals_separate_runs(name, surface):
    s = problems.SURFACES[surface]()
    lrs = [1e-3, 3e-2, 0.3]
    batched = race.run_grid(s, name, lrs, steps=60)
    for lr, run in zip(lrs, batched):
        ref = problems.run_on_surface(s, lambda p: race.RACERS[name](p, lr), 60)
        # Compare where the reference is moderate: after a blow-up, rounding differences grow
        # with the iterate itself (1e100 and beyond) and only "it diverged" is comparable.
        moderate = np.abs(np.nan_to_num(ref.xy, nan=np.inf)).max(axis=1) < 1e6
        np.testing.assert_allclose(run.xy[moderate], ref.xy[moderate], rtol=1e-12, atol=1e-12)
        assert race.diverged(run) == race.diverged(ref)


def test_noise_is_shared_and_seeded():
    s = problems.noisy_quadratic()
    a = race.run_grid(s, "SGD", [0.01, 0.1], steps=50, seed=3)
    b = race.run_grid(s, "SGD", [0.1], steps=50, seed=3)
    c = race.run_grid(s, "SGD", [0.1], steps=50, seed=4)
    np.testing.assert_array_equal(a[1].xy, b[0].xy)   # the same noise whatever the other lrs
    assert not np.allclose(b[0].xy, c[0].xy)
    # SGD's noise enters linearly: the noise sequence is the one seeded generator's draws
    noise = 1.0 * torch.randn((50, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    theta = torch.tensor(s.start, dtype=torch.float64)
    for t in range(50):
        theta = theta - 0.1 * (s.exact_grad(theta) + noise[t])
    np.testing.assert_allclose(b[0].xy[-1], theta.numpy(), rtol=1e-13)


def test_divergence_scores_inf_and_freezes():
    s = problems.rosenbrock()
    (run,) = race.run_grid(s, "SGD", [1.0], steps=50)
    assert race.diverged(run) and race.score(run) == math.inf
    assert np.isnan(run.xy[-1]).all()
    (ok,) = race.run_grid(s, "SGD", [1e-3], steps=50)
    assert not race.diverged(ok) and math.isfinite(race.score(ok))


def test_tuned_lrs_are_from_the_grid_and_deterministic():
    first = race.race("quadratic", ["SGD", "Adam"], steps=150)
    race._tuned.cache_clear()
    second = race.race("quadratic", ["SGD", "Adam"], steps=150)
    for r in (first, second):
        assert set(r.tuned.values()) <= set(race.LR_GRID)
    assert first.tuned == second.tuned
    # SGD on (x^2 + 10 y^2)/2 is stable for lr < 2/10; the best grid lr is 0.1 (exactly 1/L)
    assert first.tuned["SGD"] == 0.1
    assert first.tuned["Adam"] == 0.3162
    for n in first.runs:
        np.testing.assert_array_equal(first.runs[n].xy, second.runs[n].xy)
        np.testing.assert_array_equal(first.scores[n], second.scores[n])
    # the tuned lr is the smallest whose score is within the tie tolerance of the grid's lowest
    for n, s in first.scores.items():
        chosen = race.LR_GRID.index(first.tuned[n])
        assert s[chosen] <= np.min(s) + selection.TIE
        assert all(s[i] > np.min(s) + selection.TIE for i in range(chosen))


def test_tune_breaks_a_near_tie_towards_the_smaller_lr(monkeypatch):
    # scores 0.005 apart (a tie) whichever way rounding tips them: the smaller lr wins
    for tipped in ([-2.000, -2.005, 0.0], [-2.005, -2.000, 0.0]):
        monkeypatch.setattr(race, "score", lambda run, it=iter(tipped): next(it))
        best, scores, _ = race.tune("quadratic", "SGD", grid=[0.01, 0.03, 0.1], steps=5)
        assert best == 0.01 and list(scores) == tipped


def test_lr_scale_reruns_with_scaled_lr():
    r = race.race("saddle", ["Adam"], steps=80, lr_scale=0.1)
    assert r.lrs["Adam"] == pytest.approx(0.1 * r.tuned["Adam"])
    (ref,) = race.run_grid("saddle", "Adam", [r.lrs["Adam"]], steps=80)
    np.testing.assert_array_equal(r.runs["Adam"].xy, ref.xy)


def test_adadelta_is_torchs():
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    assert type(race.RACERS["AdaDelta"]([p], 1.0)) is torch.optim.Adadelta


def test_bad_arguments():
    with pytest.raises(ValueError, match="optimizer="):
        race.race("quadratic", ["Adamm"])
    with pytest.raises(ValueError, match="surface="):
        race.race("bowl")
    with pytest.raises(ValueError, match="lrs="):
        race.run_grid("quadratic", "SGD", [0.0])
    with pytest.raises(ValueError, match="steps="):
        race.run_grid("quadratic", "SGD", [0.1], steps=0)


def test_drawing_returns_a_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = race.draw_race(race.race("quadratic", ["SGD", "Adam"], steps=40))
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "$x$"
    plt.close(fig)
