"""The command line: ``python -m adamlib.experiments list | run NAME [options]``."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path

import torch

from .. import data as data_module
from .configs import EXPERIMENTS, config
from .optimizers import OPTIMIZERS
from .runner import STACKS
from .sweep import Interrupted, run

PROG = "python -m adamlib.experiments"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message}\n")  # the subcommand's too: one prefix for all


class _BadOption(ValueError):
    """A command-line value that the parser could not judge alone (it depends on the experiment)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")


def _int_at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: expected an integer >= 1")
    return value


_EPILOG = """\
outputs (in --out, default results/):
  NAME-fast.json, or NAME-full.json with --full: the configuration and every run
  NAME-MODE.csv: one row per run and epoch;  NAME-MODE.png: each optimizer's best setting
  (the seed mean, with a band over the seeds);  NAME-MODE-verdicts.md: the verdict table
  against the paper's claims;  vae-MODE-figure4.png: the paper's Figure 4
  (written atomically, with the usual file mode, 0644 under umask 022)

resuming: with the cache on (the default), every stack of runs (--stack; full mode: every
  run) is saved as it finishes; after an
  interrupt (Ctrl-C, SIGTERM, out of memory) the same command resumes at the first run that
  did not finish (the VAE at its last evaluated epoch). --no-cache recomputes and keeps nothing.

on Ray (pip install "adamlib[cluster]"): --ray starts a local Ray instance (or joins the
  cluster $RAY_ADDRESS names), --ray-address HOST:PORT joins that one; every run of the grid is
  one task (num_gpus 1 with --device cuda, 0 on cpu), the same runs as without Ray, bit for bit.
  The tasks keep each finished run in --out's runs/ folder (on shared storage for a cluster),
  from where an interrupted sweep resumes.

exit status: 0 done; 1 the run failed (data unavailable, out of memory); 2 bad command line;
  130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM.
"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The experiments of Kingma & Ba (2015), Section 6.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="name the experiments")
    run_parser = sub.add_parser("run", help="run one experiment", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Run one experiment (or read it from the cache) and "
                                            "write its results.")
    run_parser.add_argument("name", help="an experiment (see `list`)")
    run_parser.add_argument("--full", action="store_true", help="the paper's data and sizes")
    run_parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (cuda:N)")
    run_parser.add_argument("--out", default=None, metavar="DIR",
                            help="folder for NAME-MODE.json/.csv/.png (default results/)")
    run_parser.add_argument("--no-cache", action="store_true",
                            help="recompute every run, even if cached or saved; keep nothing")
    run_parser.add_argument("--epochs", type=_int_at_least_one, metavar="N",
                            help="epochs per run (mlp_deterministic: L-BFGS gets as many "
                                 "evaluations per epoch as its configuration gives it)")
    run_parser.add_argument("--optimizers", metavar="A,B",
                            help="only these optimizers (names as in the results; "
                                 "mlp_deterministic: Adam, L-BFGS)")
    run_parser.add_argument("--lrs", action="append", metavar="NAME=LR,LR",
                            help="the step sizes of one optimizer, e.g. Adam=1e-3,3e-3 (repeat for "
                                 "others; vae: Adam=1e-4,1e-3, powers of ten)")
    run_parser.add_argument("--seeds", metavar="S,S",
                            help="run every optimizer and step size once per seed, e.g. 0,1,2; the "
                                 "best step size is chosen on the mean over the seeds (default: the "
                                 "configuration's one seed)")
    run_parser.add_argument("--stack", choices=STACKS, default=None,
                            help="how a classification grid's runs are trained together and kept: "
                                 "one optimizer's settings and seeds as one batched model "
                                 "(optimizer), one seed's settings (seed), or each run alone, kept "
                                 "as it finishes (run); default: the configuration's (fast: "
                                 "optimizer; full: run)")
    run_parser.add_argument("--eval-batch-size", type=_int_at_least_one, metavar="N",
                            help="evaluate the full-data cost N examples at a time (less memory; "
                                 "default: the configuration's)")
    run_parser.add_argument("--ray", action="store_true",
                            help="run each run as a Ray task: a local Ray instance, or the cluster "
                                 "$RAY_ADDRESS names (needs pip install \"adamlib[cluster]\")")
    run_parser.add_argument("--ray-address", metavar="HOST:PORT",
                            help="join the Ray cluster at HOST:PORT (implies --ray)")
    run_parser.add_argument("--data-dir", metavar="DIR",
                            help="where MNIST, CIFAR-10 and IMDB are looked for and downloaded to "
                                 f"(as $ADAMLIB_DATA; default {data_module.DEFAULT_ROOT})")
    run_parser.add_argument("--no-verify", action="store_true",
                            help="use data files whose MD5 checksum differs from the original's, "
                                 f"with a warning (as ${data_module.VERIFY_VARIABLE}=0)")
    return parser


def _split(option: str, text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise _BadOption(option, f"{text!r} is not accepted: expected names separated by commas")
    return parts


def _step_sizes(option: str, item: str, text: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise _BadOption(option, f"{item!r} is not accepted: expected NAME=LR[,LR...] with step "
                                     f"sizes > 0, e.g. Adam=1e-3,3e-3")
        if value not in values:
            values.append(value)
    return values


def _seeds(name: str, text: str) -> list[int]:
    """--seeds as a list of distinct ints >= 0."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise _BadOption("--seeds", f"{text!r} is not accepted: expected integers >= 0 separated by "
                                    f"commas, e.g. 0,1,2")
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise _BadOption("--seeds", f"{text!r} is not accepted: a seed is repeated; expected distinct "
                                    f"integers >= 0, e.g. 0,1,2")
    return seeds


