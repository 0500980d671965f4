"""Adam's limitations, simulated fast: Reddi et al.'s counterexamples, limit cycles, constant rates.

Three families of experiments (chapter 15), all float64 NumPy and vectorised so that runs of
10^6 steps take about a second on a laptop core:

**Online linear problems** (Reddi, Kale & Kumar, 2018). Losses f_t(x) = g_t x on the feasible
set [-1, 1]: the gradient g_t does not depend on x. So Adam's and AMSGrad's moments m_t, v_t
and running maxima are computed for the whole run at once (linear filters and a cumulative
max), and only the projection x_t = clip(x_{t-1} + d_t, -1, 1) is sequential: a projected
running sum of scalars (:func:`projected_cumsum`). :func:`run_online` runs Adam or one of the three AMSGrads in
circulation and returns x_t, the regret R_t and R_t / t. It agrees with the step-by-step
boxes ``adamlib.reference.adam`` / ``amsgrad`` (with ``bounds``) to rounding.

**Limit cycles** (Bock & Weiss, 2019). Adam with a constant step alpha on f(x) = c x^2 / 2
(batch gradients) has a 2-cycle x* -> -x* -> x* of amplitude

    x* = alpha (1 - beta1) / (2 (1 + beta1))            (:func:`cycle_amplitude`),

independent of c and beta2; :func:`adam_on_quadratic` runs many settings at once,
:func:`cycle_spectral_radius` says whether the cycle attracts (< 1) or repels (> 1).

**Non-vanishing learning rates** (Dereich, Graeber & Jentzen, 2024). Adam estimating a mean,
F(theta) = E[(theta - X)^2] / 2, with stochastic gradients theta - X: :func:`mean_estimation`
runs many independent chains for several settings at once (common random numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable, Union

import numpy as np
from scipy.signal import lfilter
from ._errors import fail as _fail

__all__ = [
    "ONLINE_METHODS",
    "periodic_gradients",
    "reddi_gradients",
    "synthetic_gradients",
    "stochastic_gradients",
    "inv_sqrt",
    "projected_cumsum",
    "OnlineRun",
    "run_online",
    "reddi_drift",
    "reddi_threshold",
    "cycle_amplitude",
    "adam_on_quadratic",
    "adam_on_quadratic_log",
    "cycle_spectral_radius",
    "stability_threshold",
    "DATA",
    "mean_estimation",
]

Schedule = Union[float, Callable[[np.ndarray], np.ndarray]]

#: Adam, and the three AMSGrads in circulation (see :func:`run_online`).
ONLINE_METHODS = ("adam", "amsgrad_reddi", "amsgrad_torch", "amsgrad_v_hat")


def _int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        _fail(name, value, f"an int >= {minimum}")
    return int(value)


def _beta(name: str, value) -> float:
    if isinstance(value, bool):
        _fail(name, value, "a number in [0, 1)")
    try:
        b = float(value)
    except (TypeError, ValueError):
        _fail(name, value, "a number in [0, 1)")
    if not 0.0 <= b < 1.0:
        _fail(name, value, "a number in [0, 1)")
    return b


# ---------------------------------------------------------------------------------------
# Online linear problems


def periodic_gradients(steps: int, big: float, small: float, period: int) -> np.ndarray:
    """g_t = big if t mod period == 1, else small, for t = 1..steps (f_t(x) = g_t x)."""
    steps, period = _int("steps", steps, 1), _int("period", period, 2)
    t = np.arange(1, steps + 1)
    return np.where(t % period == 1, float(big), float(small))


def reddi_gradients(steps: int, C: float = 3.0) -> np.ndarray:
    """Reddi et al., Section 3: f_t(x) = C x every third step (t mod 3 = 1), -x otherwise.

    A period's gradients sum to C - 2, so for C > 2 the best point of [-1, 1] is x = -1.
    """
    if not (math.isfinite(float(C)) and C > 2):
        _fail("C", C, "a finite number > 2")
    return periodic_gradients(steps, C, -1.0, 3)


def synthetic_gradients(steps: int) -> np.ndarray:
    """Reddi et al., Section 5 (Figure 1): f_t(x) = 1010 x for t mod 101 = 1, -10 x otherwise."""
    return periodic_gradients(steps, 1010.0, -10.0, 101)


def stochastic_gradients(steps: int, seed: int = 0, big: float = 1010.0, small: float = -10.0,
                         p: float = 0.01) -> np.ndarray:
    """The stochastic version: g_t = big with probability p, else small, i.i.d. (seeded).

    With the defaults E[g_t] = 0.01 * 1010 - 0.99 * 10 = 0.2 > 0: the optimum is x = -1.
    """
    steps, seed = _int("steps", steps, 1), _int("seed", seed, 0)
    if not 0 < p < 1:
        _fail("p", p, "a probability in (0, 1)")
    rare = np.random.default_rng(seed).random(steps) < p
    return np.where(rare, float(big), float(small))


def inv_sqrt(alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    """The schedule alpha_t = alpha / sqrt(t) of Theorem 4.1 and of Reddi et al.

    Works on an int t and on an array of t, so the same callable drives
    ``adamlib.reference`` (one t at a time) and :func:`run_online` (all t at once).
    """
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        _fail("alpha", alpha, "a finite number > 0")
    return lambda t: alpha / np.sqrt(t)


def projected_cumsum(d, x0: float = 0.0, bounds=(-1.0, 1.0)) -> np.ndarray:
    """x_0 = x0, x_t = clip(x_{t-1} + d_t, lo, hi): the projected running sum of the steps d_t.

    The only sequential part of an online run. ``itertools.accumulate`` over Python floats
    does it at about 3 * 10^6 steps per second, faster than a log2(T)-pass NumPy prefix scan
    of the clip maps (tried: about half the speed). Returns x_0 ... x_T, shape (T + 1,).
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 1:
        _fail("d", d.shape, "a 1-D array of steps")
    lo, hi = (float(b) for b in bounds)
    if not lo <= hi:
        _fail("bounds", bounds, "(lo, hi) with lo <= hi")

    def project(x: float, step: float) -> float:
        x += step
        return hi if x > hi else (lo if x < lo else x)

    x0 = min(hi, max(lo, float(x0)))
    return np.fromiter(accumulate(d.tolist(), project, initial=x0), dtype=np.float64, count=len(d) + 1)


