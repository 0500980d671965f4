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
        [--epochs N] [--optimizers A,B] [--lrs Adam=1e-3,3e-3] [--eval-batch-size N]
        [--data-dir DIR] [--no-verify]

Results are cached as JSON under :func:`cache_dir`, keyed by a hash of the configuration,
the mode, the device, adamlib's and torch's versions; files are written atomically (a
temporary file renamed into place), so an interrupted run never leaves a broken entry. While
a grid runs, each run is kept as it finishes (see :class:`_Grid`), so an interrupted grid
resumes where it stopped.

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
           "cache_dir", "cache_key", "Interrupted", "OPTIONAL",
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
              weight_decay=1e-4, seed=0, schedule={"Adam": "inv_sqrt"}, eval_batch_size=5000,
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
              eval_batch_size=5000,
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
              lbfgs={"history_size": 20, "evaluations": 200}, eval_batch_size=5000),
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
              record="iteration", monitor=True, eval_batch_size=1000,
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
              eps=1e-8, eval_batch_size=1000),
))


#: Entries every experiment accepts (as an override) although a configuration may leave them
#: out, with the value that stands for them then. ``eval_batch_size``: the full-data cost is
#: evaluated in slices of that many examples (the L-BFGS objective and its gradient are summed
#: over them; None: in one pass, as the fast configurations do, which keeps their dicts, cache
#: keys and numbers as they were). Full configurations set one that fits a 16 GB GPU.
OPTIONAL: dict = {"eval_batch_size": None}


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


def cache_key(name: str, cfg: dict, mode: str, device: str, extra: dict | None = None) -> str:
    """A hash of everything a result depends on: name, configuration, mode, device, versions.

    ``extra``: more that it depends on, outside the configuration (e.g. that the data's
    checksums were not verified); None or empty leaves the key as it was without it.
    """
    fields = {"name": name, "config": cfg, "mode": mode, "device": device, "protocol": PROTOCOL,
              "adamlib": __version__, "torch": torch.__version__}
    if extra:
        fields["extra"] = extra
    blob = json.dumps(fields, sort_keys=True)
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
# Runners: data and models
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


# ---------------------------------------------------------------------------------------------
# A grid of runs: progress, per-run results kept as each run ends, resuming
# ---------------------------------------------------------------------------------------------

