"""A fair race of optimizers on the 2-D surfaces of :mod:`adamlib.problems`.

Fair means: every optimizer gets its own learning rate, the best one on a small logarithmic
grid (:data:`LR_GRID`) for that surface, chosen by one rule (:func:`score`), before the
race is run. The other hyper-parameters stay at the values the algorithms are usually run
with (:data:`RACERS`).

The rule: the score of a run is the mean over t = 1..T of log10(f(theta_t) - f_min + FLOOR),
the log of the geometric mean of the suboptimality along the whole run. It rewards getting
low fast and staying low, and does not saturate when several runs reach machine precision (so
ties are practically impossible; an exact tie goes to the smaller lr, the first on the grid).
A run that blows up scores +inf: its iterate became non-finite, or its suboptimality ever
exceeded BLOWUP = 10 times the starting one (a wild excursion that happens to come back is
not a step size anyone would pick).

Speed: the race steps the whole lr grid at once. Each optimizer here is elementwise and its
state (momentum buffer, sums of squares, AdaDelta's accumulators) does not depend on lr: the
update is theta_t = theta_{t-1} - lr * d_t with d_t a function of the gradients only. So one
optimizer instance with lr = 1 computes d_t for a ``(K, 2)`` tensor holding the K runs, and
each run applies its own lr. :func:`run_grid` equals K separate
:func:`adamlib.problems.run_on_surface` runs up to rounding (tests check 1e-12); on a noisy
surface every run, every lr and every optimizer sees the same noise sequence.

AdaDelta comes from ``torch.optim.Adadelta``: adamlib has no AdaDelta of its own.

Drawing: :func:`draw_paths` (trajectories on contours), :func:`draw_gaps` (suboptimality
against steps), :func:`draw_race` (both panels). Nothing is cached on disk; :func:`race`
keeps tuned results in memory for the session.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from . import plots
from .optim import SGD, Adagrad, Adam, Momentum, RMSProp
from .problems import SURFACES, Surface, Trajectory
from .selection import best_step_size

__all__ = ["RACERS", "LR_GRID", "STEPS", "FLOOR", "BLOWUP", "RaceResult", "diverged", "score", "run_grid", "tune",
           "race", "draw_paths", "draw_gaps", "draw_race"]

#: The contestants: name -> ``factory(params, lr) -> torch.optim.Optimizer``. Other
#: hyper-parameters are the usual ones (torch's defaults; beta = 0.9 for the momenta).
RACERS: dict[str, Callable] = {
    "SGD": lambda params, lr: SGD(params, lr=lr),
    "Nesterov": lambda params, lr: SGD(params, lr=lr, momentum=0.9, nesterov=True),
    "Momentum": lambda params, lr: Momentum(params, lr=lr, beta=0.9),
    "Adagrad": lambda params, lr: Adagrad(params, lr=lr),
    "RMSProp": lambda params, lr: RMSProp(params, lr=lr, beta=0.99),
    "AdaDelta": lambda params, lr: torch.optim.Adadelta(params, lr=lr, rho=0.9, eps=1e-6),
    "Adam": lambda params, lr: Adam(params, lr=lr),
}

#: Half-decades from 1e-4 to 1e2: 13 learning rates. AdaDelta's lr multiplies a step that
#: starts near sqrt(eps) = 1e-3, so its useful lrs are around 1 and above.
LR_GRID: tuple[float, ...] = tuple(float(f"{10 ** (k / 2):.4g}") for k in range(-8, 5))

#: Steps of every run of the race.
STEPS = 300

#: Added to the suboptimality before the log: below this, runs count as converged.
FLOOR = 1e-12

#: A run whose suboptimality ever exceeds BLOWUP times the starting one counts as diverged.
BLOWUP = 10.0


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r} is not accepted: expected an int >= 1")
    return int(steps)


def _surface(surface) -> Surface:
    if isinstance(surface, Surface):
        return surface
    if isinstance(surface, str) and surface in SURFACES:
        return SURFACES[surface]()
    raise ValueError(f"surface={surface!r} is not accepted: expected a Surface or one of {tuple(SURFACES)}")


def _racer(name):
    if callable(name):
        return name
    if name not in RACERS:
        raise ValueError(f"optimizer={name!r} is not accepted: expected one of {tuple(RACERS)}")
    return RACERS[name]


def diverged(trajectory: Trajectory, blowup: float = BLOWUP) -> bool:
    """True if the iterate became non-finite or f - f_min ever exceeded blowup x the start's."""
    gap = np.asarray(trajectory.gap, dtype=np.float64)
    return bool(not np.all(np.isfinite(gap)) or np.any(gap[1:] > blowup * max(gap[0], 0.0)))


