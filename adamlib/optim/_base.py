"""What every adamlib optimizer shares: lazy state, the step loop, path choice, checkpoints.

A subclass says which state tensors it keeps and writes two functions of one param group:

* ``_step_per_tensor(group, params)``: the readable loop, one parameter at a time, written
  to mirror the algorithm box line by line. This is the ground truth.
* ``_step_foreach(group, params)``: the same arithmetic on lists of tensors with
  ``torch._foreach_*`` (fewer kernel launches on a GPU); tests hold it equal to the loop.

and, for the third path (``fused=True``: one pass over memory per step, see ``_fused.py``),
``_fused_kernel(group, params, run)`` (adamlib's kernel: ``run`` is ``_fused.run_numba`` on a
CPU, ``_fused.run_triton`` on a GPU) and, where torch has a fused kernel for exactly that
configuration, ``_torch_fused_matches(group)`` and ``_fused_torch(group, params)``.

Everything else (closures, ``None`` grads, maximize, complex numbers, choosing a path,
torch-compatible checkpoints, tracing under ``torch.compile``) lives here once. torch's
``capturable`` flag, where torch.optim has it, is accepted as False (``_validate.capturable``).
"""
from __future__ import annotations

import warnings
from collections import defaultdict

import torch
from torch.optim import Optimizer

from . import _fused, _validate


def _scalar_dtype() -> torch.dtype:
    # torch keeps `step` as a float32 (float64 under a float64 default) CPU tensor; we do the
    # same, so checkpoints move between adamlib and torch.optim unchanged.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


real = _fused.real  # complex tensors are stepped as pairs of reals


def number(x) -> float:
    """A hyper-parameter (lr, a beta) as a step reads it: a Python float, whatever was passed.

    So a Tensor lr or Tensor betas work on every path (torch's foreach path refuses them) and
    give torch's numbers for the same values. Under ``torch.compile`` a Tensor is left a tensor:
    reading it would be a ``.item()`` (a graph break), and the number would be baked into the
    graph as a constant.
    """
    if isinstance(x, torch.Tensor) and torch.compiler.is_compiling():
        return x
    return float(x)


def step_count(step: torch.Tensor):
    """t, from a parameter's ``step`` counter, for the scalars that depend on it (bias corrections).

    Eagerly a Python float: those scalars are then computed in float64 Python arithmetic, exactly
    as torch.optim computes them. Under ``torch.compile`` the counter itself, in float64: a float
    would need a ``.item()`` (a graph break), and would be baked into the graph, recompiling it at
    every step; float64, so the compiled scalars are the eager ones to the last bit or two.
    """
    if torch.compiler.is_compiling():
        return step.to(torch.float64)
    return float(step)


def foreach_addcdiv_(theta: list, num: list, denom: list, values: list) -> None:
    """theta_i += values_i num_i / denom_i for per-parameter numbers values_i.

    Under ``torch.compile`` the values are 0-d tensors (see ``step_count``), which the scalar
    list of ``torch._foreach_addcdiv_`` does not take: there the same update is three foreach
    operations, which the compiler fuses into one pass.
    """
    if values and isinstance(values[0], torch.Tensor):
        update = torch._foreach_mul(num, values)
        torch._foreach_div_(update, denom)
        torch._foreach_add_(theta, update)
    else:
        torch._foreach_addcdiv_(theta, num, denom, values)


#: On a CPU, below this mean tensor size (elements) the multi-tensor path is faster.
FOREACH_CPU_MAX_MEAN_NUMEL = 16_384


def default_fused(params: list[torch.Tensor], foreach) -> bool:
    """Whether ``fused=None`` takes the fused path: never; ask with ``fused=True``.

    The fused step is 2-5x faster than the loop for large groups on a CPU (chapter 16,
    ``python -m adamlib.bench``), but it is not a safe default, for two reasons. It evaluates
    the update in another order, so its numbers differ from torch.optim's default path in the
    last bits (about 1e-16 relative in float64), and adamlib's default promises torch.optim's
    numbers exactly. And where it runs numba (RMSProp, AdaMax, Adam without bias correction)
    the kernels compile on first use: seconds per algorithm and dtype in a fresh clone, too
    much to spend silently inside a notebook cell. So, as in torch.optim, fused is opt-in.
    """
    return False


