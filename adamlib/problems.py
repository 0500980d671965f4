"""Objectives the chapters optimize: 2-D test surfaces, noisy quadratics, a sparse regression.

A :class:`Surface` is a function of two variables with a known minimizer, a default start and
a plotting window. Its :meth:`Surface.grad` is exact (analytic for the quadratics, autograd
otherwise) plus, for a stochastic objective, additive Gaussian noise of standard deviation
``noise`` drawn from a seeded ``torch.Generator``: the simplest model of a mini-batch gradient,
an unbiased estimate of the true one.

:func:`run_on_surface` runs any ``torch.optim.Optimizer`` on a surface from a float64
parameter of shape ``(2,)`` and returns the :class:`Trajectory` (points and true losses), so
every chapter races optimizers the same way::

    from adamlib import Adam, problems
    bowl = problems.quadratic(condition=10)
    traj = problems.run_on_surface(bowl, lambda p: Adam(p, lr=0.1), steps=100)
    traj.xy.shape, traj.steps_to(1e-6)

The surfaces:

=================  ==========================================  ==================  =========
name               f(x, y)                                     minimizer           f_min
=================  ==========================================  ==================  =========
quadratic          (x^2 + condition y^2) / 2                   (0, 0)              0
noisy_quadratic    the same, gradients + noise N(0, noise^2)   (0, 0)              0
rosenbrock         (a - x)^2 + b (y - x^2)^2                   (a, a^2)            0
beale              (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2      (3, 0.5)            0
                   + (2.625 - x + xy^3)^2
saddle             x^2 + y^4 / 4 - y^2 / 2                     (0, 1) [and (0,-1)] -1/4
=================  ==========================================  ==================  =========

:func:`sparse_regression` makes a linear least-squares problem with a few frequent and many
rare binary features, where one learning rate for all coordinates is a poor compromise and
per-coordinate rates (Adagrad, Adam) shine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from ._errors import fail as _fail

__all__ = [
    "Surface",
    "Trajectory",
    "quadratic",
    "noisy_quadratic",
    "rosenbrock",
    "beale",
    "saddle",
    "SURFACES",
    "run_on_surface",
    "sparse_regression",
]


# ---------------------------------------------------------------------------------------
# validation: "name=value is not accepted: expected ..." as in adamlib.data and adamlib.train


def _number(name: str, value, *, minimum: float | None = None, strict: bool = False) -> float:
    expected = "a finite number"
    if minimum is not None:
        expected += f" {'>' if strict else '>='} {minimum:g}"
    if isinstance(value, bool):
        _fail(name, value, expected)
    try:
        x = float(value)
    except (TypeError, ValueError):
        _fail(name, value, expected)
    if not math.isfinite(x) or (minimum is not None and (x < minimum or (strict and x == minimum))):
        _fail(name, value, expected)
    return x


def _integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        _fail(name, value, f"an int >= {minimum}")
    return int(value)


def _point(name: str, value) -> tuple[float, float]:
    expected = "a pair (x, y) of finite numbers"
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        _fail(name, value, expected)
    if not (math.isfinite(x) and math.isfinite(y)):
        _fail(name, value, expected)
    return (x, y)


# ---------------------------------------------------------------------------------------
# surfaces


@dataclass
class Surface:
    """A differentiable function of two variables with a known minimum.

    Attributes:
        name: a short name for titles and legends.
        f: ``f(xy) -> values``: a torch function of a tensor of shape ``(..., 2)`` (the last
            axis holds x, y) returning shape ``(...)``; differentiable by autograd.
        minimum: the minimizer (x*, y*) (one of them, where there are several).
        f_min: f at the minimizer.
        start: the default starting point of the chapters' races.
        xlim, ylim: the window for contour plots.
        noise: the standard deviation of the Gaussian noise added to every gradient
            coordinate (0: the exact, deterministic gradient).
        grad_fn: an analytic gradient ``grad_fn(xy) -> (..., 2)``, or None for autograd.
        description: one line on what the surface shows.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    minimum: tuple[float, float]
    f_min: float
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    noise: float = 0.0
    grad_fn: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    description: str = ""

    def __post_init__(self):
        if not callable(self.f):
            _fail("f", self.f, "a callable of a tensor of shape (..., 2)")
        self.minimum = _point("minimum", self.minimum)
        self.start = _point("start", self.start)
        self.xlim = _point("xlim", self.xlim)
        self.ylim = _point("ylim", self.ylim)
        self.noise = _number("noise", self.noise, minimum=0.0)
        self.f_min = float(self.f_min)

    @staticmethod
    def _as_xy(xy) -> torch.Tensor:
        xy = torch.as_tensor(xy)
        if not torch.is_floating_point(xy):
            xy = xy.to(torch.float64)
        if xy.ndim == 0 or xy.shape[-1] != 2:
            _fail("xy", tuple(xy.shape), "a tensor of shape (..., 2)")
        return xy

    def value(self, xy) -> torch.Tensor:
        """f at points ``xy`` of shape ``(..., 2)`` (a tensor, array or pair); shape ``(...)``."""
        return self.f(self._as_xy(xy))

    def exact_grad(self, xy) -> torch.Tensor:
        """The true gradient at ``xy`` (shape ``(..., 2)``), without noise and without graph."""
        xy = self._as_xy(xy).detach()
        if self.grad_fn is not None:
            return self.grad_fn(xy)
        with torch.enable_grad():
            leaf = xy.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self.f(leaf).sum(), leaf)
        return g

    def grad(self, xy, generator: torch.Generator | None = None) -> torch.Tensor:
        """The gradient at ``xy``, plus ``noise * N(0, 1)`` per coordinate when noise > 0.

        The noise is drawn from ``generator`` (torch's global generator if None), so a seeded
        generator gives the same noisy gradients every run.
        """
        g = self.exact_grad(xy)
        if self.noise > 0:
            eps = torch.randn(g.shape, generator=generator, dtype=g.dtype)
            g = g + self.noise * eps.to(g.device)
        return g

    def grid(self, n: int = 200):
        """``(X, Y, Z)`` NumPy arrays of shape ``(n, n)`` over the window, for ``contour``."""
        n = _integer("n", n, 2)
        xs = np.linspace(*self.xlim, n)
        ys = np.linspace(*self.ylim, n)
        X, Y = np.meshgrid(xs, ys)
        with torch.no_grad():
            Z = self.f(torch.as_tensor(np.stack([X, Y], axis=-1), dtype=torch.float64)).numpy()
        return X, Y, Z