class Interrupted(KeyboardInterrupt):
    """:func:`run` was interrupted (Ctrl-C, the kernel's stop button, the CLI's SIGTERM).

    A ``KeyboardInterrupt``, so it stops whatever called :func:`run` as one would; its message
    says what is saved: every run that had finished (with the cache on), which the same call
    then reads back instead of computing it again.
    """

    def __init__(self, message: str, saved: int, total: int):
        super().__init__(message)
        self.saved, self.total = saved, total

    def __str__(self) -> str:
        return self.args[0]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Progress:
    """One report over a whole grid of runs.

    ``"bar"``: one tqdm bar over every epoch of every run ("run k/N", the overall rate and
    ETA). ``"lines"``: one plain line per finished run (per evaluated epoch for the VAE's joint
    grid) with the elapsed time and an estimate of what is left, for logs and notebooks, where
    a bar is noise. None: nothing. All of it goes to stderr.
    """

    def __init__(self, name: str, style: str | None):
        self.name, self.style = name, style
        self.bar = None
        self.units: list[int] = []
        self.done_units = 0        # finished before this session (saved) or in it
        self.computed_units = 0    # finished in this session: the ETA's rate
        self.start = time.perf_counter()

    @staticmethod
    def style_for(progress: bool | None) -> str | None:
        # None: a bar on a terminal, else silent (notebooks, nbval, tests, chapters' cache
        # misses); True: a bar on a terminal, else plain lines; False: silent.
        if progress is False:
            return None
        terminal = sys.stderr.isatty()
        if progress is None:
            return "bar" if terminal else None
        return "bar" if terminal else "lines"

    def plan(self, units: list[int], done: list[bool], unit: str = "epoch", initial: int = 0) -> None:
        """``units[i]``: run i's share (its epochs); ``done[i]``: saved already; ``initial``:
        units of an unfinished run that are saved too (the VAE grid's saved epochs)."""
        self.units = list(units)
        self.done_units = sum(u for u, d in zip(units, done) if d) + initial
        self.start = time.perf_counter()  # after the data are loaded: the ETA's rate is training
        saved = sum(done)
        if self.style == "bar":
            from tqdm import tqdm  # plain tqdm: tqdm.auto would add widgets to notebooks

            self.bar = tqdm(total=sum(units), initial=self.done_units, unit=unit, leave=False,
                            desc=self.name, dynamic_ncols=True)
        elif self.style == "lines" and (saved or initial):
            what = f"{saved} of {len(units)} runs" if saved else f"{initial} of {sum(units)} {unit}s"
            self._print(f"{self.name}: {what} already saved: resuming")

    def start_run(self, index: int, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.name} run {index + 1}/{len(self.units)}", refresh=False)
            self.bar.set_postfix_str(label, refresh=True)

    def advance(self, units: int = 1) -> None:
        self.done_units += units
        self.computed_units += units
        if self.bar is not None:
            self.bar.update(units)

    def _estimate(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = sum(self.units) - self.done_units
        text = f"{_clock(elapsed)} elapsed"
        if self.computed_units and left > 0:
            text += f", about {_clock(elapsed / self.computed_units * left)} left"
        return text

    def finish_run(self, index: int, label: str, run: dict) -> None:
        if self.style == "lines":
            final = run["epoch_loss"][-1] if run.get("epoch_loss") else None
            cost = "nan" if final is None else f"{final:.4g}"
            self._print(f"{self.name}: run {index + 1}/{len(self.units)} done ({label}): "
                        f"final cost {cost}; {self._estimate()}")

    def note(self, text: str) -> None:
        """A line in "lines" style (with the elapsed time and ETA); the bar's postfix otherwise."""
        if self.style == "lines":
            self._print(f"{self.name}: {text}; {self._estimate()}")
        elif self.bar is not None:
            self.bar.set_postfix_str(text)

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class _Job:
    """One run of a grid: what identifies it, its share of the progress, how to compute it."""

    label: str                   # for people: "+dropout Adam lr 0.001"
    spec: dict                   # the configuration of this run alone: the key of its saved result
    units: int                   # epochs (L-BFGS: evaluations), for the progress bar
    compute: Callable            # compute(advance) -> the run's dict; advance(n) after n units


class _Grid:
    """What a runner needs from :func:`run`: where finished runs are kept, and the progress.

    With the cache on, each finished run is written at once (atomically) to
    ``cache_dir()/partial/NAME-MODE-run-KEY.json``, ``KEY`` a hash of that run's own
    configuration (:meth:`_Job.spec`: the experiment's with the grid cut down to this run), so
    a grid that stops (interrupt, out of memory, pre-emption) resumes at its first unfinished
    run, and a grid that shares runs with another (a subset of the step sizes) reuses them.
    The VAE trains its 60 models jointly: it keeps its state at every evaluated epoch instead
    (``NAME-MODE-KEY.state.pt``). Both are removed once the experiment's entry is written.
    """

    def __init__(self, name: str, mode: str, device: str, key: str, key_extra: dict | None,
                 folder: Path | None, progress: _Progress):
        self.name, self.mode, self.device, self.key, self.key_extra = name, mode, device, key, key_extra
        self.folder, self.progress = folder, progress
        self.total, self.saved = 0, 0
        self.written: list[Path] = []
        self.state_note: str | None = None   # the VAE: what its saved state holds
        self.unsaved_note: str | None = None  # the VAE: when it will have saved something

    # --- per-run results -------------------------------------------------------------------
    def _run_path(self, spec: dict) -> Path:
        key = cache_key(self.name, spec, self.mode, self.device, self.key_extra)
        return self.folder / f"{self.name}-{self.mode}-run-{key}.json"

    def _read_run(self, spec: dict) -> dict | None:
        if self.folder is None:
            return None
        path = self._run_path(spec)
        try:
            blob = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # absent, being replaced, or damaged: compute it
        if json.dumps(blob.get("spec"), sort_keys=True) != json.dumps(spec, sort_keys=True):
            return None
        self.written.append(path)
        return blob.get("run")

    def _write_run(self, spec: dict, run: dict) -> None:
        if self.folder is None:
            return
        path = self._run_path(spec)
        _atomic_write(path, json.dumps({"spec": spec, "run": run}))
        self.written.append(path)

    def run_jobs(self, jobs: list[_Job]) -> list[dict]:
        """Every job's run, in order: read back where saved, computed (and saved) otherwise."""
        runs = [self._read_run(job.spec) for job in jobs]
        self.total, self.saved = len(jobs), sum(r is not None for r in runs)
        self.progress.plan([job.units for job in jobs], [r is not None for r in runs])
        for index, job in enumerate(jobs):
            if runs[index] is not None:
                continue
            self.progress.start_run(index, job.label)
            run = _json_safe(job.compute(self.progress.advance))
            self._write_run(job.spec, run)
            runs[index] = run
            self.saved += 1
            self.progress.finish_run(index, job.label, run)
        return runs

    # --- a joint run's state (the VAE grid) ------------------------------------------------
    def _state_path(self) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.name}-{self.mode}-{self.key}.state.pt"

    def load_state(self) -> dict | None:
        path = self._state_path()
        if path is None or not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # damaged (the write is atomic, but a disk can fail): start over
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        self.written.append(path)
        return state

    def save_state(self, state: dict, note: str) -> None:
        path = self._state_path()
        if path is None:
            return
        with atomic_file(path, "wb") as f:
            torch.save({**state, "key": self.key}, f)
        self.written.append(path)
        self.state_note = note

    # --- what is saved ---------------------------------------------------------------------
    def saved_message(self) -> str:
        where = f"{self.name} ({self.mode})"
        if self.folder is None:
            return f"{where}: nothing is kept (the cache is off: --no-cache, cache=False)"
        if self.state_note is not None:
            return (f"{where}: {self.state_note} is saved in {self.folder}; "
                    f"the same command (or call) again resumes from there")
        if self.total == 0:
            return f"{where}: stopped before its first run (loading its data): nothing to save"
        if self.unsaved_note is not None:
            return f"{where}: nothing is saved yet ({self.unsaved_note})"
        return (f"{where}: {self.saved} of {self.total} runs are saved in {self.folder}; "
                f"the same command (or call) again resumes from there")

    def discard(self) -> None:
        """Remove the per-run files and the saved state: the experiment's entry holds it all."""
        for path in dict.fromkeys(self.written):
            with contextlib.suppress(OSError):
                path.unlink()


