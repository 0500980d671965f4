"""What an experiment measured (:class:`Result`) and how a run is scored (:func:`score`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..selection import TIE, best_step_size


@dataclass
class Result:
    """What one experiment measured; JSON-serialisable through :meth:`to_json`.

    ``runs`` holds one dict per (variant, optimizer, lr[, momentum]) with ``epoch_loss`` (full training
    cost at epochs 0..E) and ``time`` (cumulative seconds), and for some experiments
    ``iteration_loss`` or ``monitor`` (per-layer statistics). ``extra`` holds what does not
    fit that shape (the VAE grid's table).

    With several seeds (the configuration's ``seeds``) there is one run per (variant,
    optimizer, lr, seed), each with its ``seed``; the best step size is chosen on the mean over
    the seeds of :func:`score` (:meth:`best_lr`), and :meth:`seed_mean`, :meth:`spread` and
    :meth:`seed_curves` give the curves across seeds. With one seed the runs carry no ``seed``
    (as before seeds existed) and every method answers as it did.
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

    @property
    def seeds(self) -> list:
        """The seeds, in run order: the runs' ``seed`` entries, else the configuration's ``seed``."""
        seeds = list(dict.fromkeys(r["seed"] for r in self.runs if "seed" in r))
        return seeds or [self.config.get("seed")]

    def _seed_of(self, run: dict):
        return run.get("seed", self.config.get("seed"))

    def momenta(self, optimizer: str, variant: str | None = None) -> list:
        """The momenta ``optimizer`` ran with (SGD-Nesterov's searched knob), sorted; [None]
        for an optimizer without one."""
        values = {r.get("momentum") for r in self.select(optimizer, variant)}
        return sorted(values, key=lambda mu: -1.0 if mu is None else mu)

    def select(self, optimizer: str, variant: str | None = None, seed=None, momentum=None) -> list[dict]:
        """All runs of ``optimizer`` (in one ``variant``; default: the first), ordered by lr
        (and by seed within an lr); ``seed``: only that seed's runs (default: every seed's);
        ``momentum``: only the runs at that momentum (default: every momentum's)."""
        variant = self.variants[0] if variant is None else variant
        runs = [r for r in self.runs if r["optimizer"] == optimizer and r["variant"] == variant]
        if not runs:
            raise ValueError(f"optimizer={optimizer!r}, variant={variant!r} is not accepted: "
                             f"expected one of {self.optimizers} and {self.variants}")
        if seed is not None:
            runs = [r for r in runs if self._seed_of(r) == seed]
            if not runs:
                raise ValueError(f"seed={seed!r} is not accepted: expected one of {self.seeds}")
        if momentum is not None:
            there = sorted({r["momentum"] for r in runs if r.get("momentum") is not None})
            runs = [r for r in runs if r.get("momentum") is not None
                    and math.isclose(r["momentum"], momentum, rel_tol=1e-9)]
            if not runs:
                raise ValueError(f"momentum={momentum!r} is not accepted: {optimizer} ran with {there or 'none'}")
        return sorted(runs, key=lambda r: r["lr"])

    def _momentum(self, optimizer, variant, momentum):
        """``momentum``, or the best one where the optimizer ran with several (else None: all)."""
        if momentum is not None:
            return momentum
        momenta = self.momenta(optimizer, variant)
        return self.best_setting(optimizer, variant)[1] if len(momenta) > 1 else None

    def run_at(self, optimizer: str, lr: float, variant: str | None = None, seed=None,
               momentum=None) -> dict:
        """The run of ``optimizer`` at ``lr`` (and ``momentum``; default: the best); with
        several seeds, of ``seed`` (default: the first)."""
        if seed is None and len(self.seeds) > 1:
            seed = self.seeds[0]
        for r in self.select(optimizer, variant, seed, self._momentum(optimizer, variant, momentum)):
            if math.isclose(r["lr"], lr, rel_tol=1e-9):
                return r
        raise ValueError(f"lr={lr!r} is not accepted: {optimizer} ran with "
                         f"{sorted(set(r['lr'] for r in self.select(optimizer, variant)))}")

    def scores(self, optimizer: str, variant: str | None = None) -> dict:
        """``{(lr, momentum): mean over the seeds of score(epoch_loss)}`` (momentum None for an
        optimizer without one)."""
        values: dict[tuple, list[float]] = {}
        for r in self.select(optimizer, variant):
            values.setdefault((r["lr"], r.get("momentum")), []).append(score(r["epoch_loss"]))
        return {key: sum(v) / len(v) for key, v in values.items()}

    def best_setting(self, optimizer: str, variant: str | None = None) -> tuple[float, float | None]:
        """``(lr, momentum)`` of the best mean :func:`score` over the seeds.

        Per momentum, its best step size by :func:`best_step_size` (scores within TIE of the
        best are a tie, won by the smallest lr); the momenta are then compared on those best
        scores, and a tie within TIE goes to the smallest lr, then the smallest momentum.
        """
        by_momentum: dict = {}
        for (lr, mu), value in self.scores(optimizer, variant).items():
            by_momentum.setdefault(mu, {})[lr] = value
        best = {mu: best_step_size(lrs) for mu, lrs in by_momentum.items()}
        top = {mu: by_momentum[mu][lr] for mu, lr in best.items()}
        lowest = min(top.values())
        tied = [mu for mu, value in top.items() if value <= lowest + TIE]
        mu = min(tied, key=lambda m: (best[m], -1.0 if m is None else m))
        return best[mu], mu

    def best_lr(self, optimizer: str, variant: str | None = None) -> float:
        """The step size of :meth:`best_setting` (one seed: that seed's score)."""
        return self.best_setting(optimizer, variant)[0]

    def best_momentum(self, optimizer: str, variant: str | None = None) -> float | None:
        """The momentum of :meth:`best_setting` (None for an optimizer without one)."""
        return self.best_setting(optimizer, variant)[1]

    def best(self, optimizer: str, variant: str | None = None, seed=None) -> dict:
        """The run at :meth:`best_setting` (with several seeds, of ``seed``; default: the first)."""
        lr, mu = self.best_setting(optimizer, variant)
        if seed is None and len(self.seeds) > 1:
            seed = self.seeds[0]
        return next(r for r in self.select(optimizer, variant, seed, mu) if r["lr"] == lr)

    def seed_curves(self, optimizer: str, variant: str | None = None, lr: float | None = None,
                    momentum=None) -> dict:
        """``{seed: epoch_loss}`` of ``optimizer`` at ``lr`` and ``momentum`` (default: those of
        :meth:`best_setting`; a given ``lr`` alone: at the best momentum)."""
        if lr is None and momentum is None:
            lr, momentum = self.best_setting(optimizer, variant)
        elif lr is None:
            lr = best_step_size({l: v for (l, mu), v in self.scores(optimizer, variant).items()
                                 if mu is not None and math.isclose(mu, momentum, rel_tol=1e-9)})
        momentum = self._momentum(optimizer, variant, momentum)
        return {self._seed_of(r): r["epoch_loss"] for r in self.select(optimizer, variant, momentum=momentum)
                if math.isclose(r["lr"], lr, rel_tol=1e-9)}

    def _aligned(self, optimizer, variant, lr, momentum=None) -> list[list]:
        curves = list(self.seed_curves(optimizer, variant, lr, momentum).values())
        if not curves:
            raise ValueError(f"lr={lr!r} is not accepted: {optimizer} ran with "
                             f"{sorted(set(r['lr'] for r in self.select(optimizer, variant)))}")
        # L-BFGS's evaluations may end at a different count per seed: the epochs all seeds have
        length = min(len(c) for c in curves)
        return [[c[e] for c in curves] for e in range(length)]

    def seed_mean(self, optimizer: str, variant: str | None = None, lr: float | None = None,
                  momentum=None) -> list:
        """The mean over seeds of the training cost at each epoch, at ``lr`` (default:
        :meth:`best_lr`); None at an epoch where a seed's cost is missing (diverged). One seed:
        that seed's curve."""
        return [None if any(v is None for v in values) else
                (values[0] if len(values) == 1 else sum(values) / len(values))
                for values in self._aligned(optimizer, variant, lr, momentum)]

    def spread(self, optimizer: str, variant: str | None = None, lr: float | None = None,
               kind: str = "range", momentum=None) -> tuple[list, list] | list:
        """The spread across seeds at each epoch, at ``lr`` (default: :meth:`best_lr`).

        ``kind="range"``: ``(lowest, highest)`` cost over the seeds, two lists (a band to
        plot around :meth:`seed_mean`); ``kind="std"``: one list, the sample standard deviation
        (0 for one seed). None at an epoch where a seed's cost is missing.
        """
        if kind not in ("range", "std"):
            raise ValueError(f"kind={kind!r} is not accepted: expected 'range' or 'std'")
        rows = self._aligned(optimizer, variant, lr, momentum)
        missing = [any(v is None for v in values) for values in rows]
        if kind == "range":
            return ([None if m else min(values) for m, values in zip(missing, rows)],
                    [None if m else max(values) for m, values in zip(missing, rows)])
        out = []
        for m, values in zip(missing, rows):
            if m:
                out.append(None)
            elif len(values) == 1:
                out.append(0.0)
            else:
                mean = sum(values) / len(values)
                out.append(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))
        return out

    def curves(self, variant: str | None = None) -> dict[str, list[float]]:
        """``{optimizer: epoch_loss of its best run}``; with several seeds, the :meth:`seed_mean`
        at the best step size."""
        several = len(self.seeds) > 1
        return {name: (self.seed_mean(name, variant) if several else self.best(name, variant)["epoch_loss"])
                for name in self.optimizers
                if any(r["variant"] == (variant if variant is not None else self.variants[0])
                       and r["optimizer"] == name for r in self.runs)}


def score(losses: list) -> float:
    """The mean of log(training cost) over epochs 1..E; +inf if any cost is missing or non-finite."""
    tail = losses[1:] or losses
    if any(v is None or not math.isfinite(v) or v <= 0 for v in tail):
        return math.inf
    return sum(math.log(v) for v in tail) / len(tail)