@dataclass(frozen=True)
class OnlineRun:
    """A run on an online linear problem f_t(x) = g_t x over [lo, hi].

    Attributes:
        method: one of :data:`ONLINE_METHODS`.
        x: (T + 1,) the iterates x_0 ... x_T; x_{t-1} is played at step t.
        g: (T,) the gradients g_1 ... g_T.
        regret: (T,) R_t = sum_{s <= t} g_s x_{s-1} - min_{x in [lo, hi]} sum_{s <= t} g_s x.
        denominator: (T,) the quantity whose square root divides the step (v_hat_t for Adam,
            the running max for AMSGrad, in the form each variant uses): Reddi et al.'s V_t.
        alphas: (T,) the step sizes alpha_t.
    """

    method: str
    x: np.ndarray
    g: np.ndarray
    regret: np.ndarray
    denominator: np.ndarray
    alphas: np.ndarray

    @property
    def average_regret(self) -> np.ndarray:
        """R_t / t, which must go to 0 for a method with sublinear regret."""
        return self.regret / np.arange(1, len(self.regret) + 1)


def _bias_factors(beta: float, T: int) -> np.ndarray:
    """1 - beta^t for t = 1..T; computed only while beta^t is above float64 resolution (else 1)."""
    out = np.ones(T)
    if beta > 0:
        k = min(T, int(math.log(1e-18) / math.log(beta)) + 1)
        out[:k] = 1 - beta ** np.arange(1, k + 1, dtype=np.float64)
    return out


