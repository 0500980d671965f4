"""Shared test inputs for adamlib's optimizers, in the spirit of torch's ``OptimizerInfo``.

* ``CASES``: one row per (adamlib config, equivalent torch.optim config).
* A deterministic problem: a small "model" (a matrix, a vector, a 0-d scalar and a parameter
  that only starts receiving gradients later), with gradients whose scales differ by five
  orders of magnitude (1e-4 ... 10) across coordinates. The gradient at step t is
  ``scale * (noise_t + theta)`` (a noisy quadratic), so any difference in the parameters feeds
  back into the next gradients instead of hiding.
* A schedule of ``None`` gradients: at step ``NO_GRAD_STEP`` no parameter has a gradient (the step
  must be a no-op), the ``late`` parameter has no gradient before ``LATE_START`` (it must get no
  state), and ``weight`` is frozen for ``FROZEN`` steps (its step counter must not move).
* ``run`` steps an optimizer through that schedule; ``compare`` checks params and every state
  tensor.

Run ``python tests/optim_cases.py`` to print the largest absolute difference between each
adamlib optimizer and torch.optim over the 200-step run (float64 and float32, both paths).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

import adamlib

STEPS = 200
NO_GRAD_STEP = 3          # no parameter has a gradient: the whole step is a no-op
LATE_START = 6            # `late` gets its first gradient here; before, it must have no state
FROZEN = range(50, 60)    # `weight` has no gradient in these steps
PARAM_NAMES = ("weight", "bias", "scalar", "late")

# float64: the brief's parity tolerance; float32: torch.testing.assert_close defaults.
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1.3e-6, atol=1e-5),
}
# adamlib's per-tensor loop vs its multi-tensor path.
PATH_TOL = {
    torch.float64: dict(rtol=1e-15, atol=1e-15),
    torch.float32: dict(rtol=1.3e-6, atol=1e-5),
}


# ---------------------------------------------------------------------------------------
# The table of cases


def _identity_state(torch_state: dict, case: "Case") -> dict:
    return dict(torch_state)


def _momentum_state(torch_state: dict, case: "Case") -> dict:
    # m_t (adamlib, EWA with m_0 = 0) = (1 - beta) b_t (torch, b_1 = g_1): the same sum.
    beta = case.kwargs["beta"]
    return {"exp_avg": (1 - beta) * torch_state["momentum_buffer"]}


@dataclass(frozen=True, eq=False)
class Case:
    id: str
    name: str                       # adamlib class name
    kwargs: dict
    torch_name: str                 # torch.optim class name
    torch_kwargs: dict
    # torch's state of one param -> the state adamlib must have (only Momentum needs a map)
    state_map: Callable = field(default=_identity_state)

    @property
    def cls(self):
        return getattr(adamlib, self.name)

    @property
    def torch_cls(self):
        return getattr(torch.optim, self.torch_name)

    def make(self, params, **extra):
        return self.cls(params, **{**self.kwargs, **extra})

    def make_torch(self, params, **extra):
        return self.torch_cls(params, **{"foreach": False, **self.torch_kwargs, **extra})

    def torch_lr(self, lr: float) -> float:
        """The torch lr that corresponds to an adamlib lr (Momentum: lr (1 - beta))."""
        return lr * (1 - self.kwargs["beta"]) if self.name == "Momentum" else lr

    @property
    def grad_sign(self) -> float:
        # With maximize=True the optimizer climbs: feed it -grad so that it climbs -f and the
        # run stays on the same bounded noisy quadratic instead of diverging.
        return -1.0 if self.kwargs.get("maximize") else 1.0

    @property
    def same_state_names(self) -> bool:
        return self.state_map is _identity_state

    def __repr__(self):
        return self.id


CASES = [
    Case("sgd", "SGD", dict(lr=1e-2), "SGD", dict(lr=1e-2)),
    Case("sgd_momentum", "SGD", dict(lr=1e-2, momentum=0.9), "SGD", dict(lr=1e-2, momentum=0.9)),
    Case("sgd_dampening", "SGD", dict(lr=1e-2, momentum=0.9, dampening=0.5),
         "SGD", dict(lr=1e-2, momentum=0.9, dampening=0.5)),
    Case("sgd_nesterov", "SGD", dict(lr=1e-2, momentum=0.9, nesterov=True),
         "SGD", dict(lr=1e-2, momentum=0.9, nesterov=True)),
    Case("sgd_wd_maximize", "SGD", dict(lr=1e-2, momentum=0.5, weight_decay=1e-2, maximize=True),
         "SGD", dict(lr=1e-2, momentum=0.5, weight_decay=1e-2, maximize=True)),
    Case("momentum_no_bc", "Momentum", dict(lr=0.1, beta=0.9, bias_correction=False),
         "SGD", dict(lr=0.1 * (1 - 0.9), momentum=0.9), _momentum_state),
    Case("momentum_no_bc_wd_maximize", "Momentum",
         dict(lr=0.05, beta=0.8, bias_correction=False, weight_decay=1e-2, maximize=True),
         "SGD", dict(lr=0.05 * (1 - 0.8), momentum=0.8, weight_decay=1e-2, maximize=True),
         _momentum_state),
    Case("adagrad", "Adagrad", dict(), "Adagrad", dict()),
    Case("adagrad_wd_init_maximize", "Adagrad",
         dict(lr=0.05, eps=1e-6, initial_accumulator_value=0.1, weight_decay=1e-2, maximize=True),
         "Adagrad", dict(lr=0.05, eps=1e-6, initial_accumulator_value=0.1, weight_decay=1e-2,
                         maximize=True)),
    Case("adagrad_lr_decay", "Adagrad", dict(lr=0.1, lr_decay=0.5, weight_decay=1e-2),
         "Adagrad", dict(lr=0.1, lr_decay=0.5, weight_decay=1e-2)),
    Case("rmsprop", "RMSProp", dict(lr=1e-3), "RMSprop", dict(lr=1e-3)),
    Case("rmsprop_centered", "RMSProp", dict(lr=1e-3, beta=0.9, centered=True),
         "RMSprop", dict(lr=1e-3, alpha=0.9, centered=True)),
    Case("rmsprop_momentum", "RMSProp", dict(lr=1e-3, momentum=0.9),
         "RMSprop", dict(lr=1e-3, momentum=0.9)),
    # Graves (2013)'s setting, with torch's eps outside the root, plus L2 and maximize. The L2
    # weight is small on purpose: where lambda theta dominates a coordinate's gradient (scales go
    # down to 1e-4) the centred variance v - m^2 cancels, and a 1-ulp difference between two
    # code paths grows past float32's tolerance (lambda = 1e-2 gives 2e-6 relative in 200 steps).
    Case("rmsprop_centered_momentum_wd_maximize", "RMSProp",
         dict(lr=1e-4, beta=0.95, eps=1e-4, centered=True, momentum=0.9, weight_decay=1e-4, maximize=True),
         "RMSprop", dict(lr=1e-4, alpha=0.95, eps=1e-4, centered=True, momentum=0.9, weight_decay=1e-4,
                         maximize=True)),
    Case("rmsprop_beta_wd_maximize", "RMSProp",
         dict(lr=1e-3, beta=0.9, eps=1e-6, weight_decay=1e-2, maximize=True),
         "RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=1e-2, maximize=True)),
    Case("adam", "Adam", dict(), "Adam", dict()),
    Case("adam_betas_eps", "Adam", dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-6),
         "Adam", dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-6)),
    Case("adam_l2", "Adam", dict(weight_decay=1e-2), "Adam", dict(weight_decay=1e-2)),
    Case("adam_amsgrad", "Adam", dict(amsgrad=True), "Adam", dict(amsgrad=True)),
    Case("adam_maximize", "Adam", dict(maximize=True), "Adam", dict(maximize=True)),
    Case("adam_decoupled", "Adam", dict(weight_decay=1e-1, decoupled_weight_decay=True),
         "AdamW", dict(weight_decay=1e-1)),
    Case("adamw", "AdamW", dict(), "AdamW", dict()),
    Case("adamw_amsgrad_maximize", "AdamW", dict(weight_decay=0.1, amsgrad=True, maximize=True),
         "AdamW", dict(weight_decay=0.1, amsgrad=True, maximize=True)),
    Case("amsgrad", "AMSGrad", dict(), "Adam", dict(amsgrad=True)),
    Case("amsgrad_wd_betas", "AMSGrad", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2),
         "Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2, amsgrad=True)),
    Case("adamax", "AdaMax", dict(), "Adamax", dict()),
    Case("adamax_wd_maximize", "AdaMax", dict(lr=1e-2, weight_decay=1e-2, maximize=True),
         "Adamax", dict(lr=1e-2, weight_decay=1e-2, maximize=True)),
]
CASE_BY_ID = {c.id: c for c in CASES}
CASES_SAME_STATE = [c for c in CASES if c.same_state_names]

# One sensible configuration per adamlib class, for tests that are about the class, not the knobs.
CLASS_CASES = {
    "SGD": CASE_BY_ID["sgd_momentum"],
    "Momentum": CASE_BY_ID["momentum_no_bc"],
    "Adagrad": CASE_BY_ID["adagrad"],
    "RMSProp": CASE_BY_ID["rmsprop"],
    "Adam": CASE_BY_ID["adam"],
    "AdamW": CASE_BY_ID["adamw"],
    "AMSGrad": CASE_BY_ID["amsgrad"],
    "AdaMax": CASE_BY_ID["adamax"],
}
CLASS_NAMES = tuple(CLASS_CASES)

# A learning rate per class at which (Wx + b)^2 visibly drops in 20 steps.
SENSIBLE_LR = {"SGD": 1e-3, "Momentum": 1e-2, "Adagrad": 1e-1, "RMSProp": 1e-2, "Adam": 1e-2,
               "AdamW": 1e-2, "AMSGrad": 1e-2, "AdaMax": 1e-2}


# ---------------------------------------------------------------------------------------
# The problem


SHAPES = {"weight": (4, 6), "bias": (6,), "scalar": (), "late": (3,)}


@functools.lru_cache(maxsize=None)
def _problem(steps: int):
    """(initial values, per-coordinate scales, noise[t][name]) in float64, on the CPU."""
    gen = torch.Generator().manual_seed(20150101)
    init = {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in SHAPES.items()}
    scales = {}
    for n, s in SHAPES.items():
        k = math.prod(s)
        # log-spaced 1e-4 ... 10 across the coordinates, shuffled so neighbours differ
        sc = torch.logspace(-4, 1, max(k, 2), dtype=torch.float64)[torch.randperm(max(k, 2), generator=gen)]
        scales[n] = sc[:k].reshape(s) if k > 0 else sc[:0].reshape(s)
    scales["scalar"] = torch.tensor(3.0, dtype=torch.float64)
    noise = torch.randn(steps, sum(math.prod(s) for s in SHAPES.values()), generator=gen,
                        dtype=torch.float64)
    per_step = []
    for t in range(steps):
        row, i = {}, 0
        for n, s in SHAPES.items():
            k = math.prod(s)
            row[n] = noise[t, i:i + k].reshape(s)
            i += k
        per_step.append(row)
    return init, scales, per_step


def make_params(dtype=torch.float64, device="cpu", names=PARAM_NAMES):
    init, _, _ = _problem(STEPS)
    return [init[n].to(dtype=dtype, device=device).clone().requires_grad_() for n in names]


def has_grad(name: str, t: int) -> bool:
    """The schedule of None gradients (t = 1, 2, ...)."""
    if t == NO_GRAD_STEP:
        return False
    if name == "late" and t < LATE_START:
        return False
    if name == "weight" and t in FROZEN:
        return False
    return True


def gradient(name: str, p: torch.Tensor, t: int, sign: float = 1.0) -> torch.Tensor:
    """g_t = scale * (noise_t + theta), computed in p's dtype and device (and complex if p is)."""
    _, scales, noise = _problem(max(STEPS, t))
    s = scales[name].to(device=p.device, dtype=p.real.dtype)
    z = noise[t - 1][name].to(device=p.device, dtype=p.real.dtype)
    if p.is_complex():
        z = torch.complex(z, noise[-t][name].to(device=p.device, dtype=p.real.dtype))
    return sign * s * (z + p.detach())


