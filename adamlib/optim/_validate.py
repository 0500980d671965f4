"""Hyper-parameter checks shared by every optimizer.

A bad value fails at construction, not 10,000 steps later, with a message that names the
optimizer, the parameter, the value and what is accepted, e.g.
``Adam: invalid beta2 = 1.0; expected a number in [0, 1)``.
"""
from __future__ import annotations

import math

import torch


def _fail(owner: str, name: str, value, expected: str):
    raise ValueError(f"{owner}: invalid {name} = {value!r}; expected {expected}")


def _as_float(owner: str, name: str, value, expected: str) -> float:
    if isinstance(value, bool):
        _fail(owner, name, value, expected)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            _fail(owner, name, value, f"{expected} (a Tensor must have exactly one element)")
        return float(value.detach().item())
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(owner, name, value, expected)


def nonnegative(owner: str, name: str, value) -> None:
    """A finite number >= 0 (lr, eps, weight_decay, ...). NaN and inf are refused."""
    expected = "a finite number >= 0"
    x = _as_float(owner, name, value, expected)
    if not math.isfinite(x) or x < 0:
        _fail(owner, name, value, expected)


def unit_interval(owner: str, name: str, value, *, closed_right: bool = False) -> None:
    """A number in [0, 1) (a decay rate such as beta1, beta2), or [0, 1] if closed_right."""
    expected = "a number in [0, 1]" if closed_right else "a number in [0, 1)"
    x = _as_float(owner, name, value, expected)
    if not (0.0 <= x < 1.0 or (closed_right and x == 1.0)):
        _fail(owner, name, value, expected)


def betas(owner: str, value) -> None:
    """A pair (beta1, beta2), each in [0, 1)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        _fail(owner, "betas", value, "a pair (beta1, beta2) of numbers in [0, 1)")
    unit_interval(owner, "beta1", value[0])
    unit_interval(owner, "beta2", value[1])


def flag(owner: str, name: str, value, *, allow_none: bool = False) -> None:
    """A bool (or None where None means 'choose for me')."""
    if isinstance(value, bool) or (allow_none and value is None):
        return
    _fail(owner, name, value, "True or False" + (" or None" if allow_none else ""))


def capturable(owner: str, value) -> None:
    """torch.optim's ``capturable`` flag, accepted as False only, so code written for torch that
    passes it still runs: adamlib's step reads each parameter's step count t as a number on the
    host, which a CUDA graph cannot capture. (``torch.compile`` keeps t in its graph instead.)"""
    flag(owner, "capturable", value)
    if value:
        _fail(owner, "capturable", value, "False (adamlib's step reads each parameter's step count "
              "on the host, which a CUDA graph cannot capture; torch.compile(opt.step) keeps it in "
              "the compiled graph instead)")
