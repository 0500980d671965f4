"""Sweeps on Ray: each run of a grid is one Ray task (an optional extra: ``pip install "adamlib[cluster]"``).

``run(name, ray=True)`` (the command line's ``--ray``) starts a local Ray instance, or joins the
cluster that ``RAY_ADDRESS`` names; ``ray="HOST:PORT"`` (``--ray-address``) joins that one; a
Ray already initialised in the process (``ray.init(...)`` before the call) is used as it is and
left running. Each run that is not saved yet becomes a task with ``num_gpus`` 1 on a CUDA device
and 0 on the CPU (one CPU each); the task computes that run alone through the same runner as a
serial sweep (the job's spec is the configuration of that run alone, see :class:`~.store._Job`),
in one thread on a CPU as :func:`~.sweep.run` does, and writes its per-run file into the store
(the folder of per-run results: on shared storage for a cluster). The driver reads every result
back from the tasks, writes it into the store too (for workers that do not share its disk) and
assembles the experiment's :class:`~.results.Result` as a serial sweep does: the same runs, in
the same order, bit for bit on the same hardware and software.

The VAE trains its models jointly (one run per seed): on Ray each seed is one task.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from .. import data as data_module
from .progress import _Progress
from .store import _Grid, _Job

INSTALL = 'pip install "adamlib[cluster]"'

#: Environment variables a task needs as the driver has them (where data sets are and whether
#: their checksums are verified); passed with each task, since a cluster's workers have their own.
FORWARDED = ("ADAMLIB_DATA", data_module.VERIFY_VARIABLE)


class RayUnavailable(ImportError):
    """Ray is not installed where a sweep was asked to run on it."""


def require_ray():
    """The ``ray`` module, or :class:`RayUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"Ray is not installed in this environment; install it with {INSTALL} "
                             f"(or pip install ray)") from None
    return ray


def resources(device: torch.device) -> dict:
    """A task's resources: one GPU on a CUDA device, none on the CPU; one CPU either way."""
    return {"num_cpus": 1, "num_gpus": 1 if device.type == "cuda" else 0}


def worker_device(device: torch.device) -> str:
    """The device a task trains on: Ray gives each GPU task one GPU, which it sees as cuda:0."""
    return "cuda" if device.type == "cuda" else str(device)


@contextlib.contextmanager
def session(address: str | bool | None, device: torch.device):
    """Ray, initialised for the duration: joined at ``address`` (True or None: ``RAY_ADDRESS``,
    else a new local instance), or as it is if the process has initialised it already."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=None if address in (None, True) else address, include_dashboard=False,
                 logging_level="WARNING")
        started = True
    try:
        if device.type == "cuda" and ray.cluster_resources().get("GPU", 0) < 1:
            raise ValueError(f"device={str(device)!r} is not accepted: the Ray cluster has no GPU "
                             f"(its resources: {ray.cluster_resources()})")
        yield Backend(ray, device)
    finally:
        if started:
            ray.shutdown()


def compute(kind: str, name: str, mode: str, device: str, key: str, spec: dict, key_extra: dict | None,
            folder: str | None, environment: dict) -> tuple[list[dict], dict]:
    """A Ray task: the runs of ``spec`` through the experiment's runner, as a serial sweep
    computes them; each written into ``folder`` (None: nowhere) as it finishes."""
    from .runner import _RUNNERS

    before = {k: os.environ.get(k) for k in FORWARDED}
    for k in FORWARDED:
        if environment.get(k) is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = environment[k]
    threads = torch.get_num_threads()
    target = torch.device(device)
    if target.type == "cpu":
        torch.set_num_threads(1)  # as run() does: the same float sums as a serial sweep
    try:
        grid = _Grid(name, mode, device, key, key_extra, None if folder is None else Path(folder),
                     _Progress(name, None))
        value = _RUNNERS[kind](spec, target, grid)
        grid.discard_state()  # a joint run's (the VAE's) state: its result goes back to the driver
        return value
    finally:
        torch.set_num_threads(threads)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Backend:
    """Runs a grid's unsaved jobs as Ray tasks; :meth:`_Grid.run_jobs` hands them over."""

    def __init__(self, ray, device: torch.device):
        self.ray, self.device = ray, device
        self.kind: str | None = None
        self.task = ray.remote(compute).options(**resources(device))

    def _submit(self, grid: _Grid, spec: dict, key: str | None = None):
        environment = {k: os.environ.get(k) for k in FORWARDED}
        return self.task.remote(self.kind, grid.name, grid.mode, worker_device(self.device),
                                grid.key if key is None else key, spec,
                                grid.key_extra, None if grid.folder is None else str(grid.folder),
                                environment)

    def _collect(self, pending: dict, on_done) -> None:
        """Wait for every task of ``pending`` ({ref: index}); ``on_done(index, value)`` as each ends."""
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    on_done(pending.pop(ref), self.ray.get(ref))
        finally:  # interrupted, or a task failed: the others are not waited for
            for ref in pending:
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)

    def run_jobs(self, grid: _Grid, jobs: list[_Job], runs: list) -> list[dict]:
        """``runs[i]``: job i's saved run or None; the missing ones computed as tasks, in parallel."""
        pending = {self._submit(grid, job.spec): index for index, job in enumerate(jobs) if runs[index] is None}

        def done(index, value):
            job = jobs[index]
            task_runs, _ = value
            # the job's spec is that job alone: its one run, or its stack's runs
            run = task_runs if job.many else task_runs[0]
            grid._write_run(job.spec, run)
            runs[index] = run
            grid.saved += job.size
            grid.progress.advance(job.units)
            grid.progress.finish_run(index, job.label, run)
        self._collect(pending, done)
        return runs

    def run_whole(self, grid: _Grid, cfg: dict) -> tuple[list[dict], dict]:
        """An experiment whose runs train jointly (the VAE grid): one task per seed, its state
        kept in the store by the task; each seed's finished grid kept there too."""
        from .runner import _per_seed
        from .store import cache_key

        seeds = _per_seed(cfg)
        results: list = [None] * len(seeds)
        for index, (seed, cfg_seed) in enumerate(seeds):
            if seed is not None:
                results[index] = grid._read_run(cfg_seed)
        grid.total, grid.saved = len(seeds), sum(r is not None for r in results)
        grid.state_note = "the state its Ray tasks saved after their last evaluated epoch (if any)"
        grid.progress.plan([cfg["epochs"]] * len(seeds), [r is not None for r in results])
        pending = {}
        for index, (seed, cfg_seed) in enumerate(seeds):
            if results[index] is None:
                # the task's key: that of the single-seed experiment with this seed (its saved state)
                key = grid.key if seed is None else cache_key(grid.name, cfg_seed, grid.mode, grid.device,
                                                               grid.key_extra)
                pending[self._submit(grid, cfg_seed, key)] = index

        def done(index, value):
            seed, cfg_seed = seeds[index]
            runs, extra = value
            results[index] = {"runs": runs, "extra": extra}
            if seed is not None:
                grid._write_run(cfg_seed, results[index])
            grid.saved += 1
            grid.progress.advance(cfg["epochs"])
        self._collect(pending, done)
        runs = [{**r, **({} if seed is None else {"seed": seed})}
                for (seed, _), result in zip(seeds, results) for r in result["runs"]]
        return runs, results[-1]["extra"]
