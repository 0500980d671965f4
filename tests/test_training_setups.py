"""adamlib in the training set-ups a PyTorch user runs: torch.compile, GradScaler with autocast,
float16 and bfloat16 parameters, DistributedDataParallel and FSDP2. Each is held to torch.optim,
or to one process on the combined batch.

* ``torch.compile(opt.step, fullgraph=True)``: adamlib's step traces into one graph, on both
  paths, with or without a Tensor lr; it compiles twice (the first step creates the state) and
  never again: t stays a tensor in the graph, so there is no recompile per step. (torch.optim's
  own step breaks the graph on purpose in its ``_use_grad`` wrapper; torch's compiled-optimizer
  tests trace ``step.__wrapped__.__wrapped__`` to get one graph.) adamlib breaks the graph in
  one place: ``fused=True``, whose numba and Triton kernels take raw pointers and run eagerly.
* The distributed runs share one spawned group of 2 CPU processes (tests/distributed_runs.py).
"""
from __future__ import annotations

import os

import pytest
import torch
import torch._dynamo.testing

import distributed_runs
from optim_cases import CASE_BY_ID, CLASS_CASES, TOL, compare, make_params, set_grads


# ---------------------------------------------------------------------------------------
# torch.compile

#: every class on the multi-tensor path (the default for small tensors), and on the per-tensor
#: loop the ones whose loops differ most from their foreach code
COMPILE_CASES = [pytest.param(case, True, id=f"{case.id}-foreach") for case in CLASS_CASES.values()] + [
    pytest.param(CASE_BY_ID[i], foreach, id=f"{i}-{'foreach' if foreach else 'per_tensor'}")
    for i, foreach in (("rmsprop_centered_momentum_wd_maximize", True), ("adagrad_lr_decay", True),
                       ("adam", False), ("rmsprop_centered_momentum_wd_maximize", False),
                       ("adagrad_lr_decay", False))]


def _compiled_run(case, backend, steps, dtype=torch.float64, foreach=False, lr=None, lr_change=None):
    """adamlib with a compiled step beside torch.optim stepped eagerly, with every gradient
    present (a missing one is a new set of graph inputs: a recompile, rightly). Returns both
    runs and the number of compiles."""
    torch._dynamo.reset()
    pa, pt = make_params(dtype), make_params(dtype)
    extra = {} if lr is None else {"lr": torch.tensor(lr, dtype=torch.float64)}
    oa = case.make(pa, foreach=foreach, **extra)
    ot = case.make_torch(pt, **({} if lr is None else {"lr": case.torch_lr(lr)}))
    counter = torch._dynamo.testing.CompileCounterWithBackend(backend)
    step = torch.compile(oa.step, backend=counter, fullgraph=True)
    for t in range(1, steps + 1):
        if t == lr_change:  # what an LR scheduler does to a Tensor lr: in place, read by the graph
            oa.param_groups[0]["lr"].fill_(lr / 2)
            ot.param_groups[0]["lr"] = case.torch_lr(lr / 2)
        set_grads(pa, t, schedule=False, sign=case.grad_sign)
        set_grads(pt, t, schedule=False, sign=case.grad_sign)
        step()
        ot.step()
    return (pa, oa), (pt, ot), counter.frame_count


@pytest.mark.parametrize("case, foreach", COMPILE_CASES)
def test_step_traces_into_one_graph_and_compiles_twice(case, foreach):
    """Dynamo's tracing alone (the eager backend runs the traced graph): fast, and it is what
    decides graph breaks and recompiles."""
    (pa, oa), (pt, ot), compiles = _compiled_run(case, "eager", 10, foreach=foreach)
    assert compiles == 2  # the step that creates the state, then the steady one
    compare(pa, oa, pt, ot, **TOL[torch.float64], state_map=case.state_map, case=case)


@pytest.mark.parametrize("case", [CASE_BY_ID[i] for i in ("adam", "sgd_momentum", "adagrad_lr_decay")],
                         ids=lambda c: c.id)
def test_tensor_lr_changes_without_recompiling(case):
    lr = case.make(make_params()).defaults["lr"]
    (pa, oa), (pt, ot), compiles = _compiled_run(case, "eager", 8, foreach=True, lr=lr, lr_change=5)
    assert compiles == 2
    compare(pa, oa, pt, ot, **TOL[torch.float64], state_map=case.state_map, case=case)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor's import