# ---------------------------------------------------------------------------------------------
# The runners
# ---------------------------------------------------------------------------------------------

def _lr_label(variant: str, optimizer: str, lr: float) -> str:
    return f"{variant + ' ' if variant else ''}{optimizer} lr {lr:g}"


def _run_classify(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    data = _load_data(cfg["data"], device, _dtype(cfg))
    jobs = []
    for variant, overrides in cfg["variants"].items():
        for optimizer_name, lrs in cfg["grid"].items():
            for lr in lrs:
                spec = {**cfg, "variants": {variant: overrides}, "grid": {optimizer_name: [lr]}}

                def compute(advance, variant=variant, overrides=overrides,
                            optimizer_name=optimizer_name, lr=lr):
                    seed_everything(cfg["seed"])  # same theta_0 and dropout masks for every run
                    model = _build_model(cfg["model"], data, overrides).to(device)
                    optimizer, scheduler = make_optimizer(
                        optimizer_name, model.parameters(), lr, cfg.get("weight_decay", 0.0),
                        cfg.get("schedule", {}).get(optimizer_name))
                    monitor: list[dict] = []
                    watch = cfg.get("monitor") and optimizer_name == "Adam"

                    def hook(epoch, history):
                        if watch:
                            monitor.append(_median_sqrt_vhat(model, optimizer))
                        if epoch > 0:
                            advance(1)
                    history = train(model, F.cross_entropy, optimizer, data.X, data.y,
                                    epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=cfg["seed"],
                                    record=cfg.get("record", "epoch"),
                                    eval_batch_size=cfg.get("eval_batch_size"), progress=False,
                                    scheduler=scheduler, on_epoch_end=hook)
                    run = {"variant": variant, "optimizer": optimizer_name, "lr": lr,
                           "epoch_loss": history.epoch_loss, "time": history.time,
                           "updates_per_epoch": history.updates_per_epoch}
                    if history.iteration_loss:
                        run["iteration_loss"] = history.iteration_loss
                    if monitor:
                        run["monitor"] = monitor
                    return run
                jobs.append(_Job(_lr_label(variant, optimizer_name, lr), spec, cfg["epochs"], compute))
    runs = grid.run_jobs(jobs)
    return runs, {"m": data.m, "n_features": data.n_features,
                  "parameters": models.parameter_count(_build_model(cfg["model"], data, {}))}


def _run_deterministic(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    """Adam (mini-batches) vs full-batch L-BFGS on cross-entropy + (l2/2)||theta||^2, no dropout."""
    data = _load_data(cfg["data"], device, _dtype(cfg))
    l2 = cfg["l2"]
    eval_batch_size = cfg.get("eval_batch_size")
    m = data.m

    def penalty(model):
        return 0.5 * l2 * sum(p.pow(2).sum() for p in model.parameters())

    def objective(model):
        def loss_fn(output, target):
            penalty = sum(p.pow(2).sum() for p in model.parameters())
            return F.cross_entropy(output, target) + 0.5 * l2 * penalty
        return loss_fn

    jobs = []
    for lr in cfg["grid"].get("Adam", []):
        def compute(advance, lr=lr):
            seed_everything(cfg["seed"])
            model = _build_model(cfg["model"], data, {}).to(device)
            optimizer, _ = make_optimizer("Adam", model.parameters(), lr)
            h = train(model, objective(model), optimizer, data.X, data.y, epochs=cfg["epochs"],
                      batch_size=cfg["batch_size"], seed=cfg["seed"], record="epoch",
                      eval_batch_size=eval_batch_size, progress=False,
                      on_epoch_end=lambda epoch, history: advance(1) if epoch > 0 else None)
            return {"variant": "", "optimizer": "Adam", "lr": lr, "epoch_loss": h.epoch_loss,
                    "time": h.time, "epochs": h.epoch}
        jobs.append(_Job(_lr_label("", "Adam", lr), {**cfg, "grid": {"Adam": [lr]}, "lbfgs": None},
                         cfg["epochs"], compute))

    # L-BFGS: one "epoch" = one evaluation of the full-data cost and gradient, the unit of
    # work an epoch of mini-batch gradients also costs; line-search evaluations count too. One
    # step() call runs the whole budget; the closure records every evaluation, and the curve is
    # the lowest cost found so far (trial points of a line search may be worse than the iterate).
    def compute_lbfgs(advance):
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
            if eval_batch_size is None or eval_batch_size >= m:
                loss = loss_fn(model(data.X), data.y)
                loss.backward()
            else:
                # The same full-batch objective and gradient, accumulated over slices: the mean
                # cross-entropy is sum_b (|b| / m) mean_b, and backward() adds up the gradients.
                loss = torch.zeros((), dtype=data.X.dtype, device=device)
                for first in range(0, m, eval_batch_size):
                    xb, yb = data.X[first:first + eval_batch_size], data.y[first:first + eval_batch_size]
                    part = F.cross_entropy(model(xb), yb) * (len(xb) / m)
                    part.backward()
                    loss += part.detach()
                part = penalty(model)
                part.backward()
                loss += part.detach()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seen.append(float(loss.detach()))
            stamps.append(time.perf_counter() - start)
            advance(1)
            return loss

        lbfgs.step(closure)
        losses, times, epochs = [seen[0]], [0.0], [0]
        for k in range(1, len(seen)):
            losses.append(min(losses[-1], seen[k]))
            times.append(stamps[k])
            epochs.append(k)
        return {"variant": "", "optimizer": "L-BFGS (full batch)", "lr": 1.0, "epoch_loss": losses,
                "time": times, "epochs": epochs}

    if cfg.get("lbfgs") is not None:
        jobs.append(_Job("L-BFGS (full batch)", {**cfg, "grid": {}}, cfg["lbfgs"]["evaluations"],
                         compute_lbfgs))
    runs = grid.run_jobs(jobs)
    return runs, {"m": data.m, "parameters": models.parameter_count(_build_model(cfg["model"], data, {}))}


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


def _run_vae_grid(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    data = _load_data(cfg["data"], device, _dtype(cfg))
    grid.total = 1  # one joint run of all the models
    X = data.X
    points = [(b1, b2, lg, bc) for b1 in cfg["beta1"] for b2 in cfg["beta2"]
              for lg in cfg["log10_lr"] for bc in (True, False)]
    K = len(points)
    tensor = lambda values, dtype=X.dtype: torch.tensor(values, dtype=dtype, device=device)
    beta1 = tensor([g[0] for g in points])
    beta2 = tensor([g[1] for g in points])
    lr = tensor([10.0 ** g[2] for g in points])
    bias_correction = tensor([g[3] for g in points], dtype=torch.bool)

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
    eval_batch_size = cfg.get("eval_batch_size")

    def vae_losses(output, x):
        return models.vae_loss(output, x.unsqueeze(0).expand(K, *x.shape))

    @torch.no_grad()
    def evaluate() -> list[float]:
        # the negative ELBO on the whole set with one fixed noise draw, the same for every model
        if eval_batch_size is None or eval_batch_size >= len(X):
            return vae_losses(model(X, eval_noise), X).tolist()
        # in slices: every model's activations for the whole set at once take K times the memory
        # of one model's (34 GB for the full grid on MNIST)
        total = torch.zeros(K, dtype=X.dtype, device=device)
        for first in range(0, len(X), eval_batch_size):
            xb = X[first:first + eval_batch_size]
            total += vae_losses(model(xb, eval_noise[first:first + eval_batch_size]), xb) * len(xb)
        return (total / len(X)).tolist()

    # the whole-set loss only at the checkpoint epochs: evaluating 60 models on every example
    # costs as much as an epoch of updates
    checkpoints = sorted(set(cfg["checkpoints"]) | {cfg["epochs"]})
    grid.unsaved_note = (f"the {K} models' state is saved after each evaluated epoch, "
                         f"{', '.join(str(c) for c in checkpoints if c < cfg['epochs']) or 'none before the last'}")
    saved = grid.load_state()
    if saved is not None:
        # resume after the last evaluated epoch: weights, Adam's moments and both generators as
        # they were then, so the rest of the run is the one an uninterrupted run computes
        with torch.no_grad():
            for p, value in zip(params, saved["params"]):
                p.copy_(value)
        state["step"] = saved["step"]
        for p, m, v in zip(params, saved["exp_avg"], saved["exp_avg_sq"]):
            state[("m", id(p))], state[("v", id(p))] = m.to(device), v.to(device)
        batch_order.set_state(saved["batch_order"])
        noise_gen.set_state(saved["noise_gen"])
        curves, times, epochs, seconds = saved["curves"], saved["times"], saved["epochs"], saved["seconds"]
        first_epoch = saved["epoch"] + 1
        grid.state_note = f"the state of its {K} models after epoch {saved['epoch']} of {cfg['epochs']}"
    else:
        curves = [evaluate()]
        times = [0.0]
        epochs = [0]
        seconds = 0.0
        first_epoch = 1
    progress = grid.progress
    progress.plan([cfg["epochs"]], [False], initial=first_epoch - 1)
    progress.start_run(0, f"{K} models")
    for epoch in range(first_epoch, cfg["epochs"] + 1):
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
        progress.advance(1)
        if epoch in checkpoints:
            curves.append(evaluate())
            times.append(seconds)
            epochs.append(epoch)
            finite = [c for c in curves[-1] if math.isfinite(c)]
            progress.note(f"epoch {epoch}/{cfg['epochs']} of {K} models, best cost "
                          f"{min(finite) if finite else math.nan:.4g}")
            if epoch < cfg["epochs"]:
                grid.save_state({
                    "epoch": epoch, "params": [p.detach().cpu() for p in params], "step": state["step"],
                    "exp_avg": [state[("m", id(p))].cpu() for p in params],
                    "exp_avg_sq": [state[("v", id(p))].cpu() for p in params],
                    "batch_order": batch_order.get_state(), "noise_gen": noise_gen.get_state(),
                    "curves": curves, "times": times, "epochs": epochs, "seconds": seconds},
                    note=f"the state of its {K} models after epoch {epoch} of {cfg['epochs']}")
    runs = []
    for k, (b1, b2, lg, bc) in enumerate(points):
        runs.append({"variant": "bias correction" if bc else "no bias correction",
                     "optimizer": f"beta1={b1}, beta2={b2}", "lr": 10.0 ** lg, "beta1": b1, "beta2": b2,
                     "log10_lr": lg, "bias_correction": bc,
                     "epoch_loss": [c[k] for c in curves], "time": times, "epochs": epochs})
    grid.saved = 1
    return runs, {"m": data.m, "K": K, "parameters_per_model": models.parameter_count(single)}


_RUNNERS = {"classify": _run_classify, "deterministic": _run_deterministic, "vae_grid": _run_vae_grid}

_REAL_DATA = ("mnist", "cifar10", "imdb")


def _check_overrides(name: str, cfg: dict) -> None:
    """Refuse, before any data is loaded, the values a runner would trip over mid-grid."""
    kind = EXPERIMENTS[name].kind
    ebs = cfg.get("eval_batch_size")
    if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or ebs < 1):
        raise ValueError(f"eval_batch_size={ebs!r} is not accepted: expected None or an int >= 1")
    epochs = cfg.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r} is not accepted: expected an int >= 0")
    if kind in ("classify", "deterministic"):
        accepted = sorted(OPTIMIZERS) if kind == "classify" else ["Adam"]
        if not isinstance(cfg["grid"], dict):
            raise ValueError(f"grid={cfg['grid']!r} is not accepted: expected {{optimizer: [lr, ...]}}")
        for optimizer, lrs in cfg["grid"].items():
            if optimizer not in accepted:
                raise ValueError(f"grid={cfg['grid']!r} is not accepted: optimizer {optimizer!r} is not "
                                 f"one of {accepted}")
            if not isinstance(lrs, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in lrs):
                raise ValueError(f"grid={cfg['grid']!r} is not accepted: the step sizes of {optimizer} "
                                 f"must be a list of numbers > 0")


def run(name: str, full: bool = False, device="cpu", out=None, cache: bool = True,
        progress: bool | None = None, overrides: dict | None = None) -> Result:
    """Run experiment ``name`` (or load it from the cache) and return its :class:`Result`.

    Args:
        name: one of :data:`EXPERIMENTS`.
        full: the paper's data and sizes instead of the fast configuration.
        device: where to train (``"cpu"``, ``"cuda"``).
        out: a folder to also write ``NAME-MODE.json``, ``.csv`` and ``.png`` into (MODE is
            ``fast`` or ``full``).
        cache: read and write the on-disk cache (:func:`cache_dir`), and keep every run there as
            it finishes, so that an interrupted grid resumes at its first unfinished run (the
            VAE's joint grid: at its last evaluated epoch). False: compute everything, keep nothing.
        progress: None (default): one tqdm bar over the whole grid on a terminal, nothing
            elsewhere (notebooks: a chapter's cell prints nothing, cached or not); True: the bar
            on a terminal, elsewhere one line per finished run on stderr; False: nothing.
        overrides: top-level configuration entries to replace (e.g. ``{"epochs": 5}``, or
            ``{"eval_batch_size": 500}``, which every experiment accepts: see :data:`OPTIONAL`);
            part of the cache key.

    Raises:
        Interrupted: on a KeyboardInterrupt; its message says how many runs are saved.
    """
    cfg = config(name, full)
    if overrides:
        unknown = set(overrides) - set(cfg) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"overrides={overrides!r} is not accepted: unknown keys {sorted(unknown)}; "
                             f"expected some of {sorted(set(cfg) | set(OPTIONAL))}")
        for key, value in copy.deepcopy(overrides).items():
            if key not in cfg and key in OPTIONAL and value == OPTIONAL[key]:
                continue  # the default spelled out: the same configuration, the same cache key
            cfg[key] = value
    _check_overrides(name, cfg)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not accepted: expected 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not accepted: torch sees no CUDA device here")
    mode = "full" if full else "fast"
    # unverified data may differ from the original: its results are kept apart
    key_extra = ({"data_verified": False}
                 if cfg["data"].get("loader") in _REAL_DATA and not data_module.verification_enabled()
                 else None)
    key = cache_key(name, cfg, mode, str(device), key_extra)
    path = cache_dir() / f"{name}-{mode}-{key}.json"
    with _computing(path if cache else None):
        result = _read_cached(path) if cache else None
        if result is None:
            start = time.perf_counter()
            threads = torch.get_num_threads()
            grid = _Grid(name, mode, str(device), key, key_extra,
                         cache_dir() / "partial" if cache else None,
                         _Progress(name, _Progress.style_for(progress)))
            if device.type == "cpu":
                # One thread: the models are small, so more threads mostly add overhead (and on a
                # shared machine oversubscribe it); also makes float sums independent of the core count.
                torch.set_num_threads(1)
            try:
                runs, extra = _RUNNERS[EXPERIMENTS[name].kind](cfg, device, grid)
            except KeyboardInterrupt:
                raise Interrupted(grid.saved_message(), grid.saved, grid.total) from None
            except Exception as error:
                with contextlib.suppress(AttributeError, TypeError):
                    error._adamlib_saved = grid.saved_message()  # for the command line's message
                raise
            finally:
                grid.progress.close()
                torch.set_num_threads(threads)
            result = Result(name=name, mode=mode, config=cfg, device=str(device), version=__version__,
                            runs=_json_safe(runs), extra=_json_safe(extra),
                            seconds=time.perf_counter() - start)
            if cache:
                _atomic_write(path, json.dumps(result.to_json()))
                grid.discard()
    if out is not None:
        write_outputs(result, Path(out))
    return result


