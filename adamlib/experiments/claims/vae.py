"""Figure 4's claims: the bias-correction ablation on a VAE."""
from __future__ import annotations

import math

from ..results import Result
from ..verdicts import VerdictTable, holds, lower

#: "equal or better": Adam's loss at most this much (relative) above the uncorrected run's. Two
#: collapsed runs of one cell differ by up to about 0.06 nats of 24.4 (0.25 %); 1 % keeps such
#: pairs "equal" and still calls a 0.3-nat (1.2 %) lead of the uncorrected run a lead.
VAE_EQUAL_TOL = 0.01
#: A run is collapsed (the decoder outputs every pixel's marginal probability, the posterior is
#: the prior: KL 0) when its loss is within this many nats of the sum of the binarised pixels'
#: marginal entropies, the loss of that solution. The fast mode's plateau is 24.43-24.49 nats
#: against 24.42; the best learning runs are below 23.
VAE_COLLAPSE_NATS = 0.1
#: Uncorrected "instability": diverged or more than this factor above the corrected run.
VAE_UNSTABLE_FACTOR = 1.2


def vae(result: Result) -> VerdictTable:
    runs = result.runs
    beta1s = list(dict.fromkeys(r["beta1"] for r in runs))
    beta2s = sorted({r["beta2"] for r in runs})
    lgs = sorted({r["log10_lr"] for r in runs})
    seeds = result.seeds if len(result.seeds) > 1 else [None]
    recorded = runs[0]["epochs"]
    last = recorded[-1]
    early = 10 if 10 in recorded and 10 < last else recorded[1]
    top = beta2s[-1]
    entropy = result.extra.get("marginal_entropy")

    table_ = {}
    for r in runs:
        table_[r.get("seed"), r["beta1"], r["beta2"], r["log10_lr"], r["bias_correction"]] = r

    def loss(seed, b1, b2, lg, bc, epoch):
        v = table_[seed, b1, b2, lg, bc]["epoch_loss"][recorded.index(epoch)]
        return math.inf if v is None or not math.isfinite(v) or v > 1e6 else v

    cells = [(b1, b2, lg) for b1 in beta1s for b2 in beta2s for lg in lgs]
    unstable_cells = [(b1, top, lg) for b1 in beta1s for lg in lgs if lg >= -2]
    ratio = lambda s, c, e: loss(s, *c, False, e) / loss(s, *c, True, e)
    rows = []
    # 1. instabilities without correction at beta2 close to 1 (and large alpha, where Section 3's
    #    inflated first steps, up to (1 - beta1)/sqrt(1 - beta2) = 10-100 alpha, are largest)
    flags = [all(ratio(s, c, last) > VAE_UNSTABLE_FACTOR for c in unstable_cells) for s in seeds]
    rows.append(holds("values β2 close to 1 indeed lead to instabilities in training when no bias correction term "
                      "was present", "Figure 4",
                      flags, f"at beta2 = {top}, alpha >= 1e-2 (both beta1), after {last} epochs: the uncorrected "
                      f"run diverged or ended more than {VAE_UNSTABLE_FACTOR:g}x the corrected one in all "
                      f"{len(unstable_cells)} cells",
                      f"holds on a seed if it does in all {len(unstable_cells)} cells"))
    # 2. "especially at first few epochs": the uncorrected/corrected ratio larger at the early
    #    epoch than at the last (a run diverged early counts as early)
    early_flags = [all(ratio(s, c, early) >= ratio(s, c, last) for c in unstable_cells) for s in seeds]
    grows = sorted({c for s in seeds for c in unstable_cells if ratio(s, c, early) < ratio(s, c, last)})
    rows.append(holds("especially at first few epochs of the training", "Figure 4 (10 vs 100 epochs)", early_flags,
                      f"cells (beta1, beta2, log10 alpha) where the gap GROWS from epoch {early} to {last}: "
                      f"{grows or 'none'}",
                      f"holds on a seed if in every cell above the ratio uncorrected/corrected at epoch {early} is "
                      f"at least that at epoch {last}"))
    # 3. the best results at small 1 - beta2 (beta2 = 0.9999) with bias correction
    best_top = [min(loss(s, b1, top, lg, True, last) for b1 in beta1s for lg in lgs) for s in seeds]
    best_rest = [min(loss(s, *c, bc, last) for c in cells for bc in (True, False) if not (c[1] == top and bc))
                 for s in seeds]
    rows.append(lower("The best results were achieved with small values of (1−β2) and bias correction",
                      f"Figure 4 ({last} epochs)", best_top, best_rest,
                      f"best at beta2={top} with correction", "best elsewhere in the grid"))
    best_bc = [min(loss(s, *c, True, last) for c in cells) for s in seeds]
    best_no = [min(loss(s, *c, False, last) for c in cells) for s in seeds]
    rows.append(lower("The best results were achieved with [...] bias correction", f"Figure 4 ({last} epochs)",
                      best_bc, best_no, "best with correction", "best without"))
    # 4. "more apparent towards the end": the gap between the two variants' best grows
    gap = lambda s, e: (min(loss(s, *c, False, e) for c in cells) - min(loss(s, *c, True, e) for c in cells))
    rows.append(holds("this was more apparent towards the end of optimization", f"Figure 4 ({early} vs {last} epochs)",
                      [gap(s, last) > gap(s, early) for s in seeds],
                      f"best without minus best with correction: epoch {early}: "
                      + ", ".join(f"{gap(s, early):.3g}" for s in seeds) + f" nats; epoch {last}: "
                      + ", ".join(f"{gap(s, last):.3g}" for s in seeds),
                      "holds on a seed if the gap is larger at the last epoch"))
    # 5. "equal or better ... regardless of hyper-parameter setting": (a) at each panel's tuned
    #    alpha, (b) at every cell of the grid; "equal" within VAE_EQUAL_TOL
    ok = lambda s, c, e: loss(s, *c, True, e) <= (1 + VAE_EQUAL_TOL) * loss(s, *c, False, e)
    panels = [(b1, b2) for b1 in beta1s for b2 in beta2s]
    tuned = [all(min(loss(s, b1, b2, lg, True, last) for lg in lgs)
                 <= (1 + VAE_EQUAL_TOL) * min(loss(s, b1, b2, lg, False, last) for lg in lgs) for b1, b2 in panels)
             for s in seeds]
    rows.append(holds("Adam performed equal or better than RMSProp, regardless of hyper-parameter setting",
                      f"Figure 4 ({last} epochs), at each panel's best alpha", tuned,
                      f"in all {len(panels)} (beta1, beta2) panels the best corrected run is at most "
                      f"{100 * VAE_EQUAL_TOL:g} % above the best uncorrected one",
                      "holds on a seed if it does in every panel"))
    collapsed = lambda s, c, bc, e: entropy is not None and abs(loss(s, *c, bc, e) - entropy) <= VAE_COLLAPSE_NATS
    for e in (early, last):
        behind = [sum(not ok(s, c, e) for c in cells) for s in seeds]
        live = [[c for c in cells if not (collapsed(s, c, True, e) and collapsed(s, c, False, e))] for s in seeds]
        behind_live = [sum(not ok(s, c, e) for c in lv) for s, lv in zip(seeds, live)]
        ours = ("cells where the uncorrected run is ahead by more than "
                f"{100 * VAE_EQUAL_TOL:g} %: " + ", ".join(f"{b} of {len(cells)}" for b in behind) + " (per seed)")
        if entropy is not None:
            ours += ("; leaving out cells where both runs are collapsed (within "
                     f"{VAE_COLLAPSE_NATS:g} nats of {entropy:.4g}): "
                     + ", ".join(f"{b} of {len(lv)}" for b, lv in zip(behind_live, live)))
        rows.append(holds("Adam performed equal or better than RMSProp, regardless of hyper-parameter setting",
                          f"Figure 4 ({e} epochs), every cell", [b == 0 for b in behind], ours,
                          "holds on a seed if in no cell of the grid the uncorrected run is ahead"))
    return VerdictTable(f"vae ({result.mode}): negative ELBO (nats, whole data set) after {early} and {last} epochs, "
                        f"{len(seeds)} seed(s); each seed's 60 runs share their initial weights and mini-batches", rows)
