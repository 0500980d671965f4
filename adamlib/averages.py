"""Exponentially weighted averages (EWA) and their bias correction, in float64 NumPy.

The talk's recursion, started at v_0 = 0::

    v_t = beta v_{t-1} + (1 - beta) theta_t
        = (1 - beta) sum_{i=1..t} beta^(t-i) theta_i          (unrolled)

The weights (1 - beta) beta^(t-i) sum to 1 - beta^t, not 1, so v_t is pulled towards its zero
start; dividing by that sum (Kingma & Ba, 2015, Section 3) gives the bias-corrected average
v_hat_t = v_t / (1 - beta^t), a true weighted mean (weights summing to 1). For a constant
signal theta_t = c it is exactly c at every t. Adam's m_t and v_t, and
:class:`adamlib.Momentum`'s m_t, are this recursion applied to g_t and g_t^2.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ewa", "ewa_weights", "bias_factor", "effective_window", "steps_to_unbiased"]


def _beta(beta) -> float:
    if isinstance(beta, bool):
        raise ValueError(f"beta={beta!r} is not accepted: expected a number in [0, 1)")
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta={beta!r} is not accepted: expected a number in [0, 1)") from None
    if not 0.0 <= b < 1.0:
        raise ValueError(f"beta={beta!r} is not accepted: expected a number in [0, 1)")
    return b


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is not accepted: expected True or False")
    return bool(value)


def _t(t) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"t={t!r} is not accepted: expected an int >= 1")
    return int(t)


def ewa(theta, beta: float, bias_correction: bool = False) -> np.ndarray:
    """The running averages v_1, ..., v_T of a series theta_1, ..., theta_T (first axis = time).

    Args:
        theta: array-like of shape ``(T, ...)`` (a tensor works too); each entry is averaged
            separately, so a series of gradient vectors gives Adam's m_t.
        beta: the decay rate in [0, 1); beta = 0 returns the series itself.
        bias_correction: if True, return v_hat_t = v_t / (1 - beta^t).

    Returns:
        A float64 array of the same shape as ``theta``.
    """
    beta = _beta(beta)
    bias_correction = _flag("bias_correction", bias_correction)
    x = np.asarray(theta, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError(f"theta of shape {x.shape} is not accepted: expected a series (T, ...)")
    out = np.empty_like(x)
    v = np.zeros(x.shape[1:])
    for t in range(len(x)):
        v = beta * v + (1 - beta) * x[t]  # v_t = beta v_{t-1} + (1 - beta) theta_t
        out[t] = v / (1 - beta ** (t + 1)) if bias_correction else v
    return out


def ewa_weights(t: int, beta: float, bias_correction: bool = False) -> np.ndarray:
    """The weights w_1, ..., w_t with v_t = sum_i w_i theta_i: w_i = (1 - beta) beta^(t - i).

    Divided by 1 - beta^t when ``bias_correction``, so that they sum to 1.
    """
    t, beta = _t(t), _beta(beta)
    bias_correction = _flag("bias_correction", bias_correction)
    w = (1 - beta) * beta ** np.arange(t - 1, -1, -1, dtype=np.float64)
    return w / (1 - beta**t) if bias_correction else w


def bias_factor(t, beta: float):
    """1 - beta^t: the sum of the uncorrected weights, the factor v_t falls short by."""
    beta = _beta(beta)
    return 1 - beta ** np.asarray(t, dtype=np.float64)


def effective_window(beta: float) -> float:
    """1 / (1 - beta): roughly how many recent values an EWA averages over.

    The last 1 / (1 - beta) values carry 1 - beta^(1/(1-beta)), about 1 - 1/e = 63%, of the
    total weight (for large t), and the weights' mean age is beta / (1 - beta).
    """
    beta = _beta(beta)
    return 1.0 / (1.0 - beta)


def steps_to_unbiased(beta: float, tol: float = 0.01) -> int:
    """The first t with beta^t <= tol, i.e. after which v_t is within tol of v_hat_t, relatively.

    For beta = 0.9 and tol = 0.01 it is 44; for Adam's beta2 = 0.999 it is 4603.
    """
    beta = _beta(beta)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol={tol!r} is not accepted: expected a number in (0, 1)")
    if beta == 0:
        return 1
    t = math.ceil(math.log(tol) / math.log(beta))
    while beta**t > tol:  # guard the rounding of the logarithms
        t += 1
    while t > 1 and beta ** (t - 1) <= tol:
        t -= 1
    return max(t, 1)