def test_inductor_compiled_step_matches_torch():
    """The real compiler (C++ on a CPU; it may contract and reorder): float32 within
    assert_close's tolerances of torch.optim's eager step. One test for both cases: inductor's
    first compile in a process costs 15-30 s on a 2-core machine, the next ones 1-3 s. Compiled
    in this process: a pool of compile workers would first have to start (and import torch)."""
    import torch._inductor.config
    # Under ATEN_CPU_CAPABILITY=default (the test command's perturbation) torch's headers carry
    # no at::vec, yet inductor still emits vectorised C++ for the CPU it detects, which then
    # fails to compile: there, compile scalar code (simdlen=1), as torch's generic kernels are.
    simdlen = 1 if os.environ.get("ATEN_CPU_CAPABILITY") == "default" else None
    for case, foreach in ((CASE_BY_ID["adam"], True), (CASE_BY_ID["rmsprop_centered_momentum_wd_maximize"], False)):
        with torch._inductor.config.patch(compile_threads=1, **{"cpp.simdlen": simdlen}):
            (pa, oa), (pt, ot), compiles = _compiled_run(case, "inductor", 6, dtype=torch.float32, foreach=foreach)
        assert compiles == 2
        compare(pa, oa, pt, ot, **TOL[torch.float32], state_map=case.state_map, case=case, what=case.id)


def test_fused_step_runs_outside_the_graph():
    """fused=True is adamlib's one graph break: fullgraph refuses it, and without fullgraph the
    kernels run eagerly: the eager fused step's numbers, bit for bit (the same kernel calls).
    (The whole fused step is kept out of the graph, torch's kernels included; Adam's is torch's,
    which needs no numba compile here.)"""
    case = CASE_BY_ID["adam_amsgrad"]
    torch._dynamo.reset()
    params = make_params()
    set_grads(params, 1, schedule=False, sign=case.grad_sign)
    with pytest.raises(torch._dynamo.exc.Unsupported, match="skipped"):
        torch.compile(case.make(params, fused=True).step, backend="eager", fullgraph=True)()
    pc, pe = make_params(), make_params()
    oc, oe = case.make(pc, fused=True), case.make(pe, fused=True)
    step = torch.compile(oc.step, backend="eager")
    for t in range(1, 6):
        set_grads(pc, t, schedule=False, sign=case.grad_sign)
        set_grads(pe, t, schedule=False, sign=case.grad_sign)
        step()
        oe.step()
    compare(pc, oc, pe, oe, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# Mixed precision: GradScaler with autocast; float16 and bfloat16 parameters

SCALER_CASES = [CASE_BY_ID[i] for i in ("adam", "adamw", "rmsprop_centered_momentum_wd_maximize", "sgd_momentum")]
POISON = {4: float("inf"), 9: float("nan")}  # steps whose gradients overflow


@pytest.mark.parametrize("case", SCALER_CASES, ids=lambda c: c.id)
def test_grad_scaler_skips_overflowing_steps_as_with_torch(case):
    gen = torch.Generator().manual_seed(3)
    data = [(torch.randn(16, 8, generator=gen), torch.randn(16, 4, generator=gen)) for _ in range(12)]
    runs = []
    for make in (case.make, case.make_torch):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        opt = make(list(net.parameters()))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=3)
        scales = []
        for t, (x, y) in enumerate(data):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.mse_loss(net(x).float(), y)
            scaler.scale(loss).backward()
            if t in POISON:
                net[0].weight.grad[0, 0] = POISON[t]
                before = [p.detach().clone() for p in net.parameters()]
                state_before = {k: v.clone() for k, v in opt.state[net[0].weight].items()}
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            scales.append(scaler.get_scale())
            if t in POISON:  # skipped: no parameter and no state tensor moved, not even t
                assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
                for k, v in opt.state[net[0].weight].items():
                    assert torch.equal(v, state_before[k]), k
        runs.append((list(net.parameters()), opt, scales))
    (pa, oa, scales_a), (pt, ot, scales_t) = runs
    assert scales_a == scales_t and scales_a[4] == scales_a[3] / 2  # the scaler halved its scale
    compare(pa, oa, pt, ot, **TOL[torch.float32], state_map=case.state_map, case=case)