def run_online(g, method: str = "adam", alpha: Schedule = 1e-3, beta1: float = 0.9,
               beta2: float = 0.999, eps: float = 1e-8, bias_correction: bool = True,
               bounds=(-1.0, 1.0), x0: float = 0.0) -> OnlineRun:
    """Adam or AMSGrad on the online linear problem with gradients ``g`` (shape (T,)), projected.

    ``alpha``: a constant, or a vectorised schedule such as :func:`inv_sqrt` (alpha_t of an
    array of t). The methods, with m_hat_t = m_t / (1 - beta1^t) and v_hat_t = v_t / (1 - beta2^t):

    ``"adam"``           Algorithm 1: d_t = -alpha_t m_hat_t / (sqrt(v_hat_t) + eps)
                         (``bias_correction=False``: m_t / (sqrt(v_t) + eps)).
    ``"amsgrad_reddi"``  Reddi et al.'s Algorithm 2, no bias correction:
                         d_t = -alpha_t m_t / (sqrt(max_{s<=t} v_s) + eps).
    ``"amsgrad_torch"``  ``torch.optim.Adam(amsgrad=True)``'s code: the max of the raw v, then
                         d_t = -alpha_t m_hat_t / (sqrt(max_{s<=t} v_s / (1 - beta2^t)) + eps).
    ``"amsgrad_v_hat"``  the max of the bias-corrected v_hat (PyTorch's docs box, optax):
                         d_t = -alpha_t m_hat_t / (sqrt(max_{s<=t} v_hat_s) + eps).

    Each is the same arithmetic as ``adamlib.reference.adam`` / ``reference.amsgrad(variant=...)``
    with ``bounds``, computed for all t at once (the gradients do not depend on x).
    """
    if method not in ONLINE_METHODS:
        _fail("method", method, f"one of {ONLINE_METHODS}")
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 1 or len(g) == 0:
        _fail("g", g.shape, "a non-empty 1-D array of gradients")
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    if not eps >= 0:
        _fail("eps", eps, "a number >= 0")
    T = len(g)
    t = np.arange(1, T + 1, dtype=np.float64)
    alphas = np.broadcast_to(np.asarray(alpha(t) if callable(alpha) else float(alpha), dtype=np.float64),
                             (T,)).copy()
    m = lfilter([1 - beta1], [1.0, -beta1], g)        # m_t = beta1 m_{t-1} + (1 - beta1) g_t
    v = lfilter([1 - beta2], [1.0, -beta2], g * g)    # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    bc1, bc2 = _bias_factors(beta1, T), _bias_factors(beta2, T)
    if method == "adam":
        numerator, denominator = (m / bc1, v / bc2) if bias_correction else (m, v)
    elif method == "amsgrad_reddi":
        numerator, denominator = m, np.maximum.accumulate(v)
    elif method == "amsgrad_torch":
        numerator, denominator = m / bc1, np.maximum.accumulate(v) / bc2
    else:
        numerator, denominator = m / bc1, np.maximum.accumulate(v / bc2)
    d = -alphas * numerator / (np.sqrt(denominator) + eps)
    x = projected_cumsum(d, x0, bounds)
    lo, hi = (float(b) for b in bounds)
    G = np.cumsum(g)
    best = np.where(G > 0, lo * G, hi * G)           # min over x in [lo, hi] of x * G_t
    regret = np.cumsum(g * x[:-1]) - best
    return OnlineRun(method=method, x=x, g=g, regret=regret, denominator=denominator, alphas=alphas)


def reddi_drift(C, beta2):
    """How far Adam moves x per period of Reddi's problem, in units of alpha_t, once settled.

    beta1 = 0, eps = 0, bias factors 1, and alpha_t nearly constant over a period: v_t then
    repeats with period 3, v_a (after the gradient C), v_b and v_c (after the two -1's), and
    one period moves x by alpha (-C / sqrt(v_a) + 1 / sqrt(v_b) + 1 / sqrt(v_c)). Positive:
    x drifts to +1, the worst point (Adam fails); negative: to -1. Elementwise on arrays.
    """
    C, b = np.asarray(C, dtype=np.float64), np.asarray(beta2, dtype=np.float64)
    k = (1 - b) / (1 - b**3)                  # sum of the weights (1 - b) b^j over one period's lags
    v_a = k * (C * C + b + b * b)
    v_b = k * (1 + b * C * C + b * b)
    v_c = k * (1 + b + b * b * C * C)
    out = -C / np.sqrt(v_a) + 1 / np.sqrt(v_b) + 1 / np.sqrt(v_c)
    return float(out) if out.ndim == 0 else out


