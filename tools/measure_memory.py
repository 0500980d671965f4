#!/usr/bin/env python3
"""Measure the peak memory of the full experiments on this CPU, with fake data of the real size.

    python tools/measure_memory.py [NAME ...] [--updates K] [--work DIR]

The full experiments train on MNIST, CIFAR-10 and IMDB, which no machine here can download.
This writes fake copies of them in their real formats and sizes (random pixels in the idx and
pickle files, reviews of random words in the aclImdb tree; 60 000, 50 000 and 25 000 training
examples), then runs each full configuration through the library's own loaders and runners,
each in its own process, for one seed and one step size, until K updates have been taken
(default 20). By then a run has done everything that sets its peak: the data is loaded, the
whole training set has been evaluated once (in ``eval_batch_size`` slices, as at every later
epoch) and mini-batch updates have run, so later epochs allocate nothing new. L-BFGS instead
runs ``--lbfgs-evaluations`` full-batch evaluations (default 40, enough to fill its history
of 20 pairs; the table says how many it held).

Two numbers per run, from the kernel's peak resident set (VmHWM, reset between the two):
**loading**, the peak while the loader reads and prepares the data (CIFAR-10's ZCA whitening
works in float64 on the CPU, whatever the training device), and **training**, the peak of
everything after: the data, the model, the optimizer's state and the activations of one pass.
"loaded" is the resident set right after loading; "held", the training peak less the process
before the run ("process": Python, torch and adamlib imported, 0.23 GB here), is what a GPU
would hold of the run, and the number ``adamlib.experiments.memory.MEASURED`` keeps.

Prints one table; ``--json FILE`` writes the numbers too.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fake_data import cifar10_batches, idx, write_tar_gz  # this folder's: the tests' writers

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9

#: per experiment: the one optimizer and step size measured, and the variant (the one with
#: dropout where there are two: its masks are the larger training pass)
RUNS = {
    "logreg": {"optimizer": "Adam", "variants": None},
    "sparse": {"optimizer": "Adam", "variants": "+dropout"},
    "mlp": {"optimizer": "Adam", "variants": None},
    "mlp_deterministic": {"optimizer": "Adam", "variants": None},
    "mlp_deterministic L-BFGS": {"optimizer": "L-BFGS (full batch)", "variants": None},
    "cnn": {"optimizer": "Adam", "variants": "+dropout"},
    "vae": {"optimizer": None, "variants": None},
}


class Enough(BaseException):
    """Raised inside the run once it has taken its updates (BaseException: nothing catches it)."""


def _status(field: str) -> int:
    """A memory field of /proc/self/status in bytes: "VmRSS" (resident now), "VmHWM" (its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_hwm() -> None:
    """Hand the allocator's free memory back to the kernel, then reset VmHWM to the current RSS.

    Without the trim, the loader's freed temporaries (glibc keeps large freed blocks once its
    mmap threshold has grown past them) would count as the training's resident memory.
    """
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


# -- fake data in the real formats --------------------------------------------------------------

def write_fake_data(root: Path) -> None:
    """MNIST, CIFAR-10 and IMDB of their real sizes under ``root`` (skipped where present)."""
    import numpy as np

    rng = np.random.default_rng(0)
    mnist = root / "mnist"
    if not (mnist / "train-labels-idx1-ubyte.gz").exists():
        mnist.mkdir(parents=True, exist_ok=True)
        for prefix, m in (("train", 60_000), ("t10k", 10_000)):
            (mnist / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
                gzip.compress(idx(rng.integers(0, 256, size=(m, 28, 28))), compresslevel=1))
            (mnist / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(idx(rng.integers(0, 10, size=m)), compresslevel=1))
    cifar = root / "cifar10" / "cifar-10-python.tar.gz"
    if not cifar.exists():
        write_tar_gz(cifar, cifar10_batches(rng, 10_000), compresslevel=1)
    imdb = root / "imdb" / "aclImdb_v1.tar.gz"
    if not imdb.exists():
        # 20 000 word types with Zipf-like frequencies, 230 words a review (IMDB's mean length)
        words = [f"w{k}" for k in range(20_000)]
        p = 1.0 / np.arange(1, len(words) + 1)
        p /= p.sum()
        reviews = ((f"aclImdb/{split}/{label}/{k}_{k % 10 + 1}.txt",
                    " ".join(words[i] for i in rng.choice(len(words), size=230, p=p)).encode())
                   for split in ("train", "test") for label in ("pos", "neg") for k in range(12_500))
        write_tar_gz(imdb, reviews, compresslevel=1)


# -- one measurement, in its own process ---------------------------------------------------------

def measure(key: str, updates: int, lbfgs_evaluations: int) -> dict:
    import torch

    from adamlib import experiments
    from adamlib.experiments import runner
    from adamlib.experiments.configs import config

    name = key.split()[0]
    spec = RUNS[key]
    cfg = config(name, full=True)
    overrides: dict = {"seeds": [0], "epochs": 1}
    if cfg.get("variants") and spec["variants"] is not None:
        overrides["variants"] = {spec["variants"]: cfg["variants"][spec["variants"]]}
    if name == "vae":
        overrides["checkpoints"] = [1]
    elif spec["optimizer"] == "L-BFGS (full batch)":
        overrides["grid"] = {}
        overrides["lbfgs"] = {**cfg["lbfgs"], "evaluations": lbfgs_evaluations}
    else:
        lrs = cfg["grid"][spec["optimizer"]]
        overrides["grid"] = {spec["optimizer"]: [min(lrs, key=lambda lr: abs(lr - 1e-3))]}
        if name == "mlp_deterministic":
            overrides["lbfgs"] = None
        if spec["optimizer"] in (cfg.get("momentum") or {}):
            overrides["momentum"] = {}

    numbers: dict = {"experiment": key, "process": _status("VmRSS")}
    load = runner._load_data

    def load_and_reset(*args, **kwargs):
        start = time.perf_counter()
        data = load(*args, **kwargs)
        numbers["loading"] = _status("VmHWM")
        numbers["load_seconds"] = time.perf_counter() - start
        numbers["data"] = data.X.element_size() * data.X.numel() + data.y.element_size() * data.y.numel()
        numbers["shape"] = list(data.X.shape)
        _reset_hwm()
        numbers["loaded"] = _status("VmRSS")
        return data

    runner._load_data = load_and_reset
    taken = [0]

    def count(*_args, **_kwargs):
        taken[0] += 1
        if taken[0] >= updates:
            raise Enough

    if name == "vae":
        step = runner.grid_adam_step

        def counted_step(*args, **kwargs):
            step(*args, **kwargs)
            count()

        runner.grid_adam_step = counted_step
    else:
        # the classification runs step a stack (adamlib.experiments.stacked), L-BFGS's Adam
        # arm a torch optimizer: count both
        from torch.optim.optimizer import register_optimizer_step_post_hook

        from adamlib.experiments import stacked

        register_optimizer_step_post_hook(count)
        stack_step = stacked.StackedOptimizer.step

        def counted_stack_step(self, *args, **kwargs):
            stack_step(self, *args, **kwargs)
            count()

        stacked.StackedOptimizer.step = counted_stack_step
    if spec["optimizer"] == "L-BFGS (full batch)":
        lbfgs_step = torch.optim.LBFGS.step

        def recorded_lbfgs_step(self, closure):  # how full its history got
            loss = lbfgs_step(self, closure)
            numbers["lbfgs_pairs"] = len(self.state[self._params[0]]["old_dirs"])
            return loss

        torch.optim.LBFGS.step = recorded_lbfgs_step
    start = time.perf_counter()
    try:
        experiments.run(name, full=True, cache=False, progress=False, overrides=overrides)
        numbers["stopped"] = "finished"
    except Enough:
        numbers["stopped"] = f"after {taken[0]} updates"
    numbers["seconds"] = time.perf_counter() - start
    numbers["training"] = _status("VmHWM")
    if spec["optimizer"] == "L-BFGS (full batch)":
        numbers["stopped"] = (f"after {lbfgs_evaluations} evaluations, "
                              f"{numbers['lbfgs_pairs']} of {cfg['lbfgs']['history_size']} pairs of history")
    return numbers


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(RUNS), metavar="NAME",
                        help=f"some of: {', '.join(repr(k) for k in RUNS)} (default: all)")
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--lbfgs-evaluations", type=int, default=40)
    parser.add_argument("--work", type=Path, default=Path("/tmp/adamlib-memory"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.updates, args.lbfgs_evaluations)))
        return 0
    unknown = [n for n in args.names if n not in RUNS]
    if unknown:
        parser.error(f"{unknown} not accepted: expected some of {list(RUNS)}")
    data = args.work / "data"
    start = time.perf_counter()
    write_fake_data(data)
    print(f"fake data in {data} ({time.perf_counter() - start:.0f} s)", flush=True)
    env = {**os.environ, "ADAMLIB_DATA": str(data), "ADAMLIB_DATA_VERIFY": "0",
           "ADAMLIB_CACHE": str(args.work / "cache")}
    results = []
    print(f"{'run':<26} {'shape':<16} {'data':>6} {'process':>8} {'loading':>8} {'loaded':>7} "
          f"{'training':>9} {'held':>6} {'seconds':>8}  stopped", flush=True)
    for key in args.names:
        done = subprocess.run([sys.executable, __file__, "--child", key, "--updates", str(args.updates),
                               "--lbfgs-evaluations", str(args.lbfgs_evaluations)],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            print(f"{key:<26} failed:\n{done.stderr[-2000:]}", flush=True)
            continue
        n = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(n)
        n["held"] = n["training"] - n["process"]
        print(f"{key:<26} {'x'.join(map(str, n['shape'])):<16} {n['data'] / GB:5.2f}G {n['process'] / GB:7.2f}G "
              f"{n['loading'] / GB:7.2f}G {n['loaded'] / GB:6.2f}G {n['training'] / GB:8.2f}G "
              f"{n['held'] / GB:5.2f}G {n['seconds']:8.0f}  {n['stopped']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