def quadratic(condition: float = 10.0) -> Surface:
    """The ill-conditioned bowl f = (x^2 + condition y^2) / 2, minimum f(0, 0) = 0.

    The Hessian is diag(1, condition): the y direction is ``condition`` times steeper, so
    gradient descent must take lr < 2 / condition to stay stable in y and then crawls along x.
    """
    c = _number("condition", condition, minimum=0.0, strict=True)
    return Surface(
        name=f"quadratic (condition {c:g})",
        f=lambda xy: 0.5 * (xy[..., 0] ** 2 + c * xy[..., 1] ** 2),
        grad_fn=lambda xy: torch.stack([xy[..., 0], c * xy[..., 1]], dim=-1),
        minimum=(0.0, 0.0), f_min=0.0, start=(-4.0, 1.0), xlim=(-4.5, 4.5), ylim=(-1.5, 1.5),
        description="an elongated bowl: steep in y, flat in x",
    )


def noisy_quadratic(condition: float = 10.0, noise: float = 1.0) -> Surface:
    """:func:`quadratic` whose gradients carry Gaussian noise of std ``noise`` per coordinate.

    The noise models a mini-batch gradient: unbiased, with a variance that does not shrink as
    the iterate approaches the minimum, so a constant learning rate ends in a noise ball.
    """
    s = quadratic(condition)
    s.noise = _number("noise", noise, minimum=0.0)
    s.name = f"noisy quadratic (condition {float(condition):g}, noise {s.noise:g})"
    s.description = "the bowl with noisy (mini-batch-like) gradients"
    return s


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """Rosenbrock's banana, f = (a - x)^2 + b (y - x^2)^2, minimum f(a, a^2) = 0.

    A curved, narrow valley: easy to find, slow to follow to its end.
    """
    a = _number("a", a)
    b = _number("b", b, minimum=0.0, strict=True)
    return Surface(
        name="Rosenbrock",
        f=lambda xy: (a - xy[..., 0]) ** 2 + b * (xy[..., 1] - xy[..., 0] ** 2) ** 2,
        minimum=(a, a * a), f_min=0.0, start=(-1.5, 2.0),
        xlim=(-2.0 + min(a, 0.0), 2.0 + max(a - 1.0, 0.0)), ylim=(-1.0, 3.0 + max(a * a - 1.0, 0.0)),
        description="a narrow curved valley",
    )


