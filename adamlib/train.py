"""One training loop for the chapters and the paper's experiments.

:func:`train` runs mini-batch optimisation of any ``torch.nn.Module`` on a data set held as
tensors: each epoch it shuffles the ``m`` examples with its own seeded ``torch.Generator``,
cuts them into ``ceil(m / b)`` mini-batches (the last one may be smaller), and takes one
optimizer step per mini-batch. It returns a :class:`History` with

* the mini-batch cost of every update (what the optimizer saw: ``f_t(theta_{t-1})``),
* the full-data training cost at the start and at the end of every epoch,
* the number of updates and of examples processed, and the wall time spent updating.

Batch gradient descent is ``batch_size=m``, stochastic gradient descent is ``batch_size=1``.
"""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["History", "train", "seed_everything", "updates_per_epoch"]

RECORD_CHOICES = ("iteration", "epoch")


@dataclass
class History:
    """What :func:`train` measured. Lists indexed by epoch start with epoch 0 (before training).

    Attributes:
        batch_size: the mini-batch size ``b``.
        m: the number of training examples.
        updates_per_epoch: ``ceil(m / b)``.
        seed: the seed of the mini-batch order.
        epoch: ``[0, 1, ..., epochs]``.
        epoch_loss: the full-data training cost at the end of each epoch (index 0: initial).
        updates: the number of optimizer steps taken by the end of each epoch.
        examples: the number of examples processed by the end of each epoch.
        time: cumulative wall-clock seconds spent in updates by the end of each epoch
            (full-data evaluations are not counted).
        iteration_loss: the mini-batch cost at every update, evaluated at the parameters
            before the update (empty when ``record="epoch"``).
        iteration_examples: the number of examples processed after every update.
    """

    batch_size: int
    m: int
    updates_per_epoch: int
    seed: int
    epoch: list[int] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    examples: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    iteration_loss: list[float] = field(default_factory=list)
    iteration_examples: list[int] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        """The full-data training cost after the last epoch."""
        return self.epoch_loss[-1]

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of one epoch of updates (nan before any epoch)."""
        epochs = len(self.epoch) - 1
        return self.time[-1] / epochs if epochs > 0 else math.nan

    @property
    def seconds_per_update(self) -> float:
        """Mean wall time of one update (nan before any update)."""
        return self.time[-1] / self.updates[-1] if self.updates and self.updates[-1] else math.nan

    def same_numbers(self, other: "History") -> bool:
        """True when two runs computed identical costs and counts (wall times are ignored)."""
        keys = ("batch_size", "m", "updates_per_epoch", "epoch", "epoch_loss", "updates",
                "examples", "iteration_loss", "iteration_examples")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def updates_per_epoch(m: int, batch_size: int) -> int:
    """The number of mini-batches, hence of updates, in one pass over ``m`` examples."""
    return math.ceil(m / batch_size)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's, NumPy's and torch's global generators, e.g. before building a model.

    With ``deterministic=True`` torch is also asked for deterministic algorithms where it has
    them (``warn_only``: an op without one warns instead of failing).
    """
    _check_int("seed", seed, minimum=0)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency, but the loop does not need it
        pass
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} is not accepted: expected an int")
    if value < minimum or (maximum is not None and value > maximum):
        accepted = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} is not accepted: expected an int {accepted}")
    return value


