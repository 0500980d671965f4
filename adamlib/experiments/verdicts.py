"""Verdict tables: a claim of the paper, the paper's number, ours over seeds, and a verdict.

Every comparison is made on per-seed values (one number per seed, e.g. the training cost
after epoch E at each optimizer's best setting), and its verdict follows a written rule, so
that a reader can check it and a machine decides it the same way every time:

* :func:`lower` ("A ends below B", optionally "by a factor of at least f"):
  **reproduces** when every seed's A is below (f times below) every seed's B: the seeds'
  ranges are separated in the claimed direction; **does not reproduce** when the opposite
  holds with separated ranges (for a factor: when even the most favourable pair of seeds
  falls short of it); **not at this budget** otherwise: the seeds' ranges overlap, so this many
  seeds at this size cannot tell.
* :func:`similar` ("A is about B", within a relative tolerance ``tol``): **reproduces** when
  the seed means differ by at most ``tol`` (relative to B's mean); **does not reproduce** when
  they differ by more and the ranges are separated; **not at this budget** otherwise.
* :func:`holds` (a claim checked by a computation that is true or false on each seed):
  reproduces on every seed, does not on none, not at this budget when the seeds disagree.

The numbers are printed to 3 significant digits: the digits that survive a change of machine
for the float64 runs of the fast mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

REPRODUCES = "reproduces"
DOES_NOT = "does not reproduce"
NOT_AT_BUDGET = "not at this budget"

RULES = (
    "Rule: per-seed values. 'lower': reproduces if every seed's value of the first is below "
    "every seed's value of the second (times the claimed factor), does not reproduce if the "
    "opposite holds with separated ranges, else not at this budget. 'similar': reproduces if "
    "the seed means differ by at most the tolerance, does not if they differ by more with "
    "separated ranges, else not at this budget. 'holds': reproduces if true on every seed, "
    "does not if on none, else not at this budget."
)


def _clean(values: Sequence) -> list[float]:
    """The values as floats; a missing (None) or non-finite one (a diverged run) as +inf."""
    out = []
    for v in values:
        v = math.inf if v is None else float(v)
        out.append(v if math.isfinite(v) else math.inf)
    if not out:
        raise ValueError("values=[] is not accepted: expected one value per seed")
    return out


def summary(values: Sequence, digits: int = 3) -> str:
    """``mean +- sd (n seeds)``, to ``digits`` significant digits ("diverged" if any is inf)."""
    v = _clean(values)
    if any(math.isinf(x) for x in v):
        return f"diverged in {sum(math.isinf(x) for x in v)} of {len(v)} seeds"
    mean = sum(v) / len(v)
    if len(v) == 1:
        return f"{mean:.{digits}g} (1 seed)"
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    return f"{mean:.{digits}g} +- {sd:.2g} ({len(v)} seeds)"


@dataclass
class Verdict:
    """One row of a verdict table."""

    claim: str      # the paper's words, verbatim
    paper: str      # the paper's number or figure
    ours: str       # what we measured, mean +- sd over seeds
    verdict: str    # REPRODUCES, DOES_NOT or NOT_AT_BUDGET
    rule: str       # the comparison that decided it, in words


def lower(claim: str, paper: str, a: Sequence, b: Sequence, a_name: str, b_name: str,
          factor: float = 1.0) -> Verdict:
    """The claim "A is below B" (by ``factor`` or more) on per-seed values ``a`` and ``b``."""
    if not (isinstance(factor, (int, float)) and factor >= 1):
        raise ValueError(f"factor={factor!r} is not accepted: expected a number >= 1")
    va, vb = _clean(a), _clean(b)
    if max(va) * factor < min(vb):
        verdict = REPRODUCES
    elif (factor == 1 and min(va) > max(vb)) or (factor > 1 and min(va) * factor >= max(vb)
                                                  and not math.isinf(min(va))):
        verdict = DOES_NOT
    else:
        verdict = NOT_AT_BUDGET
    ratio = ""
    if all(math.isfinite(x) and x > 0 for x in va + vb):
        ratio = f"; {b_name} / {a_name} = {sum(vb) / len(vb) / (sum(va) / len(va)):.3g} (means)"
    ours = f"{a_name}: {summary(va)}; {b_name}: {summary(vb)}{ratio}"
    rule = (f"{a_name} below {b_name}" + (f" by a factor >= {factor:g}" if factor > 1 else "")
            + " on every pair of seeds")
    return Verdict(claim, paper, ours, verdict, rule)


def similar(claim: str, paper: str, a: Sequence, b: Sequence, a_name: str, b_name: str,
            tol: float = 0.1) -> Verdict:
    """The claim "A is about B": seed means within ``tol`` relative (of B's mean)."""
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol={tol!r} is not accepted: expected a number > 0")
    va, vb = _clean(a), _clean(b)
    ours = f"{a_name}: {summary(va)}; {b_name}: {summary(vb)}"
    if any(math.isinf(x) for x in va + vb):
        verdict = DOES_NOT
    else:
        ma, mb = sum(va) / len(va), sum(vb) / len(vb)
        gap = abs(ma - mb) / abs(mb)
        separated = max(va) < min(vb) or max(vb) < min(va)
        verdict = REPRODUCES if gap <= tol else (DOES_NOT if separated else NOT_AT_BUDGET)
        ours += f"; gap {100 * gap:.2g} %"
    return Verdict(claim, paper, ours, verdict, f"seed means of {a_name} and {b_name} within {100 * tol:g} %")


def holds(claim: str, paper: str, per_seed: Sequence[bool], ours: str, rule: str) -> Verdict:
    """A claim checked per seed by a computation that is true or false (``per_seed``)."""
    flags = [bool(f) for f in per_seed]
    if not flags:
        raise ValueError("per_seed=[] is not accepted: expected one flag per seed")
    n = sum(flags)
    verdict = REPRODUCES if n == len(flags) else (DOES_NOT if n == 0 else NOT_AT_BUDGET)
    return Verdict(claim, paper, f"{ours} (holds on {n} of {len(flags)} seeds)", verdict, rule)


class VerdictTable:
    """Rows of :class:`Verdict`; shown as a Markdown table in a notebook, as text elsewhere."""

    def __init__(self, title: str, rows: list[Verdict], note: str = ""):
        self.title, self.rows, self.note = title, list(rows), note

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.rows) for v in (REPRODUCES, DOES_NOT, NOT_AT_BUDGET)}

    def markdown(self) -> str:
        esc = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
        lines = [f"**{esc(self.title)}**", "",
                 "| claim (the paper's words) | paper | ours (mean +- sd over seeds) | verdict | rule |",
                 "|---|---|---|---|---|"]
        lines += [f"| {esc(r.claim)} | {esc(r.paper)} | {esc(r.ours)} | **{esc(r.verdict)}** | {esc(r.rule)} |"
                  for r in self.rows]
        lines += ["", esc(RULES) + (" " + esc(self.note) if self.note else "")]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        out = [self.title]
        for i, r in enumerate(self.rows, 1):
            out.append(f"{i}. {r.claim}\n   paper: {r.paper}\n   ours: {r.ours}\n   verdict: {r.verdict} ({r.rule})")
        c = self.counts()
        out.append(f"{c[REPRODUCES]} reproduce, {c[DOES_NOT]} do not, {c[NOT_AT_BUDGET]} not at this budget")
        return "\n".join(out)


def final_costs(result, optimizer: str, variant: str | None = None, epoch: int = -1) -> list:
    """Per seed, the training cost at ``epoch`` (default: the last) of ``optimizer`` at its
    best setting (chosen on the seed mean): the values a verdict compares."""
    return [curve[epoch] if len(curve) > abs(epoch) or epoch < 0 else None
            for curve in result.seed_curves(optimizer, variant).values()]
