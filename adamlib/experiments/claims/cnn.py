"""Figure 3's claims: the convolutional network, with and without dropout.

Per arm (without and with dropout), five comparisons of per-seed training costs at each
optimizer's best setting (:func:`~adamlib.experiments.verdicts.lower`): Adagrad and Adam each
ahead of SGD-Nesterov early (epoch :data:`EARLY`, the left panel of Figure 3), Adam and
SGD-Nesterov below Adagrad and Adam below SGD-Nesterov at the end (the right panel). The rules
test the order only: not the paper's "considerably" nor its "marginal". And per arm the
mechanism, "v_hat vanishes ... and is dominated by the eps", checked on Adam's per-layer monitor
with a bound that says whether the run is long enough to test it (:func:`earliest_dominated`).
"""
from __future__ import annotations

import math

from ..results import Result
from ..stacked import FIXED
from ..verdicts import NOT_AT_BUDGET, Verdict, VerdictTable, final_costs, holds, lower
from . import require

#: sqrt(v_hat) "dominated by eps": a layer's median over its weights below this many eps.
DOMINATED = 10

#: The epoch at which the left panel's claim (Adagrad fast early) is judged: the first.
EARLY = 1

#: Updates per epoch of the paper's run: 50 000 CIFAR-10 images in mini-batches of 128.
CIFAR_UPDATES_PER_EPOCH = math.ceil(50_000 / 128)

#: The paper's words, as PAPER.md quotes them.
EVENTUALLY = "Adam and SGD eventually converge considerably faster than Adagrad"

#: Figure 3's left panel, read off the figure (not a quote).
EARLY_CLAIM = "Adam and Adagrad make fast progress early (Figure 3, left; the figure, not a quote)"


def updates_to_reach(median: float, t: int, target: float, beta2: float) -> int:
    """The fewest further updates after update ``t`` before a median sqrt(v_hat) of ``median``
    can fall to ``target`` (0 if it is there already).

    Adam's ``v_{t+k} = beta2^k v_t + (1 - beta2) sum(beta2^j g^2) >= beta2^k v_t`` for every
    weight, whatever the gradients (equality if they are all zero from update t on), so
    ``v_hat_{t+k} >= beta2^k (1 - beta2^t) / (1 - beta2^(t+k)) v_hat_t``; each weight's value is
    bounded below by the same factor times its own, hence so is a layer's median. The factor
    falls to ``r = (target / median)^2`` once ``x = beta2^k <= r / (1 - beta2^t + r beta2^t)``.
    """
    if median <= target:
        return 0
    r = (target / median) ** 2
    x = r / (1 - beta2 ** t + r * beta2 ** t)
    return math.ceil(math.log(x) / math.log(beta2))


def earliest_dominated(monitor: list, updates_per_epoch: int, beta2: float | None = None,
                       eps: float | None = None, threshold: float = DOMINATED) -> dict[str, int]:
    """Per layer: the earliest update at which its median sqrt(v_hat) could be below
    ``threshold`` eps, given the medians ``monitor`` logged after each epoch (entry 0: none).

    Each epoch's value gives a lower bound (:func:`updates_to_reach` after that epoch's last
    update); the largest of them is returned. A run whose updates end before it cannot show the
    layer dominated by eps, whatever its gradients did.
    """
    beta2 = FIXED["Adam"]["beta2"] if beta2 is None else beta2
    eps = FIXED["Adam"]["eps"] if eps is None else eps
    out: dict[str, int] = {}
    for epoch, entry in enumerate(monitor):
        t = epoch * updates_per_epoch
        for layer, stats in (entry or {}).items():
            bound = t + updates_to_reach(stats["median"], t, threshold * eps, beta2)
            out[layer] = max(out.get(layer, 0), bound)
    return out


