"""Adagrad (Duchi, Hazan & Singer, 2011), diagonal form."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, real


class Adagrad(AdamlibOptimizer):
    r"""Adagrad, exactly ``torch.optim.Adagrad`` (with lr_decay = 0).

    G_t     = G_{t-1} + g_t^2                       (every squared gradient so far, per coordinate)
    theta_t = theta_{t-1} - lr g_t / (sqrt(G_t) + eps)

    Each coordinate's effective rate lr / sqrt(G_t) only ever shrinks: generous for rare
    (sparse) features, and eventually too small for everything, which RMSProp fixes.
    State: ``step``, ``sum`` (G), starting at ``initial_accumulator_value``.
    """

    state_names = ("sum",)
    torch_group_keys = {"lr_decay": lambda group: 0.0}

    def __init__(self, params, lr=1e-2, eps=1e-10, initial_accumulator_value=0, weight_decay=0,
                 maximize=False, foreach=None, fused=None):
        _validate.nonnegative(type(self).__name__, "initial_accumulator_value", initial_accumulator_value)
        defaults = dict(lr=lr, eps=eps, initial_accumulator_value=initial_accumulator_value,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        fused=fused)
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        super()._init_state(p, state, group)
        # A complex parameter is two real coordinates, each starting at the initial value.
        real(state["sum"]).fill_(group["initial_accumulator_value"])

    def _from_torch_group(self, group):
        if group.get("lr_decay", 0) != 0:
            raise ValueError(
                f"Adagrad: invalid lr_decay = {group['lr_decay']!r} in the loaded state_dict; "
                "adamlib's Adagrad supports only lr_decay = 0 (use a torch LR scheduler instead)"
            )

    def _step_per_tensor(self, group, params):
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1
            if wd != 0:
                g = g.add(p, alpha=wd)
            theta, g, G = real(p), real(g), real(state["sum"])
            G.addcmul_(g, g, value=1)                             # G_t = G + g^2
            std = G.sqrt().add_(eps)                              # sqrt(G_t) + eps
            theta.addcdiv_(g, std, value=-lr)                     # theta -= lr g / std

    def _step_foreach(self, group, params):
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            self._advance_steps(bucket)
            theta, g, G = self._lists(bucket, group, "sum")
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_addcmul_(G, g, g, value=1)
            std = torch._foreach_sqrt(G)
            torch._foreach_add_(std, eps)
            torch._foreach_addcdiv_(theta, g, std, value=-lr)

    def _fused_kernel(self, group, params, run):
        lr, eps, wd, dtype = float(group["lr"]), group["eps"], group["weight_decay"], params[0].dtype
        self._advance_steps(params)
        run("adagrad", [[p, p.grad, self.state[p]["sum"]] for p in params], [0] * len(params), dtype,
            *_fused.scalars(dtype, -lr, eps, wd, -1.0 if group["maximize"] else 1.0))

    @classmethod
    def _torch_fused_matches(cls, group):
        return True  # torch.optim.Adagrad with lr_decay = 0

    def _fused_torch(self, group, params):
        steps = self._device_steps(params)
        theta, grads, sums = self._columns([[p, p.grad, self.state[p]["sum"]] for p in params])
        torch._fused_adagrad_(
            theta, grads, sums, steps, lr=float(group["lr"]), lr_decay=0.0,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
        )