HALF_CASES = [CASE_BY_ID[i] for i in ("adam", "adamw", "amsgrad", "adamax", "rmsprop", "rmsprop_centered",
                                      "rmsprop_momentum", "adagrad_lr_decay", "sgd_nesterov")]
#: adamlib's path -> torch's path it is held to (on a CPU adamlib's fused step takes half
#: precision parameters through its per-tensor loop)
HALF_PATHS = {"per_tensor": (dict(foreach=False), dict(foreach=False)),
              "foreach": (dict(foreach=True), dict(foreach=True)),
              "fused": (dict(fused=True), dict(foreach=False))}
#: torch.testing.assert_close's defaults for these dtypes
HALF_TOL = {torch.bfloat16: dict(rtol=1.6e-2, atol=1e-5), torch.float16: dict(rtol=1e-3, atol=1e-5)}


@pytest.mark.parametrize("path", HALF_PATHS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("case", HALF_CASES, ids=lambda c: c.id)
def test_half_precision_params_match_torch(case, dtype, path):
    """State in the parameter's dtype, as torch keeps it; gradients of order 1 (half precision
    cannot hold optim_cases' 1e-4 scales squared). float16 takes eps = 1e-3, as torch's own
    database takes 0.1: 1e-8 is 0 in float16, so a v that underflowed would give 0 / 0."""
    gen = torch.Generator().manual_seed(5)
    init = [torch.randn(16, 8, generator=gen), torch.randn(8, generator=gen)]
    noise = [[torch.randn(p.shape, generator=gen) for p in init] for _ in range(20)]
    pa = [p.to(dtype).requires_grad_() for p in init]
    pt = [p.to(dtype).requires_grad_() for p in init]
    eps = {"eps": 1e-3} if dtype == torch.float16 and "eps" in case.make(pa).defaults else {}
    ours, theirs = HALF_PATHS[path]
    oa, ot = case.make(pa, **ours, **eps), case.make_torch(pt, **theirs, **eps)
    for z in noise:
        for params, opt in ((pa, oa), (pt, ot)):
            for p, z_i in zip(params, z):
                p.grad = (case.grad_sign * (z_i.to(dtype) + p.detach()))
            opt.step()
    for p in pa:
        assert p.dtype == dtype and all(v.dtype == dtype for k, v in oa.state[p].items() if k != "step")
    compare(pa, oa, pt, ot, **HALF_TOL[dtype], state_map=case.state_map, case=case)


# ---------------------------------------------------------------------------------------
# DistributedDataParallel and FSDP2, 2 CPU processes




def test_ddp_and_fsdp2_equal_one_process_on_the_combined_batch():
    """One spawned group for every run (spawning is most of the cost): DDP and FSDP2, each
    optimizer and path of ``distributed_runs.RUNS``, and fused=True on DTensor parameters, each
    held to one process on the whole batch (float64, rtol 1e-10)."""
    results = distributed_runs.run_all()
    for kind, runs in (("ddp", distributed_runs.RUNS),
                       ("fsdp", distributed_runs.RUNS + distributed_runs.FSDP_FUSED_RUNS)):
        assert sorted(results[kind]) == sorted(label for label, _, _ in runs)
        for label, name, kwargs in runs:
            run = results[kind][label]
            if kind == "fsdp":
                assert run["types"] == ["DTensor"], label  # the optimizer stepped sharded DTensors
                run = run["params"]
            expected = distributed_runs.one_process(name, kwargs)
            for a, b in zip(run, expected):
                torch.testing.assert_close(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                                           **TOL[torch.float64], msg=lambda m: f"{kind} {label}: {m}")
    warned = results["warnings"]
    assert warned["adam_fused"] == []  # torch's fused Adam takes DTensors
    (message,) = warned["adamax_fused"]  # adamlib's kernel cannot: the loop steps them, and says so once
    assert message.startswith("AdaMax(fused=True): DTensor parameters are stepped by the per-tensor loop")
    assert not any(w for label, w in warned.items() if "fused" not in label)
