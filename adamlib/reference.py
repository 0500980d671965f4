"""The paper's algorithm boxes, transcribed into float64 NumPy: the executable spec.

Each function reads like its box in Kingma & Ba (2015), or in the talk's slides where they
differ, and records every intermediate quantity so chapters can plot it and tests can check
``adamlib``'s torch optimizers against it. Nothing here is fast; everything here is plain.

Common signature::

    f(grad, theta0, steps, <hyper-parameters>, bounds=None) -> Trace

``grad``
    either a callable ``grad(theta, t)`` returning the gradient g_t at theta_{t-1}
    (t = 1, 2, ... as in the paper), or an array of precomputed gradients of shape
    ``(steps, *theta0.shape)``.
``alpha``
    a float, or a callable ``alpha(t)`` for schedules such as alpha_t = alpha / sqrt(t)
    (Theorem 4.1).
``bounds``
    ``(lo, hi)``: theta is projected onto the box after every step, as in online convex
    optimization on a bounded feasible set (Reddi et al.'s counterexamples).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

Grad = Union[Callable[[np.ndarray, int], np.ndarray], np.ndarray]
Schedule = Union[float, Callable[[int], float]]

__all__ = [
    "Trace",
    "gradient_descent",
    "momentum",
    "adagrad",
    "rmsprop",
    "rmsprop_graves",
    "adam",
    "adam_efficient",
    "adamax",
    "amsgrad",
]


@dataclass
class Trace:
    """What an algorithm did, step by step (row t-1 holds the values after step t)."""

    theta: np.ndarray  # (steps + 1, ...): theta_0 ... theta_T
    g: np.ndarray  # (steps, ...): g_1 ... g_T
    delta: np.ndarray  # (steps, ...): theta_t - theta_{t-1}
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        # m, v, m_hat, v_hat, u, v_max ... live in `extras`; only the ones an algorithm has.
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        raise AttributeError(f"this trace has no {name!r}; it has: theta, g, delta, {', '.join(extras)}")


# --------------------------------------------------------------------------------------
# The shared loop: the algorithm-specific part is a function of (state, g, t, theta).


def _as_schedule(value: Schedule, name: str) -> Callable[[int], float]:
    if callable(value):
        return value
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"invalid {name} = {value}; expected a finite number or a callable of t")
    return lambda t: value


def _run(grad: Grad, theta0, steps: int, update, bounds, names: tuple[str, ...]) -> Trace:
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"invalid steps = {steps!r}; expected an integer >= 0")
    theta = np.array(theta0, dtype=np.float64)
    if callable(grad):
        grad_at = lambda th, t: np.asarray(grad(th.copy(), t), dtype=np.float64)  # noqa: E731
    else:
        table = np.asarray(grad, dtype=np.float64)
        if table.shape[:1] != (steps,) or table.shape[1:] != theta.shape:
            raise ValueError(
                f"invalid grad array of shape {table.shape}; expected (steps, *theta0.shape) = "
                f"{(steps, *theta.shape)}"
            )
        grad_at = lambda th, t: table[t - 1]  # noqa: E731
    if bounds is not None:
        lo, hi = bounds
    thetas = [theta.copy()]
    gs, records = [], {name: [] for name in names}
    state: dict[str, np.ndarray] = {}
    for t in range(1, steps + 1):
        g = grad_at(theta, t)
        theta, record = update(state, g, t, theta)
        if bounds is not None:
            theta = np.clip(theta, lo, hi)
        thetas.append(theta.copy())
        gs.append(g.copy())
        for name in names:
            records[name].append(np.array(record[name], dtype=np.float64))
    thetas = np.stack(thetas)
    shape = (0, *theta.shape)
    stack = lambda xs: np.stack(xs) if xs else np.zeros(shape)  # noqa: E731
    return Trace(
        theta=thetas,
        g=stack(gs),
        delta=np.diff(thetas, axis=0),
        extras={name: stack(values) for name, values in records.items()},
    )


# --------------------------------------------------------------------------------------
# Part 1 of the talk: gradient descent, momentum, Adagrad, RMSProp.


def gradient_descent(grad: Grad, theta0, steps: int, alpha: Schedule = 1e-3, bounds=None) -> Trace:
    """theta_t = theta_{t-1} - alpha_t g_t."""
    alpha_t = _as_schedule(alpha, "alpha")

    def update(state, g, t, theta):
        return theta - alpha_t(t) * g, {}

    return _run(grad, theta0, steps, update, bounds, ())


def momentum(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-2, beta: float = 0.9,
    bias_correction: bool = True, bounds=None,
) -> Trace:
    """The talk's momentum: an exponentially weighted average of gradients.

    m_t = beta m_{t-1} + (1 - beta) g_t;  m_hat_t = m_t / (1 - beta^t);  theta_t = theta_{t-1} - alpha m_hat_t.
    """
    alpha_t = _as_schedule(alpha, "alpha")

    def update(state, g, t, theta):
        m = beta * state.get("m", 0.0) + (1 - beta) * g
        m_hat = m / (1 - beta**t) if bias_correction else m
        state["m"] = m
        return theta - alpha_t(t) * m_hat, {"m": m, "m_hat": m_hat}

    return _run(grad, theta0, steps, update, bounds, ("m", "m_hat"))


def adagrad(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-2, eps: float = 1e-10, lr_decay: float = 0.0,
    bounds=None,
) -> Trace:
    """Duchi et al. (2011), diagonal form, eps outside the root as in torch.optim.Adagrad.

    G_t = G_{t-1} + g_t^2;  theta_t = theta_{t-1} - alpha_t g_t / (sqrt(G_t) + eps),
    alpha_t = alpha / (1 + (t - 1) lr_decay)   (torch's ``lr_decay``; 0 in Duchi et al.)
    """
    alpha_t = _as_schedule(alpha, "alpha")

    def update(state, g, t, theta):
        G = state.get("G", 0.0) + g * g
        state["G"] = G
        rate = alpha_t(t) / (1 + (t - 1) * lr_decay)
        return theta - rate * g / (np.sqrt(G) + eps), {"G": G}

    return _run(grad, theta0, steps, update, bounds, ("G",))


def rmsprop(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-2, beta: float = 0.99, eps: float = 1e-8,
    bias_correction: bool = True, eps_inside_sqrt: bool = True, centered: bool = False,
    momentum: float = 0.0, bounds=None,
) -> Trace:
    """RMSProp. The defaults are the talk's slide; Hinton's lecture 6e and torch.optim.RMSprop use
    ``bias_correction=False, eps_inside_sqrt=False``.

    v_t = beta v_{t-1} + (1 - beta) g_t^2;  v_hat_t = v_t / (1 - beta^t)
    theta_t = theta_{t-1} - alpha g_t / sqrt(v_hat_t + eps)      (slide)
    theta_t = theta_{t-1} - alpha g_t / (sqrt(v_t) + eps)        (torch)

    ``centered=True`` (Graves, 2013) also averages the gradient, m_t = beta m_{t-1} + (1 - beta) g_t,
    and puts the variance estimate s_t = v_t - m_t^2 under the root in place of v_t (not with
    ``bias_correction``: the corrected s_1 = g_1^2 - g_1^2 is 0, so the first step is g_1 / eps).
    ``momentum = mu > 0`` accumulates the scaled steps: b_t = mu b_{t-1} + g_t / denom_t,
    theta_t = theta_{t-1} - alpha b_t (torch's form; :func:`rmsprop_graves` is Graves's own).
    """
    if centered and bias_correction:
        raise ValueError("invalid centered = True with bias_correction = True; expected at most one of them")
    alpha_t = _as_schedule(alpha, "alpha")

    def update(state, g, t, theta):
        v = beta * state.get("v", 0.0) + (1 - beta) * g * g
        state["v"] = v
        v_hat = v / (1 - beta**t) if bias_correction else v
        record = {"v": v, "v_hat": v_hat}
        s = v_hat
        if centered:
            m = beta * state.get("m", 0.0) + (1 - beta) * g
            state["m"] = m
            s = v - m**2
            record["m"] = m
        denom = np.sqrt(s + eps) if eps_inside_sqrt else np.sqrt(s) + eps
        step = g / denom
        if momentum > 0:
            step = momentum * state.get("b", 0.0) + step
            state["b"] = step
            record["b"] = step
        return theta - alpha_t(t) * step, record

    names = ("v", "v_hat") + (("m",) if centered else ()) + (("b",) if momentum > 0 else ())
    return _run(grad, theta0, steps, update, bounds, names)


def rmsprop_graves(
    grad: Grad, theta0, steps: int, learning_rate: float = 1e-4, aleph: float = 0.95,
    beth: float = 0.9, k: float = 1e-4, bounds=None,
) -> Trace:
    """Graves (2013), "Generating sequences with recurrent neural networks", eqs. (38)-(41),
    in his notation (gimel = ``learning_rate``), with his defaults:

    n_i = aleph n_i + (1 - aleph) e_i^2
    g_i = aleph g_i + (1 - aleph) e_i
    Delta_i = beth Delta_i - gimel e_i / sqrt(n_i - g_i^2 + k)
    w_i = w_i + Delta_i

    (e_i is the gradient.) With a constant rate Delta_t = -gimel b_t, so this is
    ``rmsprop(alpha=gimel, beta=aleph, eps=k, bias_correction=False, eps_inside_sqrt=True,
    centered=True, momentum=beth)``.
    """

    def update(state, e, t, w):
        n = aleph * state.get("n", 0.0) + (1 - aleph) * e * e
        g = aleph * state.get("g", 0.0) + (1 - aleph) * e
        delta = beth * state.get("delta", 0.0) - learning_rate * e / np.sqrt(n - g * g + k)
        state.update(n=n, g=g, delta=delta)
        return w + delta, {"n": n, "g_avg": g, "Delta": delta}

    return _run(grad, theta0, steps, update, bounds, ("n", "g_avg", "Delta"))


# --------------------------------------------------------------------------------------
# Part 3: Adam (Algorithm 1), its efficient form (Section 2), AdaMax (Algorithm 2), AMSGrad.


def adam(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-3, beta1: Schedule = 0.9, beta2: float = 0.999,
    eps: float = 1e-8, bias_correction: bool = True, bounds=None,
) -> Trace:
    """Algorithm 1 of Kingma & Ba (2015), line by line.

    m_t = beta1 m_{t-1} + (1 - beta1) g_t            (biased first moment)
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2          (biased second raw moment)
    m_hat_t = m_t / (1 - beta1^t);  v_hat_t = v_t / (1 - beta2^t)
    theta_t = theta_{t-1} - alpha m_hat_t / (sqrt(v_hat_t) + eps)

    ``beta1`` may be a callable beta1(t), e.g. beta1 lambda^(t-1) of Theorem 4.1; the bias
    correction then uses the constant beta1(1)^t, as the paper does.
    ``bias_correction=False`` gives "RMSProp with momentum" on the raw gradient (Fig. 4's ablation).
    """
    alpha_t = _as_schedule(alpha, "alpha")
    beta1_t = _as_schedule(beta1, "beta1")

    def update(state, g, t, theta):
        b1 = beta1_t(t)
        m = b1 * state.get("m", 0.0) + (1 - b1) * g
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        state["m"], state["v"] = m, v
        if bias_correction:
            m_hat, v_hat = m / (1 - beta1_t(1) ** t), v / (1 - beta2**t)
        else:
            m_hat, v_hat = m, v
        theta = theta - alpha_t(t) * m_hat / (np.sqrt(v_hat) + eps)
        return theta, {"m": m, "v": v, "m_hat": m_hat, "v_hat": v_hat}

    return _run(grad, theta0, steps, update, bounds, ("m", "v", "m_hat", "v_hat"))


def adam_efficient(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
    eps_hat: float = 1e-8, bounds=None,
) -> Trace:
    """Section 2's "more efficient (but less clear) order of computation".

    alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t);  theta_t = theta_{t-1} - alpha_t m_t / (sqrt(v_t) + eps_hat)

    Equal to Algorithm 1 only when eps_hat = eps sqrt(1 - beta2^t): with the same number for
    both, the efficient form's effective eps is eps / sqrt(1 - beta2^t), larger early on.
    ``eps_hat`` may be a callable eps_hat(t) to show exactly that.
    """
    alpha_sched = _as_schedule(alpha, "alpha")
    eps_hat_t = _as_schedule(eps_hat, "eps_hat")

    def update(state, g, t, theta):
        m = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        state["m"], state["v"] = m, v
        a_t = alpha_sched(t) * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        return theta - a_t * m / (np.sqrt(v) + eps_hat_t(t)), {"m": m, "v": v}

    return _run(grad, theta0, steps, update, bounds, ("m", "v"))


def adamax(
    grad: Grad, theta0, steps: int, alpha: Schedule = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
    eps: float = 0.0, bounds=None,
) -> Trace:
    """Algorithm 2 (AdaMax), Section 7.1.

    m_t = beta1 m_{t-1} + (1 - beta1) g_t
    u_t = max(beta2 u_{t-1}, |g_t| + eps)            (the paper has no eps; torch.optim.Adamax adds it here)
    theta_t = theta_{t-1} - (alpha / (1 - beta1^t)) m_t / u_t
    """
    alpha_t = _as_schedule(alpha, "alpha")

    def update(state, g, t, theta):
        m = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        u = np.maximum(beta2 * state.get("u", 0.0), np.abs(g) + eps)
        state["m"], state["u"] = m, u
        return theta - (alpha_t(t) / (1 - beta1**t)) * m / u, {"m": m, "u": u}

    return _run(grad, theta0, steps, update, bounds, ("m", "u"))


AMSGRAD_VARIANTS = ("reddi", "torch", "v_hat")


def amsgrad(
    grad: Grad, theta0, steps: int, alpha: Schedule = 1e-3, beta1: Schedule = 0.9, beta2: float = 0.999,
    eps: float = 1e-8, variant: str = "reddi", bounds=None,
) -> Trace:
    """AMSGrad (Reddi, Kale & Kumar, 2018). Three versions are in circulation:

    ``"reddi"``  their Algorithm 2: no bias correction;
                 v_max_t = max(v_max_{t-1}, v_t);  theta_t = theta_{t-1} - alpha m_t / (sqrt(v_max_t) + eps)
                 (they print no eps; set eps=0 for the box exactly)
    ``"torch"``  torch.optim.Adam(amsgrad=True): the max of the raw v, then bias-corrected:
                 theta_t = theta_{t-1} - alpha m_hat_t / (sqrt(v_max_t / (1 - beta2^t)) + eps)
    ``"v_hat"``  the max of the bias-corrected v_hat (optax's default, PyTorch's docs box):
                 v_max_t = max(v_max_{t-1}, v_hat_t);  theta_t = theta_{t-1} - alpha m_hat_t / (sqrt(v_max_t) + eps)
    """
    if variant not in AMSGRAD_VARIANTS:
        raise ValueError(f"invalid variant = {variant!r}; expected one of {AMSGRAD_VARIANTS}")
    alpha_t = _as_schedule(alpha, "alpha")
    beta1_t = _as_schedule(beta1, "beta1")

    def update(state, g, t, theta):
        b1 = beta1_t(t)
        m = b1 * state.get("m", 0.0) + (1 - b1) * g
        v = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        state["m"], state["v"] = m, v
        if variant == "reddi":
            v_max = np.maximum(state.get("v_max", 0.0), v)
            step = m / (np.sqrt(v_max) + eps)
        elif variant == "torch":
            v_max = np.maximum(state.get("v_max", 0.0), v)
            step = (m / (1 - beta1_t(1) ** t)) / (np.sqrt(v_max / (1 - beta2**t)) + eps)
        else:
            v_max = np.maximum(state.get("v_max", 0.0), v / (1 - beta2**t))
            step = (m / (1 - beta1_t(1) ** t)) / (np.sqrt(v_max) + eps)
        state["v_max"] = v_max
        return theta - alpha_t(t) * step, {"m": m, "v": v, "v_max": v_max}

    return _run(grad, theta0, steps, update, bounds, ("m", "v", "v_max"))
