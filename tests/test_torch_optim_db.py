"""torch's own optimizer test database, run through adamlib.

``torch.testing._internal.common_optimizers.optim_db`` is the table torch tests its optimizers
with: per optimizer, the configurations (``optim_inputs_func``) and the ones that must be refused
(``optim_error_inputs_func``). Here every CPU configuration of the six optimizers adamlib shares
with torch (SGD, Adagrad, RMSprop, Adam, AdamW, Adamax; Adam's ``amsgrad`` is AMSGrad) runs in
adamlib and in torch.optim on each path both have (default, foreach, for-loop, and fused where
torch has a CPU kernel), in float64 and float32, over the shared 40-step run of
tests/optim_cases.py (a step with no gradients, a parameter whose gradients start late). Params
and every state tensor must agree: float64 to rtol 1e-10, float32 to assert_close's defaults.
And every construction error torch raises for these optimizers, adamlib raises too, except the
few torch limitations adamlib does not share (``LIFTED``), which are held to torch's numbers.
Where torch.optim itself fails on the run (``TORCH_FAILS``: its fused SGD with momentum, once a
parameter's first gradient comes late), the failure is asserted and adamlib is held to torch's
for-loop instead.

The cases are counted (``EXPECTED_CASES``), so an optimizer dropping out of the database, or a
configuration being filtered away, fails instead of passing silently. Configurations torch keeps
for CUDA (capturable, Tensor betas) run in tests/test_cuda.py.
"""
from __future__ import annotations

import re
import warnings

import pytest
import torch

import adamlib
from torch_db import SHARED, adamlib_kwargs, common_optimizers, infos, same_run

DTYPES = {"float64": torch.float64, "float32": torch.float32}

#: Errors torch raises that adamlib does not: limitations of torch's implementation, not bad
#: values. adamlib reads lr and betas as Python numbers at each step on every path, so a Tensor
#: lr or Tensor betas need neither capturable=True nor the for-loop. Each such input must then
#: give torch's numbers for the same values (as floats, on torch's for-loop).
LIFTED = {
    "lr as a Tensor is not supported for capturable=False and foreach=True":
        "adamlib's foreach path reads lr as a number",
    "betas must be either both floats or both Tensors":
        "adamlib reads each beta as a number, whatever its type",
    r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True":
        "adamlib's foreach path reads betas as numbers",
}

#: Runs torch.optim itself cannot do (torch 2.13), with the error it raises: there adamlib is held
#: to torch's for-loop path instead. Fused SGD with momentum fails as soon as a parameter gets its
#: first gradient after the others have buffers (its momentum_buffer_list then holds a None; a
#: model whose layers start training at different steps, like optim_cases' ``late``).
TORCH_FAILS = {("SGD", "fused"): (lambda kwargs: kwargs.get("momentum", 0) > 0,
                                  TypeError, "but got NoneType")}

#: (configurations, error inputs) per optimizer in torch 2.13's database, CPU
EXPECTED_INPUTS = {"SGD": (9, 7), "Adagrad": (7, 7), "RMSprop": (8, 7), "Adam": (5, 12),
                   "AdamW": (5, 12), "Adamax": (5, 7)}


def _paths(info) -> list[str]:
    paths = ["default", "foreach", "for-loop"]
    if "cpu" in info.supports_fused_on:
        paths.append("fused")
    return paths


PATH_FLAGS = {"default": {}, "foreach": {"foreach": True}, "for-loop": {"foreach": False},
              "fused": {"fused": True}}


def _cases():
    out = []
    for info in infos():
        for index, optim_input in enumerate(info.optim_inputs_func("cpu", None)):
            for path in _paths(info):
                for dtype_name in DTYPES:
                    out.append(pytest.param(info, index, path, dtype_name,
                                            id=f"{info.name}-{optim_input.desc}-{path}-{dtype_name}"))
    return out


def _error_cases():
    out = []
    for info in infos():
        for index, error_input in enumerate(info.optim_error_inputs_func("cpu", torch.float64)):
            out.append(pytest.param(info, index, id=f"{info.name}-{error_input.optimizer_error_input.desc}"))
    return out


CASES = _cases()
ERROR_CASES = _error_cases()
#: 39 configurations on 3 paths, 26 of them (Adagrad, Adam, AdamW, SGD) also fused, 2 dtypes
EXPECTED_CASES = (39 * 3 + 26) * 2
EXPECTED_ERROR_CASES = 52