def set_grads(params, t, names=PARAM_NAMES, schedule=True, sign=1.0):
    for n, p in zip(names, params):
        p.grad = gradient(n, p, t, sign) if (not schedule or has_grad(n, t)) else None


def run(opt, params, steps=STEPS, names=PARAM_NAMES, schedule=True, scheduler=None, start=1,
        on_step=None, sign=1.0):
    """Steps ``opt`` through t = start ... start + steps - 1 of the shared problem."""
    for t in range(start, start + steps):
        set_grads(params, t, names, schedule, sign)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        if on_step is not None:
            on_step(t, params, opt)
    return params


def expected_steps(name: str, steps: int = STEPS) -> int:
    return sum(has_grad(name, t) for t in range(1, steps + 1))


def run_pair(case: Case, dtype=torch.float64, device="cpu", foreach=False, steps=STEPS):
    """The same run with adamlib and with torch.optim: ((params, opt), (params, opt)).

    Both are cached per process, so the parity and the path tests share them; do not mutate.
    """
    return run_adamlib(case, dtype, device, foreach, steps), run_torch(case, dtype, device, steps)


@functools.lru_cache(maxsize=None)
def run_adamlib(case: Case, dtype=torch.float64, device="cpu", foreach=False, steps=STEPS):
    """adamlib's run of a case (cached: treat the result as read-only)."""
    pa = make_params(dtype, device)
    oa = case.make(pa, foreach=foreach)
    run(oa, pa, steps, sign=case.grad_sign)
    return pa, oa


