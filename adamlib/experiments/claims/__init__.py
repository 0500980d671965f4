"""The paper's claims about each experiment, checked on a finished :class:`Result`.

``table(result)`` gives the experiment's :class:`~adamlib.experiments.verdicts.VerdictTable`:
one row per claim, in the paper's words, with the paper's number or figure, ours over the
seeds, and a verdict by a written rule (:mod:`adamlib.experiments.verdicts`). One module per
chapter's experiments, each with its ``table`` functions and the constants its rules use:

    logreg.py   Figure 1: logistic regression, dense (logreg) and sparse (sparse) inputs
    mlp.py      Figure 2: the multilayer network (mlp) and its deterministic cost (mlp_deterministic)
    cnn.py      Figure 3: the convolutional network, with and without dropout
    vae.py      Figure 4: the bias-correction ablation

A result that lacks what a claim needs (a subset of the optimizers or arms, from ``--optimizers``)
has no table: :func:`table` raises :class:`Lacking`, whose message says what is missing.
"""
from __future__ import annotations

from ..results import Result
from ..verdicts import VerdictTable


class Lacking(ValueError):
    """The result lacks the runs a claim compares (its message says which)."""


def require(result: Result, optimizers=(), variants=()) -> None:
    """Raise :class:`Lacking` unless ``result`` has every optimizer and variant named."""
    missing = [f"optimizer {o!r}" for o in optimizers if o not in result.optimizers]
    missing += [f"variant {v!r}" for v in variants if v not in result.variants]
    if missing:
        raise Lacking(f"{result.name} ({result.mode}) lacks {', '.join(missing)}: its claims compare them")


from . import cnn, logreg, mlp, vae  # noqa: E402  (they import require and Lacking)

#: experiment name -> its table function
CLAIMS = {"logreg": logreg.logreg, "sparse": logreg.sparse, "mlp": mlp.mlp,
          "mlp_deterministic": mlp.mlp_deterministic, "cnn": cnn.cnn, "vae": vae.vae}


def table(result: Result) -> VerdictTable:
    """The verdict table of ``result``'s experiment (:data:`CLAIMS`)."""
    if result.name not in CLAIMS:
        raise ValueError(f"result.name={result.name!r} is not accepted: expected one of {sorted(CLAIMS)}")
    return CLAIMS[result.name](result)