def reddi_threshold(C: float, tol: float = 1e-12) -> float:
    """The beta2 below which Adam (beta1 = 0) drifts to +1 on Reddi's problem: the root of :func:`reddi_drift`."""
    C = float(C)
    if not (math.isfinite(C) and C > 2):
        _fail("C", C, "a finite number > 2")
    lo, hi = 1e-12, 1 - 1e-9
    if reddi_drift(C, lo) <= 0 or reddi_drift(C, hi) >= 0:
        _fail("C", C, "a value whose drift changes sign in (0, 1)")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reddi_drift(C, mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------
# Limit cycles on f(x) = c x^2 / 2


def cycle_amplitude(alpha, beta1):
    """x* = alpha (1 - beta1) / (2 (1 + beta1)): the 2-cycle x* -> -x* of Adam on c x^2 / 2.

    On the cycle g^2 = c^2 x*^2 is constant, so v = c^2 x*^2; the momentum alternates, m = -beta1 m
    + (1 - beta1) c x*, so m = c x* (1 - beta1) / (1 + beta1); a step of alpha m / sqrt(v) must
    be 2 x*. Neither c nor beta2 appears. Works elementwise on arrays.
    """
    alpha, beta1 = np.asarray(alpha, dtype=np.float64), np.asarray(beta1, dtype=np.float64)
    out = alpha * (1 - beta1) / (2 * (1 + beta1))
    return float(out) if out.ndim == 0 else out


def adam_on_quadratic(steps: int, alpha=0.1, beta1=0.9, beta2=0.999, c=1.0, eps: float = 0.0,
                      bias_correction: bool = True, x0=1.0, m0=0.0, v0=0.0,
                      keep: int | None = None) -> np.ndarray:
    """Adam with a constant step on f(x) = c x^2 / 2 (gradient c x), many settings at once.

    ``alpha``, ``beta1``, ``beta2``, ``c`` and the start ``x0``, ``m0``, ``v0`` broadcast
    against each other (e.g. a column of beta1 and a row of c). Algorithm 1 starts from
    m0 = v0 = 0; other starts (e.g. on the 2-cycle, to test its stability) make sense with
    ``bias_correction=False``. Returns x_t for t = steps - keep + 1 ... steps (all of
    x_1 ... x_T if ``keep`` is None), time first: shape (keep, *broadcast shape).
    """
    steps = _int("steps", steps, 1)
    keep = steps if keep is None else _int("keep", keep, 1)
    if keep > steps:
        _fail("keep", keep, f"at most steps = {steps}")
    alpha, beta1, beta2, c, x, m, v = (np.array(a, dtype=np.float64) for a in np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (alpha, beta1, beta2, c, x0, m0, v0))))
    if np.any((beta1 < 0) | (beta1 >= 1) | (beta2 < 0) | (beta2 >= 1)):
        _fail("beta1, beta2", (beta1, beta2), "numbers in [0, 1)")
    out = np.empty((keep, *x.shape))
    p1 = np.ones_like(x)                              # beta1^t and beta2^t, updated in place
    p2 = np.ones_like(x)
    for t in range(1, steps + 1):
        g = c * x
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if bias_correction:
            p1 *= beta1
            p2 *= beta2
            x = x - alpha * (m / (1 - p1)) / (np.sqrt(v / (1 - p2)) + eps)
        else:
            x = x - alpha * m / (np.sqrt(v) + eps)
        if t > steps - keep:
            out[t - (steps - keep) - 1] = x
    return out


