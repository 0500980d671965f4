"""run(): one experiment, read from the cache or computed over its grid, then cached."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from pathlib import Path

import torch

from .. import __version__
from .. import data as data_module
from .configs import EXPERIMENTS, OPTIONAL, config
from .optimizers import OPTIMIZERS
from .outputs import write_outputs
from .progress import _Progress
from .results import Result
from .runner import _RUNNERS, STACKS
from .store import _atomic_write, _computing, _Grid, _json_safe, _read_cached, cache_dir, cache_key

class Interrupted(KeyboardInterrupt):
    """:func:`run` was interrupted (Ctrl-C, the kernel's stop button, the CLI's SIGTERM).

    A ``KeyboardInterrupt``, so it stops whatever called :func:`run` as one would; its message
    says what is saved: every run that had finished (with the cache on), which the same call
    then reads back instead of computing it again.
    """

    def __init__(self, message: str, saved: int, total: int):
        super().__init__(message)
        self.saved, self.total = saved, total

    def __str__(self) -> str:
        return self.args[0]



_REAL_DATA = ("mnist", "cifar10", "imdb")


def _check_overrides(name: str, cfg: dict) -> None:
    """Refuse, before any data is loaded, the values a runner would trip over mid-grid."""
    kind = EXPERIMENTS[name].kind
    ebs = cfg.get("eval_batch_size")
    if ebs is not None and (isinstance(ebs, bool) or not isinstance(ebs, int) or ebs < 1):
        raise ValueError(f"eval_batch_size={ebs!r} is not accepted: expected None or an int >= 1")
    seeds = cfg.get("seeds")
    if seeds is not None:
        if (not isinstance(seeds, (list, tuple)) or not seeds
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)
                or len(set(seeds)) != len(seeds)):
            raise ValueError(f"seeds={seeds!r} is not accepted: expected None or a non-empty list of "
                             f"distinct ints >= 0, e.g. [0, 1, 2]")
    epochs = cfg.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r} is not accepted: expected an int >= 0")
    stack = cfg.get("stack")
    if stack is not None and stack not in STACKS:
        raise ValueError(f"stack={stack!r} is not accepted: expected one of {', '.join(map(repr, STACKS))}")
    momentum = cfg.get("momentum")
    if momentum is not None:
        if (not isinstance(momentum, dict) or set(momentum) - {"SGDNesterov"} or not all(
                isinstance(v, (list, tuple)) and v and all(
                    isinstance(mu, (int, float)) and not isinstance(mu, bool) and 0 <= mu < 1 for mu in v)
                for v in momentum.values())):
            raise ValueError(f"momentum={momentum!r} is not accepted: expected "
                             f"{{'SGDNesterov': [mu, ...]}} with 0 <= mu < 1")
    if kind in ("classify", "deterministic"):
        accepted = sorted(OPTIMIZERS) if kind == "classify" else ["Adam"]
        if not isinstance(cfg["grid"], dict):
            raise ValueError(f"grid={cfg['grid']!r} is not accepted: expected {{optimizer: [lr, ...]}}")
        for optimizer, lrs in cfg["grid"].items():
            if optimizer not in accepted:
                raise ValueError(f"grid={cfg['grid']!r} is not accepted: optimizer {optimizer!r} is not "
                                 f"one of {accepted}")
            if not isinstance(lrs, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in lrs):
                raise ValueError(f"grid={cfg['grid']!r} is not accepted: the step sizes of {optimizer} "
                                 f"must be a list of numbers > 0")


def run(name: str, full: bool = False, device="cpu", out=None, cache: bool = True,
        progress: bool | None = None, overrides: dict | None = None, ray: bool | str | None = None,
        store=None) -> Result:
    """Run experiment ``name`` (or load it from the cache) and return its :class:`Result`.

    Args:
        name: one of :data:`EXPERIMENTS`.
        full: the paper's data and sizes instead of the fast configuration.
        device: where to train (``"cpu"``, ``"cuda"``).
        out: a folder to also write ``NAME-MODE.json``, ``.csv`` and ``.png`` into (MODE is
            ``fast`` or ``full``).
        cache: read and write the on-disk cache (:func:`cache_dir`), and keep every run there as
            it finishes, so that an interrupted grid resumes at its first unfinished run (the
            VAE's joint grid: at its last evaluated epoch). False: compute everything, keep nothing.
        progress: None (default): one tqdm bar over the whole grid on a terminal, nothing
            elsewhere (notebooks: a chapter's cell prints nothing, cached or not); True: the bar
            on a terminal, elsewhere one line per finished run on stderr; False: nothing.
        overrides: top-level configuration entries to replace (e.g. ``{"epochs": 5}``, or
            ``{"eval_batch_size": 500}`` or ``{"seeds": [0, 1, 2]}``, which every experiment
            accepts: see :data:`OPTIONAL`); part of the cache key. With several ``seeds`` every
            (optimizer, step size, seed) is one run, kept on its own as it finishes.

        ray: run each run of the grid as a Ray task (:mod:`.ray_backend`; needs
            ``pip install "adamlib[cluster]"``): True joins the cluster ``RAY_ADDRESS`` names or
            starts a local instance, ``"HOST:PORT"`` joins that one; a Ray the process has
            initialised already is used as it is. None or False: the runs in turn, here.
        store: the folder of per-run results (default ``cache_dir()/partial``); on Ray, where
            the tasks write them too, so on shared storage for a cluster.

    Raises:
        Interrupted: on a KeyboardInterrupt; its message says how many runs are saved.
    """
    cfg = config(name, full)
    if overrides:
        unknown = set(overrides) - set(cfg) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"overrides={overrides!r} is not accepted: unknown keys {sorted(unknown)}; "
                             f"expected some of {sorted(set(cfg) | set(OPTIONAL))}")
        cfg.update(copy.deepcopy(overrides))
    _check_overrides(name, cfg)
    for key, default in OPTIONAL.items():
        # an optional entry at the value that stands for its absence is its absence: one
        # configuration, one cache key (seeds=None is the one seed; stack="run" the default)
        if key in cfg and cfg[key] == default:
            del cfg[key]
    if cfg.get("seeds") is not None:
        if len(cfg["seeds"]) == 1:  # one seed is the configuration with that seed: its key, its results
            cfg["seed"] = cfg.pop("seeds")[0]
        else:
            cfg["seeds"] = list(cfg["seeds"])
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not accepted: expected 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available() and not ray:
        # (on Ray the tasks need the GPUs, not this process: ray_backend.session checks the cluster's)
        raise ValueError("device='cuda' is not accepted: torch sees no CUDA device here")
    if ray:
        from .ray_backend import require_ray

        require_ray()  # before any work: RayUnavailable says how to install it
    mode = "full" if full else "fast"
    # unverified data may differ from the original: its results are kept apart
    key_extra = ({"data_verified": False}
                 if cfg["data"].get("loader") in _REAL_DATA and not data_module.verification_enabled()
                 else None)
    key = cache_key(name, cfg, mode, str(device), key_extra)
    path = cache_dir() / f"{name}-{mode}-{key}.json"
    with _computing(path if cache else None):
        result = _read_cached(path) if cache else None
        if result is None:
            start = time.perf_counter()
            threads = torch.get_num_threads()
            grid = _Grid(name, mode, str(device), key, key_extra,
                         (cache_dir() / "partial" if store is None else Path(store)) if cache else None,
                         _Progress(name, _Progress.style_for(progress)))
            if device.type == "cpu":
                # One thread: the models are small, so more threads mostly add overhead (and on a
                # shared machine oversubscribe it); also makes float sums independent of the core count.
                torch.set_num_threads(1)
            kind = EXPERIMENTS[name].kind
            try:
                with contextlib.ExitStack() as stack:
                    if not ray:
                        runs, extra = _RUNNERS[kind](cfg, device, grid)
                    else:
                        from .ray_backend import session

                        backend = stack.enter_context(session(ray, device))
                        backend.kind = kind
                        if kind == "vae_grid":  # one joint run: one task
                            runs, extra = backend.run_whole(grid, cfg)
                        else:
                            # here only the jobs are listed (their data loaded on the CPU, for the
                            # sizes in `extra`); the tasks train on `device`
                            grid.backend = backend
                            runs, extra = _RUNNERS[kind](cfg, torch.device("cpu"), grid)
            except KeyboardInterrupt:
                raise Interrupted(grid.saved_message(), grid.saved, grid.total) from None
            except Exception as error:
                with contextlib.suppress(AttributeError, TypeError):
                    error._adamlib_saved = grid.saved_message()  # for the command line's message
                raise
            finally:
                grid.progress.close()
                torch.set_num_threads(threads)
            result = Result(name=name, mode=mode, config=cfg, device=str(device), version=__version__,
                            runs=_json_safe(runs), extra=_json_safe(extra),
                            seconds=time.perf_counter() - start)
            if cache:
                _atomic_write(path, json.dumps(result.to_json()))
                grid.discard()
    if out is not None:
        write_outputs(result, Path(out))
    return result

