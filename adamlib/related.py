"""Two more of the paper's Section 5 methods, small enough to race on the bowls of chapter 5.

Both need curvature information that the other racers do without, so both run only where it is
known exactly: on :func:`adamlib.problems.quadratic` and :func:`adamlib.problems.noisy_quadratic`,
whose Hessian is ``diag(1, condition)`` everywhere.

- :func:`vsgd`: vSGD-l of Schaul, Zhang and LeCun (2013), "No more pesky learning rates": per
  parameter, moving averages of g, g^2 and the diagonal curvature h with an adaptive memory
  tau, and the rate eta_i = gbar_i^2 / (hbar_i vbar_i). It has no learning rate to tune. The
  curvature is the exact diagonal Hessian (what the paper's bbprop estimates, exactly, on a
  quadratic). Its "slow start" follows the authors' reference code (py-optim's ``vSGD``):
  ``init_samples`` gradients at theta_0 initialise gbar, vbar and hbar, the last two
  overestimated by ``slow_constant``, and tau = init_samples.
- :class:`Preconditioned`: theta <- theta - lr * g / d for a fixed diagonal d. With d the Fisher
  information it is natural gradient descent (Amari, 1998); for the bowl read as the negative
  log-likelihood of a Gaussian location model with precision diag(1, condition), the Fisher
  of the mean is that precision, the Hessian. Its state does not depend on lr, so it runs in
  :func:`adamlib.race.run_grid` and :func:`adamlib.race.tune` like the other racers.

Noise: both see the same noise sequence as :func:`adamlib.race.run_grid` for the same seed
(vSGD's initial samples draw theirs from a second generator, seeded ``seed + INIT_SEED_OFFSET``).
"""
from __future__ import annotations

import numpy as np
import torch

from .problems import Surface, Trajectory

__all__ = ["Preconditioned", "natural_gradient", "vsgd", "bowl_curvature", "INIT_SEED_OFFSET"]

#: vSGD's initial samples use ``torch.Generator().manual_seed(seed + INIT_SEED_OFFSET)``.
INIT_SEED_OFFSET = 10_000


class Preconditioned(torch.optim.Optimizer):
    """theta <- theta - lr * g / diag: natural gradient with a known diagonal Fisher ``diag``."""

    def __init__(self, params, lr: float = 1.0, diag=(1.0, 1.0)):
        if not lr > 0:
            raise ValueError(f"lr={lr!r} is not accepted: expected lr > 0")
        diag = torch.as_tensor(diag, dtype=torch.float64)
        if not bool(torch.all(diag > 0)):
            raise ValueError(f"diag={diag.tolist()!r} is not accepted: expected entries > 0")
        super().__init__(params, dict(lr=lr))
        self.diag = diag

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad / self.diag.to(p), alpha=-group["lr"])
        return loss


def bowl_curvature(surface: Surface) -> np.ndarray:
    """The diagonal Hessian (1, condition) of a (noisy) quadratic bowl, read off its gradient."""
    g = surface.exact_grad(torch.tensor([1.0, 1.0], dtype=torch.float64)).numpy()
    f = float(surface.value(torch.tensor([1.0, 1.0], dtype=torch.float64)))
    if not np.isclose(f, 0.5 * g.sum()) or surface.f_min != 0.0 or tuple(surface.minimum) != (0.0, 0.0):
        raise ValueError(f"surface={surface.name!r} is not accepted: expected a quadratic bowl of adamlib.problems")
    return g


def natural_gradient(surface: Surface):
    """A race factory ``(params, lr) -> Preconditioned`` with the bowl's Fisher = Hessian."""
    diag = tuple(bowl_curvature(surface))
    return lambda params, lr: Preconditioned(params, lr=lr, diag=diag)


def vsgd(surface: Surface, steps: int, seed: int = 0, init_samples: int = 10, slow_constant: float = 2.0,
         epsilon: float = 1e-9) -> Trajectory:
    """vSGD-l on a (noisy) quadratic bowl for ``steps`` updates: its Trajectory (no learning rate).

    Per coordinate i and step t (Schaul et al. 2013, Algorithm 1, with the reference code's
    epsilon guards): gbar <- (1 - 1/tau) gbar + g/tau, vbar likewise with g^2, hbar with h;
    eta = gbar^2 / (hbar vbar); tau <- (1 - gbar^2/vbar) tau + 1; theta <- theta - eta g.
    """
    h = bowl_curvature(surface)
    noise_std = float(surface.noise)
    theta = np.array(surface.start, dtype=np.float64)

    def noise(n, s):
        if noise_std == 0:
            return np.zeros((n, 2))
        generator = torch.Generator().manual_seed(int(s))
        return noise_std * torch.randn((n, 2), generator=generator, dtype=torch.float64).numpy()

    exact = h * theta
    first = exact + noise(init_samples, seed + INIT_SEED_OFFSET)
    gbar = first.mean(axis=0)
    vbar = ((first**2).mean(axis=0) + epsilon) * slow_constant
    hbar = np.clip(h, 1.0, 1.0 / epsilon) * slow_constant
    tau = np.full(2, (1.0 + epsilon) * init_samples)
    path = [theta.copy()]
    for z in noise(steps, seed):
        g = h * theta + z
        fract = 1.0 / tau
        gbar = (1 - fract) * gbar + fract * g
        vbar = (1 - fract) * vbar + fract * g**2 + epsilon
        hbar = (1 - fract) * hbar + fract * (h + epsilon)
        signal = gbar**2 / vbar
        tau = tau * (1 - signal) + 1 + epsilon
        theta = theta - signal / hbar * g
        path.append(theta.copy())
    xy = np.array(path)
    with torch.no_grad():
        loss = surface.value(torch.as_tensor(xy)).numpy()
    return Trajectory(xy=xy, loss=loss, f_min=surface.f_min)