def score(trajectory: Trajectory, floor: float = FLOOR, blowup: float = BLOWUP) -> float:
    """Mean of log10(f(theta_t) - f_min + floor) over t = 1..T; +inf if the run diverged."""
    gap = np.asarray(trajectory.gap[1:], dtype=np.float64)
    if gap.size == 0 or diverged(trajectory, blowup):
        return math.inf
    return float(np.mean(np.log10(np.maximum(gap, 0.0) + floor)))


def run_grid(surface, optimizer, lrs: Sequence[float], steps: int = STEPS, start=None,
             seed: int = 0) -> list[Trajectory]:
    """Run one optimizer with every learning rate of ``lrs`` at once; one Trajectory per lr.

    ``optimizer`` is a name of :data:`RACERS` or a ``factory(params, lr)`` of an elementwise
    optimizer whose state does not depend on lr (see the module docstring). Noise, if the
    surface has any, is one sequence drawn from ``torch.Generator().manual_seed(seed)``, the
    same for every lr. Once a run's iterate is non-finite, its rows from there on are NaN, as
    in :func:`adamlib.problems.run_on_surface`.
    """
    surface, factory, steps = _surface(surface), _racer(optimizer), _check_steps(steps)
    lrs = [float(lr) for lr in lrs]
    if not lrs or not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        raise ValueError(f"lrs={lrs!r} is not accepted: expected finite learning rates > 0")
    start = surface.start if start is None else tuple(float(v) for v in start)
    k = len(lrs)
    theta = torch.tensor([start] * k, dtype=torch.float64)
    lr = torch.tensor(lrs, dtype=torch.float64)[:, None]
    # The optimizer's own parameter: reset to 0 before every step, so after the step it holds
    # -d_t exactly (lr = 1), whatever the runs' positions are.
    direction = torch.zeros(k, 2, dtype=torch.float64, requires_grad=True)
    opt = factory([direction], 1.0)
    noise = None
    if surface.noise > 0:
        generator = torch.Generator().manual_seed(int(seed))
        noise = surface.noise * torch.randn((steps, 2), generator=generator, dtype=torch.float64)
    # Rows never mix (every operation is elementwise), so a run that blows up is left to fill
    # with inf/NaN on its own, without a check per step, and is cut off afterwards.
    path = torch.empty((steps + 1, k, 2), dtype=torch.float64)
    path[0] = theta
    with torch.no_grad():
        for t in range(steps):
            g = surface.exact_grad(theta)
            if noise is not None:
                g = g + noise[t]
            direction.zero_()
            direction.grad = g
            opt.step()
            theta = theta + lr * direction
            path[t + 1] = theta
    xy = path.numpy()
    finite = np.isfinite(xy).all(axis=2)                        # (steps + 1, k)
    for i in range(k):
        bad = np.flatnonzero(~finite[:, i])
        if bad.size:
            xy[bad[0]:, i] = np.nan                             # as run_on_surface: NaN after
    with torch.no_grad():
        loss = surface.value(torch.as_tensor(xy)).numpy()
    return [Trajectory(xy=xy[:, i].copy(), loss=loss[:, i].copy(), f_min=surface.f_min)
            for i in range(k)]


def tune(surface, optimizer, grid: Sequence[float] = LR_GRID, steps: int = STEPS,
         seed: int = 0) -> tuple[float, np.ndarray, Trajectory]:
    """The best lr of ``grid`` by :func:`score`, every lr's score, its run.

    Scores within :data:`adamlib.selection.TIE` of the lowest tie, and the smallest lr among
    them wins (:func:`adamlib.selection.best_step_size`), so the choice does not flip with rounding.
    """
    runs = run_grid(surface, optimizer, grid, steps=steps, seed=seed)
    scores = np.array([score(r) for r in runs])
    if not np.any(np.isfinite(scores)):
        raise ValueError(f"every lr of grid={tuple(grid)} diverged for optimizer={optimizer!r}")
    best = best_step_size({float(lr): float(s) for lr, s in zip(grid, scores)})
    index = [float(lr) for lr in grid].index(best)
    return best, scores, runs[index]


@dataclass
class RaceResult:
    """A tuned race on one surface.

    Attributes:
        surface: the :class:`Surface`.
        steps, seed: the length of every run, and the seed of the gradient noise.
        grid: the learning rates tried.
        lrs: the learning rate each optimizer raced with (tuned, times ``lr_scale``).
        tuned: the tuned learning rates (before ``lr_scale``).
        scores: for each optimizer, the score of every lr of ``grid``.
        runs: the race itself: one :class:`Trajectory` per optimizer.
        lr_scale: the factor applied to the tuned lrs (1: the tuned race).
    """

    surface: Surface
    steps: int
    seed: int
    grid: tuple[float, ...]
    lrs: dict[str, float]
    tuned: dict[str, float]
    scores: dict[str, np.ndarray]
    runs: dict[str, Trajectory] = field(repr=False)
    lr_scale: float = 1.0

    def steps_to(self, tol: float) -> dict[str, int | None]:
        """For each optimizer, the first step with f - f_min <= tol (None: never)."""
        return {name: run.steps_to(tol) for name, run in self.runs.items()}

    def final_gaps(self) -> dict[str, float]:
        return {name: run.final_gap for name, run in self.runs.items()}

    def on_edge(self) -> list[str]:
        """The optimizers whose tuned lr is the smallest or largest of the grid."""
        return [n for n, lr in self.tuned.items() if lr in (self.grid[0], self.grid[-1])]