def _grid_overrides(name: str, cfg: dict, optimizers: str | None, lrs: list[str] | None,
                    epochs: int | None) -> dict:
    """The command line's --optimizers, --lrs and --epochs as configuration overrides."""
    kind = EXPERIMENTS[name].kind
    overrides: dict = {}
    given: dict[str, list[float]] = {}
    for item in lrs or []:
        optimizer, sep, values = item.partition("=")
        optimizer = optimizer.strip()
        if not sep or not optimizer:
            raise _BadOption("--lrs", f"{item!r} is not accepted: expected NAME=LR[,LR...], "
                                      f"e.g. Adam=1e-3,3e-3")
        if optimizer in given:
            raise _BadOption("--lrs", f"{item!r} is not accepted: {optimizer} already has step sizes")
        given[optimizer] = _step_sizes("--lrs", item, values)
    if epochs is not None:
        overrides["epochs"] = epochs

    if kind == "vae_grid":
        if optimizers is not None:
            raise _BadOption("--optimizers", f"{optimizers!r} is not accepted for {name}: it runs Adam "
                                             f"over a beta1 x beta2 x step size grid, with and without "
                                             f"bias correction; choose step sizes with --lrs Adam=...")
        for optimizer, values in given.items():
            if optimizer != "Adam":
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted for {name}: expected Adam=LR,...")
            powers = [round(math.log10(v)) for v in values]
            if any(not math.isclose(10.0 ** k, v, rel_tol=1e-9) for k, v in zip(powers, values)):
                raise _BadOption("--lrs", f"Adam={','.join(f'{v:g}' for v in values)} is not accepted "
                                          f"for {name}: expected powers of ten (its grid is over "
                                          f"log10(lr)), e.g. Adam=1e-4,1e-3")
            overrides["log10_lr"] = powers
        return overrides

    if kind == "deterministic":
        accepted = ["Adam", "L-BFGS"]
        chosen = _split("--optimizers", optimizers) if optimizers is not None else accepted
        for optimizer in chosen:
            if optimizer not in accepted:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted for {name}: expected "
                                                 f"some of {', '.join(accepted)}")
        for optimizer in given:
            if optimizer == "L-BFGS":
                raise _BadOption("--lrs", f"L-BFGS=... is not accepted: L-BFGS takes no step sizes "
                                          f"(its line search chooses them)")
            if optimizer not in accepted:
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted for {name}: expected Adam=LR,...")
            if optimizer not in chosen:
                raise _BadOption("--lrs", f"{optimizer}=... is not accepted: {optimizer} is not among "
                                          f"--optimizers {optimizers}")
        if "Adam" in given or "Adam" not in chosen:
            overrides["grid"] = {"Adam": given["Adam"]} if "Adam" in chosen else {}
        if "L-BFGS" not in chosen:
            overrides["lbfgs"] = None
        elif epochs is not None:
            # the same number of evaluations per epoch of Adam as the configuration gives
            ratio = cfg["lbfgs"]["evaluations"] / cfg["epochs"]
            overrides["lbfgs"] = {**cfg["lbfgs"], "evaluations": max(1, round(ratio * epochs))}
        return overrides

    grid = cfg["grid"]
    if optimizers is not None:
        chosen = _split("--optimizers", optimizers)
        for optimizer in chosen:
            if optimizer not in OPTIMIZERS:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted: expected some of "
                                                 f"{', '.join(OPTIMIZERS)}")
            if optimizer not in grid and optimizer not in given:
                raise _BadOption("--optimizers", f"{optimizer!r} is not accepted: {name} has no step "
                                                 f"sizes for it; give them with --lrs {optimizer}=LR,...")
        if len(set(chosen)) != len(chosen):
            raise _BadOption("--optimizers", f"{optimizers!r} is not accepted: a name is repeated")
    else:
        chosen = list(grid)
    for optimizer in given:
        if optimizer not in OPTIMIZERS:
            raise _BadOption("--lrs", f"{optimizer}=... is not accepted: expected one of "
                                      f"{', '.join(OPTIMIZERS)}")
        if optimizer not in chosen:
            raise _BadOption("--lrs", f"{optimizer}=... is not accepted: {optimizer} is not in {name}'s "
                                      f"grid ({', '.join(chosen)}); add it with --optimizers")
    if optimizers is not None or given:
        overrides["grid"] = {optimizer: given.get(optimizer, grid.get(optimizer)) for optimizer in chosen}
    return overrides


