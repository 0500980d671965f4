"""Figure 2's claims: the multilayer network with dropout (mlp) and its deterministic cost."""
from __future__ import annotations

from ..results import Result
from ..verdicts import VerdictTable, final_costs, lower
from . import require

def mlp(result: Result) -> VerdictTable:
    # Judged at the last epoch, at each optimizer's best setting (chosen on the seed mean). The
    # paper's Figure 2 (a) shows the curves over about 200 epochs and gives no number; "better
    # convergence" is read as "a lower training cost at the end", checked against each method in
    # turn. No factor: the fast mode's margins are a few per cent, and the rule (every seed of
    # Adam below every seed of the other) is what tells such a margin from seed noise.
    require(result, ("Adam",))
    adam = final_costs(result, "Adam")
    rows = [lower("Adam shows better convergence than other methods", "Figure 2 (a), MNIST with dropout",
                  adam, final_costs(result, name), "Adam", name)
            for name in result.optimizers if name != "Adam"]
    E = len(result.best("Adam")["epoch_loss"]) - 1
    return VerdictTable(f"mlp ({result.mode}): training cost after epoch {E}", rows)


def mlp_deterministic(result: Result) -> VerdictTable:
    # Per unit of gradient work: Adam after E epochs against L-BFGS after E full-data
    # evaluations beyond its first (at theta_0), so L-BFGS has one more. Both as the lowest cost
    # seen so far: L-BFGS's recorded curve is that (its line searches' trial points included, see
    # runner._run_deterministic), so Adam's is taken likewise, as the lowest of its epoch-end
    # costs. The remaining asymmetry favours L-BFGS (its minimum runs over every evaluation,
    # Adam's only over E + 1 of its iterates), so a "reproduces" is conservative. Wall-clock time
    # depends on the machine and is compared in chapter 11, not here.
    require(result, ("Adam",))
    if not any(name.startswith("L-BFGS") for name in result.optimizers):
        require(result, ("L-BFGS (full batch)",))
    E = len(result.best("Adam")["epoch_loss"]) - 1
    adam = [min(curve[:E + 1]) for curve in result.seed_curves("Adam").values()]
    lbfgs_name = next(name for name in result.optimizers if name.startswith("L-BFGS"))
    lbfgs = [curve[min(E, len(curve) - 1)] for curve in result.seed_curves(lbfgs_name).values()]
    rows = [lower("Adam makes faster progress in terms of both the number of iterations and wall-clock time",
                  "Figure 2 (b), against SFO (here L-BFGS, its stand-in); iterations only",
                  adam, lbfgs, "Adam", "L-BFGS")]
    return VerdictTable(f"mlp_deterministic ({result.mode}): lowest cost within {E} epochs "
                        f"(L-BFGS: within {E} evaluations after the one at theta_0)", rows)