def default_foreach(params: list[torch.Tensor]) -> bool:
    """The faster path for these tensors when the caller passes ``foreach=None``.

    On a GPU the per-tensor loop is launch-bound (about 7 kernels per parameter), so the
    multi-tensor path wins by a wide margin: always foreach there. On a CPU there are no
    launches to save, only Python dispatch. Measured on the 2-core machine that builds the
    book (medians of 15 steps, ms, loop / foreach): 50 tensors of 32x32: Adam 2.6 / 1.7,
    RMSProp 1.1 / 0.7, SGD 0.17 / 0.13; 200 tensors of 50k: Adam 24 / 40, RMSProp 18 / 23,
    SGD 3.1 / 3.3. So small tensors (dispatch-bound) take the multi-tensor path and large
    ones (memory-bound, where foreach's extra temporaries cost) the loop.
    """
    if all(p.device.type == "cuda" for p in params):
        return True
    mean_numel = sum(p.numel() for p in params) / len(params)
    return mean_numel <= FOREACH_CPU_MAX_MEAN_NUMEL


class AdamlibOptimizer(Optimizer):
    """Base class. Subclasses set ``state_names`` and implement the two step functions."""

    #: per-parameter state tensors created (zeros like the parameter) on a parameter's first step
    state_names: tuple[str, ...] = ()
    #: whether the parameter keeps a `step` counter (bias correction needs t)
    counts_steps: bool = True
    #: group keys torch.optim needs that adamlib spells differently or does not keep:
    #: {torch_key: function(group) -> value}; written into state_dict()'s param groups.
    torch_group_keys: dict = {}

    def __init__(self, params, defaults: dict):
        _validate.nonnegative(type(self).__name__, "lr", defaults["lr"])
        if "weight_decay" in defaults:
            _validate.nonnegative(type(self).__name__, "weight_decay", defaults["weight_decay"])
        if "eps" in defaults:
            _validate.nonnegative(type(self).__name__, "eps", defaults["eps"])
        for name in ("maximize",):
            if name in defaults:
                _validate.flag(type(self).__name__, name, defaults[name])
        _validate.flag(type(self).__name__, "foreach", defaults.get("foreach"), allow_none=True)
        _validate.flag(type(self).__name__, "fused", defaults.get("fused"), allow_none=True)
        if "capturable" in defaults:
            _validate.capturable(type(self).__name__, defaults["capturable"])
        if defaults.get("fused") and defaults.get("foreach"):
            raise ValueError(
                f"{type(self).__name__}: invalid foreach = True with fused = True; "
                "choose one path (fused is the faster one)"
            )
        super().__init__(params, defaults)
        if defaults.get("fused"):
            for group in self.param_groups:
                self._check_fused_possible(group)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "defaults") and self.param_groups[-1].get("fused"):
            self._check_fused_possible(self.param_groups[-1])

    def _check_fused_possible(self, group: dict) -> None:
        # torch's own kernel needs no numba; a CPU group that it cannot take does
        if not self._torch_fused_matches(group) and any(p.device.type == "cpu" for p in group["params"]):
            _fused.require_numba(type(self).__name__)

    # ---- state -----------------------------------------------------------------------

    def _init_state(self, p: torch.Tensor, state: dict, group: dict) -> None:
        if self.counts_steps:
            state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
        for name in self.state_names:
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)

    # ---- the step ----------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient. Returns the closure's loss.

        A parameter whose ``.grad`` is ``None`` is skipped entirely: no update, no state.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients; "
                        "use dense gradients (e.g. nn.Embedding(sparse=False))"
                    )
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(p, state, group)
            foreach = group.get("foreach")
            fused = group.get("fused")
            if fused or (fused is None and default_fused(params, foreach)):
                self._step_fused(group, params)
                continue
            if foreach is None:
                foreach = default_foreach(params)
            if foreach:
                self._step_foreach(group, params)
            else:
                self._step_per_tensor(group, params)
        return loss

    def _step_per_tensor(self, group: dict, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def _step_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    # ---- the fused path ------------------------------------------------------------------

    #: "auto": torch's own fused kernel where torch has one for exactly this configuration
    #: (on every device), else adamlib's: numba on a CPU, Triton on a GPU. "numba", "triton",
    #: "torch": only that back end (tests use them to hold each one to the per-tensor loop on
    #: a CPU; "triton" on CPU tensors needs TRITON_INTERPRET=1).
    _fused_backend = "auto"

    # Never traced by torch.compile (the lazy form torch.optim uses: no torch._dynamo import at
    # class definition): numba's and Triton's kernels take raw data pointers, which the compiler
    # cannot follow, so a compiled step runs this eagerly, one graph break per param group. The
    # compiler fuses the multi-tensor path into one pass by itself: compile that instead.
    @torch._disable_dynamo
    def _step_fused(self, group: dict, params: list[torch.Tensor]) -> None:
        """One pass over memory per parameter, where a kernel can do it; else the same numbers.

        Where torch has a fused kernel for exactly this configuration, it is used on a CPU too:
        the same single pass, hand-vectorised, with nothing to compile and no numba needed;
        adamlib's kernels cover the configurations torch has no kernel for (numba on a CPU,
        Triton on a GPU). Parameters no fused kernel can take (a non-contiguous tensor or
        state, float16 or bfloat16 outside torch's kernels, a GPU without Triton) are stepped
        by the per-tensor loop on a CPU and by the multi-tensor path elsewhere, so a mixed
        model still steps in one call. So are tensor subclasses such as FSDP2's DTensor
        parameters where torch has no kernel (adamlib's kernels read memory through raw data
        pointers, which a subclass does not expose), with a warning, once.
        """
        own, torch_fused, per_tensor, foreach = defaultdict(list), defaultdict(list), [], []
        backend = self._fused_backend
        use_torch = backend in ("auto", "torch") and self._torch_fused_matches(group)
        state = self.state
        subclasses = set()
        for p in params:
            on_cpu = p.is_cpu
            if not _fused.plain(p):
                if use_torch:  # torch's kernels dispatch on the subclass (DTensor: on local shards)
                    torch_fused[(p.device, p.dtype)].append(p)
                    continue
                subclasses.add(type(p).__name__)
                flat = False
            else:
                flat = _fused.kernel_eligible(p, state[p])
            if use_torch and (flat if on_cpu else p.dtype in _fused.TORCH_FUSED_DTYPES):
                torch_fused[(p.device, p.dtype)].append(p)
            elif flat and (backend == "triton" or
                           not on_cpu and backend == "auto" and _fused.triton_available()):
                own[(_fused.run_triton, p.device, _fused.real_dtype(p.dtype))].append(p)
            elif flat and on_cpu and backend in ("auto", "numba"):
                own[(_fused.run_numba, p.device, _fused.real_dtype(p.dtype))].append(p)
            elif on_cpu:
                per_tensor.append(p)
            else:
                foreach.append(p)
        if subclasses and not getattr(self, "_warned_subclass", False):
            self._warned_subclass = True
            warnings.warn(
                f"{type(self).__name__}(fused=True): {', '.join(sorted(subclasses))} parameters are "
                f"stepped by the {'per-tensor loop' if per_tensor else 'multi-tensor path'} instead: "
                "adamlib's own fused kernels read memory through raw data pointers, which a tensor "
                "subclass does not expose (torch's fused kernels take them, where torch has one for "
                "the configuration: SGD, Momentum, Adagrad, Adam/AdamW/AMSGrad with bias correction)",
                UserWarning, stacklevel=3)
        for (run, _, _), bucket in own.items():
            if run is _fused.run_numba:
                _fused.require_numba(type(self).__name__)
            self._fused_kernel(group, bucket, run)
        for bucket in torch_fused.values():
            self._fused_torch(group, bucket)
        if per_tensor:
            self._step_per_tensor(group, per_tensor)
        if foreach:
            self._step_foreach(group, foreach)

    def _fused_kernel(self, group: dict, params: list[torch.Tensor], run) -> None:
        """Step ``params`` (one device and dtype) with adamlib's kernel through ``run``."""
        raise NotImplementedError

    @classmethod
    def _torch_fused_matches(cls, group: dict) -> bool:
        """Whether torch has a fused kernel for exactly this group's configuration."""
        return False

    def _fused_torch(self, group: dict, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def _device_steps(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """t <- t + 1 on adamlib's CPU counters, and float32 copies on the params' device (as
        torch's fused kernels read them), made in one transfer."""
        self._advance_steps(params)
        steps = [self.state[p]["step"] for p in params]
        device = params[0].device
        if device.type == "cpu" and all(s.dtype == torch.float32 for s in steps):
            return steps  # the kernels only read them
        return list(torch.stack(steps).to(device=device, dtype=torch.float32).unbind())

    # ---- helpers for the two paths ------------------------------------------------------

    @staticmethod
    def _grad(p: torch.Tensor, group: dict) -> torch.Tensor:
        """g_t, with maximize folded in (a new tensor: p.grad is never modified)."""
        return -p.grad if group["maximize"] else p.grad

    @staticmethod
    def _columns(rows: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        """Rows (one per parameter: theta, g, state...) -> columns, complex ones as real views."""
        if any(row[0].is_complex() for row in rows):
            rows = [[real(t) for t in row] for row in rows]
        return [list(column) for column in zip(*rows)]

    def _by_device_and_dtype(self, params: list[torch.Tensor]) -> dict:
        """Parameters bucketed so each torch._foreach_* call sees one device and dtype."""
        buckets = defaultdict(list)
        for p in params:
            buckets[(p.device, p.dtype)].append(p)
        return buckets

    def _lists(self, params: list[torch.Tensor], group: dict, *names: str):
        """(params, grads, *state lists) as real views, for the multi-tensor path."""
        ps = [real(p) for p in params]
        gs = [real(p.grad) for p in params]
        if group["maximize"]:
            gs = torch._foreach_neg(gs)
        states = [[real(self.state[p][n]) for p in params] for n in names]
        return (ps, gs, *states)

    def _advance_steps(self, params: list[torch.Tensor]) -> list[float]:
        """t <- t + 1 in each parameter's ``state["step"]``; returns the new t values (they may
        differ), as ``step_count`` gives them.

        Incrementing K separate 0-d tensors costs K dispatches (about 3 us each on a CPU), as much
        as all the rest of a step's Python for a model of a few hundred tensors. So the first
        step re-makes a group's counters as views of one 1-D tensor, in the order of the
        list, and later steps increment them all with one operation: the same float32 additions,
        the same values, and still one 0-d tensor per parameter for state_dict() and torch.optim.
        Any other layout (a checkpoint just loaded, a parameter that got its first gradient late,
        counters of mixed dtypes) takes the per-tensor increment once and is re-packed.
        """
        states = [self.state[p] for p in params]
        steps = [state["step"] for state in states]
        if torch.compiler.is_compiling():
            # one traced foreach add; the packing below reads views' storage, which dynamo does not trace
            torch._foreach_add_(steps, 1.0)
            return [step_count(s) for s in steps]
        base = steps[0]._base
        if (base is not None and base.numel() == len(steps) and base.dim() == 1 and base.is_contiguous()
                and all(s._base is base and s.storage_offset() == i for i, s in enumerate(steps))):
            base.add_(1.0)
            return base.tolist()
        torch._foreach_add_(steps, 1.0)
        first = steps[0]
        if not all(s.dim() == 0 and s.is_cpu and s.dtype == first.dtype for s in steps):
            return [float(s) for s in steps]
        base = torch.stack(steps)
        for state, view in zip(states, base.unbind()):
            state["step"] = view
        return base.tolist()

    # ---- checkpoints ----------------------------------------------------------------------

    def state_dict(self):
        """torch's layout and names; groups also carry the keys torch.optim needs to resume."""
        sd = super().state_dict()
        for group in sd["param_groups"]:
            for key, value_of in self.torch_group_keys.items():
                group.setdefault(key, value_of(group))
        return sd

    def _from_torch_group(self, group: dict) -> None:
        """Translate a group saved by torch.optim (or an older adamlib) into ours. Override."""

    def __setstate__(self, state: dict) -> None:
        # Called by load_state_dict and by unpickling: fill in what older or torch-made
        # checkpoints lack, so they resume instead of failing with a KeyError mid-training.
        super().__setstate__(state)
        for group in self.param_groups:
            self._from_torch_group(group)
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        for s in self.state.values():
            if "step" in s and not torch.is_tensor(s["step"]):
                s["step"] = torch.tensor(float(s["step"]), dtype=_scalar_dtype())