@functools.lru_cache(maxsize=None)
def run_torch(case: Case, dtype=torch.float64, device="cpu", steps=STEPS):
    """torch.optim's for-loop run of a case (cached: treat the result as read-only)."""
    pt = make_params(dtype, device)
    ot = case.make_torch(pt)
    run(ot, pt, steps, sign=case.grad_sign)
    return pt, ot


# ---------------------------------------------------------------------------------------
# Comparison


def compare(params_a, opt_a, params_b, opt_b, *, rtol, atol, state_map=None, case=None, what=""):
    """Params and every state tensor of b (mapped to adamlib's names) match a's."""
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what} param {i}: {m}")
        sa, sb = opt_a.state.get(a, {}), opt_b.state.get(b, {})
        if state_map is not None:
            sb = state_map(sb, case) if sb else {}
        sb = {k: v for k, v in sb.items() if k != "step" or "step" in sa}
        assert set(sb) <= set(sa), f"{what} param {i}: state {sorted(sa)} lacks {sorted(set(sb) - set(sa))}"
        for k, vb in sb.items():
            va = sa[k]
            if k == "step":
                assert float(va) == float(vb), f"{what} param {i}: step {float(va)} != {float(vb)}"
                continue
            torch.testing.assert_close(va, vb, rtol=rtol, atol=atol,
                                       msg=lambda m: f"{what} param {i} state {k!r}: {m}")


