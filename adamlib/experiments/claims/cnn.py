"""Figure 3's claims: the convolutional network, with and without dropout."""
from __future__ import annotations

from ..results import Result
from ..verdicts import VerdictTable, final_costs, holds, lower
from . import require

#: sqrt(v_hat) "dominated by eps": the median over a layer's weights below this many eps.
DOMINATED = 10


def cnn(result: Result) -> VerdictTable:
    require(result, ("Adam", "SGDNesterov", "Adagrad"))
    rows = []
    E = len(result.best("Adam")["epoch_loss"]) - 1
    for variant in result.variants:
        arm = variant or "no dropout"
        adam, sgd, adagrad = (final_costs(result, name, variant) for name in ("Adam", "SGDNesterov", "Adagrad"))
        rows += [
            lower("Adam and SGD eventually converge considerably faster than AdaGrad (Adam)",
                  f"Figure 3 (right), CIFAR-10 ({arm}, 45 epochs)", adam, adagrad, "Adam", "Adagrad"),
            lower("Adam and SGD eventually converge considerably faster than AdaGrad (SGD)",
                  f"Figure 3 (right), CIFAR-10 ({arm}, 45 epochs)", sgd, adagrad, "SGDNesterov", "Adagrad"),
            lower("Adam shows marginal improvement over SGD with momentum",
                  f"Figure 3 (right) ({arm})", adam, sgd, "Adam", "SGDNesterov"),
        ]
    # the mechanism: at the end, every layer's median sqrt(v_hat) of Adam's best run under 10 eps
    monitors = [run.get("monitor") for run in result.select("Adam", result.variants[0])
                if run["lr"] == result.best_lr("Adam", result.variants[0])]
    if all(monitors):
        last = [m[-1] for m in monitors]
        flags = [bool(entry) and all(layer["median"] < DOMINATED * 1e-8 for layer in entry.values()) for entry in last]
        worst = [max(layer["median"] for layer in entry.values()) for entry in last if entry]
        rows.append(holds("the second moment estimate v̂t vanishes to zeros after a few epochs and is dominated "
                          "by the ε in algorithm 1", "Section 6.3 (text)", flags,
                          "largest per-layer median sqrt(v_hat) after epoch "
                          f"{E}: " + ", ".join(f"{w:.2g}" for w in worst) + f" (eps = 1e-08)",
                          f"holds on a seed if every layer's median sqrt(v_hat) is below {DOMINATED} eps"))
    return VerdictTable(f"cnn ({result.mode}): training cost after epoch {E} at each optimizer's best setting", rows)