def beale() -> Surface:
    """Beale's function, minimum f(3, 0.5) = 0: flat plateaus and steep walls (x, y in [-4.5, 4.5])."""

    def f(xy):
        x, y = xy[..., 0], xy[..., 1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return Surface(
        name="Beale", f=f, minimum=(3.0, 0.5), f_min=0.0, start=(1.0, 1.5),
        xlim=(-4.5, 4.5), ylim=(-4.5, 4.5),
        description="plateaus and steep walls: gradient magnitudes vary by orders of magnitude",
    )


def saddle() -> Surface:
    """f = x^2 + y^4 / 4 - y^2 / 2: a saddle point at (0, 0), two minima (0, +1) and (0, -1).

    Along x it is a bowl; along y it falls away from the saddle (curvature -1) into two valleys
    where the quartic term takes over, so a minimum exists: f(0, +-1) = -1/4. ``minimum`` is
    the one at y = +1, where runs from the default start (-1.5, 0.01), just off the ridge
    y = 0, end. A run started exactly on y = 0 never leaves the ridge (the y-gradient is 0
    there) and stops at the saddle: that is the point of this surface.
    """

    def f(xy):
        x, y = xy[..., 0], xy[..., 1]
        return x**2 + 0.25 * y**4 - 0.5 * y**2

    return Surface(
        name="saddle", f=f,
        grad_fn=lambda xy: torch.stack([2 * xy[..., 0], xy[..., 1] ** 3 - xy[..., 1]], dim=-1),
        minimum=(0.0, 1.0), f_min=-0.25, start=(-1.5, 0.01), xlim=(-2.0, 2.0), ylim=(-1.6, 1.6),
        description="a saddle at the origin between two valleys",
    )


#: The surfaces by name: ``SURFACES["rosenbrock"]()`` builds one with default arguments.
SURFACES: dict[str, Callable[..., Surface]] = {
    "quadratic": quadratic,
    "noisy_quadratic": noisy_quadratic,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "saddle": saddle,
}


# ---------------------------------------------------------------------------------------
# running an optimizer on a surface


@dataclass
class Trajectory:
    """Where an optimizer went on a surface.

    Attributes:
        xy: ``(steps + 1, 2)`` points theta_0 ... theta_T (rows after a divergence are NaN).
        loss: ``(steps + 1,)`` the true (noise-free) f at each point.
        f_min: the surface's minimum value, for :meth:`gap` and :meth:`steps_to`.
    """

    xy: np.ndarray
    loss: np.ndarray
    f_min: float = 0.0

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def gap(self) -> np.ndarray:
        """f(theta_t) - f_min for every t (suboptimality)."""
        return self.loss - self.f_min

    @property
    def final_gap(self) -> float:
        return float(self.gap[-1])

    def steps_to(self, tol: float) -> int | None:
        """The first t with f(theta_t) - f_min <= tol, or None if never within ``steps``."""
        tol = _number("tol", tol, minimum=0.0)
        hits = np.flatnonzero(self.gap <= tol)
        return int(hits[0]) if hits.size else None

    def distance(self, point) -> np.ndarray:
        """Euclidean distance of every theta_t to ``point`` (e.g. the surface's minimum)."""
        return np.linalg.norm(self.xy - np.asarray(_point("point", point)), axis=1)


def run_on_surface(surface: Surface, optimizer_factory: Callable, steps: int, start=None,
                   seed: int = 0) -> Trajectory:
    """Run an optimizer on ``surface`` for ``steps`` updates and record the path.

    Args:
        surface: a :class:`Surface`.
        optimizer_factory: ``factory(params) -> torch.optim.Optimizer``, called with a list
            holding one float64 parameter of shape (2,), e.g.
            ``lambda params: adamlib.Momentum(params, lr=0.1, beta=0.9)``.
        steps: the number of updates (>= 0).
        start: the starting point; the surface's ``start`` if None.
        seed: seeds the generator of the gradient noise (used only when ``surface.noise > 0``),
            so a run is reproducible and different optimizers see the same noise sequence
            (as long as they evaluate one gradient per step).

    Each update evaluates the gradient inside a closure, so optimizers that call it several
    times (L-BFGS) work. If the iterate becomes non-finite the run stops and the remaining
    rows are NaN (a diverged run is a result, not an error).
    """
    if not isinstance(surface, Surface):
        _fail("surface", surface, "an adamlib.problems.Surface")
    if not callable(optimizer_factory):
        _fail("optimizer_factory", optimizer_factory, "a callable params -> torch.optim.Optimizer")
    steps = _integer("steps", steps, 0)
    seed = _integer("seed", seed, 0)
    start = surface.start if start is None else _point("start", start)
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_factory([theta])
    if not isinstance(optimizer, torch.optim.Optimizer):
        _fail("optimizer_factory", optimizer_factory,
              f"a callable returning a torch.optim.Optimizer, not a {type(optimizer).__name__}")
    generator = torch.Generator().manual_seed(seed)

    def closure():
        optimizer.zero_grad()
        theta.grad = surface.grad(theta.detach(), generator=generator)
        return surface.value(theta.detach())

    xy = np.full((steps + 1, 2), np.nan)
    xy[0] = start
    for t in range(1, steps + 1):
        optimizer.step(closure)
        point = theta.detach().numpy()
        if not np.all(np.isfinite(point)):
            break
        xy[t] = point
    with torch.no_grad():
        loss = surface.value(torch.as_tensor(xy)).numpy()
    return Trajectory(xy=xy, loss=loss, f_min=surface.f_min)


# ---------------------------------------------------------------------------------------
# a sparse problem


def sparse_regression(n_samples: int = 2000, n_features: int = 100, density: float = 0.01,
                      n_frequent: int = 5, frequent_density: float = 0.9,
                      noise_std: float = 0.1, seed: int = 0, dtype=torch.float32):
    """Linear least squares with a few frequent and many rare binary features.

    Each input x^(i) is a 0/1 vector like a bag of words: feature j is on with probability
    ``frequent_density`` for the first ``n_frequent`` features and ``density`` for the rest.
    Targets are y = X w_true + noise_std * N(0, 1), with w_true ~ N(0, 1).

    What makes it sparse, and hard for a single learning rate: the mean-squared-error's
    curvature along w_j is about E[x_j^2] = P(x_j = 1) (its Hessian is X^T X / m), so the
    frequent coordinates are ``frequent_density / density`` (90 by default) times steeper than
    the rare ones, and their common mean adds a direction of curvature about
    ``n_frequent * frequent_density^2`` (about 4). One learning rate must be small enough for the steep
    directions and is then far too small for the rare features; Adagrad's per-coordinate
    lr / sqrt(sum of g_j^2) rescales each coordinate by how often it was seen. (Measured with
    the defaults, 5 epochs of mini-batches of 32 from w = 0: the best plain SGD rate of
    {0.03, 0.1, 0.2, 0.3} reaches a training MSE of 0.109 and lr = 0.3 diverges; Adagrad with
    lr = 0.3 reaches 0.0104, near the noise floor noise_std^2 = 0.01.)

    Returns:
        ``(X, y, w_true)``: X of shape (n_samples, n_features), y of shape (n_samples,),
        w_true of shape (n_features,), all of ``dtype``. Loss: ``((X @ w - y) ** 2).mean()``.
    """
    n_samples = _integer("n_samples", n_samples, 1)
    n_features = _integer("n_features", n_features, 1)
    n_frequent = _integer("n_frequent", n_frequent, 0)
    if n_frequent > n_features:
        _fail("n_frequent", n_frequent, f"an int in [0, n_features={n_features}]")
    density = _number("density", density, minimum=0.0, strict=True)
    if density > 1:
        _fail("density", density, "a number in (0, 1]")
    frequent_density = _number("frequent_density", frequent_density, minimum=0.0, strict=True)
    if frequent_density > 1:
        _fail("frequent_density", frequent_density, "a number in (0, 1]")
    noise_std = _number("noise_std", noise_std, minimum=0.0)
    seed = _integer("seed", seed, 0)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        _fail("dtype", dtype, "a floating torch dtype")

    generator = torch.Generator().manual_seed(seed)
    p = torch.full((n_features,), density, dtype=torch.float64)
    p[:n_frequent] = frequent_density
    X = (torch.rand(n_samples, n_features, generator=generator, dtype=torch.float64) < p).to(torch.float64)
    w_true = torch.randn(n_features, generator=generator, dtype=torch.float64)
    y = X @ w_true + noise_std * torch.randn(n_samples, generator=generator, dtype=torch.float64)
    return X.to(dtype), y.to(dtype), w_true.to(dtype)