def max_abs_diff(params_a, opt_a, params_b, opt_b, state_map=None, case=None) -> tuple[float, float]:
    """(max |param diff|, max |state diff|) between two runs."""
    dp = ds = 0.0
    for a, b in zip(params_a, params_b):
        if a.numel():
            dp = max(dp, (a.detach() - b.detach()).abs().max().item())
        sa, sb = opt_a.state.get(a, {}), opt_b.state.get(b, {})
        if state_map is not None and sb:
            sb = state_map(sb, case)
        for k, vb in sb.items():
            if k != "step" and k in sa and vb.numel():
                ds = max(ds, (sa[k] - vb).abs().max().item())
    return dp, ds


def parity_table() -> str:
    lines = ["| case | float64 params | float64 state | float32 params | float32 state | "
             "foreach vs loop (f64) |",
             "|---|---|---|---|---|---|"]
    for case in CASES:
        cells = []
        for dtype in (torch.float64, torch.float32):
            worst_p = worst_s = 0.0
            for foreach in (False, True):
                (pa, oa), (pt, ot) = run_pair(case, dtype, foreach=foreach)
                dp, ds = max_abs_diff(pa, oa, pt, ot, case.state_map, case)
                worst_p, worst_s = max(worst_p, dp), max(worst_s, ds)
            cells += [f"{worst_p:.1e}", f"{worst_s:.1e}"]
        (pa, oa), _ = run_pair(case, torch.float64, foreach=False)
        (pb, ob), _ = run_pair(case, torch.float64, foreach=True)
        dp, ds = max_abs_diff(pa, oa, pb, ob)
        cells.append(f"{max(dp, ds):.1e}")
        lines.append(f"| {case.id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"max |adamlib - torch.optim| over {STEPS} steps (worst of foreach=False/True), "
          f"torch {torch.__version__}")
    print(parity_table())
