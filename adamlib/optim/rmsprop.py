"""RMSProp (Tieleman & Hinton, 2012, lecture 6e), and the talk's bias-corrected variant."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, real


class RMSProp(AdamlibOptimizer):
    r"""RMSProp: divide the gradient by a running root mean square of recent gradients.

    v_t     = beta v_{t-1} + (1 - beta) g_t^2
    v_hat_t = v_t / (1 - beta^t)                     if bias_correction, else v_t
    theta_t = theta_{t-1} - lr g_t / (sqrt(v_hat_t) + eps)   (default: Hinton's and torch's form)
    theta_t = theta_{t-1} - lr g_t / sqrt(v_hat_t + eps)     (eps_inside_sqrt=True)

    The defaults equal ``torch.optim.RMSprop(alpha=beta)``. The talk's slide is
    ``bias_correction=True, eps_inside_sqrt=True`` (TensorFlow and optax also put eps inside).
    State: ``step``, ``square_avg`` (v). ``state_dict()`` also writes torch's group key
    ``alpha`` (= beta), so a checkpoint resumes in ``torch.optim.RMSprop``.
    """

    state_names = ("square_avg",)
    torch_group_keys = {"alpha": lambda group: group["beta"], "momentum": lambda group: 0,
                        "centered": lambda group: False}

    def __init__(self, params, lr=1e-2, beta=0.99, eps=1e-8, bias_correction=False,
                 eps_inside_sqrt=False, weight_decay=0, maximize=False, foreach=None, fused=None):
        name = type(self).__name__
        _validate.unit_interval(name, "beta", beta)
        _validate.flag(name, "bias_correction", bias_correction)
        _validate.flag(name, "eps_inside_sqrt", eps_inside_sqrt)
        defaults = dict(lr=lr, beta=beta, eps=eps, bias_correction=bias_correction,
                        eps_inside_sqrt=eps_inside_sqrt, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _from_torch_group(self, group):
        if "beta" not in group and "alpha" in group:
            group["beta"] = group["alpha"]
        for key in ("momentum", "centered"):
            if group.get(key):
                raise ValueError(
                    f"RMSProp: invalid {key} = {group[key]!r} in the loaded state_dict; adamlib's "
                    f"RMSProp is the plain algorithm (torch.optim.RMSprop with {key} off)"
                )

    def _denominator(self, group, v: torch.Tensor, t: float) -> torch.Tensor:
        eps = group["eps"]
        if group["bias_correction"]:
            v = v / (1 - group["beta"] ** t)                      # v_hat_t
        if group["eps_inside_sqrt"]:
            return v.add(eps).sqrt_()                             # sqrt(v_hat + eps)
        return v.sqrt().add_(eps)                                 # sqrt(v_hat) + eps

    def _step_per_tensor(self, group, params):
        lr, beta, wd = float(group["lr"]), group["beta"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1
            if wd != 0:
                g = g.add(p, alpha=wd)
            theta, g, v = real(p), real(g), real(state["square_avg"])
            v.mul_(beta).addcmul_(g, g, value=1 - beta)           # v_t = beta v + (1 - beta) g^2
            theta.addcdiv_(g, self._denominator(group, v, float(state["step"])), value=-lr)

    def _step_foreach(self, group, params):
        lr, beta, eps, wd = float(group["lr"]), group["beta"], group["eps"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, v = self._lists(bucket, group, "square_avg")
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_mul_(v, beta)
            torch._foreach_addcmul_(v, g, g, value=1 - beta)
            if group["bias_correction"]:
                denom = torch._foreach_div(v, [1 - beta**t for t in ts])
            else:
                denom = v
            if group["eps_inside_sqrt"]:
                denom = torch._foreach_add(denom, eps)
                torch._foreach_sqrt_(denom)
            else:
                denom = torch._foreach_sqrt(denom)
                torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(theta, g, denom, value=-lr)

    def _fused_kernel(self, group, params, run):
        lr, beta, eps, wd = float(group["lr"]), group["beta"], group["eps"], group["weight_decay"]
        dtype = params[0].dtype
        bcs = [1 - beta**t if group["bias_correction"] else 1.0 for t in self._advance_steps(params)]
        run("rmsprop", [[p, p.grad, self.state[p]["square_avg"]] for p in params], bcs, dtype,
            *_fused.scalars(dtype, -lr, beta, 1 - beta, eps, wd, -1.0 if group["maximize"] else 1.0),
            group["bias_correction"], group["eps_inside_sqrt"])
