"""Temporal averaging of the parameters (Kingma & Ba, 2015, Section 7.2), for any torch optimizer.

The last iterate of a stochastic method is noisy; an average of the iterates is less so.
Section 7.2 adds one line to Algorithms 1 and 2, an exponential moving average of the
parameters with the bias correction of Section 3::

    theta_bar_t = beta2 theta_bar_{t-1} + (1 - beta2) theta_t,   theta_bar_0 = 0
    theta_hat_t = theta_bar_t / (1 - beta2^t)

theta_hat_t is a true weighted mean of theta_1 ... theta_t (weights (1 - beta2) beta2^(t-k) /
(1 - beta2^t), summing to 1). Polyak-Ruppert averaging (Polyak & Juditsky, 1992) weighs the
iterates equally: theta_bar_t = (1/t) sum_k theta_k.

:class:`ParameterAverage` keeps either average beside any ``torch.optim.Optimizer``::

    avg = ParameterAverage(model.parameters(), beta=0.999)      # or kind="polyak"
    for ...:
        opt.step()
        avg.update()                       # after every step
    with avg.applied():                    # evaluate the model at theta_hat_t
        loss = loss_fn(model(X), y)

How it relates to ``torch.optim.swa_utils.AveragedModel``:

* ``AveragedModel(model)`` (no ``avg_fn``) is the equal-weight average of the parameters
  passed to ``update_parameters``: the Polyak average, exactly.
* ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(beta))`` copies the parameters at
  its first update and applies theta_ema <- beta theta_ema + (1 - beta) theta after that: an
  EMA that starts from theta_1 instead of 0. It needs no bias correction, but gives theta_1
  the weight beta^(t-1) (0.905 after 100 steps with beta = 0.999) where theta_hat_t gives it
  (1 - beta) beta^(t-1) / (1 - beta^t) (0.0095). The two coincide exactly if the torch average
  is started from a zero copy of the model: it is then theta_bar_t, and dividing by
  1 - beta^t gives theta_hat_t. They agree asymptotically, up to O(beta^t).

:func:`ema_path` and :func:`polyak_path` compute the same averages of a stored trajectory in
NumPy (vectorised), and :func:`noisy_regression` / :func:`train_with_averages` are the
chapter's noisy problem: least squares with mini-batch gradients, where the averages reach a
lower loss than the last iterate.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import lfilter
from ._errors import fail as _fail

__all__ = [
    "KINDS",
    "ParameterAverage",
    "ema_path",
    "torch_ema_path",
    "polyak_path",
    "noisy_regression",
    "Regression",
    "train_with_averages",
    "adam_denominator_runs",
    "sgd_runs",
]

#: The kinds of average :class:`ParameterAverage` keeps.
KINDS = ("ema", "polyak")


def _beta(beta) -> float:
    if isinstance(beta, bool):
        _fail("beta", beta, "a number in [0, 1)")
    try:
        b = float(beta)
    except (TypeError, ValueError):
        _fail("beta", beta, "a number in [0, 1)")
    if not 0.0 <= b < 1.0:
        _fail("beta", beta, "a number in [0, 1)")
    return b


class ParameterAverage:
    """The bias-corrected EMA (Section 7.2) or the Polyak average of some parameters.

    Args:
        params: the parameters to average (an iterable of tensors, e.g. ``model.parameters()``;
            param-group dicts are accepted too). They are read, never written, except inside
            :meth:`applied` / by :meth:`copy_to`.
        beta: the EMA's decay rate (the paper uses beta2, e.g. 0.999); ignored for ``"polyak"``.
        kind: ``"ema"`` (bias-corrected exponential moving average) or ``"polyak"`` (equal weights).

    Call :meth:`update` after every optimizer step; :meth:`averaged` returns the average as new
    tensors. The running sums are kept in the parameters' dtype and device (float64 parameters
    give float64 averages), updated with ``torch._foreach_lerp_`` in one call per step.
    """

    def __init__(self, params: Iterable, beta: float = 0.999, kind: str = "ema"):
        if kind not in KINDS:
            _fail("kind", kind, f"one of {KINDS}")
        self.kind = kind
        self.beta = _beta(beta) if kind == "ema" else float("nan")
        self.params = self._flatten(params)
        if not self.params:
            _fail("params", params, "at least one tensor")
        # theta_bar_0 = 0 for the EMA; the Polyak mean is replaced wholesale at t = 1.
        self._sum = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in self.params]
        self.t = 0

    @staticmethod
    def _flatten(params) -> list[torch.Tensor]:
        if isinstance(params, torch.Tensor):
            params = [params]
        out = []
        for p in params:
            if isinstance(p, dict):
                out.extend(p["params"])
            elif isinstance(p, torch.Tensor):
                out.append(p)
            else:
                _fail("params", p, "tensors or param-group dicts")
        return out

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters' current values in: call once after every optimizer step."""
        self.t += 1
        current = [p.detach() for p in self.params]
        if self.kind == "ema":
            # theta_bar_t = beta theta_bar_{t-1} + (1 - beta) theta_t
            torch._foreach_lerp_(self._sum, current, 1 - self.beta)
        else:
            # running mean: theta_bar_t = theta_bar_{t-1} + (theta_t - theta_bar_{t-1}) / t
            torch._foreach_lerp_(self._sum, current, 1.0 / self.t)

    def correction(self) -> float:
        """The factor the running sum is divided by: 1 - beta^t for the EMA, 1 for Polyak."""
        return 1.0 - self.beta**self.t if self.kind == "ema" else 1.0

    @torch.no_grad()
    def averaged(self) -> list[torch.Tensor]:
        """theta_hat_t (EMA, bias-corrected) or the Polyak mean, as new tensors, one per parameter."""
        if self.t == 0:
            raise RuntimeError("ParameterAverage.averaged() before any update(): nothing has been averaged yet")
        c = self.correction()
        return [s / c for s in self._sum]

    @torch.no_grad()
    def copy_to(self, params: Iterable | None = None) -> None:
        """Write the average into ``params`` (default: the averaged parameters themselves)."""
        targets = self.params if params is None else self._flatten(params)
        if len(targets) != len(self.params):
            _fail("params", f"{len(targets)} tensors", f"{len(self.params)} tensors, as averaged")
        for target, value in zip(targets, self.averaged()):
            target.copy_(value)

    @contextlib.contextmanager
    def applied(self):
        """Temporarily put the average into the parameters (e.g. to evaluate), then restore them."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to()
        try:
            yield self
        finally:
            with torch.no_grad():
                for p, value in zip(self.params, saved):
                    p.copy_(value)

    def state_dict(self) -> dict:
        """Everything needed to resume: kind, beta, t and the running sums (cloned)."""
        return {"kind": self.kind, "beta": self.beta, "t": self.t,
                "sum": [s.detach().clone() for s in self._sum]}

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; the kind, beta and shapes must match."""
        if state.get("kind") != self.kind:
            _fail("state['kind']", state.get("kind"), f"{self.kind!r}, the kind of this average")
        if self.kind == "ema" and state.get("beta") != self.beta:
            _fail("state['beta']", state.get("beta"), f"{self.beta!r}, the beta of this average")
        sums = state.get("sum", [])
        if len(sums) != len(self._sum) or any(a.shape != b.shape for a, b in zip(sums, self._sum)):
            _fail("state['sum']", [tuple(s.shape) for s in sums],
                  f"shapes {[tuple(s.shape) for s in self._sum]}")
        t = state.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            _fail("state['t']", t, "an int >= 0")
        with torch.no_grad():
            for mine, theirs in zip(self._sum, sums):
                mine.copy_(theirs)
        self.t = t

    def __repr__(self) -> str:
        what = f"ema, beta={self.beta}" if self.kind == "ema" else "polyak"
        return f"ParameterAverage({what}, t={self.t}, tensors={len(self.params)})"


