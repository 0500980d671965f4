"""Bad hyper-parameters fail at construction with a ValueError that names the parameter,
shows the value and says what is accepted (e.g. ``Adam: invalid beta2 = 1.0; expected a
number in [0, 1)``)."""
from __future__ import annotations

import math
import re

import pytest
import torch

import adamlib

ALL = ("SGD", "Momentum", "Adagrad", "RMSProp", "Adam", "AdamW", "AMSGrad", "AdaMax")
WITH_EPS = ("Adagrad", "RMSProp", "Adam", "AdamW", "AMSGrad", "AdaMax")
WITH_BETAS = ("Adam", "AdamW", "AMSGrad", "AdaMax")
NAN = float("nan")


def _value_re(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return re.escape(repr(value)).replace(r"\.0", r"(\.0)?")
    return re.escape(repr(value))


def _cases():
    out = []

    def add(cls, kwargs, name, value):
        out.append(pytest.param(cls, kwargs, name, value, id=f"{cls}-{name}={value!r}"))

    for cls in ALL:
        add(cls, dict(lr=-1e-3), "lr", -1e-3)
        add(cls, dict(lr=NAN), "lr", NAN)
        add(cls, dict(lr=math.inf), "lr", math.inf)
        add(cls, dict(weight_decay=-0.1), "weight_decay", -0.1)
        add(cls, dict(weight_decay=NAN), "weight_decay", NAN)
        add(cls, dict(maximize="yes"), "maximize", "yes")
        add(cls, dict(foreach="yes"), "foreach", "yes")
    for cls in WITH_EPS:
        add(cls, dict(eps=-1e-8), "eps", -1e-8)
        add(cls, dict(eps=NAN), "eps", NAN)
    for cls in WITH_BETAS:
        add(cls, dict(betas=(1.0, 0.999)), "beta1", 1.0)
        add(cls, dict(betas=(-0.1, 0.999)), "beta1", -0.1)
        add(cls, dict(betas=(0.9, 1.0)), "beta2", 1.0)
        add(cls, dict(betas=(0.9, 1.5)), "beta2", 1.5)
        add(cls, dict(betas=(0.9, NAN)), "beta2", NAN)
        add(cls, dict(betas=(0.9,)), "betas", (0.9,))
        add(cls, dict(betas=(0.9, 0.99, 0.999)), "betas", (0.9, 0.99, 0.999))
    for cls in ("Adam", "AdamW", "AMSGrad"):
        add(cls, dict(bias_correction="no"), "bias_correction", "no")
    add("Adam", dict(amsgrad=1), "amsgrad", 1)
    add("Adam", dict(decoupled_weight_decay="yes"), "decoupled_weight_decay", "yes")
    add("AdamW", dict(amsgrad="yes"), "amsgrad", "yes")
    add("RMSProp", dict(beta=1.0), "beta", 1.0)
    add("RMSProp", dict(beta=-0.5), "beta", -0.5)
    add("RMSProp", dict(bias_correction="yes"), "bias_correction", "yes")
    add("RMSProp", dict(eps_inside_sqrt=None), "eps_inside_sqrt", None)
    add("Momentum", dict(beta=1.0), "beta", 1.0)
    add("Momentum", dict(beta=NAN), "beta", NAN)
    add("Momentum", dict(bias_correction="yes"), "bias_correction", "yes")
    add("SGD", dict(momentum=-0.1), "momentum", -0.1)
    add("SGD", dict(dampening=-0.1), "dampening", -0.1)
    add("SGD", dict(nesterov="yes", momentum=0.9), "nesterov", "yes")
    add("Adagrad", dict(initial_accumulator_value=-1.0), "initial_accumulator_value", -1.0)
    add("Adagrad", dict(lr_decay=-0.5), "lr_decay", -0.5)
    add("Adagrad", dict(lr_decay=NAN), "lr_decay", NAN)
    add("RMSProp", dict(momentum=-1.0), "momentum", -1.0)
    add("RMSProp", dict(momentum=1.0), "momentum", 1.0)
    add("RMSProp", dict(centered="yes"), "centered", "yes")
    for cls in ("RMSProp", "Adam", "AdamW", "AMSGrad", "AdaMax"):  # torch's flag: accepted as False
        add(cls, dict(capturable=True), "capturable", True)
        add(cls, dict(capturable="no"), "capturable", "no")
    return out


@pytest.mark.parametrize("cls, kwargs, name, value", _cases())
def test_bad_hyper_parameter(cls, kwargs, name, value):
    p = torch.zeros(2, requires_grad=True)
    pattern = rf"\b{re.escape(name)}\b\s*=\s*{_value_re(value)}"
    with pytest.raises(ValueError, match=pattern) as info:
        getattr(adamlib, cls)([p], **kwargs)
    msg = str(info.value)
    assert "expected" in msg, msg  # ... and says what is accepted
    assert cls in msg or "Adam" in msg, msg  # ... and which optimizer complained


def test_rmsprop_centered_with_bias_correction_is_refused():
    with pytest.raises(ValueError, match=r"centered = True with bias_correction = True") as info:
        adamlib.RMSProp([torch.zeros(2, requires_grad=True)], centered=True, bias_correction=True)
    assert "expected" in str(info.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(nesterov=True, momentum=0), ["nesterov", "momentum = 0"]),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), ["nesterov", "dampening = 0.1"]),
], ids=["nesterov-without-momentum", "nesterov-with-dampening"])
def test_sgd_nesterov_needs_momentum_and_no_dampening(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words[0])) as info:
        adamlib.SGD([torch.zeros(2, requires_grad=True)], **kwargs)
    assert words[1] in str(info.value)


def test_message_format():
    with pytest.raises(ValueError) as info:
        adamlib.Adam([torch.zeros(1, requires_grad=True)], betas=(0.9, 1.0))
    assert str(info.value) == "Adam: invalid beta2 = 1.0; expected a number in [0, 1)"
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        adamlib.AdaMax([torch.zeros(1, requires_grad=True)], betas=(1.2, 0.9))
    with pytest.raises(ValueError, match=r">= 0"):
        adamlib.RMSProp([torch.zeros(1, requires_grad=True)], lr=-1)


@pytest.mark.parametrize("cls, kwargs", [
    ("SGD", dict(lr=0.0, momentum=0.0, dampening=1.0, weight_decay=0.0)),
    ("Momentum", dict(lr=0.0, beta=0.0)),
    ("Adagrad", dict(eps=0.0, initial_accumulator_value=0.0)),
    ("RMSProp", dict(beta=0.0, eps=0.0)),
    ("Adam", dict(betas=(0.0, 0.0), eps=0.0, lr=torch.tensor(1e-3))),
    ("AdamW", dict(weight_decay=0.0, betas=[0.5, 0.5])),
    ("AMSGrad", dict(eps=0.0)),
    ("AdaMax", dict(eps=0.0, betas=(0.0, 0.999))),
], ids=lambda x: x if isinstance(x, str) else "")
def test_boundary_values_are_accepted(cls, kwargs):
    getattr(adamlib, cls)([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_params_are_torch_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        adamlib.Adam([])
    with pytest.raises(TypeError):
        adamlib.Adam(torch.zeros(2, requires_grad=True))  # a tensor, not an iterable of tensors


def test_sparse_gradients_are_refused_at_step():
    p = torch.zeros(3, requires_grad=True)
    opt = adamlib.Adam([p])
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
