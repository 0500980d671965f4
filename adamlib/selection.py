"""Choosing the best step size of a grid, stably: one rule for the experiments and the races.

A grid search scores every step size (a mean log cost; lower is better) and keeps the lowest.
When two scores are nearly equal, the lowest is decided by rounding, and the choice flips from
one machine to the next (it did: chapter 11's AdaDelta picked 3 on one CPU and 1 on another).
So scores within ``tie`` of the lowest are a tie, and the smallest step size among them wins:
the conservative choice, and the same on every machine unless a score sits within rounding of
the tie threshold itself.
"""
from __future__ import annotations

import math
from typing import Mapping

__all__ = ["TIE", "best_step_size"]

# 0.01 in mean log cost is a 1 % difference in the geometric mean of the cost (2.3 % for a
# mean log10): far above what rounding moves in float64, and below what the chapters call a
# difference between step sizes.
TIE = 0.01


def best_step_size(scores: Mapping[float, float], tie: float = TIE) -> float:
    """The step size with the lowest score; among those within ``tie`` of it, the smallest.

    ``scores`` maps each step size to its score (``inf`` for a run that diverged). A tie is
    measured against the lowest score only, not in a chain.
    """
    if not scores:
        raise ValueError("scores={} is not accepted: expected at least one step size")
    if not (isinstance(tie, (int, float)) and tie >= 0):
        raise ValueError(f"tie={tie!r} is not accepted: expected a number >= 0")
    values = [float(s) for s in scores.values()]
    if any(math.isnan(s) for s in values):
        raise ValueError(f"scores={dict(scores)!r} is not accepted: expected numbers or inf, not NaN")
    top = min(values)
    return min(lr for lr, s in scores.items() if s <= top + tie)
