"""The distributed runs of tests/test_training_setups.py: one spawned group of 2 CPU processes
(gloo) trains the same small model with DistributedDataParallel and with FSDP2 (``fully_shard``
on a CPU device mesh, DTensor parameters), each process on its half of every batch, and sends
the final parameters back as lists. ``one_process`` is the reference: the whole batch in one
process, with the same optimizer.

Kept apart from the test module so the spawned processes import only this.
"""
from __future__ import annotations

import os
import tempfile
import uuid
import warnings

import torch
import torch.nn.functional as F

import adamlib

WORLD = 2
STEPS = 6
BATCH = 8  # 4 samples per process

#: (label, adamlib class, kwargs) run under DDP and under FSDP2
RUNS = [
    ("adam", "Adam", {}),
    ("adam_foreach_amsgrad", "Adam", dict(foreach=True, amsgrad=True, weight_decay=1e-2)),
    ("adamw_per_tensor", "AdamW", dict(foreach=False)),
    ("rmsprop_centered_momentum", "RMSProp", dict(centered=True, momentum=0.5)),
    ("adagrad_lr_decay", "Adagrad", dict(lr_decay=0.1)),
    ("sgd_nesterov", "SGD", dict(momentum=0.9, nesterov=True)),
    ("adamax", "AdaMax", {}),
]
#: fused=True on DTensor parameters: torch's kernel (Adam) and adamlib's (AdaMax, which falls back)
FSDP_FUSED_RUNS = [("adam_fused", "Adam", dict(fused=True)), ("adamax_fused", "AdaMax", dict(fused=True))]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()


def batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 6, generator=gen, dtype=torch.float64),
             torch.randn(BATCH, 3, generator=gen, dtype=torch.float64)) for _ in range(STEPS)]


def _train(net, opt, rows):
    for x, y in batches():
        F.mse_loss(net(x[rows]), y[rows]).backward()
        opt.step()
        opt.zero_grad()


def one_process(name: str, kwargs: dict) -> list:
    """The reference: the whole batch in one process."""
    net = model()
    _train(net, getattr(adamlib, name)(net.parameters(), lr=1e-2, **kwargs), slice(None))
    return [p.detach().tolist() for p in net.parameters()]


def _worker(rank: int, init_file: str, results) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)  # two processes on a shared machine
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    out = {"ddp": {}, "fsdp": {}, "warnings": {}}
    for label, name, kwargs in RUNS:
        net = DistributedDataParallel(model())
        _train(net, getattr(adamlib, name)(net.parameters(), lr=1e-2, **kwargs), rows)
        out["ddp"][label] = [p.detach().tolist() for p in net.module.parameters()]
    mesh = init_device_mesh("cpu", (WORLD,))
    for label, name, kwargs in RUNS + FSDP_FUSED_RUNS:
        net = model()
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(net, mesh=mesh)
        opt = getattr(adamlib, name)(net.parameters(), lr=1e-2, **kwargs)
        kinds = sorted({type(p).__name__ for p in net.parameters()})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _train(net, opt, rows)
        out["warnings"][label] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        # full_tensor() gathers the shards: every process takes part
        out["fsdp"][label] = {"types": kinds, "params": [p.full_tensor().tolist() for p in net.parameters()]}
    if rank == 0:
        results.put(out)
    dist.barrier()
    dist.destroy_process_group()


def run_all() -> dict:
    """Spawn the group, run everything, return rank 0's results (lists, not tensors: tensors in
    shared memory would vanish with the process that made them)."""
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    init_file = os.path.join(tempfile.gettempdir(), f"adamlib-dist-{uuid.uuid4().hex}")
    try:
        mp.start_processes(_worker, args=(init_file, results), nprocs=WORLD, start_method="spawn")
        return results.get()
    finally:
        if os.path.exists(init_file):
            os.remove(init_file)