def _check_device(text: str, ray: bool = False) -> str:
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise _BadOption("--device", f"{text!r} is not accepted: expected cpu or cuda (cuda:N)") from None
    if ray:  # the Ray tasks need the GPUs, not this process (run() checks the cluster's)
        if device.type not in ("cpu", "cuda") or device.index not in (None, 0):
            raise _BadOption("--device", f"{text!r} is not accepted with --ray: expected cpu or cuda "
                                         f"(Ray gives each task its GPU)")
        return text
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _BadOption("--device", f"{text!r} is not accepted: torch sees no CUDA device here; "
                                     f"expected cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise _BadOption("--device", f"{text!r} is not accepted: expected cuda:0 to "
                                     f"cuda:{torch.cuda.device_count() - 1}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise _BadOption("--device", f"{text!r} is not accepted: expected cpu or cuda (cuda:N)")
    return text


def _check_folder(option: str, text: str, create: bool) -> Path:
    path = Path(text).expanduser()
    if not text.strip():
        raise _BadOption(option, f"{text!r} is not accepted: expected a folder")
    if path.exists() and not path.is_dir():
        raise _BadOption(option, f"{text!r} is not accepted: it is a file, expected a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _BadOption(option, f"{text!r} is not accepted: cannot create that folder "
                                     f"({error.strerror or error})") from None
        if not os.access(path, os.W_OK):
            raise _BadOption(option, f"{text!r} is not accepted: that folder is not writable")
    return path


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        s in text for s in ("out of memory", "not enough memory", "can't allocate memory"))