# ---------------------------------------------------------------------------------------------
# Outputs for the command line
# ---------------------------------------------------------------------------------------------

def write_outputs(result: Result, out: Path) -> list[Path]:
    """``NAME-MODE.json`` (everything), ``.csv`` (one row per run and epoch) and ``.png``.

    Each is written atomically, with the mode a new file gets from the umask (0644 usually).
    """
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
    with atomic_file(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=plots.DPI, metadata={"Software": None})
    plt.close(fig)
    return [json_path, csv_path, png_path]


PROG = "python -m adamlib.experiments"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")  # the subcommand's too: one prefix for all


class _BadOption(ValueError):
    """A command-line value that the parser could not judge alone (it depends on the experiment)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")


def _int_at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: expected an integer >= 1")
    return value


_EPILOG = """\
outputs (in --out, default results/):
  NAME-fast.json, or NAME-full.json with --full: the configuration and every run
  NAME-MODE.csv: one row per run and epoch;  NAME-MODE.png: each optimizer's best run
  (written atomically, with the usual file mode, 0644 under umask 022)

resuming: with the cache on (the default), every run is saved as it finishes; after an
  interrupt (Ctrl-C, SIGTERM, out of memory) the same command resumes at the first run that
  did not finish (the VAE at its last evaluated epoch). --no-cache recomputes and keeps nothing.

