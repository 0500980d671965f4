"""Adagrad (Duchi, Hazan & Singer, 2011), diagonal form."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, number, real, step_count


class Adagrad(AdamlibOptimizer):
    r"""Adagrad, exactly ``torch.optim.Adagrad``.

    G_t     = G_{t-1} + g_t^2                       (every squared gradient so far, per coordinate)
    lr_t    = lr / (1 + (t - 1) lr_decay)           (torch's schedule; lr_t = lr by default)
    theta_t = theta_{t-1} - lr_t g_t / (sqrt(G_t) + eps)

    Each coordinate's effective rate lr_t / sqrt(G_t) only ever shrinks: generous for rare
    (sparse) features, and eventually too small for everything, which RMSProp fixes.
    ``lr_decay`` shrinks it further, like 1/t for large t (Duchi et al. need no such decay).
    State: ``step``, ``sum`` (G), starting at ``initial_accumulator_value``.
    """

    state_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, maximize=False, foreach=None, fused=None):
        name = type(self).__name__
        _validate.nonnegative(name, "lr_decay", lr_decay)
        _validate.nonnegative(name, "initial_accumulator_value", initial_accumulator_value)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps,
                        initial_accumulator_value=initial_accumulator_value,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        fused=fused)
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        super()._init_state(p, state, group)
        # A complex parameter is two real coordinates, each starting at the initial value.
        real(state["sum"]).fill_(group["initial_accumulator_value"])

    @staticmethod
    def _lr(group, t: float) -> float:
        """lr_t = lr / (1 + (t - 1) lr_decay), in torch's order of operations."""
        return number(group["lr"]) / (1 + (t - 1) * group["lr_decay"])

    def _step_per_tensor(self, group, params):
        eps, wd = group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1
            if wd != 0:
                g = g.add(p, alpha=wd)
            theta, g, G = real(p), real(g), real(state["sum"])
            G.addcmul_(g, g, value=1)                             # G_t = G + g^2
            std = G.sqrt().add_(eps)                              # sqrt(G_t) + eps
            theta.addcdiv_(g, std, value=-self._lr(group, step_count(state["step"])))  # theta -= lr_t g / std

    def _step_foreach(self, group, params):
        eps, wd = group["eps"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, G = self._lists(bucket, group, "sum")
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_addcmul_(G, g, g, value=1)
            std = torch._foreach_sqrt(G)
            torch._foreach_add_(std, eps)
            # torch's foreach order, which rounds differently from the loop's addcdiv in float16
            # and bfloat16: the numerator -lr_t g first, in place where g is already a temporary
            # (on a CPU torch's in-place scalar-list multiply rounds unlike the out-of-place one)
            neg_lrs = [-self._lr(group, t) for t in ts]
            if wd != 0 or group["maximize"]:
                torch._foreach_mul_(g, neg_lrs)
                numerator = g
            else:
                numerator = torch._foreach_mul(g, neg_lrs)
            torch._foreach_addcdiv_(theta, numerator, std)

    def _fused_kernel(self, group, params, run):
        eps, wd, dtype = group["eps"], group["weight_decay"], params[0].dtype
        neg_lrs = [-self._lr(group, t) for t in self._advance_steps(params)]
        run("adagrad", [[p, p.grad, self.state[p]["sum"]] for p in params], neg_lrs, dtype,
            *_fused.scalars(dtype, eps, wd, -1.0 if group["maximize"] else 1.0))

    @classmethod
    def _torch_fused_matches(cls, group):
        return True  # torch.optim.Adagrad has every knob of ours, lr_decay included

    def _fused_torch(self, group, params):
        steps = self._device_steps(params)
        theta, grads, sums = self._columns([[p, p.grad, self.state[p]["sum"]] for p in params])
        torch._fused_adagrad_(
            theta, grads, sums, steps, lr=number(group["lr"]), lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
        )
