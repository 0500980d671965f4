"""The paper's Section 6 as named experiments: configurations, a runner, a disk cache and a CLI.

Every experiment has a *fast* configuration (bundled or generated data, small models: what
the chapters and the tests run on a 2-core CPU) and a *full* one (the paper's data sets and
sizes, meant for a GPU). Both go through the same code. The protocol is the paper's: every
optimizer starts from the same initial parameters, sees the same mini-batch order, and is
run over a grid of learning rates (its own grid, as the useful step sizes of SGD and Adam
differ by orders of magnitude); the best lr is the one with the lowest mean log training cost
over the epochs (:func:`score`: low early *and* late, so a step size that is erratic but lucky
at the last epoch does not win; the paper does not say how it picked). Scores within
:data:`TIE` of the best are a tie, won by the smallest lr (:func:`adamlib.selection.best_step_size`),
so the choice does not flip with rounding. Fast mode trains in float64 (see :data:`FAST_DTYPE`).

    python -m adamlib.experiments list
    python -m adamlib.experiments run logreg [--full] [--device cuda] [--out DIR] [--no-cache]
        [--epochs N] [--optimizers A,B] [--lrs Adam=1e-3,3e-3] [--seeds 0,1,2] [--eval-batch-size N]
        [--data-dir DIR] [--no-verify] [--ray | --ray-address HOST:PORT]

Results are cached as JSON under :func:`cache_dir`, keyed by a hash of the configuration,
the mode, the device, adamlib's and torch's versions; files are written atomically (a
temporary file renamed into place), so an interrupted run never leaves a broken entry. While
a grid runs, each run is kept as it finishes (see :class:`_Grid`), so an interrupted grid
resumes where it stopped.

The package, file by file:

    configs.py      the paper's experiments: EXPERIMENTS, config(), OPTIONAL, FAST_DTYPE
    optimizers.py   the optimizers by name (OPTIMIZERS, make_optimizer)
    runner.py       data, models and the runners of each kind of experiment (grid_adam_step)
    stacked.py      a classification grid's runs trained together as one batched model
    store.py        the cache (cache_dir, cache_key, PROTOCOL), per-run results, atomic writes, locks
    progress.py     the progress report over a grid
    results.py      Result and score()
    sweep.py        run(): the cache, the grid's runs, Interrupted
    outputs.py      write_outputs(): NAME-MODE.json, .csv, .png, -verdicts.md (vae: -figure4.png)
    verdicts.py     verdict rules on per-seed values (lower, similar, holds) and VerdictTable
    claims/         the paper's claims per experiment: claims.table(result)
    memory.py       the peak memory of each full experiment, measured and estimated (``list``)
    ray_backend.py  each run of a grid as a Ray task (the optional extra ``adamlib[cluster]``)
    cli.py          main(), the command line (``__main__.py`` runs it)

In Python::

    from adamlib import experiments
    result = experiments.run("logreg")          # fast mode, cached
    result.best("Adam")                          # the run with the best lr
    result.curves()                              # {optimizer: epoch_loss of its best run}
    several = experiments.run("logreg", overrides={"seeds": [0, 1, 2]})
    several.best_lr("Adam"), several.seed_mean("Adam"), several.spread("Adam")
    result.best_setting("SGDNesterov")           # (lr, momentum): SGD-Nesterov's momentum is searched
    from adamlib.experiments import claims
    claims.table(result)                         # the verdict table against the paper's claims

The fast configurations run at least 3 seeds (mlp 5); a seed fixes theta_0, the mini-batch order and the
dropout masks, the same for every optimizer and setting. Their grids are trained in stacks
(``stack="optimizer"``: every setting and seed of one optimizer as one batched model, one
cache file); the full ones run each run alone (``stack="run"``), kept as it finishes.
"""
from __future__ import annotations

from ..selection import TIE, best_step_size
from ..train import seed_everything, train
from .configs import EXPERIMENTS, FAST_DTYPE, OPTIONAL, Experiment, _half_decades, _register, config
from .optimizers import OPTIMIZERS, _adadelta, make_optimizer
from .results import Result, score
from .store import (PROTOCOL, _atomic_write, _computing, _Grid, _Job, _json_safe, _read_cached,
                    cache_dir, cache_key)
from .progress import _clock, _Progress
from .runner import (_RUNNERS, _build_model, _default_dtype, _dtype, _load_data, _lr_label,
                     _median_sqrt_vhat, _run_classify, _run_deterministic, _run_vae_grid,
                     grid_adam_step)
from .stacked import FIXED, Setting, train_stack
from .sweep import _REAL_DATA, Interrupted, _check_overrides, run
from .outputs import write_outputs
from .cli import (PROG, _BadOption, _check_device, _check_folder, _environment, _grid_overrides,
                  _int_at_least_one, _out_of_memory, _Parser, _parser, _split, _step_sizes, main)

__all__ = ["EXPERIMENTS", "Experiment", "Result", "config", "run", "score", "best_step_size", "TIE",
           "cache_dir", "cache_key", "Interrupted", "OPTIONAL",
           "OPTIMIZERS", "make_optimizer", "main"]
