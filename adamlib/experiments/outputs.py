"""The files a run writes for people: NAME-MODE.json, .csv and .png."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .._atomic import atomic_file
from .results import Result
from .store import _atomic_write

def write_outputs(result: Result, out: Path) -> list[Path]:
    """``NAME-MODE.json`` (everything), ``.csv`` (one row per run and epoch) and ``.png``.

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
            ax.legend(frameon=False, fontsize=7)
    with atomic_file(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=plots.DPI, metadata={"Software": None})
    plt.close(fig)
    return [json_path, csv_path, png_path]

