"""The files a run writes for people: NAME-MODE.json, .csv, .png and -verdicts.md (vae: -figure4.png)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .._atomic import atomic_file
from .results import Result
from .store import _atomic_write

def write_outputs(result: Result, out: Path) -> list[Path]:
    """``NAME-MODE.json`` (everything), ``.csv`` (one row per run and epoch), ``.png`` and
    ``-verdicts.md`` (the experiment's verdict table against the paper's claims,
    :mod:`.claims`; for a subset of the grid, one line saying what it lacks); for vae also
    ``-figure4.png`` (the paper's Figure 4, :func:`vae_figure4`).

    With several seeds the CSV has a ``seed`` column and the figure shows each optimizer's seed
    mean at its best step size, with the band from the lowest to the highest seed.

    Each is written atomically, with the mode a new file gets from the umask (0644 usually).
    """
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result.name}-{result.mode}"
    json_path, csv_path, png_path = out / f"{stem}.json", out / f"{stem}.csv", out / f"{stem}.png"
    _atomic_write(json_path, json.dumps(result.to_json(), indent=1))
    several = len(result.seeds) > 1  # a seed column only then: one seed's files are as they were
    lines = ["variant,optimizer,lr," + ("seed," if several else "") + "epoch,training_cost,seconds"]
    for r in result.runs:
        for epoch, (loss, seconds) in enumerate(zip(r["epoch_loss"], r["time"])):
            lines.append(f"\"{r['variant']}\",\"{r['optimizer']}\",{r['lr']:g},"
                         + (f"{r['seed']}," if several else "") +
                         f"{r.get('epochs', list(range(len(r['epoch_loss']))))[epoch]},"
                         f"{'' if loss is None else repr(loss)},{seconds:.6g}")
    _atomic_write(csv_path, "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .. import plots

    variants = result.variants
    fig, axes = plots.figure(ncols=len(variants), width=4.4, height=3.3, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for name in dict.fromkeys(r["optimizer"] for r in result.runs if r["variant"] == variant):
            best = result.best(name, variant)
            xs = best.get("epochs", list(range(len(best["epoch_loss"]))))
            if several:  # the seed mean, with the band from the lowest to the highest seed
                mean = result.seed_mean(name, variant)
                low, high = result.spread(name, variant)
                xs = xs[:len(mean)]
                nan = lambda values: [math.nan if v is None else v for v in values]
                line, = ax.plot(xs, nan(mean), label=f"{name} (lr {best['lr']:g}, "
                                                     f"{len(result.seeds)} seeds)")
                ax.fill_between(xs, nan(low), nan(high), color=line.get_color(), alpha=0.2, lw=0)
                continue
            ys = [math.nan if v is None else v for v in best["epoch_loss"]]
            ax.plot(xs, ys, label=f"{name} (lr {best['lr']:g})")
        ax.set_yscale("log")
        ax.set_xlabel("epochs")
        ax.set_ylabel("training cost")
        ax.set_title(variant or result.name, fontsize=9)
        if len(result.optimizers) <= 8:
            ax.legend(frameon=False, fontsize=9)
    with atomic_file(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=plots.DPI, metadata={"Software": None})
    plt.close(fig)
    written = [json_path, csv_path, png_path]
    from . import claims

    verdicts_path = out / f"{stem}-verdicts.md"
    try:
        text = claims.table(result).markdown()
    except claims.Lacking as error:
        text = f"No verdict table: {error}."
    _atomic_write(verdicts_path, text + "\n")
    written.append(verdicts_path)
    if result.name == "vae":
        written.append(vae_figure4(result, out / f"{stem}-figure4.png"))
    return written


def vae_figure4(result: Result, path: Path) -> Path:
    """Figure 4 of the paper from a vae run, written to ``path`` (PNG): for each of the epochs 10
    and 100 (those recorded; else the first and last recorded), one row of panels per beta1 and
    one column per beta2, x = log10(alpha), y = the negative ELBO (nats), red with bias
    correction and green without. With several seeds: the seed mean as the line and each
    seed's value as a small marker; a cross at the top marks a cell where some seed diverged
    (or is off the scale). The y-range, shared by all rows, is that of the finite values at both
    epochs (in the fast mode about 17 to 45 nats: the 10-epoch losses reach 43; the chapter's own
    figure shows the 100-epoch panels at 17-25 nats, where the grid differs)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .. import plots

    runs = result.runs
    beta1s = list(dict.fromkeys(r["beta1"] for r in runs))
    beta2s = list(dict.fromkeys(r["beta2"] for r in runs))
    lgs = sorted({r["log10_lr"] for r in runs})
    recorded = [e for e in runs[0]["epochs"] if e > 0]
    epochs = [e for e in (10, 100) if e in recorded] or sorted({recorded[0], recorded[-1]})
    seeds = result.seeds

    def value(r, epoch):
        v = r["epoch_loss"][r["epochs"].index(epoch)]
        return math.inf if v is None or not math.isfinite(v) or v > 1e6 else v

    cell = {}  # (epoch, b1, b2, lg, bc) -> per-seed values
    for r in runs:
        for epoch in epochs:
            cell.setdefault((epoch, r["beta1"], r["beta2"], r["log10_lr"], r["bias_correction"]), []).append(value(r, epoch))
    finite = [v for values in cell.values() for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    low, high = low - pad, high + pad
    nrows = len(epochs) * len(beta1s)
    fig, axes = plots.figure(ncols=len(beta2s), nrows=nrows, width=3.0, height=2.2, squeeze=False,
                             sharex=True, sharey=True)
    styles = ((True, "#d62728", "o-", "bias correction"), (False, "#2ca02c", "s--", "no bias correction"))
    for i, epoch in enumerate(epochs):
        for j, b1 in enumerate(beta1s):
            for col, b2 in enumerate(beta2s):
                ax = axes[i * len(beta1s) + j][col]
                for bc, color, style, label in styles:
                    per_seed = [cell[epoch, b1, b2, lg, bc] for lg in lgs]
                    means = [sum(v) / len(v) if all(math.isfinite(x) for x in v) else math.inf for v in per_seed]
                    ax.plot(lgs, [m if m < high else math.nan for m in means], style, color=color, markersize=3,
                            label=label + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
                    if len(seeds) > 1:
                        xs = [lg for lg, v in zip(lgs, per_seed) for x in v if x < high]
                        ys = [x for v in per_seed for x in v if x < high]
                        ax.plot(xs, ys, ".", color=color, markersize=3, alpha=0.5)
                    bad = [lg for lg, m in zip(lgs, means) if not m < high]
                    ax.plot(bad, [high] * len(bad), "x", color=color, markersize=6, clip_on=False)
                ax.set_ylim(low, high)
                ax.set_title(f"{epoch} epochs: beta1 = {b1}, beta2 = {b2}", fontsize=9)
                if col == 0:
                    ax.set_ylabel("loss (nats)")
                if i * len(beta1s) + j == nrows - 1:
                    ax.set_xlabel("log10(alpha)")
    plots.figure_legend(fig, axes[0][0], ncols=2)
    fig.suptitle(f"{result.name} ({result.mode}): Figure 4, negative ELBO after {' and '.join(map(str, epochs))} "
                 "epochs (x: diverged or off the scale)", fontsize=9)
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=plots.DPI, metadata={"Software": None})
    plt.close(fig)
    return path
