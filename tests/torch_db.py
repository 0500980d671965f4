"""torch's optimizer test database (``torch.testing._internal.common_optimizers``), for the tests
that run it through adamlib: tests/test_torch_optim_db.py (CPU) and tests/test_cuda.py (the
configurations torch keeps for CUDA)."""
from __future__ import annotations

import copy
import warnings

import torch

import adamlib
from optim_cases import TOL, compare, make_params, run

with warnings.catch_warnings():
    # torch's test utilities warn that hypothesis is missing (they only use it to derandomize
    # torch's own tests), and this suite turns warnings into errors
    warnings.simplefilter("ignore", ImportWarning)
    from torch.testing._internal import common_optimizers
# ... and importing them freezes torch.backends' global flags (torch's test harness sets them
# only through context managers); give the rest of this process its ordinary torch back
setattr(torch.backends, "__allow_nonbracketed_mutation_flag", True)

STEPS = 40  # covers optim_cases' empty step (t = 3) and the late parameter (from t = 6)

#: torch.optim name -> adamlib name
SHARED = {"SGD": "SGD", "Adagrad": "Adagrad", "RMSprop": "RMSProp", "Adam": "Adam",
          "AdamW": "AdamW", "Adamax": "AdaMax"}
#: torch's keyword -> adamlib's, where adamlib uses the paper's name
RENAMED = {"RMSprop": {"alpha": "beta"}}


def infos():
    """The OptimizerInfos of the six shared optimizers, in the database's order."""
    return [info for info in common_optimizers.optim_db if info.name in SHARED]


def adamlib_kwargs(torch_name: str, kwargs: dict) -> dict:
    renamed = RENAMED.get(torch_name, {})
    return {renamed.get(k, k): v for k, v in kwargs.items()}


def _run(make, kwargs, dtype, device, sign):
    params = make_params(dtype, device)
    opt = make(params, **copy.deepcopy(kwargs))  # a Tensor lr is not shared between two runs
    run(opt, params, STEPS, sign=sign)
    return params, opt


def same_run(info, torch_kwargs: dict, adamlib_kw: dict, dtype, device="cpu", tol=None):
    """torch.optim and adamlib on the shared run; params and every state tensor compared
    (float64: rtol 1e-10; float32: assert_close's defaults, unless ``tol`` says otherwise)."""
    sign = -1.0 if torch_kwargs.get("maximize") else 1.0  # stay on the bounded quadratic
    pt, ot = _run(info.optim_cls, torch_kwargs, dtype, device, sign)
    pa, oa = _run(getattr(adamlib, SHARED[info.name]), adamlib_kw, dtype, device, sign)
    for p, p0 in zip(pa, make_params(dtype, device)):
        assert not torch.equal(p, p0)  # every parameter moved: untouched ones prove nothing
    compare(pa, oa, pt, ot, **(tol or TOL[dtype]), what=info.name)
    for p, q in zip(pa, pt):
        assert set(oa.state[p]) == set(ot.state[q])  # the same state tensors, by torch's names
