"""Online convex optimization: the regret of a run, Theorem 4.1's bound on it, and Gamma_t.

Section 4 of Kingma & Ba (2015) analyses Adam in Zinkevich's online setting: at every step
t = 1, ..., T the algorithm commits to a point, then a convex loss f_t is revealed and paid.
In :mod:`adamlib.reference`'s indexing the point played at step t is ``theta_{t-1}`` (row
``t-1`` of ``Trace.theta``), because Algorithm 1 evaluates g_t = grad f_t(theta_{t-1}). So

    R(T) = sum_{t=1..T} f_t(theta_{t-1}) - min_{theta in X} sum_{t=1..T} f_t(theta)

with X the feasible box the run is projected onto. This module holds

* :class:`OnlineProblem` and three of them: :func:`reddi_linear` (Reddi et al.'s
  counterexample), :func:`online_logistic` (dense or sparse features);
* :func:`adam_online`: Adam with Theorem 4.1's schedules alpha_t = alpha / sqrt(t) and
  beta1_t = beta1 lambda^(t-1), projected onto X (a thin wrapper of ``reference.adam``);
* :func:`regret`: R(T) at chosen horizons, each against its own best point in hindsight;
* :func:`theorem41_bound`: the right-hand side of Theorem 4.1 evaluated on a trace, term by term;
* :func:`inverse_step_change`: Reddi et al.'s Gamma_t = sqrt(v_t)/alpha_t - sqrt(v_{t-1})/alpha_{t-1},
  the quantity the original proof silently assumes to be >= 0.

Everything is float64 NumPy, like :mod:`adamlib.reference`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import reference
from ._errors import fail as _fail

__all__ = [
    "OnlineProblem",
    "reddi_linear",
    "online_logistic",
    "adam_online",
    "Regret",
    "regret",
    "diameters",
    "Bound",
    "theorem41_bound",
    "inverse_step_change",
    "horizons",
]


@dataclass(frozen=True)
class OnlineProblem:
    """A sequence of convex losses f_1, f_2, ... on the box X = [lo, hi]^d.

    Attributes:
        name: a short label for plots.
        d: the dimension of theta.
        bounds: ``(lo, hi)``, the feasible box X that runs are projected onto.
        steps: how many losses the problem holds (``None``: unlimited).
        losses: ``losses(thetas, ts)`` -> ``f_t(theta)`` for rows ``thetas`` of shape (k, d)
            and integer steps ``ts`` of shape (k,), t >= 1.
        grad: ``grad(theta, t)`` -> grad f_t(theta), shape (d,), as ``reference`` expects.
        best: ``best(T)`` -> theta*_T = argmin over X of sum_{t <= T} f_t.
        G_inf: sup over t and over theta in X of ||grad f_t(theta)||_inf (Theorem 4.1's G_inf).
    """

    name: str
    d: int
    bounds: tuple[float, float]
    steps: int | None
    losses: Callable[[np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, int], np.ndarray]
    best: Callable[[int], np.ndarray]
    G_inf: float

    def total_loss(self, theta, T: int) -> float:
        """sum_{t=1..T} f_t(theta) for one fixed point theta."""
        theta = np.broadcast_to(np.asarray(theta, dtype=np.float64), (T, self.d))
        return float(self.losses(theta, np.arange(1, T + 1)).sum())


# ---------------------------------------------------------------------------------------
# Problems


def reddi_linear(C: float = 3.0) -> OnlineProblem:
    """Reddi, Kale & Kumar (2018), Section 3: f_t(x) = C x if t mod 3 = 1, else -x, on [-1, 1].

    The gradients of one period sum to C - 2 > 0, so the best fixed point is x* = -1; Adam
    with beta1 = 0 and beta2 = 1 / (1 + C^2) drifts to x = +1, the worst point of X.
    """
    C = float(C)
    if not math.isfinite(C) or C <= 2:
        _fail("C", C, "a finite number > 2")

    def slope(ts):
        ts = np.asarray(ts)
        return np.where(ts % 3 == 1, C, -1.0)

    def losses(thetas, ts):
        return slope(ts) * np.asarray(thetas, dtype=np.float64)[:, 0]

    def grad(theta, t):
        return np.array([slope(t)], dtype=np.float64)

    def best(T):
        total = slope(np.arange(1, T + 1)).sum()  # the loss of x is total * x: minimise over [-1, 1]
        return np.array([-np.sign(total)], dtype=np.float64)

    return OnlineProblem(f"Reddi et al. linear, C = {C:g}", 1, (-1.0, 1.0), None, losses, grad,
                         best, G_inf=C)


def online_logistic(steps: int = 4000, d: int = 10, sparse: bool = False, radius: float = 2.0,
                    label_noise: float = 0.1, seed: int = 0) -> OnlineProblem:
    """Online logistic regression: f_t(theta) = log(1 + exp(-y_t x_t^T theta)) on [-radius, radius]^d.

    Examples (x_t, y_t) are drawn once from a seeded generator: a hidden weight vector w
    labels y_t = sign(x_t^T w), and a fraction ``label_noise`` of the labels is flipped, so no
    point of X is perfect and theta* is a genuine compromise.

    ``sparse=False``: x_t uniform on [-1, 1]^d. ``sparse=True``: binary features, feature i
    on with probability 1/(i+1) (i = 0 ... d-1; feature 0, always on, is a bias), the
    setting of the paper's remark after Theorem 4.1 and of its IMDB experiment.
    G_inf = max_t ||x_t||_inf, since |d f_t / d(x^T theta)| < 1.
    """
    for name, value in (("steps", steps), ("d", d), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if name == "seed" else 1):
            _fail(name, value, "an int >= 1" if name != "seed" else "an int >= 0")
    if not isinstance(sparse, bool):
        _fail("sparse", sparse, "True or False")
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        _fail("radius", radius, "a finite number > 0")
    if not (isinstance(label_noise, (int, float)) and 0 <= label_noise < 0.5):
        _fail("label_noise", label_noise, "a number in [0, 0.5)")
    rng = np.random.default_rng(seed)
    if sparse:
        p = 1.0 / np.arange(1, d + 1)
        X = (rng.random((steps, d)) < p).astype(np.float64)
    else:
        X = rng.uniform(-1.0, 1.0, size=(steps, d))
    w = rng.normal(size=d)
    y = np.where(X @ w >= 0, 1.0, -1.0)
    y = np.where(rng.random(steps) < label_noise, -y, y)

    def losses(thetas, ts):
        idx = np.asarray(ts) - 1
        margins = y[idx] * np.einsum("kd,kd->k", X[idx], np.asarray(thetas, dtype=np.float64))
        return np.logaddexp(0.0, -margins)

    def grad(theta, t):
        x, label = X[t - 1], y[t - 1]
        margin = label * (x @ theta)
        return -label * x * 0.5 * (1.0 - np.tanh(margin / 2))  # sigma(-margin), overflow-free

    solved: dict[int, np.ndarray] = {}  # theta*_T does not depend on the run: solve each T once

    def best(T):
        T = int(T)
        if T in solved:
            return solved[T].copy()
        from scipy.optimize import minimize  # imported late: only regret() needs it

        XT, yT = X[:T], y[:T]
        shorter = [k for k in solved if k < T]
        start = solved[max(shorter)] if shorter else np.zeros(d)  # warm start: a nearby horizon

        def objective(theta):
            margins = yT * (XT @ theta)
            s = 0.5 * (1.0 - np.tanh(margins / 2))
            return np.logaddexp(0.0, -margins).sum(), -(XT * (yT * s)[:, None]).sum(axis=0)

        result = minimize(objective, start, jac=True, method="L-BFGS-B",
                          bounds=[(-radius, radius)] * d, options={"ftol": 1e-13, "gtol": 1e-10})
        solved[T] = result.x
        return result.x.copy()

    kind = "sparse" if sparse else "dense"
    return OnlineProblem(f"logistic, {kind}, d = {d}", d, (-float(radius), float(radius)), steps,
                         losses, grad, best, G_inf=float(np.abs(X).max()))


# ---------------------------------------------------------------------------------------
# Runs


def adam_online(problem: OnlineProblem, steps: int, alpha: float = 0.1, beta1: float = 0.9,
                beta2: float = 0.999, lam: float = 1 - 1e-8, eps: float = 1e-8,
                theta0=None) -> reference.Trace:
    """Adam under Theorem 4.1's schedules, projected onto the problem's box X.

    alpha_t = alpha / sqrt(t), beta1_t = beta1 lambda^(t-1) (the bias correction keeps the
    constant beta1, as in the paper); theta_0 = 0 unless given. The same arithmetic as
    ``reference.adam(problem.grad, theta0, steps, alpha=lambda t: alpha / sqrt(t),
    beta1=lambda t: beta1 * lam ** (t - 1), beta2=beta2, eps=eps, bounds=problem.bounds)``
    (the tests hold them equal), in a leaner loop: runs of 10^5 steps take seconds.
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        _fail("steps", steps, "an int >= 1")
    if problem.steps is not None and steps > problem.steps:
        _fail("steps", steps, f"at most the problem's {problem.steps} losses")
    if not 0 < lam < 1:
        _fail("lam", lam, "a number in (0, 1)")
    lo, hi = problem.bounds
    theta = np.zeros(problem.d) if theta0 is None else np.array(theta0, dtype=np.float64).reshape(problem.d)
    thetas = np.empty((steps + 1, problem.d))
    gs, ms, vs, m_hats, v_hats = (np.empty((steps, problem.d)) for _ in range(5))
    thetas[0] = theta
    m = np.zeros(problem.d)
    v = np.zeros(problem.d)
    for t in range(1, steps + 1):
        g = problem.grad(theta, t)
        b1 = beta1 * lam ** (t - 1)
        m = b1 * m + (1 - b1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = np.clip(theta - (alpha / math.sqrt(t)) * m_hat / (np.sqrt(v_hat) + eps), lo, hi)
        thetas[t], gs[t - 1], ms[t - 1], vs[t - 1] = theta, g, m, v
        m_hats[t - 1], v_hats[t - 1] = m_hat, v_hat
    return reference.Trace(theta=thetas, g=gs, delta=np.diff(thetas, axis=0),
                           extras={"m": ms, "v": vs, "m_hat": m_hats, "v_hat": v_hats})


def horizons(steps: int, count: int = 40) -> np.ndarray:
    """About ``count`` distinct horizons T from 1 to ``steps``, evenly spaced on a log scale."""
    if steps < 1:
        _fail("steps", steps, "an int >= 1")
    return np.unique(np.geomspace(1, steps, count).round().astype(int))


@dataclass(frozen=True)
class Regret:
    """R(T) at each horizon T, each against theta*_T, the best point of X for that horizon."""

    T: np.ndarray
    R: np.ndarray
    theta_star: np.ndarray  # (len(T), d)
    loss: np.ndarray  # f_t(theta_{t-1}) for t = 1 ... max(T): what the algorithm paid

    @property
    def average(self) -> np.ndarray:
        """R(T) / T, which Corollary 4.2 claims goes to 0."""
        return self.R / self.T


def regret(problem: OnlineProblem, trace: reference.Trace, T=None) -> Regret:
    """The regret of a run at horizons ``T`` (default: :func:`horizons` up to the run's length)."""
    steps = len(trace.g)
    T = horizons(steps) if T is None else np.atleast_1d(np.asarray(T, dtype=int))
    if T.size == 0 or T.min() < 1 or T.max() > steps:
        _fail("T", T, f"horizons in [1, {steps}]")
    played = trace.theta[:-1].reshape(steps, problem.d)  # theta_{t-1} is played at step t
    paid = problem.losses(played, np.arange(1, steps + 1))
    cumulative = np.cumsum(paid)
    stars = np.stack([np.asarray(problem.best(int(h)), dtype=np.float64).reshape(problem.d) for h in T])
    best_totals = np.array([problem.total_loss(s, int(h)) for s, h in zip(stars, T)])
    return Regret(T=T, R=cumulative[T - 1] - best_totals, theta_star=stars, loss=paid)


# ---------------------------------------------------------------------------------------
# Theorem 4.1


#: Above this many points :func:`diameters` bounds D instead of computing all pairs.
EXACT_DIAMETER_POINTS = 8192


def diameters(points) -> tuple[float, float]:
    """(D, D_inf): the largest ||a - b||_2 and ||a - b||_inf over all pairs of rows of ``points``.

    D_inf is exact (the widest coordinate range). D is exact for one coordinate or up to
    ``EXACT_DIAMETER_POINTS`` points (all pairs); beyond that it is the diagonal of the
    bounding box, sqrt(sum_i range_i^2), an upper bound (all pairs would cost n^2).
    """
    P = np.asarray(points, dtype=np.float64)
    P = P.reshape(len(P), -1)
    ranges = P.max(axis=0) - P.min(axis=0)
    D_inf = float(ranges.max())
    if P.shape[1] == 1 or len(P) > EXACT_DIAMETER_POINTS:
        return float(np.sqrt((ranges**2).sum())), D_inf
    sq = (P * P).sum(axis=1)
    D2 = 0.0
    for start in range(0, len(P), 1024):  # chunks: all pairs at once would be len(P)^2 floats
        block = P[start:start + 1024]
        d2 = sq[start:start + 1024, None] + sq[None, :] - 2 * block @ P.T
        D2 = max(D2, float(d2.max()))
    return math.sqrt(max(D2, 0.0)), D_inf


@dataclass(frozen=True)
class Bound:
    """Theorem 4.1's right-hand side at each horizon T, and the constants it was evaluated with.

    ``first``  D^2 / (2 alpha (1 - beta1)) sum_i sqrt(T v_hat_{T,i})
    ``second`` alpha (1 + beta1) G_inf / ((1 - beta1) sqrt(1 - beta2) (1 - gamma)^2) sum_i ||g_{1:T,i}||_2
    ``third``  sum_i D_inf^2 G_inf sqrt(1 - beta2) / (2 alpha (1 - beta1) (1 - lambda)^2)  (constant in T)
    """

    T: np.ndarray
    first: np.ndarray
    second: np.ndarray
    third: np.ndarray
    D: float
    D_inf: float
    G_inf: float
    gamma: float

    @property
    def total(self) -> np.ndarray:
        return self.first + self.second + self.third


def theorem41_bound(trace: reference.Trace, T, alpha: float, beta1: float, beta2: float,
                    lam: float, G_inf: float, D: float | None = None,
                    D_inf: float | None = None, theta_star=None) -> Bound:
    """Theorem 4.1 of Kingma & Ba (2015, arXiv v9) evaluated on the run ``trace``.

    ``trace`` must come from Adam with alpha_t = alpha / sqrt(t) and beta1_t = beta1
    lambda^(t-1) (e.g. :func:`adam_online`) and record ``v_hat``. ``G_inf`` bounds every
    |g_{t,i}|. ``D`` and ``D_inf`` default to the diameters of the iterates theta_0 ... theta_T
    together with ``theta_star`` (rows; the proof measures distances to theta*).
    Raises ``ValueError`` unless gamma = beta1^2 / sqrt(beta2) < 1 and lambda in (0, 1).
    """
    gamma = beta1**2 / math.sqrt(beta2)
    if not gamma < 1:
        _fail("beta1, beta2", (beta1, beta2), "gamma = beta1^2 / sqrt(beta2) < 1 (Theorem 4.1)")
    if not 0 < lam < 1:
        _fail("lam", lam, "a number in (0, 1)")
    if not 0 <= beta1 < 1 or not 0 <= beta2 < 1:
        _fail("beta1, beta2", (beta1, beta2), "numbers in [0, 1)")
    g = trace.g.reshape(len(trace.g), -1)
    steps, d = g.shape
    if G_inf < np.abs(g).max():
        _fail("G_inf", G_inf, f"at least max |g_t,i| = {np.abs(g).max():.6g} on this run")
    T = np.atleast_1d(np.asarray(T, dtype=int))
    if T.min() < 1 or T.max() > steps:
        _fail("T", T, f"horizons in [1, {steps}]")
    if D is None or D_inf is None:
        points = trace.theta.reshape(steps + 1, d)
        if theta_star is not None:
            points = np.vstack([points, np.asarray(theta_star, dtype=np.float64).reshape(-1, d)])
        D_run, D_inf_run = diameters(points)
        D = D_run if D is None else D
        D_inf = D_inf_run if D_inf is None else D_inf
    v_hat = trace.v_hat.reshape(steps, d)
    sum_sqrt_T_vhat = np.sqrt(T * v_hat[T - 1].T).sum(axis=0)
    g_norms = np.sqrt(np.cumsum(g * g, axis=0))[T - 1].sum(axis=1)  # sum_i ||g_{1:T,i}||_2
    first = D**2 / (2 * alpha * (1 - beta1)) * sum_sqrt_T_vhat
    second = (alpha * (1 + beta1) * G_inf / ((1 - beta1) * math.sqrt(1 - beta2) * (1 - gamma) ** 2)
              * g_norms)
    third = np.full(T.shape, d * D_inf**2 * G_inf * math.sqrt(1 - beta2)
                    / (2 * alpha * (1 - beta1) * (1 - lam) ** 2))
    return Bound(T=T, first=first, second=second, third=third, D=float(D), D_inf=float(D_inf),
                 G_inf=float(G_inf), gamma=gamma)


# ---------------------------------------------------------------------------------------
# The flaw


def inverse_step_change(v, alphas) -> np.ndarray:
    """Gamma_t = sqrt(v_t) / alpha_t - sqrt(v_{t-1}) / alpha_{t-1} (Reddi et al., eq. 2).

    ``v``: (T, ...) the second-moment estimates v_1 ... v_T (raw, bias-corrected, or AMSGrad's
    running max); ``alphas``: the T step sizes alpha_1 ... alpha_T. sqrt(v_0) / alpha_0 is
    taken as 0, so Gamma_1 = sqrt(v_1) / alpha_1. The regret proof of Kingma & Ba needs every
    Gamma_{t,i} >= 0; returns an array shaped like ``v``.
    """
    v = np.asarray(v, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1, *([1] * (v.ndim - 1)))
    if len(alphas) != len(v):
        _fail("alphas", alphas.shape, f"one step size per row of v ({len(v)})")
    inverse = np.sqrt(v) / alphas
    return np.diff(inverse, axis=0, prepend=np.zeros_like(inverse[:1]))