exit status: 0 done; 1 the run failed (data unavailable, out of memory); 2 bad command line;
  130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM.
"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The experiments of Kingma & Ba (2015), Section 6.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="name the experiments")
    run_parser = sub.add_parser("run", help="run one experiment", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Run one experiment (or read it from the cache) and "
                                            "write its results.")
    run_parser.add_argument("name", help="an experiment (see `list`)")
    run_parser.add_argument("--full", action="store_true", help="the paper's data and sizes")
    run_parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (cuda:N)")
    run_parser.add_argument("--out", default=None, metavar="DIR",
                            help="folder for NAME-MODE.json/.csv/.png (default results/)")
    run_parser.add_argument("--no-cache", action="store_true",
                            help="recompute every run, even if cached or saved; keep nothing")
    run_parser.add_argument("--epochs", type=_int_at_least_one, metavar="N",
                            help="epochs per run (mlp_deterministic: L-BFGS gets as many "
                                 "evaluations per epoch as its configuration gives it)")
    run_parser.add_argument("--optimizers", metavar="A,B",
                            help="only these optimizers (names as in the results; "
                                 "mlp_deterministic: Adam, L-BFGS)")
    run_parser.add_argument("--lrs", action="append", metavar="NAME=LR,LR",
                            help="the step sizes of one optimizer, e.g. Adam=1e-3,3e-3 (repeat for "
                                 "others; vae: Adam=1e-4,1e-3, powers of ten)")
    run_parser.add_argument("--eval-batch-size", type=_int_at_least_one, metavar="N",
                            help="evaluate the full-data cost N examples at a time (less memory; "
                                 "default: the configuration's)")
    run_parser.add_argument("--data-dir", metavar="DIR",
                            help="where MNIST, CIFAR-10 and IMDB are looked for and downloaded to "
                                 f"(as $ADAMLIB_DATA; default {data_module.DEFAULT_ROOT})")
    run_parser.add_argument("--no-verify", action="store_true",
                            help="use data files whose MD5 checksum differs from the original's, "
                                 f"with a warning (as ${data_module.VERIFY_VARIABLE}=0)")
    return parser