@lru_cache(maxsize=64)
def _tuned(surface_name: str, name: str, grid: tuple, steps: int, seed: int):
    return tune(surface_name, name, grid, steps, seed)


def race(surface, optimizers: Sequence[str] | None = None, steps: int = STEPS,
         grid: Sequence[float] = LR_GRID, seed: int = 0, lr_scale: float = 1.0) -> RaceResult:
    """Tune every optimizer's lr on ``grid`` for ``surface``, then race them with it.

    ``surface`` is a :class:`Surface` or a name of :data:`adamlib.problems.SURFACES` (named
    surfaces have their tuning remembered for the session). ``lr_scale`` multiplies every
    tuned lr for the race (not the tuning): 1 is the fair race, other values show how sharp
    each optimizer's optimum is.
    """
    names = list(RACERS) if optimizers is None else list(optimizers)
    if not names:
        raise ValueError("optimizers=[] is not accepted: expected at least one name of RACERS")
    for n in names:
        _racer(n)
    lr_scale = float(lr_scale)
    if not (math.isfinite(lr_scale) and lr_scale > 0):
        raise ValueError(f"lr_scale={lr_scale!r} is not accepted: expected a finite number > 0")
    steps, grid = _check_steps(steps), tuple(float(g) for g in grid)
    named = isinstance(surface, str)
    surf = _surface(surface)
    tuned, scores, runs, lrs = {}, {}, {}, {}
    for n in names:
        best, s, run = _tuned(surface, n, grid, steps, seed) if named else tune(surf, n, grid, steps, seed)
        tuned[n], scores[n], lrs[n] = best, s, best * lr_scale
        if lr_scale == 1.0:
            runs[n] = run  # the tuning already ran it
        else:
            (runs[n],) = run_grid(surf, n, [lrs[n]], steps=steps, seed=seed)
    return RaceResult(surface=surf, steps=steps, seed=seed, grid=grid, lrs=lrs, tuned=tuned,
                      scores=scores, runs=runs, lr_scale=lr_scale)


# ---------------------------------------------------------------------------------------
# drawing


def _names(result: RaceResult, names) -> list[str]:
    return list(result.runs) if names is None else [n for n in names if n in result.runs]


def draw_paths(ax, result: RaceResult, names: Sequence[str] | None = None, *, levels: int = 25,
               legend: bool = True):
    """The runs' trajectories on the surface's log-spaced contours, start and minimum marked."""
    s = result.surface
    X, Y, Z = s.grid(160)
    gap = Z - s.f_min
    ax.contour(X, Y, np.log10(gap + 1e-3), levels=levels, colors="0.75", linewidths=0.6)
    for n in _names(result, names):
        xy = result.runs[n].xy
        ax.plot(xy[:, 0], xy[:, 1], "-", color=plots.color_for(n), linewidth=1.3, alpha=0.9,
                label=f"{n} ({result.lrs[n]:.3g})")
    ax.plot(*s.start, "ko", markersize=4)
    ax.plot(*s.minimum, "k*", markersize=9)
    ax.set_xlim(*s.xlim)
    ax.set_ylim(*s.ylim)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_title("paths (o start, * minimum)")
    if legend:
        ax.legend(frameon=False, fontsize=7, title="optimizer (lr)", title_fontsize=7)
    return ax


def draw_gaps(ax, result: RaceResult, names: Sequence[str] | None = None, *, legend: bool = False):
    """f(theta_t) - f_min against t, log scale (floored at 1e-16 so exact zeros show)."""
    for n in _names(result, names):
        gap = np.maximum(result.runs[n].gap, 1e-16)
        ax.semilogy(np.arange(len(gap)), gap, color=plots.color_for(n), label=n)
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"$f(\theta_t) - f_{\min}$")
    ax.set_title("suboptimality")
    if legend:
        ax.legend(frameon=False, fontsize=7)
    return ax


def draw_race(result: RaceResult, names: Sequence[str] | None = None):
    """A figure: paths on contours (left), the loss gap against steps (right), one legend.

    The title names the surface; the legend (outside, right) gives each optimizer's lr.
    """
    fig, (left, right) = plots.figure(ncols=2, width=3.9, height=3.3)
    draw_paths(left, result, names, legend=False)
    draw_gaps(right, result, names)
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center", frameon=False,
               fontsize=8, title="optimizer (lr)", title_fontsize=8)
    fig.suptitle(result.surface.name, fontsize=10)
    return fig