def adam_on_quadratic_log(steps: int, alpha: float = 0.1, beta2: float = 0.999, c: float = 1.0,
                          x0: float = 1.0) -> np.ndarray:
    """log10 |x_t|, t = 1 ... steps, of Adam with beta1 = 0, eps = 0 and bias correction on c x^2 / 2,
    computed in logarithms so that no iterate underflows.

    With beta1 = 0 the step is x_t = x_(t-1) (1 - alpha c / sqrt(v_hat_t)) and
    v_t = beta2 v_(t-1) + (1 - beta2) c^2 x_(t-1)^2; both are carried as logarithms (v by
    ``logaddexp``), so |x_t| may fall far below float64's smallest number (about 1e-324), where
    :func:`adam_on_quadratic` returns exactly 0 and stays there. Until that happens the two
    agree to rounding. A factor of exactly 0 (x_t = 0 in exact arithmetic) ends the run there:
    the rest is -inf.
    """
    steps = _int("steps", steps, 1)
    beta2 = _beta("beta2", beta2)
    if not (alpha > 0 and c > 0 and x0 != 0):
        _fail("alpha, c, x0", (alpha, c, x0), "alpha > 0, c > 0 and x0 != 0")
    log_x, log_v = math.log(abs(x0)), -math.inf
    log_b2, log_1mb2, log_c2 = math.log(beta2) if beta2 > 0 else -math.inf, math.log1p(-beta2), 2 * math.log(c)
    power = 1.0                                   # beta2^t
    out = np.full(steps, -np.inf)
    for t in range(1, steps + 1):
        log_v = float(np.logaddexp(log_b2 + log_v, log_1mb2 + log_c2 + 2 * log_x))
        power *= beta2
        factor = 1.0 - alpha * c / math.exp(0.5 * (log_v - math.log1p(-power)))
        if factor == 0:
            break
        log_x += math.log(abs(factor))
        out[t - 1] = log_x / math.log(10)
    return out


def cycle_spectral_radius(beta1, beta2) -> np.ndarray | float:
    """Spectral radius of the Jacobian of Adam's two-step map at the 2-cycle (eps = 0).

    State (x, m, v) with one step g = c x, m' = beta1 m + (1 - beta1) g, v' = beta2 v + (1 - beta2) g^2,
    x' = x - alpha m' / sqrt(v') (no bias correction: its factors are 1 once t is large). The
    cycle starts at x = x*, m = -c x* (1 - beta1) / (1 + beta1), v = c^2 x*^2. The radius does
    not depend on alpha or c (set to 1 here): < 1, the cycle attracts nearby orbits; > 1, it
    repels them. Elementwise over broadcast arrays of beta1 and beta2.
    """
    b1, b2 = np.broadcast_arrays(np.asarray(beta1, dtype=np.float64), np.asarray(beta2, dtype=np.float64))
    alpha, c = 1.0, 1.0
    xs = cycle_amplitude(alpha, b1)
    ms = c * xs * (1 - b1) / (1 + b1)

    def jacobian(x, m_prev, v_prev):
        g = c * x
        m = b1 * m_prev + (1 - b1) * g
        v = b2 * v_prev + (1 - b2) * g * g
        dm = np.stack([(1 - b1) * c * np.ones_like(x), b1, np.zeros_like(x)], axis=-1)
        dv = np.stack([2 * (1 - b2) * c * g, np.zeros_like(x), b2], axis=-1)
        # x' = x - alpha m / sqrt(v): d x' = e_x - alpha (dm / sqrt(v) - m dv / (2 v^1.5))
        dx = (np.stack([np.ones_like(x), np.zeros_like(x), np.zeros_like(x)], axis=-1)
              - alpha * (dm / np.sqrt(v)[..., None] - (m / (2 * v**1.5))[..., None] * dv))
        J = np.stack([dx, dm, dv], axis=-2)
        x_next = x - alpha * m / np.sqrt(v)
        return J, x_next, m, v

    J1, x1, m1, v1 = jacobian(xs, -ms, (c * xs) ** 2)
    J2, _, _, _ = jacobian(x1, m1, v1)
    rho = np.abs(np.linalg.eigvals(J2 @ J1)).max(axis=-1)
    return float(rho) if rho.ndim == 0 else rho


