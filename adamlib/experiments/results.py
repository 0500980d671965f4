"""What an experiment measured (:class:`Result`) and how a run is scored (:func:`score`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..selection import best_step_size

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