def _synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this a wall time measures only the launches.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def full_loss(model: torch.nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor,
              eval_batch_size: int | None = None) -> float:
    """The mean cost over all examples, in evaluation mode (dropout off), without gradients."""
    was_training = model.training
    model.eval()
    try:
        if eval_batch_size is None or eval_batch_size >= len(X):
            return float(loss_fn(model(X), y))
        total = 0.0
        for start in range(0, len(X), eval_batch_size):
            xb, yb = X[start:start + eval_batch_size], y[start:start + eval_batch_size]
            total += float(loss_fn(model(xb), yb)) * len(xb)  # loss_fn takes the mean
        return total / len(X)
    finally:
        model.train(was_training)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    record: str = "iteration",
    eval_batch_size: int | None = None,
    progress: bool | None = None,
    scheduler=None,
    on_epoch_end: Callable[[int, "History"], None] | None = None,
) -> History:
    """Optimise ``model`` on ``(X, y)`` with mini-batches and return what was measured.

    Args:
        model: any module mapping a batch of inputs to what ``loss_fn`` expects.
        loss_fn: ``loss_fn(model(xb), yb)`` must return the *mean* cost over the mini-batch,
            e.g. ``torch.nn.functional.cross_entropy``.
        optimizer: a ``torch.optim.Optimizer`` over ``model``'s parameters. Steps are taken
            with a closure, so optimizers that re-evaluate the cost (L-BFGS) work too.
        X, y: all ``m`` training examples and targets (same first dimension, same device).
        epochs: the number of passes over the data (0 only evaluates the initial cost).
        batch_size: the mini-batch size ``b`` in ``[1, m]``; ``b = m`` is batch gradient
            descent, ``b = 1`` stochastic gradient descent. Each epoch has ``ceil(m / b)``
            updates; the last mini-batch holds the ``m mod b`` leftover examples, if any.
        seed: seeds the generator of the mini-batch order, which is then independent of
            torch's global generator (seed that yourself, e.g. with :func:`seed_everything`,
            before building the model if its initialisation or dropout should be repeatable).
        shuffle: draw a new random order every epoch (sampling without replacement); if
            False, visit the examples in their stored order.
        record: ``"iteration"`` records the mini-batch cost of every update as well as the
            full-data cost per epoch; ``"epoch"`` records only the latter (no ``.item()`` per
            update, so no device synchronisation in the loop).
        eval_batch_size: evaluate the full-data cost in chunks of this size (None: at once).
        progress: show a tqdm bar over the updates. None (default): only when stderr is a
            terminal, so notebooks, nbval and tests stay quiet.
        scheduler: a ``torch.optim.lr_scheduler`` stepped after every update (not every
            epoch), e.g. ``LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))`` for the paper's
            alpha_t = alpha / sqrt(t).
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after the cost of every
            epoch (0 included) is recorded, e.g. to log optimizer state; its time is not counted.

    Returns:
        A :class:`History`.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer={type(optimizer).__name__} is not accepted: expected a torch.optim.Optimizer"
        )
    if not callable(loss_fn):
        raise ValueError(f"loss_fn={loss_fn!r} is not accepted: expected a callable")
    if not (torch.is_tensor(X) and torch.is_tensor(y)) or X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y are not accepted: expected tensors with a first (example) dimension")
    if len(X) != len(y):
        raise ValueError(f"y has {len(y)} examples but X has {len(X)}: expected the same number")
    m = len(X)
    if m == 0:
        raise ValueError("X has 0 examples: expected at least one")
    _check_int("epochs", epochs, minimum=0)
    _check_int("batch_size", batch_size, minimum=1, maximum=m)
    _check_int("seed", seed, minimum=0)
    if eval_batch_size is not None:
        _check_int("eval_batch_size", eval_batch_size, minimum=1)
    if record not in RECORD_CHOICES:
        raise ValueError(f"record={record!r} is not accepted: expected one of {RECORD_CHOICES}")
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle={shuffle!r} is not accepted: expected True or False")
    if progress is None:
        progress = sys.stderr.isatty()
    if scheduler is not None and not hasattr(scheduler, "step"):
        raise ValueError(f"scheduler={scheduler!r} is not accepted: expected a torch lr scheduler")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise ValueError(f"on_epoch_end={on_epoch_end!r} is not accepted: expected a callable")

    n_updates = updates_per_epoch(m, batch_size)
    history = History(batch_size=batch_size, m=m, updates_per_epoch=n_updates, seed=seed)
    device = X.device
    # A private CPU generator: the order depends on `seed` only, not on torch's global state.
    generator = torch.Generator().manual_seed(seed)

    def log_epoch(epoch: int, seconds: float) -> None:
        history.epoch.append(epoch)
        history.epoch_loss.append(full_loss(model, loss_fn, X, y, eval_batch_size))
        history.updates.append(epoch * n_updates)
        history.examples.append(epoch * m)
        history.time.append(seconds)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)

    log_epoch(0, 0.0)
    bar = None
    if progress:
        from tqdm import tqdm  # plain tqdm: tqdm.auto would add widgets to notebooks

        bar = tqdm(total=epochs * n_updates, unit="update", leave=False)
    model.train()
    seconds = 0.0
    try:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(m, generator=generator) if shuffle else torch.arange(m)
            order = order.to(device)
            _synchronize(device)
            start = time.perf_counter()
            for first in range(0, m, batch_size):
                index = order[first:first + batch_size]
                xb, yb = X[index], y[index]

                def closure(xb=xb, yb=yb):
                    optimizer.zero_grad()
                    loss = loss_fn(model(xb), yb)
                    loss.backward()
                    return loss

                loss = optimizer.step(closure)
                if scheduler is not None:
                    scheduler.step()
                if record == "iteration":
                    history.iteration_loss.append(float(loss.detach()))
                    history.iteration_examples.append(
                        (epoch - 1) * m + min(first + batch_size, m))
                if bar is not None:
                    bar.update(1)
            _synchronize(device)
            seconds += time.perf_counter() - start
            log_epoch(epoch, seconds)
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{history.epoch_loss[-1]:.4g}")
    finally:
        if bar is not None:
            bar.close()
    return history
