"""The paper's experiments (Section 6): one fast and one full configuration each."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

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
#: ``seeds``: a list of seeds, each (optimizer, step size) is run once per seed (None: the one
#: ``seed`` of the configuration; a single seed is the same as ``seed`` set to it, so that it
#: keeps the cache key and results of the single-seed configuration). ``stack``: how a
#: classification grid's runs are grouped to be trained together and saved (see
#: :data:`adamlib.experiments.runner.STACKS`; "run": each run alone). ``momentum``: the momenta
#: searched per optimizer, ``{"SGDNesterov": [0.9, 0.99]}`` (the paper searched momentum for
#: SGD-Nesterov; the others' decay rates are fixed at their usual values, :data:`.stacked.FIXED`).
OPTIONAL: dict = {"eval_batch_size": None, "seeds": None, "stack": "run",
                  "momentum": {"SGDNesterov": [0.9]}}


def config(name: str, full: bool = False) -> dict:
    """A deep copy of the configuration of experiment ``name`` in fast or full mode."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    return copy.deepcopy(experiment.full if full else experiment.fast)

