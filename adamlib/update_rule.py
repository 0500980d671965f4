"""Adam's update rule (Kingma & Ba, 2015, Section 2.1): the effective step and its bounds.

With eps = 0 Adam's effective step is Delta_t = alpha m_hat_t / sqrt(v_hat_t), so the step
measured in units of alpha,

    |Delta_t| / alpha = |m_hat_t| / sqrt(v_hat_t),

depends only on the gradients seen so far and on (beta1, beta2), not on alpha and not on the
scale of the gradients. This module computes it for any gradient sequence
(:func:`step_ratios`), for the named patterns of the chapter (:func:`gradient_pattern`,
:func:`step_ratio_pattern`), gives the paper's bounds and the true supremum in closed form,
and records it per coordinate during a real training run (:class:`StepRecorder`).

The bounds, with the defaults (beta1, beta2) = (0.9, 0.999):

* :func:`paper_bound`: Section 2.1's alpha (1 - beta1) / sqrt(1 - beta2) when
  (1 - beta1) > sqrt(1 - beta2), else alpha: 3.1623 alpha.
* :func:`sparse_step_ratio`: the step when the gradient was zero at every step but the current
  one, t: (1 - beta1) / sqrt(1 - beta2) * sqrt(1 - beta2^t) / (1 - beta1^t).
* :func:`sup_step_ratio`: the least upper bound over *all* gradient sequences once the
  bias-correction factors are 1, (1 - beta1) / sqrt((1 - beta2)(1 - beta1^2 / beta2)) (needs
  beta1^2 < beta2), by Cauchy-Schwarz; reached by gradients that grow geometrically at rate
  beta2 / beta1 per step: 7.2703 with the defaults. The paper's bound is an approximation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import lfilter

__all__ = [
    "PATTERNS",
    "step_ratios",
    "gradient_pattern",
    "step_ratio_pattern",
    "paper_bound",
    "sparse_bound",
    "sparse_step_ratio",
    "sup_step_ratio",
    "StepRecorder",
]

#: The gradient patterns of :func:`gradient_pattern`.
PATTERNS = ("constant", "noisy", "sparse", "growing")


def _beta(name: str, value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not accepted: expected a number in [0, 1)")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not accepted: expected a number in [0, 1)") from None
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name}={value!r} is not accepted: expected a number in [0, 1)")
    return x


def _steps(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"steps={value!r} is not accepted: expected an int >= 1")
    return int(value)


def step_ratios(g, beta1: float = 0.9, beta2: float = 0.999, eps: float = 0.0,
                bias_correction: bool = True) -> np.ndarray:
    """|Delta_t| / alpha = |m_hat_t| / (sqrt(v_hat_t) + eps) for t = 1..T (Algorithm 1).

    Args:
        g: gradients, shape ``(T,)`` or ``(T, ...)``: row t-1 is g_t (coordinates in the other
            axes are independent, as in Adam).
        beta1, beta2, eps: Adam's hyper-parameters (eps = 0: the paper's Section 2.1).
        bias_correction: divide by 1 - beta^t (Algorithm 1) or not (Fig. 4's ablation).

    Returns:
        float64 array of the shape of ``g``. A coordinate whose gradients have all been zero
        so far has m = v = 0 and takes no step: its ratio is 0 (not 0/0).
    """
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    g = np.asarray(g, dtype=np.float64)
    if g.ndim == 0 or len(g) == 0:
        raise ValueError(f"g of shape {g.shape} is not accepted: expected at least one gradient")
    # The recursions m_t = beta1 m_{t-1} + (1 - beta1) g_t (and v_t likewise) are linear
    # filters: lfilter runs them in C, with the same operations as the loop of Algorithm 1.
    m = lfilter([1 - beta1], [1.0, -beta1], g, axis=0)
    v = lfilter([1 - beta2], [1.0, -beta2], g * g, axis=0)
    if bias_correction:
        t = np.arange(1, len(g) + 1, dtype=np.float64).reshape((-1,) + (1,) * (g.ndim - 1))
        m = m / (1 - beta1**t)
        v = v / (1 - beta2**t)
    denom = np.sqrt(v) + eps
    out = np.divide(np.abs(m), denom, out=np.zeros_like(denom), where=denom > 0)
    return out


def gradient_pattern(pattern: str, steps: int, beta1: float = 0.9, beta2: float = 0.999, *,
                     seed: int = 0, period: int | None = None, growth_steps: int = 300) -> np.ndarray:
    """A scalar gradient sequence g_1..g_T of shape ``(steps,)``, by name.

    ``"constant"``  g_t = 1: m_hat = g, v_hat = g^2, so every step is exactly alpha.
    ``"noisy"``     g_t ~ N(0, 1), i.i.d. (seeded): zero signal, the situation near an optimum.
    ``"sparse"``    g_t = 1 every ``period`` steps (default ``steps // 4``), 0 otherwise: the
                    paper's "most severe case of sparsity" repeated.
    ``"growing"``   zeros, then the last ``growth_steps`` gradients grow geometrically by
                    beta2 / beta1 per step (ending at 1): the sequence that attains
                    :func:`sup_step_ratio`. The zeros let the bias-correction factors reach 1.
    """
    steps = _steps(steps)
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    if pattern == "constant":
        return np.ones(steps)
    if pattern == "noisy":
        return np.random.default_rng(seed).standard_normal(steps)
    if pattern == "sparse":
        period = steps // 4 if period is None else period
        if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 1 <= period <= steps:
            raise ValueError(f"period={period!r} is not accepted: expected an int in [1, steps={steps}]")
        g = np.zeros(steps)
        g[period - 1::period] = 1.0
        return g
    if pattern == "growing":
        if beta1 == 0:
            raise ValueError("beta1=0 is not accepted for 'growing': the worst case is then 'sparse'")
        if isinstance(growth_steps, bool) or not isinstance(growth_steps, (int, np.integer)) \
                or not 1 <= growth_steps <= steps:
            raise ValueError(f"growth_steps={growth_steps!r} is not accepted: expected an int in "
                             f"[1, steps={steps}]")
        g = np.zeros(steps)
        k = np.arange(growth_steps)
        # r^(k - K + 1) ends at 1: no overflow; the early terms underflow harmlessly to 0.
        g[steps - growth_steps:] = np.exp((k - growth_steps + 1) * math.log(beta2 / beta1))
        return g
    raise ValueError(f"pattern={pattern!r} is not accepted: expected one of {PATTERNS}")


def step_ratio_pattern(pattern: str, beta1: float = 0.9, beta2: float = 0.999, steps: int = 20_000,
                       **kwargs) -> np.ndarray:
    """|Delta_t| / alpha for t = 1..steps under a named gradient pattern (eps = 0).

    ``step_ratio_pattern("growing")[-1]`` is 7.2703 with the defaults, above the paper's 3.1623.
    Keyword arguments go to :func:`gradient_pattern`.
    """
    return step_ratios(gradient_pattern(pattern, steps, beta1, beta2, **kwargs), beta1, beta2)


def sparse_bound(beta1: float = 0.9, beta2: float = 0.999) -> float:
    """(1 - beta1) / sqrt(1 - beta2): Section 2.1's bound for the sparse case, in units of alpha."""
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    return (1 - beta1) / math.sqrt(1 - beta2)


def paper_bound(beta1: float = 0.9, beta2: float = 0.999) -> float:
    """Section 2.1's bound on |Delta_t| / alpha: the sparse bound if (1 - beta1) > sqrt(1 - beta2), else 1."""
    return max(1.0, sparse_bound(beta1, beta2))


def sparse_step_ratio(t, beta1: float = 0.9, beta2: float = 0.999):
    """|Delta_t| / alpha when g was zero at steps 1..t-1 and nonzero at t (exact, eps = 0).

    m_t = (1 - beta1) g_t and v_t = (1 - beta2) g_t^2, so the ratio is
    (1 - beta1) / sqrt(1 - beta2) * sqrt(1 - beta2^t) / (1 - beta1^t), which tends to
    :func:`sparse_bound` as t grows. Works elementwise on an array of t.
    """
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    t = np.asarray(t, dtype=np.float64)
    out = sparse_bound(beta1, beta2) * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return float(out) if out.ndim == 0 else out


def sup_step_ratio(beta1: float = 0.9, beta2: float = 0.999) -> float:
    """sup |m_t| / sqrt(v_t) over all gradient sequences: (1 - beta1) / sqrt((1 - beta2)(1 - beta1^2 / beta2)).

    Cauchy-Schwarz on m_t = (1 - beta1) sum_k beta1^k g_{t-k} against
    v_t = (1 - beta2) sum_k beta2^k g_{t-k}^2, with equality for g_{t-k} proportional to
    (beta1 / beta2)^k, i.e. gradients growing by beta2 / beta1 per step. This bounds
    |Delta_t| / alpha once the bias-correction factors are 1 (large t). Needs beta1^2 < beta2.
    """
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    if beta1**2 >= beta2:
        raise ValueError(f"beta1={beta1}, beta2={beta2} are not accepted: expected beta1^2 < beta2 "
                         "(otherwise the ratio is unbounded)")
    return (1 - beta1) / math.sqrt((1 - beta2) * (1 - beta1**2 / beta2))


class StepRecorder:
    """Records |Delta_t| / alpha of every coordinate at every step of an Adam-like optimizer.

    Registers a step post-hook on ``optimizer`` (``torch.optim.Optimizer.register_step_post_hook``),
    so it works inside any loop, e.g. :func:`adamlib.train.train`. After each step it reads
    the state (``step``, ``exp_avg``, ``exp_avg_sq``) and stores, in float64,

        |m_hat_t| / (sqrt(v_hat_t) + eps)

    for every parameter, flattened and concatenated (the step of the update just taken,
    divided by the learning rate; bias correction as in Algorithm 1). Plain Adam only: no
    amsgrad, no weight decay, no ``bias_correction=False``.

    Attributes:
        ratios: list of 1-D NumPy arrays, one per step (see :meth:`array`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer={type(optimizer).__name__} is not accepted: "
                             "expected a torch.optim.Optimizer (Adam)")
        for group in optimizer.param_groups:
            if group.get("amsgrad") or group.get("weight_decay", 0) != 0 \
                    or group.get("bias_correction", True) is not True or "betas" not in group:
                raise ValueError("optimizer is not accepted: expected plain Adam (betas, no amsgrad, "
                                 "no weight decay, bias correction on)")
        self.optimizer = optimizer
        self.ratios: list[np.ndarray] = []
        self._handle = optimizer.register_step_post_hook(self._record)

    @torch.no_grad()
    def _record(self, optimizer, args, kwargs) -> None:
        parts = []
        for group in optimizer.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = optimizer.state.get(p)
                if not state or "exp_avg" not in state:
                    continue
                t = float(state["step"])
                m_hat = state["exp_avg"].double() / (1 - beta1**t)
                v_hat = state["exp_avg_sq"].double() / (1 - beta2**t)
                parts.append((m_hat.abs() / (v_hat.sqrt() + group["eps"])).reshape(-1).cpu().numpy())
        self.ratios.append(np.concatenate(parts) if parts else np.zeros(0))

    def array(self) -> np.ndarray:
        """All recorded ratios as an array of shape (steps, coordinates)."""
        return np.stack(self.ratios) if self.ratios else np.zeros((0, 0))

    def remove(self) -> None:
        """Stop recording (removes the hook)."""
        self._handle.remove()
