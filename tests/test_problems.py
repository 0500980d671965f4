"""adamlib.problems: surfaces, trajectories and the sparse regression problem."""
import math

import numpy as np
import pytest
import torch

import adamlib
from adamlib import problems as P
from adamlib import reference

NAMES = sorted(P.SURFACES)


def _finite_difference(surface, xy, h=1e-6):
    g = np.zeros(2)
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h
        g[i] = (surface.value(xy + e) - surface.value(xy - e)).item() / (2 * h)
    return g


@pytest.mark.parametrize("name", NAMES)
def test_gradient_equals_autograd_and_finite_differences(name):
    surface = P.SURFACES[name]()
    gen = torch.Generator().manual_seed(1)
    points = torch.rand(6, 2, generator=gen, dtype=torch.float64) * 3 - 1.5
    exact = surface.exact_grad(points)
    leaf = points.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(surface.f(leaf).sum(), leaf)
    torch.testing.assert_close(exact, auto, rtol=1e-12, atol=1e-12)
    for xy in points:
        np.testing.assert_allclose(exact.shape and surface.exact_grad(xy).numpy(),
                                   _finite_difference(surface, xy), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_minimum_has_zero_gradient_and_f_min(name):
    surface = P.SURFACES[name]()
    xy = torch.tensor(surface.minimum, dtype=torch.float64)
    assert surface.value(xy).item() == pytest.approx(surface.f_min, abs=1e-12)
    torch.testing.assert_close(surface.exact_grad(xy), torch.zeros(2, dtype=torch.float64))
    # a local check that it is a minimum: nearby points are not lower
    for d in ([1e-3, 0], [0, 1e-3], [-1e-3, 1e-3]):
        assert surface.value(xy + torch.tensor(d, dtype=torch.float64)).item() >= surface.f_min


@pytest.mark.parametrize("name", NAMES)
def test_shapes_grid_and_window(name):
    surface = P.SURFACES[name]()
    assert surface.value(torch.zeros(3, 4, 2, dtype=torch.float64)).shape == (3, 4)
    assert surface.grad(torch.zeros(3, 4, 2, dtype=torch.float64)).shape == (3, 4, 2)
    X, Y, Z = surface.grid(7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert np.isfinite(Z).all()
    for (lo, hi), v in ((surface.xlim, surface.minimum[0]), (surface.ylim, surface.minimum[1])):
        assert lo <= v <= hi


def test_saddle_point_and_ridge():
    s = P.saddle()
    torch.testing.assert_close(s.exact_grad(torch.zeros(2, dtype=torch.float64)), torch.zeros(2, dtype=torch.float64))
    on_ridge = P.run_on_surface(s, lambda p: adamlib.SGD(p, lr=0.1), 300, start=(-1.5, 0.0))
    off_ridge = P.run_on_surface(s, lambda p: adamlib.SGD(p, lr=0.1), 300)
    np.testing.assert_allclose(on_ridge.xy[-1], [0, 0], atol=1e-8)   # stuck at the saddle
    np.testing.assert_allclose(off_ridge.xy[-1], s.minimum, atol=1e-6)


def test_noise_is_seeded_and_unbiased():
    s = P.noisy_quadratic(condition=10, noise=2.0)
    xy = torch.tensor([1.0, 1.0], dtype=torch.float64)
    g1 = s.grad(xy.expand(20000, 2), generator=torch.Generator().manual_seed(3))
    g2 = s.grad(xy.expand(20000, 2), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    np.testing.assert_allclose(g1.mean(0).numpy(), [1.0, 10.0], atol=0.05)
    np.testing.assert_allclose(g1.std(0).numpy(), [2.0, 2.0], rtol=0.03)
    assert torch.equal(P.quadratic().grad(xy, generator=torch.Generator()), torch.tensor([1.0, 10.0], dtype=torch.float64))


def test_run_on_surface_deterministic_and_matches_reference():
    s = P.noisy_quadratic(noise=0.5)
    make = lambda p: adamlib.Momentum(p, lr=0.1, beta=0.9)  # noqa: E731
    a = P.run_on_surface(s, make, 50, seed=7)
    b = P.run_on_surface(s, make, 50, seed=7)
    c = P.run_on_surface(s, make, 50, seed=8)
    assert a.xy.shape == (51, 2) and a.loss.shape == (51,)
    np.testing.assert_array_equal(a.xy, b.xy)
    assert not np.array_equal(a.xy, c.xy)
    # noise-free: the same path as the float64 NumPy transcription
    q = P.quadratic(condition=10)
    traj = P.run_on_surface(q, make, 60)
    ref = reference.momentum(lambda th, t: np.array([th[0], 10 * th[1]]), np.array(q.start), 60,
                                     alpha=0.1, beta=0.9)
    np.testing.assert_allclose(traj.xy, ref.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(traj.loss, 0.5 * (ref.theta[:, 0] ** 2 + 10 * ref.theta[:, 1] ** 2), rtol=1e-12)


def test_trajectory_helpers_and_divergence():
    q = P.quadratic(condition=10)
    t = P.run_on_surface(q, lambda p: adamlib.SGD(p, lr=0.1), 200)
    k = t.steps_to(1e-6)
    assert k is not None and t.gap[k] <= 1e-6 < t.gap[k - 1]
    assert t.steps_to(-0.0) is None or t.gap[t.steps_to(0.0)] == 0
    assert t.distance(q.minimum)[-1] < 1e-3
    # lr > 2 / condition diverges in y: the run stops and the rest is NaN, with no error
    bad = P.run_on_surface(q, lambda p: adamlib.SGD(p, lr=0.5), 2000)
    assert np.isnan(bad.xy[-1]).all() and bad.steps_to(1e-6) is None


def test_lbfgs_closure_works():
    r = P.rosenbrock()
    t = P.run_on_surface(r, lambda p: torch.optim.LBFGS(p, lr=1, line_search_fn="strong_wolfe"), 30)
    np.testing.assert_allclose(t.xy[-1], r.minimum, atol=1e-4)


def test_sparse_regression():
    X, y, w = P.sparse_regression(seed=0)
    X2, y2, w2 = P.sparse_regression(seed=0)
    assert X.shape == (2000, 100) and y.shape == (2000,) and w.shape == (100,)
    assert torch.equal(X, X2) and torch.equal(y, y2) and torch.equal(w, w2)
    assert set(X.unique().tolist()) <= {0.0, 1.0}
    freq = X.mean(0)
    assert torch.all((freq[:5] - 0.9).abs() < 0.05) and freq[5:].mean() < 0.02
    assert not torch.equal(P.sparse_regression(seed=1)[0], X)
    assert P.sparse_regression(dtype=torch.float64)[0].dtype == torch.float64


def _fit(X, y, make, epochs=5, batch=32):
    w = torch.zeros(X.shape[1], requires_grad=True)
    opt = make([w])
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            ((X[idx] @ w - y[idx]) ** 2).mean().backward()
            opt.step()
    with torch.no_grad():
        loss = ((X @ w - y) ** 2).mean().item()
    return loss if math.isfinite(loss) else math.inf


def test_sparse_regression_favours_per_coordinate_rates():
    X, y, _ = P.sparse_regression()
    best_sgd = min(_fit(X, y, lambda p, lr=lr: adamlib.SGD(p, lr=lr)) for lr in (0.03, 0.1, 0.2, 0.3))
    adagrad = _fit(X, y, lambda p: adamlib.Adagrad(p, lr=0.3))
    assert adagrad < 0.5 * best_sgd


@pytest.mark.parametrize("call, name", [
    (lambda: P.quadratic(condition=0), "condition"),
    (lambda: P.quadratic(condition=float("nan")), "condition"),
    (lambda: P.noisy_quadratic(noise=-1), "noise"),
    (lambda: P.rosenbrock(b=-1), "b"),
    (lambda: P.quadratic().grid(1), "n"),
    (lambda: P.quadratic().value(torch.zeros(3)), "xy"),
    (lambda: P.run_on_surface(P.quadratic(), lambda p: adamlib.SGD(p), steps=-1), "steps"),
    (lambda: P.run_on_surface(P.quadratic(), lambda p: adamlib.SGD(p), steps=1.5), "steps"),
    (lambda: P.run_on_surface(P.quadratic(), lambda p: adamlib.SGD(p), 3, start=(1, "a")), "start"),
    (lambda: P.run_on_surface(P.quadratic(), lambda p: adamlib.SGD(p), 3, seed=-1), "seed"),
    (lambda: P.run_on_surface("bowl", lambda p: adamlib.SGD(p), 3), "surface"),
    (lambda: P.run_on_surface(P.quadratic(), lambda p: None, 3), "optimizer_factory"),
    (lambda: P.sparse_regression(density=0), "density"),
    (lambda: P.sparse_regression(density=1.5), "density"),
    (lambda: P.sparse_regression(n_samples=0), "n_samples"),
    (lambda: P.sparse_regression(n_frequent=200), "n_frequent"),
    (lambda: P.sparse_regression(dtype=torch.int64), "dtype"),
])
def test_errors_name_parameter_value_and_accepted(call, name):
    with pytest.raises(ValueError, match=rf"^{name}=.* is not accepted: expected "):
        call()
