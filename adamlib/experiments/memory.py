"""The peak device memory of a full experiment's run: measured and estimated (for ``list``).

:data:`MEASURED` holds what ``tools/measure_memory.py`` measured on a CPU with fake data of the
real size; :func:`estimate` computes it from the configuration, so that it follows a change
of configuration that the stored measurement does not (tests/test_full_mode.py keeps the two
within a factor of two of each other).

A run holds on its device: the training data (the loaders put the whole set there), the
model's weights with their gradient and the optimizer's state (at most two tensors per weight:
Adam's m and v, AdaDelta's two averages), and the activations of one pass: a training
mini-batch's forward activations kept for the backward pass (about as much again for the
gradients flowing back), or an evaluation slice's (``eval_batch_size`` examples at once, two
layers' outputs alive at a time; L-BFGS: its history and a slice's activations for the
backward pass). The estimate is the data, plus four times the weights, plus
the larger of the two passes. The activations per example are counted by running the model on
two examples (forward hooks), so the estimate follows the configuration. The VAE trains its 60
grid points as one batched model: weights and activations times 60.

Without ``eval_batch_size`` the whole set is one slice: that is what ran out of memory before
(``evaluate()`` on all of CIFAR-10 at once, 27 GB by this estimate).
"""
from __future__ import annotations

import math

import torch

from .. import models
from .configs import config

#: Measured peak memory of one run of each full experiment, in bytes: the peak resident set
#: after loading (data on the device, model, optimizer state, a whole-set evaluation in
#: ``eval_batch_size`` slices and 20 mini-batch updates) less the process's before the run.
#: tools/measure_memory.py on 2026-12-02 (torch 2.13.0 on a 2-core x86-64 CPU, fake data in
#: the real formats and sizes, one seed and one step size; the VAE all its 60 models;
#: mlp_deterministic the larger of its Adam run, 0.44 GB, and 40 evaluations of L-BFGS with
#: its 20 pairs of history full). A GPU's allocator adds its own overhead; loading CIFAR-10
#: also takes 5.4 GB of CPU memory once, for its whitening in float64.
MEASURED = {"logreg": 0.35e9, "sparse": 1.20e9, "mlp": 0.43e9, "mlp_deterministic": 1.20e9,
            "cnn": 1.43e9, "vae": 1.74e9}

#: (examples, shape of one example) of each full data set, as its loader returns it
SHAPES = {"mnist": (60_000, (784,)), "cifar10": (50_000, (3, 32, 32)), "imdb": (25_000, (10_000,))}
BYTES = {"float32": 4, "float64": 8}


def _activations(model: torch.nn.Module, example_shape: tuple, dtype) -> tuple[int, int]:
    """(sum, largest) over the model's leaf modules of their output sizes per example."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel() // 2
                                                                        if isinstance(out, tuple) else out.numel() // 2))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        x = torch.zeros((2,) + tuple(example_shape), dtype=dtype)
        if isinstance(model, models.VAE):
            model(x, torch.zeros(2, model.latent, dtype=dtype))
        else:
            model(x)
    for h in hooks:
        h.remove()
    return sum(sizes), max(sizes)


def estimate(name: str, eval_batch_size: int | None | str = "config") -> float:
    """The estimated peak memory, in bytes, of one run of ``name``'s full configuration.

    ``eval_batch_size``: the evaluation slice ("config": the configuration's; None: the whole
    set at once).
    """
    from .configs import EXPERIMENTS

    cfg = config(name, full=True)
    loader = cfg["data"]["loader"]
    m, shape = SHAPES[loader]
    size = BYTES[cfg.get("dtype", "float32")]
    dtype = torch.float32
    slice_ = cfg.get("eval_batch_size") if eval_batch_size == "config" else eval_batch_size
    slice_ = m if slice_ is None else min(slice_, m)
    n_features = math.prod(shape)
    kind = EXPERIMENTS[name].kind
    if kind == "vae_grid":
        copies = len(cfg["beta1"]) * len(cfg["beta2"]) * len(cfg["log10_lr"]) * 2
        model = models.VAE(n_features, **cfg["model"])
    else:
        copies = 1
        spec = dict(cfg["model"])
        kind_name = spec.pop("name")
        if kind_name == "cnn":
            model = models.CNN(n_classes=10, **spec)
        else:
            if "hidden" in spec:
                spec["hidden"] = tuple(spec["hidden"])
            model = models.build(kind_name, n_features=n_features, n_classes=2 if loader == "imdb" else 10, **spec)
    weights = sum(p.numel() for p in model.parameters())
    total, largest = _activations(model, shape, dtype)
    train = 2 * cfg["batch_size"] * total
    evaluate = 2 * slice_ * largest
    held = 4 * weights
    if kind == "deterministic":
        # L-BFGS keeps history_size pairs of (step, gradient change) vectors, and takes the
        # full-data gradient slice by slice, keeping each slice's activations for its backward
        held += 2 * cfg["lbfgs"]["history_size"] * weights
        evaluate = 2 * slice_ * total
    return size * (m * n_features + copies * (held + max(train, evaluate)))


def table() -> dict[str, float]:
    """``{name: estimated peak bytes}`` for every experiment with a full configuration on a
    data set of :data:`SHAPES`."""
    from .configs import EXPERIMENTS

    return {name: estimate(name) for name in EXPERIMENTS
            if config(name, full=True)["data"]["loader"] in SHAPES}