# ---------------------------------------------------------------------------------------
# The same averages of a stored trajectory, in NumPy


def ema_path(thetas, beta: float, bias_correction: bool = True) -> np.ndarray:
    """theta_hat_t (or theta_bar_t) for every t of a trajectory ``thetas`` of shape (T, ...).

    Row t - 1 of the result averages rows 0 ... t - 1 of ``thetas`` (theta_1 ... theta_t).
    A linear filter, so a long trajectory costs one pass in C.
    """
    beta = _beta(beta)
    x = np.asarray(thetas, dtype=np.float64)
    if x.ndim == 0 or len(x) == 0:
        _fail("thetas", x.shape, "a non-empty series (T, ...)")
    bar = lfilter([1 - beta], [1.0, -beta], x, axis=0)
    if not bias_correction:
        return bar
    t = np.arange(1, len(x) + 1, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    return bar / (1 - beta**t)


def torch_ema_path(thetas, beta: float) -> np.ndarray:
    """The EMA that ``AveragedModel(..., multi_avg_fn=get_ema_multi_avg_fn(beta))`` keeps, per row.

    It starts from theta_1 (its first update copies the parameters): W_1 = theta_1,
    W_t = beta W_{t-1} + (1 - beta) theta_t, which works out to W_t = theta_bar_t + beta^t theta_1,
    the uncorrected Section 7.2 average plus the start's leftover weight.
    """
    beta = _beta(beta)
    x = np.asarray(thetas, dtype=np.float64)
    bar = ema_path(x, beta, bias_correction=False)
    t = np.arange(1, len(x) + 1, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    return bar + beta**t * x[:1]


def polyak_path(thetas, start: int = 0) -> np.ndarray:
    """The running equal-weight mean of a trajectory (T, ...), averaging from row ``start`` on.

    Rows before ``start`` are returned as they are (the average has not started yet); row t
    (t >= start) is the mean of rows start ... t: tail averaging when ``start > 0``.
    """
    x = np.asarray(thetas, dtype=np.float64)
    if x.ndim == 0 or len(x) == 0:
        _fail("thetas", x.shape, "a non-empty series (T, ...)")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < len(x):
        _fail("start", start, f"an int in [0, {len(x)})")
    out = x.copy()
    counts = np.arange(1, len(x) - start + 1, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    out[start:] = np.cumsum(x[start:], axis=0) / counts
    return out


# ---------------------------------------------------------------------------------------
# The chapter's noisy problem


@dataclass(frozen=True)
class Regression:
    """Least squares 0.5 mean((X w - y)^2) with a known minimizer ``w_star`` and minimum ``f_star``."""

    X: torch.Tensor
    y: torch.Tensor
    w_star: torch.Tensor
    f_star: float

    def loss(self, w) -> torch.Tensor:
        """The full-data loss at ``w`` (shape (d,), or (k, d) for k points at once)."""
        w = torch.as_tensor(w, dtype=self.X.dtype)
        r = w @ self.X.T - self.y if w.ndim == 2 else self.X @ w - self.y
        return 0.5 * (r * r).mean(dim=-1)

    def excess(self, w) -> np.ndarray:
        """f(w) - f(w_star) >= 0, as NumPy."""
        return np.asarray(self.loss(w).detach().numpy() - self.f_star)


def noisy_regression(n: int = 2000, d: int = 20, noise: float = 1.0, condition: float = 10.0,
                     seed: int = 0) -> Regression:
    """A linear least-squares problem whose mini-batch gradients are noisy.

    Features have standard deviations spread log-uniformly over ``condition`` (so the Hessian
    is ill-conditioned), targets y = X w_true + noise * N(0, 1). float64, seeded.
    """
    for name, value in (("n", n), ("d", d)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(name, value, "an int >= 1")
    if not (math.isfinite(noise) and noise >= 0):
        _fail("noise", noise, "a finite number >= 0")
    if not (math.isfinite(condition) and condition >= 1):
        _fail("condition", condition, "a finite number >= 1")
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -0.5 * math.log10(condition), d, dtype=torch.float64)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) * scales
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    y = X @ w_true + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    r = X @ w_star - y
    return Regression(X=X, y=y, w_star=w_star, f_star=float(0.5 * (r * r).mean()))


def train_with_averages(problem: Regression, optimizer_factory, steps: int = 3000,
                        batch: int = 8, beta: float = 0.999, seed: int = 0) -> dict:
    """Mini-batch training of w (from 0) with an optimizer, keeping both averages as it goes.

    ``optimizer_factory(params) -> torch.optim.Optimizer``. Returns a dict: ``last``, the
    iterates w_1 ... w_T as a (steps, d) NumPy array, and ``ema`` and ``polyak``, the two
    :class:`ParameterAverage` objects (``beta`` for the EMA) updated after every step. The
    averages along the way are ``ema_path(last, beta)`` and ``polyak_path(last)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        _fail("steps", steps, "an int >= 1")
    n, d = problem.X.shape
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= n:
        _fail("batch", batch, f"an int in [1, {n}]")
    w = torch.zeros(d, dtype=problem.X.dtype, requires_grad=True)
    opt = optimizer_factory([w])
    ema = ParameterAverage([w], beta=beta)
    polyak = ParameterAverage([w], kind="polyak")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (steps, batch), generator=gen)
    last = torch.empty(steps, d, dtype=problem.X.dtype)
    for t in range(steps):
        Xb, yb = problem.X[idx[t]], problem.y[idx[t]]
        opt.zero_grad()
        loss = 0.5 * ((Xb @ w - yb) ** 2).mean()
        loss.backward()
        opt.step()
        ema.update()
        polyak.update()
        last[t] = w.detach()
    return {"last": last.numpy(), "ema": ema, "polyak": polyak}


def adam_denominator_runs(problem: Regression, lr: float = 1e-2, steps: int = 3000, batch: int = 8,
                          seeds=(0,), freeze_at: int | None = None, betas=(0.9, 0.999),
                          eps: float = 1e-8) -> dict:
    """Adam (Algorithm 1) on ``problem``'s mini-batches, in NumPy, for several seeds at once.

    The mini-batches of seed s are those of ``train_with_averages(..., seed=s)``, so with
    ``freeze_at=None`` the iterates are that function's (to rounding). With ``freeze_at = k``
    the denominator sqrt(v_hat_t) + eps is frozen at its value of step k for every later step:
    the same run with steps that can no longer grow as v_hat forgets the early gradients.
    Returns ``last`` (seeds, steps, d), the iterates, and ``denominator`` (seeds, steps, d).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        _fail("steps", steps, "an int >= 1")
    if freeze_at is not None and not (isinstance(freeze_at, int) and 1 <= freeze_at <= steps):
        _fail("freeze_at", freeze_at, f"None or an int in [1, {steps}]")
    beta1, beta2 = betas
    X, y = problem.X.numpy(), problem.y.numpy()
    n, d = X.shape
    idx = np.stack([torch.randint(0, n, (steps, batch), generator=torch.Generator().manual_seed(s)).numpy()
                    for s in seeds])                                       # (S, T, b)
    S = len(seeds)
    w, m, v = np.zeros((S, d)), np.zeros((S, d)), np.zeros((S, d))
    last, den_path = np.empty((S, steps, d)), np.empty((S, steps, d))
    frozen = None
    for t in range(1, steps + 1):
        Xb, yb = X[idx[:, t - 1]], y[idx[:, t - 1]]                        # (S, b, d), (S, b)
        r = np.einsum("sbd,sd->sb", Xb, w) - yb
        g = np.einsum("sbd,sb->sd", Xb, r) / batch
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        den = np.sqrt(v / (1 - beta2**t)) + eps
        if frozen is not None:
            den = frozen
        elif freeze_at is not None and t == freeze_at:
            frozen = den.copy()
        w = w - lr * (m / (1 - beta1**t)) / den
        last[:, t - 1], den_path[:, t - 1] = w, den
    return {"last": last, "denominator": den_path}


def sgd_runs(problem: Regression, lr: float = 0.05, steps: int = 3000, batch: int = 8, seeds=(0,)) -> np.ndarray:
    """Plain SGD on ``problem``'s mini-batches of ``train_with_averages(..., seed=s)``, in NumPy.

    The iterates (seeds, steps, d): those of ``train_with_averages(problem, lambda p:
    torch.optim.SGD(p, lr=lr), ...)``, to rounding, for several seeds in one vectorised loop.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        _fail("steps", steps, "an int >= 1")
    X, y = problem.X.numpy(), problem.y.numpy()
    n, d = X.shape
    idx = np.stack([torch.randint(0, n, (steps, batch), generator=torch.Generator().manual_seed(s)).numpy()
                    for s in seeds])
    w, last = np.zeros((len(seeds), d)), np.empty((len(seeds), steps, d))
    for t in range(steps):
        Xb, yb = X[idx[:, t]], y[idx[:, t]]
        w = w - lr * np.einsum("sbd,sb->sd", Xb, np.einsum("sbd,sd->sb", Xb, w) - yb) / batch
        last[:, t] = w
    return last