def stability_threshold(beta2: float, tol: float = 1e-10) -> float:
    """The beta1 in [0, 0.99] where :func:`cycle_spectral_radius` crosses 1 (the cycle is stable below it)."""
    beta2 = _beta("beta2", beta2)
    lo, hi = 0.0, 0.99
    if cycle_spectral_radius(lo, beta2) >= 1 or cycle_spectral_radius(hi, beta2) <= 1:
        _fail("beta2", beta2, "a value with a stable cycle at beta1 = 0 and an unstable one at 0.99")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cycle_spectral_radius(mid, beta2) < 1 else (lo, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------
# Non-vanishing learning rates: Adam estimating a mean


#: Data laws with mean 1 and variance 9: skewed (rare large values) and symmetric.
DATA = {
    "skewed": "X = 10 B, B ~ Bernoulli(0.1)",
    "symmetric": "X = 1 + 3 S, S = +-1 with probability 1/2 each",
}


def _draw(data: str, rng: np.random.Generator, shape) -> np.ndarray:
    u = rng.random(shape)
    if data == "skewed":
        return np.where(u < 0.1, 10.0, 0.0)
    return np.where(u < 0.5, 4.0, -2.0)


def mean_estimation(steps: int, alpha=1e-3, beta1=0.9, beta2=0.999, data: str = "skewed",
                    chains: int = 100, batch: int = 1, eps: float = 1e-8, seed: int = 0,
                    theta0: float = 0.0, average_from: int | None = None,
                    record_every: int | None = None) -> dict:
    """Adam on F(theta) = E[(theta - X)^2] / 2 (minimizer E[X] = 1) with gradients theta - mean(batch).

    ``alpha`` (a constant, or a callable of an int t such as ``inv_sqrt(0.01)``) and ``beta2``
    may be arrays that broadcast to a shape S of settings; every setting runs ``chains``
    independent chains from ``theta0``, and all settings see the same data draws (a batch of
    ``batch`` draws of X per step). Bias correction on, as in Algorithm 1.

    Returns a dict of arrays: ``last`` (S + (chains,)) theta_T; ``time_average`` (S + (chains,))
    the mean of theta_t over t > ``average_from`` (default T / 2); ``path`` (n, S + (chains,))
    theta_t every ``record_every`` steps (if given) and ``t`` the recorded steps.
    """
    steps, chains, batch = _int("steps", steps, 1), _int("chains", chains, 1), _int("batch", batch, 1)
    if data not in DATA:
        _fail("data", data, f"one of {tuple(DATA)}")
    average_from = steps // 2 if average_from is None else _int("average_from", average_from, 0)
    if average_from >= steps:
        _fail("average_from", average_from, f"less than steps = {steps}")
    schedule = alpha if callable(alpha) else None
    alpha_arr = np.asarray(1.0 if schedule else alpha, dtype=np.float64)
    beta2 = np.asarray(beta2, dtype=np.float64)
    beta1 = float(beta1)
    alpha_arr, beta2 = np.broadcast_arrays(alpha_arr, beta2)
    shape = (*alpha_arr.shape, chains)
    a, b2 = alpha_arr[..., None], beta2[..., None]
    rng = np.random.default_rng(seed)
    theta = np.full(shape, float(theta0))
    m = np.zeros(shape)
    v = np.zeros(shape)
    total = np.zeros(shape)
    path, recorded = [], []
    chunk = 500
    for start in range(0, steps, chunk):
        n = min(chunk, steps - start)
        X = _draw(data, rng, (n, chains, batch)).mean(axis=-1)     # one draw per step, shared
        for k in range(n):
            t = start + k + 1
            g = theta - X[k]
            m = beta1 * m + (1 - beta1) * g
            v = b2 * v + (1 - b2) * g * g
            step_size = schedule(t) if schedule else a
            theta = theta - step_size * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            if t > average_from:
                total += theta
            if record_every and t % record_every == 0:
                path.append(theta.copy())
                recorded.append(t)
    out = {"last": theta, "time_average": total / (steps - average_from)}
    if record_every:
        out["path"] = np.stack(path)
        out["t"] = np.array(recorded)
    return out