def _split(option: str, text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise _BadOption(option, f"{text!r} is not accepted: expected names separated by commas")
    return parts


def _step_sizes(option: str, item: str, text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise _BadOption(option, f"{item!r} is not accepted: expected NAME=LR[,LR...] with step "
                                     f"sizes > 0, e.g. Adam=1e-3,3e-3")
        if value not in values:
            values.append(value)
    return values


def _grid_overrides(name: str, cfg: dict, optimizers: str | None, lrs: list[str] | None,
                    epochs: int | None) -> dict:
    """The command line's --optimizers, --lrs and --epochs as configuration overrides."""
    kind = EXPERIMENTS[name].kind
    overrides: dict = {}
    given: dict[str, list[float]] = {}
    for item in lrs or []:
        optimizer, sep, values = item.partition("=")
        optimizer = optimizer.strip()
        if not sep or not optimizer:
            raise _BadOption("--lrs", f"{item!r} is not accepted: expected NAME=LR[,LR...], "
                                      f"e.g. Adam=1e-3,3e-3")
        if optimizer in given:
            raise _BadOption("--lrs", f"{item!r} is not accepted: {optimizer} already has step sizes")
        given[optimizer] = _step_sizes("--lrs", item, values)
    if epochs is not None:
        overrides["epochs"] = epochs

    if kind == "vae_grid":
        if optimizers is not None:
            raise _BadOption("--optimizers", f"{optimizers!r} is not accepted for {name}: it runs Adam "
                                             f"over a beta1 x beta2 x step size grid, with and without "
                                             f"bias correction; choose step sizes with --lrs Adam=...")
        for optimizer, values in given.items():
            if optimizer != "Adam":
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted for {name}: expected Adam=LR,...")
            powers = [round(math.log10(v)) for v in values]
            if any(not math.isclose(10.0 ** k, v, rel_tol=1e-9) for k, v in zip(powers, values)):
                raise _BadOption("--lrs", f"Adam={','.join(f'{v:g}' for v in values)} is not accepted "
                                          f"for {name}: expected powers of ten (its grid is over "
                                          f"log10(lr)), e.g. Adam=1e-4,1e-3")
            overrides["log10_lr"] = powers
        return overrides

    if kind == "deterministic":
        accepted = ["Adam", "L-BFGS"]
        chosen = _split("--optimizers", optimizers) if optimizers is not None else accepted
        for optimizer in chosen:
            if optimizer not in accepted:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted for {name}: expected "
                                                 f"some of {', '.join(accepted)}")
        for optimizer in given:
            if optimizer == "L-BFGS":
                raise _BadOption("--lrs", f"L-BFGS=... is not accepted: L-BFGS takes no step sizes "
                                          f"(its line search chooses them)")
            if optimizer not in accepted:
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted for {name}: expected Adam=LR,...")
            if optimizer not in chosen:
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted: {optimizer} is not among "
                                          f"--optimizers {optimizers}")
        if "Adam" in given or "Adam" not in chosen:
            overrides["grid"] = {"Adam": given["Adam"]} if "Adam" in chosen else {}
        if "L-BFGS" not in chosen:
            overrides["lbfgs"] = None
        elif epochs is not None:
            # the same number of evaluations per epoch of Adam as the configuration gives
            ratio = cfg["lbfgs"]["evaluations"] / cfg["epochs"]
            overrides["lbfgs"] = {**cfg["lbfgs"], "evaluations": max(1, round(ratio * epochs))}
        return overrides

    grid = cfg["grid"]
    if optimizers is not None:
        chosen = _split("--optimizers", optimizers)
        for optimizer in chosen:
            if optimizer not in OPTIMIZERS:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted: expected some of "
                                                 f"{', '.join(OPTIMIZERS)}")
            if optimizer not in grid and optimizer not in given:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted: {name} has no step "
                                                 f"sizes for it; give them with --lrs {optimizer}=LR,...")
        if len(set(chosen)) != len(chosen):
            raise _BadOption("--optimizers", f"{optimizers!r} is not accepted: a name is repeated")
    else:
        chosen = list(grid)
    for optimizer in given:
        if optimizer not in OPTIMIZERS:
            raise _BadOption("--lrs", f"{optimizer}=... is not accepted: expected one of "
                                      f"{', '.join(OPTIMIZERS)}")
        if optimizer not in chosen:
            raise _BadOption("--lrs", f"{optimizer}=... is not accepted: {optimizer} is not in {name}'s "
                                      f"grid ({', '.join(chosen)}); add it with --optimizers")
    if optimizers is not None or given:
        overrides["grid"] = {optimizer: given.get(optimizer, grid.get(optimizer)) for optimizer in chosen}
    return overrides