def _mechanism(result: Result, variant: str, arm: str) -> Verdict | None:
    """The row for "v_hat vanishes ... dominated by the eps", from Adam's best runs' monitors."""
    lr, _ = result.best_setting("Adam", variant)
    runs = [r for r in result.select("Adam", variant) if math.isclose(r["lr"], lr, rel_tol=1e-9)]
    if not runs or not all(r.get("monitor") for r in runs):
        return None
    eps = FIXED["Adam"]["eps"]
    claim = ("the second moment estimate v̂_t vanishes to zeros after a few epochs and is dominated "
             "by the ε")
    paper = f"Section 6.3 (text), CIFAR-10 ({arm})"
    per_epoch = runs[0]["updates_per_epoch"]
    updates = (len(runs[0]["monitor"]) - 1) * per_epoch
    last = [r["monitor"][-1] for r in runs]
    flags = [all(s["median"] < DOMINATED * eps for s in entry.values()) for entry in last]
    smallest = min(s["median"] for entry in last for s in entry.values())
    # every layer below: the latest layer's earliest update; the run cannot show it before then
    needed = [max(earliest_dominated(r["monitor"], per_epoch).values()) for r in runs]
    quickest = min(min(earliest_dominated(r["monitor"], per_epoch).values()) for r in runs)
    below = max(s["below_10eps"] for entry in last for s in entry.values())
    ours = (f"smallest per-layer median sqrt(v_hat) after update {updates}: {smallest / eps:.3g} eps; "
            f"largest fraction of a layer's weights below {DOMINATED} eps (any layer and seed): {100 * below:.2g} %; "
            f"no layer's median can reach {DOMINATED} eps before update {quickest} "
            f"(the updates of {quickest / CIFAR_UPDATES_PER_EPOCH:.2g} CIFAR epochs of {CIFAR_UPDATES_PER_EPOCH})")
    rule = (f"holds on a seed if every layer's median sqrt(v_hat) is below {DOMINATED} eps at the end; "
            f"not at this budget if the run ends before the earliest update at which that is possible "
            f"(per update v falls at most by a factor beta2 = {FIXED['Adam']['beta2']:g}, "
            f"v_hat at most by beta2 (1 - beta2^t) / (1 - beta2^(t+1)))")
    if all(updates < n for n in needed):
        return Verdict(claim, paper, ours + f"; the run has {updates} updates", NOT_AT_BUDGET, rule)
    return holds(claim, paper, flags, ours, rule)


def cnn(result: Result) -> VerdictTable:
    require(result, ("Adam", "SGDNesterov", "Adagrad"))
    rows = []
    E = len(result.best("Adam")["epoch_loss"]) - 1
    for variant in result.variants:
        arm = variant.lstrip("+") or "no dropout"
        early = {name: final_costs(result, name, variant, EARLY) for name in ("SGDNesterov", "Adagrad", "Adam")}
        adam, sgd, adagrad = (final_costs(result, name, variant) for name in ("Adam", "SGDNesterov", "Adagrad"))
        right = f"Figure 3 (right), CIFAR-10 ({arm}, 45 epochs)"
        rows += [
            *(lower(f"{EARLY_CLAIM}: {name} below SGD-Nesterov at epoch {EARLY}",
                    f"Figure 3 (left), CIFAR-10 ({arm}, 3 epochs)", early[name], early["SGDNesterov"],
                    name, "SGDNesterov") for name in ("Adagrad", "Adam")),
            lower(f"{EVENTUALLY} (Adam)", right, adam, adagrad, "Adam", "Adagrad"),
            lower(f"{EVENTUALLY} (SGD)", right, sgd, adagrad, "SGDNesterov", "Adagrad"),
            lower("Adam shows marginal improvement over SGD with momentum", right, adam, sgd,
                  "Adam", "SGDNesterov"),
        ]
        mechanism = _mechanism(result, variant, arm)
        if mechanism is not None:
            rows.append(mechanism)
    return VerdictTable(f"cnn ({result.mode}): training cost after epoch {E} (epoch {EARLY} for Figure 3, "
                        "left) at each optimizer's best setting", rows)