def test_the_database_is_all_there():
    """Six optimizers, each with torch 2.13's number of inputs, and nothing filtered away."""
    counts = {info.name: (len(info.optim_inputs_func("cpu", None)),
                          len(info.optim_error_inputs_func("cpu", torch.float64))) for info in infos()}
    assert counts == EXPECTED_INPUTS
    assert len(CASES) == EXPECTED_CASES == 286
    assert len(ERROR_CASES) == EXPECTED_ERROR_CASES


@pytest.mark.parametrize("info, index, path, dtype_name", CASES)
def test_configuration_matches_torch(info, index, path, dtype_name):
    optim_input = info.optim_inputs_func("cpu", None)[index]
    kwargs = {**optim_input.kwargs, **PATH_FLAGS[path]}
    torch_kwargs = kwargs
    applies, error, message = TORCH_FAILS.get((info.name, path), (lambda kw: False, None, None))
    if applies(kwargs):
        with pytest.raises(error, match=message):  # still broken in torch (else prune TORCH_FAILS)
            same_run(info, kwargs, adamlib_kwargs(info.name, kwargs), DTYPES[dtype_name])
        torch_kwargs = {**optim_input.kwargs, **PATH_FLAGS["for-loop"]}
    same_run(info, torch_kwargs, adamlib_kwargs(info.name, kwargs), DTYPES[dtype_name])


def _floats(kwargs: dict) -> dict:
    """The same values with every Tensor hyper-parameter as a Python number."""
    def number(v):
        if torch.is_tensor(v):
            return float(v)
        if isinstance(v, tuple):
            return tuple(number(x) for x in v)
        return v
    return {k: number(v) for k, v in kwargs.items()}


def _raised(make):
    """(exception type, message), or (None, None); warnings count as raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            make()
        except (Exception, Warning) as e:  # noqa: B014 - a Warning is an Exception; both named for the reader
            return type(e), str(e)
    return None, None


@pytest.mark.parametrize("info, index", ERROR_CASES)
def test_what_torch_refuses_adamlib_refuses(info, index):
    error_input = info.optim_error_inputs_func("cpu", torch.float64)[index]
    optim_input = error_input.optimizer_error_input
    assert error_input.error_on == common_optimizers.OptimizerErrorEnum.CONSTRUCTION_ERROR

    def params():
        if optim_input.params is not None:
            return optim_input.params
        return [torch.nn.Parameter(torch.randn(1, 1, dtype=torch.float64))]

    cls = getattr(adamlib, SHARED[info.name])
    kwargs = adamlib_kwargs(info.name, optim_input.kwargs)
    torch_type, torch_msg = _raised(lambda: info.optim_cls(params(), **optim_input.kwargs))
    assert torch_type is error_input.error_type and re.search(error_input.error_regex, torch_msg)
    ours_type, ours_msg = _raised(lambda: cls(params(), **kwargs))

    if error_input.error_regex in LIFTED:
        assert ours_type is None, f"{info.name} refuses what it should accept: {ours_msg}"
        same_run(info, {**_floats(optim_input.kwargs), "foreach": False},
                  kwargs, torch.float64)
        return
    assert ours_type is error_input.error_type, (ours_type, ours_msg)
    if re.search(error_input.error_regex, ours_msg):
        return  # torch.optim.Optimizer's own checks, which adamlib inherits
    # adamlib's wording: "<Name>: invalid <parameter> = <value>; expected <range>"
    match = re.match(rf"{cls.__name__}: invalid (\w+) = (.+?); expected .+", ours_msg)
    assert match, ours_msg
    name, value = match.groups()
    named = {k: v for k, v in kwargs.items()}
    if "betas" in kwargs:
        named.update(beta1=kwargs["betas"][0], beta2=kwargs["betas"][1])
    assert name in named and value == repr(named[name]), (name, value, kwargs)


def test_lifted_limitations_are_still_torch_errors():
    """If torch drops one of these errors, LIFTED must be pruned (the list stays true)."""
    regexes = {info.optim_error_inputs_func("cpu", torch.float64)[i].error_regex
               for info, i in (c.values for c in ERROR_CASES)}
    assert set(LIFTED) <= regexes


def test_the_comparison_can_fail():
    """A 10% change of lr in adamlib's run is caught, in float64 and in float32."""
    rmsprop = next(info for info in infos() if info.name == "RMSprop")
    for dtype in DTYPES.values():
        with pytest.raises(AssertionError):
            same_run(rmsprop, {"lr": 1e-2}, {"lr": 1.1e-2}, dtype)