def _check_device(text: str) -> str:
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise _BadOption("--device", f"{text!r} is not accepted: expected cpu or cuda (cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _BadOption("--device", f"{text!r} is not accepted: torch sees no CUDA device here; "
                                     f"expected cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise _BadOption("--device", f"{text!r} is not accepted: expected cuda:0 to "
                                     f"cuda:{torch.cuda.device_count() - 1}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise _BadOption("--device", f"{text!r} is not accepted: expected cpu or cuda (cuda:N)")
    return text


def _check_folder(option: str, text: str, create: bool) -> Path:
    path = Path(text).expanduser()
    if not text.strip():
        raise _BadOption(option, f"{text!r} is not accepted: expected a folder")
    if path.exists() and not path.is_dir():
        raise _BadOption(option, f"{text!r} is not accepted: it is a file, expected a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _BadOption(option, f"{text!r} is not accepted: cannot create that folder "
                                     f"({error.strerror or error})") from None
        if not os.access(path, os.W_OK):
            raise _BadOption(option, f"{text!r} is not accepted: that folder is not writable")
    return path


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        s in text for s in ("out of memory", "not enough memory", "can't allocate memory"))


@contextlib.contextmanager
def _environment(values: dict):
    """Set environment variables for the duration (main() may be called from Python)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's pre-emption, `timeout`, `kill`): stop as on Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    """The command line; returns the exit status (0 ok, 1 failed run, 2 bad command line,
    130 interrupted by SIGINT, 143 by SIGTERM)."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        for experiment in EXPERIMENTS.values():
            print(f"{experiment.name:<18} {experiment.figure:<22} {experiment.title}")
        return 0
    if args.name not in EXPERIMENTS:
        print(f"{PROG}: error: unknown experiment {args.name!r}; expected one of "
              f"{', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    try:
        device = _check_device(args.device)
        environment = {}
        if args.data_dir is not None:
            environment["ADAMLIB_DATA"] = str(_check_folder("--data-dir", args.data_dir, create=False))
        if args.no_verify:
            environment[data_module.VERIFY_VARIABLE] = "0"
        overrides = _grid_overrides(args.name, config(args.name, args.full), args.optimizers, args.lrs,
                                    args.epochs)
        if args.eval_batch_size is not None:
            overrides["eval_batch_size"] = args.eval_batch_size
        out = _check_folder("--out", args.out if args.out is not None else "results", create=True)
    except _BadOption as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    import signal
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {message}", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous = None
    try:
        with _environment(environment), warnings.catch_warnings():
            warnings.showwarning = show_warning
            # the note that an unverified file is used is shown, once per file, whatever the filters
            warnings.filterwarnings("default", message=r".* used anyway \(", category=UserWarning)
            result = run(args.name, full=args.full, device=device, out=out, cache=not args.no_cache,
                         progress=True, overrides=overrides)
    except Interrupted as error:
        terminated = isinstance(error.__context__, _Terminated)
        print(f"{PROG}: interrupted ({'SIGTERM' if terminated else 'SIGINT'}): {error}", file=sys.stderr)
        return 143 if terminated else 130
    except KeyboardInterrupt as error:  # before or after the grid (loading data, writing outputs)
        terminated = isinstance(error, _Terminated)
        print(f"{PROG}: interrupted ({'SIGTERM' if terminated else 'SIGINT'})", file=sys.stderr)
        return 143 if terminated else 130
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except data_module.DataUnavailableError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as error:
        if not _out_of_memory(error):
            raise
        size = overrides.get("eval_batch_size", config(args.name, args.full).get("eval_batch_size"))
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"{PROG}: error: out of memory ({first[:200]}); "
              f"{getattr(error, '_adamlib_saved', 'nothing is saved yet')}; "
              f"a smaller --eval-batch-size (now {size if size is not None else 'all at once'}) "
              f"needs less", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"{result.name} ({result.mode}, {result.device}): "
          f"{'from cache' if result.cached else f'{result.seconds:.1f} s'}; "
          f"wrote {out / (result.name + '-' + result.mode)}.json, .csv, .png")
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
