"""The optimizers of the experiments, by name, with the hyper-parameters the paper fixes."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..optim import SGD, Adagrad, Adam, RMSProp

def _adadelta(params, lr, weight_decay=0.0):
    # adamlib has no AdaDelta: torch's, with Zeiler's (2012) rho = 0.95, eps = 1e-6.
    return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-6, weight_decay=weight_decay)


#: name -> factory(params, lr, weight_decay) -> torch.optim.Optimizer. Hyper-parameters other
#: than lr are the usual defaults (momentum 0.9; RMSProp beta 0.99; Adam (0.9, 0.999), 1e-8).
OPTIMIZERS: dict[str, Callable] = {
    "SGDNesterov": lambda p, lr, wd=0.0: SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    "Adagrad": lambda p, lr, wd=0.0: Adagrad(p, lr=lr, weight_decay=wd),
    "RMSProp": lambda p, lr, wd=0.0: RMSProp(p, lr=lr, beta=0.99, weight_decay=wd),
    "AdaDelta": _adadelta,
    "Adam": lambda p, lr, wd=0.0: Adam(p, lr=lr, weight_decay=wd),
}


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   schedule: str | None = None):
    """``(optimizer, scheduler or None)``; ``schedule="inv_sqrt"`` gives alpha_t = alpha / sqrt(t)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not accepted: expected one of {sorted(OPTIMIZERS)}")
    optimizer = OPTIMIZERS[name](params, lr, weight_decay)
    if schedule is None:
        return optimizer, None
    if schedule != "inv_sqrt":
        raise ValueError(f"schedule={schedule!r} is not accepted: expected None or 'inv_sqrt'")
    # LambdaLR counts from 0: the t-th update (t = 1, 2, ...) uses lr / sqrt(t).
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 / math.sqrt(k + 1))