@contextlib.contextmanager
def _environment(values: dict):
    """Set environment variables for the duration (main() may be called from Python)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's pre-emption, `timeout`, `kill`): stop as on Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    """The command line; returns the exit status (0 ok, 1 failed run, 2 bad command line,
    130 interrupted by SIGINT, 143 by SIGTERM)."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        from .memory import MEASURED, table

        peaks = table()
        gb = lambda value: "n/a" if value is None else f"{value / 1e9:.2g} GB"
        print(f"{'':<41} full-mode peak memory")
        print(f"{'experiment':<18} {'figure':<22} {'measured':<9} {'estimate':<9} title")
        for experiment in EXPERIMENTS.values():
            print(f"{experiment.name:<18} {experiment.figure:<22} {gb(MEASURED.get(experiment.name)):<9} "
                  f"{gb(peaks.get(experiment.name)):<9} {experiment.title}")
        print("measured: one run on a CPU, fake data of the real size (tools/measure_memory.py); "
              "estimate: from the tensors' sizes (adamlib/experiments/memory.py)")
        return 0
    if args.name not in EXPERIMENTS:
        print(f"{PROG}: error: unknown experiment {args.name!r}; expected one of "
              f"{', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    try:
        ray = args.ray_address if args.ray_address is not None else args.ray
        if ray is not False:
            if isinstance(ray, str) and not ray.strip():
                raise _BadOption("--ray-address", f"{ray!r} is not accepted: expected HOST:PORT")
            try:
                from .ray_backend import RayUnavailable, require_ray

                require_ray()
            except RayUnavailable as error:
                raise _BadOption("--ray-address" if isinstance(ray, str) else "--ray", str(error)) from None
        device = _check_device(args.device, ray=ray is not False)
        environment = {}
        if args.data_dir is not None:
            environment["ADAMLIB_DATA"] = str(_check_folder("--data-dir", args.data_dir, create=False))
        if args.no_verify:
            environment[data_module.VERIFY_VARIABLE] = "0"
        overrides = _grid_overrides(args.name, config(args.name, args.full), args.optimizers, args.lrs,
                                    args.epochs)
        if args.eval_batch_size is not None:
            overrides["eval_batch_size"] = args.eval_batch_size
        if args.seeds is not None:
            overrides["seeds"] = _seeds(args.name, args.seeds)
        if args.stack is not None:
            overrides["stack"] = args.stack
        out = _check_folder("--out", args.out if args.out is not None else "results", create=True)
    except _BadOption as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    import signal
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {message}", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous = None
    try:
        with _environment(environment), warnings.catch_warnings():
            warnings.showwarning = show_warning
            # the note that an unverified file is used is shown, once per file, whatever the filters
            warnings.filterwarnings("default", message=r".* used anyway \(", category=UserWarning)
            result = run(args.name, full=args.full, device=device, out=out, cache=not args.no_cache,
                         progress=True, overrides=overrides, ray=ray or None,
                         store=out / "runs" if ray is not False else None)
    except Interrupted as error:
        terminated = isinstance(error.__context__, _Terminated)
        print(f"{PROG}: interrupted ({'SIGTERM' if terminated else 'SIGINT'}): {error}", file=sys.stderr)
        return 143 if terminated else 130
    except KeyboardInterrupt as error:  # before or after the grid (loading data, writing outputs)
        terminated = isinstance(error, _Terminated)
        print(f"{PROG}: interrupted ({'SIGTERM' if terminated else 'SIGINT'})", file=sys.stderr)
        return 143 if terminated else 130
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except data_module.DataUnavailableError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as error:
        if not _out_of_memory(error):
            raise
        size = overrides.get("eval_batch_size", config(args.name, args.full).get("eval_batch_size"))
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"{PROG}: error: out of memory ({first[:200]}); "
              f"{getattr(error, '_adamlib_saved', 'nothing is saved yet')}; "
              f"a smaller --eval-batch-size (now {size if size is not None else 'all at once'}) "
              f"needs less", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"{result.name} ({result.mode}, {result.device}): "
          f"{'from cache' if result.cached else f'{result.seconds:.1f} s'}; "
          f"wrote {out / (result.name + '-' + result.mode)}.json, .csv, .png, -verdicts.md"
          + (", -figure4.png" if result.name == "vae" else ""))
    seeds = result.seeds
    for variant in result.variants:
        for name in dict.fromkeys(r["optimizer"] for r in result.runs if r["variant"] == variant):
            best = result.best(name, variant)
            if len(seeds) > 1:
                final, (low, high) = result.seed_mean(name, variant)[-1], result.spread(name, variant)
                cost = ("nan (a seed diverged)" if final is None else
                        f"{final:.4g} (seeds {low[-1]:.4g} to {high[-1]:.4g})")
                print(f"  {variant + ' ' if variant else ''}{name}: best lr {best['lr']:g} on the mean "
                      f"of {len(seeds)} seeds, final training cost {cost}")
                continue
            final = best["epoch_loss"][-1]
            print(f"  {variant + ' ' if variant else ''}{name}: best lr {best['lr']:g}, "
                  f"final training cost {'nan' if final is None else f'{final:.4g}'}")
    return 0
