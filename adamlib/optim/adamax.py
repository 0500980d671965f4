"""AdaMax (Kingma & Ba, 2015, Algorithm 2): Adam with the infinity norm."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, foreach_addcdiv_, number, real, step_count


class AdaMax(AdamlibOptimizer):
    r"""AdaMax, Algorithm 2 of the paper, as ``torch.optim.Adamax`` computes it.

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    u_t     = max(beta2 u_{t-1}, |g_t| + eps)       (the paper: max(beta2 u_{t-1}, |g_t|))
    theta_t = theta_{t-1} - (lr / (1 - beta1^t)) m_t / u_t

    u needs no bias correction: the max is not pulled towards its zero start. torch puts
    eps inside the max; ``eps=0`` is the paper's box exactly (a coordinate whose gradients
    have all been zero then divides 0 by 0). State: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    state_names = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 maximize=False, foreach=None, fused=None, capturable=False):
        _validate.betas(type(self).__name__, betas)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused, capturable=capturable)
        super().__init__(params, defaults)

    def _step_per_tensor(self, group, params):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1
            if wd != 0:
                g = g.add(p, alpha=wd)
            theta, g = real(p), real(g)
            m, u = real(state["exp_avg"]), real(state["exp_inf"])
            m.lerp_(g, 1 - beta1)                                   # m_t = b1 m + (1 - b1) g
            torch.maximum(u.mul_(beta2), g.abs().add_(eps), out=u)  # u_t = max(b2 u, |g| + eps)
            bc1 = 1 - beta1 ** step_count(state["step"])
            theta.addcdiv_(m, u, value=-lr / bc1)                   # theta -= (a / bc1) m / u

    def _step_foreach(self, group, params):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, m, u = self._lists(bucket, group, "exp_avg", "exp_inf")
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(u, beta2)
            abs_g = torch._foreach_abs(g)
            torch._foreach_add_(abs_g, eps)
            torch._foreach_maximum_(u, abs_g)
            foreach_addcdiv_(theta, m, u, [-lr / (1 - beta1**t) for t in ts])

    def _fused_kernel(self, group, params, run):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        dtype = params[0].dtype
        steps = [-lr / (1 - beta1**t) for t in self._advance_steps(params)]
        w, one_minus_w = _fused.lerp_weights(1 - beta1, dtype)
        run("adamax", [[p, p.grad, self.state[p]["exp_avg"], self.state[p]["exp_inf"]] for p in params],
            steps, dtype, w, one_minus_w, abs(float(w)) >= 0.5,
            *_fused.scalars(dtype, beta2, eps, wd, -1.0 if group["maximize"] else 1.0))
