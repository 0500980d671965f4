"""The paper's Section 6 as named experiments: configurations, a runner, a disk cache and a CLI.

Every experiment has a *fast* configuration (bundled or generated data, small models: what
the chapters and the tests run on a 2-core CPU) and a *full* one (the paper's data sets and
sizes, meant for a GPU). Both go through the same code. The protocol is the paper's: every
optimizer starts from the same initial parameters, sees the same mini-batch order, and is
run over a grid of learning rates (its own grid, as the useful step sizes of SGD and Adam
differ by orders of magnitude); the best lr is the one with the lowest mean log training cost
over the epochs (:func:`score`: low early *and* late, so a step size that is erratic but lucky
at the last epoch does not win; the paper does not say how it picked). Scores within
:data:`TIE` of the best are a tie, won by the smallest lr (:func:`adamlib.selection.best_step_size`),
so the choice does not flip with rounding. Fast mode trains in float64 (see :data:`FAST_DTYPE`).

    python -m adamlib.experiments list
    python -m adamlib.experiments run logreg [--full] [--device cuda] [--out DIR] [--no-cache]

Results are cached as JSON under :func:`cache_dir`, keyed by a hash of the configuration,
the mode, the device, adamlib's and torch's versions; files are written atomically (a
temporary file renamed into place), so an interrupted run never leaves a broken entry.

In Python::

    from adamlib import experiments
    result = experiments.run("logreg")          # fast mode, cached
    result.best("Adam")                          # the run with the best lr
    result.curves()                              # {optimizer: epoch_loss of its best run}
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import torch
import torch.nn.functional as F

from . import __version__
from . import data as data_module
from . import models
from ._atomic import atomic_file
from .selection import TIE, best_step_size
from .optim import SGD, Adagrad, Adam, RMSProp
from .train import seed_everything, train

__all__ = ["EXPERIMENTS", "Experiment", "Result", "config", "run", "score", "best_step_size", "TIE",
           "cache_dir", "cache_key",
           "OPTIMIZERS", "make_optimizer", "main"]


# ---------------------------------------------------------------------------------------------
# Optimizers by name
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The experiments
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Experiment:
    """A named experiment: what it reproduces, its two configurations and its runner."""

    name: str
    title: str
    figure: str
    kind: str                 # "classify", "deterministic" or "vae_grid"
    fast: dict
    full: dict


def _half_decades(low: float, high: float) -> list[float]:
    """1e-3, 3e-3, 1e-2, ... between low and high inclusive (rounded: 3.162e-3 -> 3e-3)."""
    k_low, k_high = round(2 * math.log10(low)), round(2 * math.log10(high))
    return [float(f"{(1 if k % 2 == 0 else 3) * 10 ** (k // 2):.0e}") for k in range(k_low, k_high + 1)]


EXPERIMENTS: dict[str, Experiment] = {}

# Fast mode trains in float64. Its runs are small enough that the cost is modest on a CPU, and
# float32 training is chaotic at the step sizes the grids reach: rounding differences between
# machines (AVX2 or AVX-512 kernels, thread counts) grew to the 3rd digit of the training cost
# within a few hundred updates (SGD-Nesterov at alpha = 3: 0.99 on one machine, 1.17 on
# another), so the chapters' numbers and best step sizes depended on the CPU. In float64 the
# same growth stays far below the digits the chapters print. Full mode keeps float32, as on a GPU.
FAST_DTYPE = "float64"


def _register(experiment: Experiment) -> None:
    EXPERIMENTS[experiment.name] = experiment


_register(Experiment(
    name="logreg", title="L2-regularised logistic regression, dense inputs (Adam with alpha/sqrt(t))",
    figure="Figure 1 (left), MNIST", kind="classify",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "digits", "standardize": False}, model={"name": "logreg"}, epochs=45, batch_size=128,
              weight_decay=1e-4, seed=0, schedule={"Adam": "inv_sqrt"},
              variants={"": {}},
              grid={"SGDNesterov": _half_decades(0.3, 3.0), "Adagrad": _half_decades(0.3, 3.0),
                    "Adam": _half_decades(0.3, 3.0)}),
    full=dict(dtype="float32", data={"loader": "mnist"}, model={"name": "logreg"}, epochs=45, batch_size=128,
              weight_decay=1e-4, seed=0, schedule={"Adam": "inv_sqrt"},
              variants={"": {}},
              grid={"SGDNesterov": _half_decades(1e-3, 1.0), "Adagrad": _half_decades(1e-3, 3.0),
                    "Adam": _half_decades(1e-3, 3.0)}),
))

_register(Experiment(
    name="sparse", title="Logistic regression on sparse bag-of-words with 50% dropout noise",
    figure="Figure 1 (right), IMDB", kind="classify",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "sparse_bow", "n_docs": 1000}, model={"name": "logreg", "input_dropout": 0.5, "sparse_inputs": True},
              epochs=10, batch_size=128, weight_decay=1e-4, seed=0, schedule={"Adam": "inv_sqrt"},
              eval_batch_size=1000, variants={"+dropout": {}},
              grid={"Adagrad": _half_decades(0.1, 1.0), "RMSProp": _half_decades(1e-2, 1e-1),
                    "SGDNesterov": _half_decades(0.1, 1.0), "Adam": _half_decades(0.03, 1.0)}),
    full=dict(dtype="float32", data={"loader": "imdb"}, model={"name": "logreg", "input_dropout": 0.5, "sparse_inputs": True},
              epochs=160, batch_size=128, weight_decay=1e-4, seed=0, schedule={"Adam": "inv_sqrt"},
              eval_batch_size=5000, variants={"+dropout": {}, "": {"input_dropout": 0.0}},
              grid={"Adagrad": _half_decades(1e-2, 3.0), "RMSProp": _half_decades(1e-4, 3e-2),
                    "SGDNesterov": _half_decades(1e-2, 3.0), "Adam": _half_decades(1e-2, 3.0)}),
))

_register(Experiment(
    name="mlp", title="Multilayer network (2 hidden ReLU layers) with dropout",
    figure="Figure 2 (a), MNIST", kind="classify",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "mnist1d"}, model={"name": "mlp", "hidden": [128, 128],
                                                  "input_dropout": 0.2, "dropout": 0.5},
              epochs=15, batch_size=128, weight_decay=0.0, seed=0, schedule={}, variants={"": {}},
              grid={"Adagrad": [1e-2, 3e-2, 1e-1], "RMSProp": [1e-3, 3e-3, 1e-2],
                    "SGDNesterov": [3e-2, 1e-1, 3e-1], "AdaDelta": [0.3, 1.0, 3.0],
                    "Adam": [1e-3, 3e-3, 1e-2]}),
    full=dict(dtype="float32", data={"loader": "mnist"}, model={"name": "mlp", "hidden": [1000, 1000],
                                                "input_dropout": 0.2, "dropout": 0.5},
              epochs=200, batch_size=128, weight_decay=0.0, seed=0, schedule={}, variants={"": {}},
              grid={"Adagrad": _half_decades(1e-3, 1e-1), "RMSProp": _half_decades(1e-4, 1e-2),
                    "SGDNesterov": _half_decades(1e-3, 1e-1), "AdaDelta": [0.1, 0.3, 1.0, 3.0],
                    "Adam": _half_decades(1e-4, 1e-2)}),
))

_register(Experiment(
    name="mlp_deterministic",
    title="Multilayer network, deterministic cost (L2, no dropout): Adam vs full-batch L-BFGS (SFO stand-in)",
    figure="Figure 2 (b), MNIST", kind="deterministic",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "mnist1d"}, model={"name": "mlp", "hidden": [128, 128]},
              epochs=15, batch_size=128, l2=1e-4, seed=0, grid={"Adam": [3e-3, 1e-2, 3e-2]},
              lbfgs={"history_size": 20, "evaluations": 30}),
    full=dict(dtype="float32", data={"loader": "mnist"}, model={"name": "mlp", "hidden": [1000, 1000]},
              epochs=100, batch_size=128, l2=1e-4, seed=0, grid={"Adam": _half_decades(1e-4, 1e-2)},
              lbfgs={"history_size": 20, "evaluations": 200}),
))

_register(Experiment(
    name="cnn", title="Convolutional network, with and without dropout",
    figure="Figure 3, CIFAR-10", kind="classify",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "mnist1d", "num_samples": 2500},
              model={"name": "cnn", "in_channels": 1, "input_size": 40, "dims": 1,
                     "channels": [16, 16, 32], "fc": 128, "kernel": 5},
              epochs=6, batch_size=128, weight_decay=0.0, seed=0, schedule={},
              record="iteration", monitor=True,
              variants={"": {}, "+dropout": {"input_dropout": 0.2, "dropout": 0.5}},
              grid={"Adagrad": _half_decades(3e-3, 1e-1), "SGDNesterov": _half_decades(1e-2, 3e-1),
                    "Adam": _half_decades(3e-3, 3e-2)}),
    full=dict(dtype="float32", data={"loader": "cifar10", "whiten": True},
              model={"name": "cnn", "in_channels": 3, "input_size": 32, "dims": 2,
                     "channels": [64, 64, 128], "fc": 1000, "kernel": 5},
              epochs=45, batch_size=128, weight_decay=0.0, seed=0, schedule={},
              record="iteration", monitor=True,
              variants={"": {}, "+dropout": {"input_dropout": 0.2, "dropout": 0.5}},
              grid={"Adagrad": _half_decades(1e-3, 3e-2), "SGDNesterov": _half_decades(1e-3, 3e-2),
                    "Adam": _half_decades(1e-4, 3e-3)}),
))

_register(Experiment(
    name="vae", title="Bias-correction ablation: a VAE over the paper's 60-run grid",
    figure="Figure 4", kind="vae_grid",
    fast=dict(dtype=FAST_DTYPE, data={"loader": "digits", "binary": True}, model={"hidden": 100, "latent": 10},
              epochs=100, checkpoints=[1, 2, 5, 10, 20, 50, 100], batch_size=100, seed=0,
              beta1=[0.0, 0.9], beta2=[0.99, 0.999, 0.9999], log10_lr=[-5, -4, -3, -2, -1],
              eps=1e-8),
    full=dict(dtype="float32", data={"loader": "mnist", "binary": True}, model={"hidden": 500, "latent": 50},
              epochs=100, checkpoints=[1, 2, 5, 10, 20, 50, 100], batch_size=100, seed=0,
              beta1=[0.0, 0.9], beta2=[0.99, 0.999, 0.9999], log10_lr=[-5, -4, -3, -2, -1],
              eps=1e-8),
))


def config(name: str, full: bool = False) -> dict:
    """A deep copy of the configuration of experiment ``name`` in fast or full mode."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    return copy.deepcopy(experiment.full if full else experiment.fast)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    """What one experiment measured; JSON-serialisable through :meth:`to_json`.

    ``runs`` holds one dict per (variant, optimizer, lr) with ``epoch_loss`` (full training
    cost at epochs 0..E) and ``time`` (cumulative seconds), and for some experiments
    ``iteration_loss`` or ``monitor`` (per-layer statistics). ``extra`` holds what does not
    fit that shape (the VAE grid's table).
    """

    name: str
    mode: str
    config: dict
    device: str
    version: str
    runs: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "mode", "config", "device", "version",
                                               "runs", "extra", "seconds")}

    @classmethod
    def from_json(cls, blob: dict, cached: bool = False) -> "Result":
        return cls(**blob, cached=cached)

    @property
    def optimizers(self) -> list[str]:
        return list(dict.fromkeys(r["optimizer"] for r in self.runs))

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(r["variant"] for r in self.runs))

    def select(self, optimizer: str, variant: str | None = None) -> list[dict]:
        """All runs of ``optimizer`` (in one ``variant``; default: the first), ordered by lr."""
        variant = self.variants[0] if variant is None else variant
        runs = [r for r in self.runs if r["optimizer"] == optimizer and r["variant"] == variant]
        if not runs:
            raise ValueError(f"optimizer={optimizer!r}, variant={variant!r} is not accepted: "
                             f"expected one of {self.optimizers} and {self.variants}")
        return sorted(runs, key=lambda r: r["lr"])

    def run_at(self, optimizer: str, lr: float, variant: str | None = None) -> dict:
        for r in self.select(optimizer, variant):
            if math.isclose(r["lr"], lr, rel_tol=1e-9):
                return r
        raise ValueError(f"lr={lr!r} is not accepted: {optimizer} ran with "
                         f"{[r['lr'] for r in self.select(optimizer, variant)]}")

    def best(self, optimizer: str, variant: str | None = None) -> dict:
        """The run with the best :func:`score`, ties broken by :func:`best_step_size`."""
        runs = self.select(optimizer, variant)
        lr = best_step_size({r["lr"]: score(r["epoch_loss"]) for r in runs})
        return next(r for r in runs if r["lr"] == lr)

    def curves(self, variant: str | None = None) -> dict[str, list[float]]:
        """``{optimizer: epoch_loss of its best run}``."""
        return {name: self.best(name, variant)["epoch_loss"] for name in self.optimizers
                if any(r["variant"] == (variant if variant is not None else self.variants[0])
                       and r["optimizer"] == name for r in self.runs)}


def score(losses: list) -> float:
    """The mean of log(training cost) over epochs 1..E; +inf if any cost is missing or non-finite."""
    tail = losses[1:] or losses
    if any(v is None or not math.isfinite(v) or v <= 0 for v in tail):
        return math.inf
    return sum(math.log(v) for v in tail) / len(tail)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """``$ADAMLIB_CACHE`` if set; in a source checkout ``<repo>/.adamlib_cache``; else ``~/.cache/adamlib/results``."""
    if os.environ.get("ADAMLIB_CACHE"):
        return Path(os.environ["ADAMLIB_CACHE"]).expanduser()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and os.access(repo, os.W_OK):
        return repo / ".adamlib_cache"
    return Path("~/.cache/adamlib/results").expanduser()


# Bumped whenever the runners compute something different for the same configuration (2: the
# initial weights are drawn in the experiment's dtype), so that no cache serves stale results.
PROTOCOL = 2


def cache_key(name: str, cfg: dict, mode: str, device: str) -> str:
    """A hash of everything a result depends on: name, configuration, mode, device, versions."""
    blob = json.dumps({"name": name, "config": cfg, "mode": mode, "device": device, "protocol": PROTOCOL,
                       "adamlib": __version__, "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _read_cached(path: Path) -> "Result | None":
    if not path.exists():
        return None
    try:
        return Result.from_json(json.loads(path.read_text()), cached=True)
    except (ValueError, TypeError):
        return None  # unreadable entry: recompute and overwrite


@contextlib.contextmanager
def _computing(path: Path | None):
    """Hold an exclusive lock on ``path``'s entry while it is computed.

    A second process asking for the same experiment (a chapter and a test in parallel, two
    jobs of a sweep) waits for the first and then reads its result instead of computing it
    again. Advisory (fcntl) locks exist on POSIX only; elsewhere both compute, as before.
    """
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def _json_safe(value):
    """NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------------

def _dtype(cfg: dict) -> torch.dtype:
    name = cfg.get("dtype", "float32")
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype={name!r} is not accepted: expected 'float32' or 'float64'")
    return getattr(torch, name)


def _load_data(spec: dict, device, dtype: torch.dtype = torch.float32) -> data_module.Dataset:
    spec = dict(spec, device=device, dtype=dtype)
    loader = spec.pop("loader")
    binary = spec.pop("binary", False)
    if loader == "digits":
        data = data_module.load_digits(device=device, dtype=dtype, standardize=spec.get("standardize", not binary))
    elif loader == "mnist1d":
        data = data_module.load_mnist1d(**spec)
    elif loader == "sparse_bow":
        data = data_module.make_sparse_bow(**spec)
    elif loader == "mnist":
        data = data_module.load_mnist(flatten=True, **spec)
    elif loader == "cifar10":
        data = data_module.load_cifar10(**spec)
    elif loader == "imdb":
        data = data_module.load_imdb(**spec)
    else:
        raise ValueError(f"loader={loader!r} is not accepted")
    return data_module.binarize(data) if binary else data


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Create tensors in ``dtype``: the initial weights are drawn in it, not cast to it.

    Drawn in float32 and cast, the weights of one seed differ in their last float32 bit between
    torch's kernel paths (its generic kernels vs AVX2/AVX-512), and training amplifies that.
    """
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _build_model(spec: dict, data: data_module.Dataset, overrides: dict):
    """The model of ``spec`` for ``data``, its parameters drawn in ``data.X``'s dtype."""
    spec = {**spec, **overrides}
    name = spec.pop("name")
    with _default_dtype(data.X.dtype):
        if name == "cnn":
            if data.X.ndim == 2 and spec.get("dims") == 2:  # flat images: restore (C, H, W)
                raise ValueError("the 2-D CNN needs images of shape (m, C, H, W)")
            return models.CNN(n_classes=data.n_classes, **spec)
        if name == "mlp":
            spec["hidden"] = tuple(spec.get("hidden", (1000, 1000)))
        return models.build(name, n_features=data.n_features, n_classes=data.n_classes, **spec)


def _median_sqrt_vhat(model, optimizer) -> dict[str, float]:
    """Per layer: the median over its weights of sqrt(v_hat_t) = sqrt(v_t / (1 - beta2^t))."""
    out = {}
    beta2 = optimizer.param_groups[0]["betas"][1]
    for layer, params in model.layers().items():
        weight = params[0]
        state = optimizer.state.get(weight, {})
        if "exp_avg_sq" not in state:
            continue
        t = float(state["step"])
        out[layer] = float((state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt().median())
    return out


def _run_classify(cfg: dict, device, progress) -> tuple[list[dict], dict]:
    data = _load_data(cfg["data"], device, _dtype(cfg))
    runs = []
    for variant, overrides in cfg["variants"].items():
        for optimizer_name, grid in cfg["grid"].items():
            for lr in grid:
                seed_everything(cfg["seed"])  # same theta_0 and dropout masks for every run
                model = _build_model(cfg["model"], data, overrides).to(device)
                optimizer, scheduler = make_optimizer(
                    optimizer_name, model.parameters(), lr, cfg.get("weight_decay", 0.0),
                    cfg.get("schedule", {}).get(optimizer_name))
                monitor: list[dict] = []
                hook = None
                if cfg.get("monitor") and optimizer_name == "Adam":
                    def hook(epoch, history, model=model, optimizer=optimizer, monitor=monitor):
                        monitor.append(_median_sqrt_vhat(model, optimizer))
                history = train(model, F.cross_entropy, optimizer, data.X, data.y,
                                epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=cfg["seed"],
                                record=cfg.get("record", "epoch"),
                                eval_batch_size=cfg.get("eval_batch_size"), progress=progress,
                                scheduler=scheduler, on_epoch_end=hook)
                run = {"variant": variant, "optimizer": optimizer_name, "lr": lr,
                       "epoch_loss": history.epoch_loss, "time": history.time,
                       "updates_per_epoch": history.updates_per_epoch}
                if history.iteration_loss:
                    run["iteration_loss"] = history.iteration_loss
                if monitor:
                    run["monitor"] = monitor
                runs.append(run)
    return runs, {"m": data.m, "n_features": data.n_features,
                  "parameters": models.parameter_count(_build_model(cfg["model"], data, {}))}


def _run_deterministic(cfg: dict, device, progress) -> tuple[list[dict], dict]:
    """Adam (mini-batches) vs full-batch L-BFGS on cross-entropy + (l2/2)||theta||^2, no dropout."""
    data = _load_data(cfg["data"], device, _dtype(cfg))
    l2 = cfg["l2"]
    runs = []

    def objective(model):
        def loss_fn(output, target):
            penalty = sum(p.pow(2).sum() for p in model.parameters())
            return F.cross_entropy(output, target) + 0.5 * l2 * penalty
        return loss_fn

    for lr in cfg["grid"]["Adam"]:
        seed_everything(cfg["seed"])
        model = _build_model(cfg["model"], data, {}).to(device)
        optimizer, _ = make_optimizer("Adam", model.parameters(), lr)
        h = train(model, objective(model), optimizer, data.X, data.y, epochs=cfg["epochs"],
                  batch_size=cfg["batch_size"], seed=cfg["seed"], record="epoch", progress=progress)
        runs.append({"variant": "", "optimizer": "Adam", "lr": lr, "epoch_loss": h.epoch_loss,
                     "time": h.time, "epochs": h.epoch})

    # L-BFGS: one "epoch" = one evaluation of the full-data cost and gradient, the unit of
    # work an epoch of mini-batch gradients also costs; line-search evaluations count too. One
    # step() call runs the whole budget; the closure records every evaluation, and the curve is
    # the lowest cost found so far (trial points of a line search may be worse than the iterate).
    seed_everything(cfg["seed"])
    model = _build_model(cfg["model"], data, {}).to(device)
    loss_fn = objective(model)
    budget = cfg["lbfgs"]["evaluations"]
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=10 * budget, max_eval=budget,
                              history_size=cfg["lbfgs"]["history_size"], line_search_fn="strong_wolfe",
                              tolerance_grad=0.0, tolerance_change=0.0)
    seen: list[float] = []
    stamps: list[float] = []
    start = time.perf_counter()

    def closure():
        lbfgs.zero_grad()
        loss = loss_fn(model(data.X), data.y)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seen.append(float(loss.detach()))
        stamps.append(time.perf_counter() - start)
        return loss

    lbfgs.step(closure)
    losses, times, epochs = [seen[0]], [0.0], [0]
    for k in range(1, len(seen)):
        losses.append(min(losses[-1], seen[k]))
        times.append(stamps[k])
        epochs.append(k)
    runs.append({"variant": "", "optimizer": "L-BFGS (full batch)", "lr": 1.0, "epoch_loss": losses,
                 "time": times, "epochs": epochs})
    return runs, {"m": data.m, "parameters": models.parameter_count(model)}


def grid_adam_step(params, grads, state, lr, beta1, beta2, bias_correction, eps: float) -> None:
    """One Adam step for K stacked models at once, each with its own hyper-parameters.

    ``lr``, ``beta1``, ``beta2`` are float tensors of shape ``(K,)``, ``bias_correction`` a
    bool tensor ``(K,)``; every parameter has a leading dimension ``K``. Model ``k`` takes
    exactly the step of :class:`adamlib.Adam` (``bias_correction=False`` sets both
    corrections to 1). A model whose parameters became non-finite is left as it is.
    """
    state["step"] = state.get("step", 0) + 1
    t = state["step"]
    one = torch.ones_like(lr)
    bc1 = torch.where(bias_correction, 1 - beta1 ** t, one)
    bc2 = torch.where(bias_correction, 1 - beta2 ** t, one)
    for p, g in zip(params, grads):
        shape = (-1,) + (1,) * (p.ndim - 1)
        m = state.setdefault(("m", id(p)), torch.zeros_like(p))
        v = state.setdefault(("v", id(p)), torch.zeros_like(p))
        m.mul_(beta1.view(shape)).add_((1 - beta1).view(shape) * g)
        v.mul_(beta2.view(shape)).add_((1 - beta2).view(shape) * g * g)
        denom = (v / bc2.view(shape)).sqrt() + eps
        p.sub_((lr / bc1).view(shape) * m / denom)


def _run_vae_grid(cfg: dict, device, progress) -> tuple[list[dict], dict]:
    data = _load_data(cfg["data"], device, _dtype(cfg))
    X = data.X
    grid = [(b1, b2, lg, bc) for b1 in cfg["beta1"] for b2 in cfg["beta2"]
            for lg in cfg["log10_lr"] for bc in (True, False)]
    K = len(grid)
    tensor = lambda values, dtype=X.dtype: torch.tensor(values, dtype=dtype, device=device)
    beta1 = tensor([g[0] for g in grid])
    beta2 = tensor([g[1] for g in grid])
    lr = tensor([10.0 ** g[2] for g in grid])
    bias_correction = tensor([g[3] for g in grid], dtype=torch.bool)

    seed_everything(cfg["seed"])
    with _default_dtype(X.dtype):
        single = models.VAE(data.n_features, **cfg["model"])
        model = models.BatchedVAE(single, K).to(device)
    params = list(model.parameters())
    state: dict = {}
    batch_order = torch.Generator().manual_seed(cfg["seed"])
    noise_gen = torch.Generator(device=device).manual_seed(cfg["seed"] + 1)
    eval_noise = torch.randn(len(X), single.latent, generator=torch.Generator(device=device)
                             .manual_seed(cfg["seed"] + 2), device=device, dtype=X.dtype)

    @torch.no_grad()
    def evaluate() -> list[float]:
        # the negative ELBO on the whole set with one fixed noise draw, the same for every model
        return vae_losses(model(X, eval_noise), X).tolist()

    def vae_losses(output, x):
        return models.vae_loss(output, x.unsqueeze(0).expand(K, *x.shape))

    # the whole-set loss only at the checkpoint epochs: evaluating 60 models on every example
    # costs as much as an epoch of updates
    checkpoints = sorted(set(cfg["checkpoints"]) | {cfg["epochs"]})
    curves = [evaluate()]
    times = [0.0]
    epochs = [0]
    seconds = 0.0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg["epochs"], unit="epoch", leave=False)
    for epoch in range(1, cfg["epochs"] + 1):
        order = torch.randperm(len(X), generator=batch_order).to(device)
        start = time.perf_counter()
        for first in range(0, len(X), cfg["batch_size"]):
            xb = X[order[first:first + cfg["batch_size"]]]
            noise = torch.randn(len(xb), single.latent, generator=noise_gen, device=device, dtype=X.dtype)
            losses = vae_losses(model(xb, noise), xb)
            # the models are independent: the gradient of the sum is each model's own gradient
            grads = torch.autograd.grad(torch.nan_to_num(losses, nan=0.0, posinf=0.0).sum(), params)
            with torch.no_grad():
                grid_adam_step(params, grads, state, lr, beta1, beta2, bias_correction, cfg["eps"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        if epoch in checkpoints:
            curves.append(evaluate())
            times.append(seconds)
            epochs.append(epoch)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    runs = []
    for k, (b1, b2, lg, bc) in enumerate(grid):
        runs.append({"variant": "bias correction" if bc else "no bias correction",
                     "optimizer": f"beta1={b1}, beta2={b2}", "lr": 10.0 ** lg, "beta1": b1, "beta2": b2,
                     "log10_lr": lg, "bias_correction": bc,
                     "epoch_loss": [c[k] for c in curves], "time": times, "epochs": epochs})
    return runs, {"m": data.m, "K": K, "parameters_per_model": models.parameter_count(single)}


_RUNNERS = {"classify": _run_classify, "deterministic": _run_deterministic, "vae_grid": _run_vae_grid}


def run(name: str, full: bool = False, device="cpu", out=None, cache: bool = True,
        progress: bool | None = None, overrides: dict | None = None) -> Result:
    """Run experiment ``name`` (or load it from the cache) and return its :class:`Result`.

    Args:
        name: one of :data:`EXPERIMENTS`.
        full: the paper's data and sizes instead of the fast configuration.
        device: where to train (``"cpu"``, ``"cuda"``).
        out: a folder to also write ``NAME.json``, ``NAME.csv`` and ``NAME.png`` into.
        cache: read and write the on-disk cache (:func:`cache_dir`).
        progress: tqdm bars (None: only on a terminal).
        overrides: top-level configuration entries to replace (e.g. ``{"epochs": 5}``);
            part of the cache key.
    """
    cfg = config(name, full)
    if overrides:
        unknown = set(overrides) - set(cfg)
        if unknown:
            raise ValueError(f"overrides={overrides!r} is not accepted: unknown keys {sorted(unknown)}")
        cfg.update(copy.deepcopy(overrides))
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not accepted: expected 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not accepted: torch sees no CUDA device here")
    mode = "full" if full else "fast"
    key = cache_key(name, cfg, mode, str(device))
    path = cache_dir() / f"{name}-{mode}-{key}.json"
    with _computing(path if cache else None):
        result = _read_cached(path) if cache else None
        if result is None:
            start = time.perf_counter()
            threads = torch.get_num_threads()
            if device.type == "cpu":
                # One thread: the models are small, so more threads mostly add overhead (and on a
                # shared machine oversubscribe it); also makes float sums independent of the core count.
                torch.set_num_threads(1)
            try:
                runs, extra = _RUNNERS[EXPERIMENTS[name].kind](cfg, device, progress)
            finally:
                torch.set_num_threads(threads)
            result = Result(name=name, mode=mode, config=cfg, device=str(device), version=__version__,
                            runs=_json_safe(runs), extra=_json_safe(extra),
                            seconds=time.perf_counter() - start)
            if cache:
                _atomic_write(path, json.dumps(result.to_json()))
    if out is not None:
        write_outputs(result, Path(out))
    return result


# ---------------------------------------------------------------------------------------------
# Outputs for the command line
# ---------------------------------------------------------------------------------------------

def write_outputs(result: Result, out: Path) -> list[Path]:
    """``NAME.json`` (everything), ``NAME.csv`` (one row per run and epoch) and ``NAME.png``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result.name}-{result.mode}"
    json_path, csv_path, png_path = out / f"{stem}.json", out / f"{stem}.csv", out / f"{stem}.png"
    _atomic_write(json_path, json.dumps(result.to_json(), indent=1))
    lines = ["variant,optimizer,lr,epoch,training_cost,seconds"]
    for r in result.runs:
        for epoch, (loss, seconds) in enumerate(zip(r["epoch_loss"], r["time"])):
            lines.append(f"\"{r['variant']}\",\"{r['optimizer']}\",{r['lr']:g},"
                         f"{r.get('epochs', list(range(len(r['epoch_loss']))))[epoch]},"
                         f"{'' if loss is None else repr(loss)},{seconds:.6g}")
    _atomic_write(csv_path, "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import plots

    variants = result.variants
    fig, axes = plots.figure(ncols=len(variants), width=4.4, height=3.3, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for name in dict.fromkeys(r["optimizer"] for r in result.runs if r["variant"] == variant):
            best = result.best(name, variant)
            xs = best.get("epochs", list(range(len(best["epoch_loss"]))))
            ys = [math.nan if v is None else v for v in best["epoch_loss"]]
            ax.plot(xs, ys, label=f"{name} (lr {best['lr']:g})")
        ax.set_yscale("log")
        ax.set_xlabel("epochs")
        ax.set_ylabel("training cost")
        ax.set_title(variant or result.name, fontsize=9)
        if len(result.optimizers) <= 8:
            ax.legend(frameon=False, fontsize=7)
    fig.savefig(png_path, dpi=plots.DPI, metadata={"Software": None})
    plt.close(fig)
    return [json_path, csv_path, png_path]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m adamlib.experiments",
                     description="The experiments of Kingma & Ba (2015), Section 6.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="name the experiments")
    run_parser = sub.add_parser("run", help="run one experiment")
    run_parser.add_argument("name")
    run_parser.add_argument("--full", action="store_true", help="the paper's data and sizes")
    run_parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    run_parser.add_argument("--out", default=None, help="folder for NAME.json/.csv/.png (default results/)")
    run_parser.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    return parser


def main(argv=None) -> int:
    """The command line; returns the exit status (0 ok, 1 failed run, 2 bad command line)."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        for experiment in EXPERIMENTS.values():
            print(f"{experiment.name:<18} {experiment.figure:<22} {experiment.title}")
        return 0
    prog = "python -m adamlib.experiments"
    if args.name not in EXPERIMENTS:
        print(f"{prog}: error: unknown experiment {args.name!r}; expected one of "
              f"{', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("results")
    try:
        result = run(args.name, full=args.full, device=args.device, out=out,
                     cache=not args.no_cache)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except data_module.DataUnavailableError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    print(f"{result.name} ({result.mode}, {result.device}): "
          f"{'from cache' if result.cached else f'{result.seconds:.1f} s'}; wrote {out}/")
    for variant in result.variants:
        for name in dict.fromkeys(r["optimizer"] for r in result.runs if r["variant"] == variant):
            best = result.best(name, variant)
            final = best["epoch_loss"][-1]
            print(f"  {variant + ' ' if variant else ''}{name}: best lr {best['lr']:g}, "
                  f"final training cost {'nan' if final is None else f'{final:.4g}'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`: not an error of the run
        sys.stderr.close()
        sys.exit(0)
