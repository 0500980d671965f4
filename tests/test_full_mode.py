"""adamlib.experiments in full mode's clothes: evaluation in slices, runs kept as they finish and
resumed, the command line's options and errors, progress, output files; and the full
configurations run end to end on small files written in the real data formats."""
import gzip
import importlib.util
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from adamlib import _atomic, experiments
from adamlib import data as data_module
from adamlib.experiments import stacked

#: One seed, each run alone (the fast configurations run 3 seeds in stacks): these tests check
#: slicing, per-run files and resuming on the smallest grids.
ONE = {"seeds": None, "stack": "run"}
TINY = {  # one epoch, a couple of runs: seconds each
    "logreg": {"epochs": 1, "grid": {"Adam": [0.1], "Adagrad": [0.3]}, **ONE},
    "sparse": {"epochs": 1, "grid": {"Adam": [0.3]}, "data": {"loader": "sparse_bow", "n_docs": 300,
                                                              "vocab": 1000, "doc_length": 50.0}, **ONE},
    "mlp": {"epochs": 1, "grid": {"Adam": [1e-3]}, **ONE},
    "mlp_deterministic": {"epochs": 1, "grid": {"Adam": [1e-2]},
                          "lbfgs": {"history_size": 5, "evaluations": 4}, "seeds": None},
    "cnn": {"epochs": 1, "grid": {"Adam": [1e-2]}, "variants": {"+dropout": {"input_dropout": 0.2, "dropout": 0.5}},
            **ONE},
    "vae": {"epochs": 1, "checkpoints": [1], "beta1": [0.9], "beta2": [0.999], "log10_lr": [-3], "seeds": None},
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def without_time(runs):
    return [{k: v for k, v in r.items() if k != "time"} for r in runs]


class RowSpy:
    """Records the rows of every module call (first input's first dimension), by grad mode."""

    def __init__(self):
        self.rows = {True: [], False: []}

    def __enter__(self):
        def hook(module, args):
            if args and torch.is_tensor(args[0]) and args[0].ndim:
                self.rows[torch.is_grad_enabled()].append(args[0].shape[0])
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        # a stack of classifiers calls no module: its losses() takes (seeds, rows, ...) inputs
        self.losses = stacked.Stack.losses
        spy = self

        def losses(stack, x, *args, **kwargs):
            spy.rows[torch.is_grad_enabled()].append(x.shape[1])
            return spy.losses(stack, x, *args, **kwargs)
        stacked.Stack.losses = losses
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        stacked.Stack.losses = self.losses


# --- evaluation in slices ---------------------------------------------------------------------

def test_full_configs_evaluate_in_slices_and_fast_configs_as_before():
    for name in experiments.EXPERIMENTS:
        full = experiments.config(name, full=True)
        assert 1000 <= full["eval_batch_size"] <= 5000, name
        # fast configs: in one pass (sparse's 6000 is its whole data set)
        fast = experiments.config(name)
        assert fast.get("eval_batch_size") in (None, fast["data"].get("n_docs")), name
    assert experiments.OPTIONAL == {"eval_batch_size": None, "seeds": None, "stack": "run",
                                    "momentum": {"SGDNesterov": [0.9]}}


@pytest.mark.parametrize("name", list(TINY))
def test_every_experiment_accepts_eval_batch_size_and_never_evaluates_more_rows(name, cache):
    small = {**TINY[name], "batch_size": 25}
    whole = experiments.run(name, overrides=small, cache=False)
    with RowSpy() as spy:
        sliced = experiments.run(name, overrides={**small, "eval_batch_size": 50}, cache=False)
    assert max(spy.rows[False]) == 50                     # evaluations, in slices of 50
    assert max(spy.rows[True]) <= 50                      # training (25), L-BFGS's slices (50)
    if name == "mlp_deterministic":
        assert 50 in spy.rows[True]                       # the L-BFGS objective, in slices too
    for a, b in zip(whole.runs, sliced.runs):
        assert len(a["epoch_loss"]) == len(b["epoch_loss"])
        for x, y in zip(a["epoch_loss"], b["epoch_loss"]):
            assert y == pytest.approx(x, rel=1e-10)      # float64: the same cost, re-associated


def test_eval_batch_size_none_is_the_fast_configuration_itself(cache):
    small = TINY["logreg"]
    a = experiments.run("logreg", overrides=small)
    b = experiments.run("logreg", overrides={**small, "eval_batch_size": None})
    assert b.cached and "eval_batch_size" not in b.config    # same entry, same key
    for bad in (0, -1, 2.5, True, "100"):
        with pytest.raises(ValueError, match=r"^eval_batch_size=.* is not accepted: expected None or an int >= 1"):
            experiments.run("logreg", overrides={**small, "eval_batch_size": bad})
    with pytest.raises(ValueError, match=r"unknown keys \['eval_batch'\]"):
        experiments.run("logreg", overrides={"eval_batch": 5})
    assert a.runs == b.runs


# --- runs kept as they finish, and resumed ----------------------------------------------------

def counting(monkeypatch, target, attribute, fail_at=None):
    """Wrap ``target.attribute``: count its calls, raise KeyboardInterrupt at call ``fail_at``."""
    original = getattr(target, attribute)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(target, attribute, wrapper)
    return calls


def test_an_interrupted_grid_resumes_at_its_first_unfinished_run(cache, monkeypatch):
    small = {"epochs": 2, "grid": {"Adam": [0.1, 0.3], "Adagrad": [0.3]}, **ONE}
    reference = experiments.run("logreg", overrides=small, cache=False)
    with monkeypatch.context() as patch:
        counting(patch, experiments.runner, "train_stack", fail_at=2)   # inside the second run
        with pytest.raises(experiments.Interrupted) as info:
            experiments.run("logreg", overrides=small)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.saved, info.value.total) == (1, 3)
    assert "1 of 3 runs are saved" in str(info.value)
    assert len(list((cache / "partial").glob("logreg-fast-run-*.json"))) == 1
    assert not list(cache.glob("logreg-fast-*.json"))     # no entry for the whole grid yet
    with monkeypatch.context() as patch:
        calls = counting(patch, experiments.runner, "train_stack")
        resumed = experiments.run("logreg", overrides=small)
    assert len(calls) == 2                                 # the first run was read back
    assert without_time(resumed.runs) == without_time(reference.runs)
    assert not list((cache / "partial").iterdir())          # the entry holds it all now
    assert experiments.run("logreg", overrides=small).cached


def test_a_subset_of_a_grid_reuses_the_saved_runs_of_another(cache, monkeypatch):
    small = {"epochs": 1, "grid": {"Adam": [0.1, 0.3]}, **ONE}
    with monkeypatch.context() as patch:
        counting(patch, experiments.runner, "train_stack", fail_at=2)
        with pytest.raises(experiments.Interrupted):
            experiments.run("logreg", overrides=small)
    with monkeypatch.context() as patch:
        calls = counting(patch, experiments.runner, "train_stack")
        experiments.run("logreg", overrides={**small, "grid": {"Adam": [0.1]}})
    assert calls == []


def test_no_cache_recomputes_and_keeps_nothing(cache, monkeypatch):
    small = {"epochs": 1, "grid": {"Adam": [0.1, 0.3]}, **ONE}
    with monkeypatch.context() as patch:
        counting(patch, experiments.runner, "train_stack", fail_at=2)
        with pytest.raises(experiments.Interrupted, match="nothing is kept"):
            experiments.run("logreg", overrides=small, cache=False)
    assert not cache.exists() or not list(cache.rglob("*.json"))


def test_an_interrupted_lbfgs_run_keeps_the_adam_runs(cache, monkeypatch):
    small = TINY["mlp_deterministic"] | {"grid": {"Adam": [1e-2, 3e-2]}}
    reference = experiments.run("mlp_deterministic", overrides=small, cache=False)
    with monkeypatch.context() as patch:
        counting(patch, torch.optim.LBFGS, "step", fail_at=1)
        with pytest.raises(experiments.Interrupted, match="2 of 3 runs are saved"):
            experiments.run("mlp_deterministic", overrides=small)
    with monkeypatch.context() as patch:
        calls = counting(patch, experiments.runner, "train")
        resumed = experiments.run("mlp_deterministic", overrides=small)
    assert calls == []
    assert without_time(resumed.runs) == without_time(reference.runs)


def test_the_vae_grid_resumes_after_its_last_evaluated_epoch(cache, monkeypatch):
    small = {"epochs": 4, "checkpoints": [1, 2, 3], "beta1": [0.9], "beta2": [0.999], "log10_lr": [-3, -2],
             "seeds": None}
    steps_per_epoch = -(-1797 // 100)
    reference = experiments.run("vae", overrides=small, cache=False)
    with monkeypatch.context() as patch:
        counting(patch, experiments.runner, "grid_adam_step", fail_at=2 * steps_per_epoch + 5)  # in epoch 3
        with pytest.raises(experiments.Interrupted, match="after epoch 2 of 4 is saved"):
            experiments.run("vae", overrides=small)
    assert len(list((cache / "partial").glob("vae-fast-*.state.pt"))) == 1
    with monkeypatch.context() as patch:
        calls = counting(patch, experiments.runner, "grid_adam_step")
        resumed = experiments.run("vae", overrides=small)
    assert len(calls) == 2 * steps_per_epoch                # epochs 3 and 4 only
    assert without_time(resumed.runs) == without_time(reference.runs)   # bitwise
    assert not list((cache / "partial").iterdir())


def test_the_vae_grid_runs_once_per_seed_and_an_interrupted_sweep_resumes(cache, monkeypatch):
    small = {"epochs": 2, "checkpoints": [1], "beta1": [0.9], "beta2": [0.999], "log10_lr": [-3, -2],
             "seeds": None}
    steps_per_epoch = -(-1797 // 100)
    single = experiments.run("vae", overrides=small, cache=False)
    reference = experiments.run("vae", overrides={**small, "seeds": [0, 1]}, cache=False)
    assert [(r["seed"], r["lr"], r["bias_correction"]) for r in reference.runs] == [
        (seed, lr, bc) for seed in (0, 1) for lr in (1e-3, 1e-2) for bc in (True, False)]
    assert without_time([{k: v for k, v in r.items() if k != "seed"} for r in reference.runs[:4]]) == \
        without_time(single.runs)                                  # seed 0 is the single-seed grid
    assert reference.runs[4]["epoch_loss"] != reference.runs[0]["epoch_loss"]
    # stopped in seed 1's second epoch: seed 0's grid is kept, and seed 1's state after epoch 1
    with monkeypatch.context() as patch:
        counting(patch, experiments.runner, "grid_adam_step", fail_at=3 * steps_per_epoch + 3)
        with pytest.raises(experiments.Interrupted,
                           match=r"1 of 2 seeds' grids, and for seed 1 the state of its 4 models after "
                                 r"epoch 1 of 2, is saved"):
            experiments.run("vae", overrides={**small, "seeds": [0, 1]})
    with monkeypatch.context() as patch:
        calls = counting(patch, experiments.runner, "grid_adam_step")
        resumed = experiments.run("vae", overrides={**small, "seeds": [0, 1]})
    assert len(calls) == steps_per_epoch                           # seed 1's epoch 2 only
    assert without_time(resumed.runs) == without_time(reference.runs)
    assert resumed.seeds == [0, 1] and not list((cache / "partial").iterdir())


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_command_line_stops_on_a_signal_says_what_is_saved_and_resumes(tmp_path, signum, status):
    env = {**os.environ, "ADAMLIB_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "adamlib.experiments", "run", "logreg", "--epochs", "150",
            "--optimizers", "Adam", "--lrs", "Adam=0.1,0.3,1", "--seeds", "0", "--stack", "run",
            "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "cache" / "partial"
    deadline = time.monotonic() + 240
    while not list(partial.glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
    assert last.startswith(f"python -m adamlib.experiments: interrupted ({name}): logreg (fast): ")
    saved = len(list(partial.glob("*.json")))
    assert f"{saved} of 3 runs are saved" in last and "again resumes" in last
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{saved} of 3 runs already saved: resuming" in done.stderr
    assert done.stderr.count(" done (Adam lr ") == 3 - saved


# --- the command line ---------------------------------------------------------------------------

def cli(argv, capsys):
    try:
        status = experiments.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr()


@pytest.mark.parametrize("argv, option, value", [
    (["run", "logreg", "--epochs", "0"], "--epochs", "'0'"),
    (["run", "logreg", "--epochs", "ten"], "--epochs", "'ten'"),
    (["run", "logreg", "--eval-batch-size", "-5"], "--eval-batch-size", "'-5'"),
    (["run", "logreg", "--eval-batch-size", "1e3"], "--eval-batch-size", "'1e3'"),
    (["run", "logreg", "--optimizers", "Adamm"], "--optimizers", "'Adamm'"),
    (["run", "logreg", "--optimizers", "Adam,,Adagrad"], "--optimizers", "'Adam,,Adagrad'"),
    (["run", "logreg", "--optimizers", "Adam,Adam"], "--optimizers", "'Adam,Adam'"),
    (["run", "logreg", "--optimizers", "RMSProp"], "--optimizers", "'RMSProp'"),
    (["run", "logreg", "--lrs", "Adam"], "--lrs", "'Adam'"),
    (["run", "logreg", "--lrs", "Adam=fast"], "--lrs", "'Adam=fast'"),
    (["run", "logreg", "--lrs", "Adam=-1e-3"], "--lrs", "'Adam=-1e-3'"),
    (["run", "logreg", "--lrs", "Adam="], "--lrs", "'Adam='"),
    (["run", "logreg", "--lrs", "Adam=inf"], "--lrs", "'Adam=inf'"),
    (["run", "logreg", "--lrs", "Adam=1", "--lrs", "Adam=2"], "--lrs", "'Adam=2'"),
    (["run", "logreg", "--lrs", "Nadam=1e-3"], "--lrs", "Nadam=..."),
    (["run", "logreg", "--lrs", "RMSProp=1e-3"], "--lrs", "RMSProp=..."),
    (["run", "logreg", "--optimizers", "Adam", "--lrs", "Adagrad=1"], "--lrs", "Adagrad=..."),
    (["run", "vae", "--optimizers", "Adam"], "--optimizers", "'Adam'"),
    (["run", "vae", "--lrs", "Adam=3e-3"], "--lrs", "Adam=0.003"),
    (["run", "vae", "--lrs", "SGDNesterov=1e-3"], "--lrs", "SGDNesterov=..."),
    (["run", "mlp_deterministic", "--optimizers", "SGDNesterov"], "--optimizers", "'SGDNesterov'"),
    (["run", "mlp_deterministic", "--lrs", "L-BFGS=1"], "--lrs", "L-BFGS=..."),
    (["run", "mlp_deterministic", "--optimizers", "L-BFGS", "--lrs", "Adam=1"], "--lrs", "Adam=..."),
    (["run", "logreg", "--seeds", "0,x"], "--seeds", "'0,x'"),
    (["run", "logreg", "--seeds", ""], "--seeds", "''"),
    (["run", "logreg", "--seeds", "-1"], "--seeds", "'-1'"),
    (["run", "logreg", "--seeds", "1.5"], "--seeds", "'1.5'"),
    (["run", "logreg", "--seeds", "0,,1"], "--seeds", "'0,,1'"),
    (["run", "logreg", "--seeds", "0,1,0"], "--seeds", "'0,1,0'"),
    (["run", "vae", "--seeds", "0,x"], "--seeds", "'0,x'"),
    (["run", "logreg", "--device", "tpu"], "--device", "'tpu'"),
    (["run", "logreg", "--device", "cuda:7"], "--device", "'cuda:7'"),
    (["run", "logreg", "--out", "FILE"], "--out", "FILE"),
    (["run", "logreg", "--data-dir", "FILE"], "--data-dir", "FILE"),
    (["run", "logreg", "--data-dir", ""], "--data-dir", "''"),
])
def test_every_bad_option_value_is_one_line_naming_it_exit_2(argv, option, value, tmp_path, capsys, cache):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    argv = [str(a_file) if a == "FILE" else a for a in argv]
    value = value.replace("FILE", repr(str(a_file)))
    status, captured = cli(argv, capsys)
    err = captured.err
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"python -m adamlib.experiments: error: argument {option}: "), err
    assert value in err and ("expected" in err or "accepted" in err), err
    assert captured.out == "" and not cache.exists()       # nothing ran


def test_cuda_is_refused_by_name_where_there_is_none(capsys, cache):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    status, captured = cli(["run", "logreg", "--device", "cuda"], capsys)
    assert status == 2 and "argument --device: 'cuda' is not accepted: torch sees no CUDA device" in captured.err


def test_help_names_the_real_output_files_and_every_option(capsys):
    status, captured = cli(["run", "--help"], capsys)
    assert status == 0
    text = captured.out
    for piece in ("NAME-full.json", "NAME-fast.json", ".csv", ".png", "0644", "--epochs", "--optimizers",
                  "--lrs", "--eval-batch-size", "--data-dir", "--no-verify", "--device", "--out",
                  "--no-cache", "--seeds", "--stack", "-verdicts.md", "figure4", "143", "130", "resumes"):
        assert piece in text, piece


def test_options_become_configuration_overrides():
    grid = experiments._grid_overrides
    cfg = experiments.config("logreg")
    assert grid("logreg", cfg, "Adam", ["Adam=0.1,0.3,0.1"], 3) == {"epochs": 3, "grid": {"Adam": [0.1, 0.3]}}
    assert grid("logreg", cfg, None, ["Adagrad=1"], None) == {
        "grid": {"SGDNesterov": cfg["grid"]["SGDNesterov"], "Adagrad": [1.0], "Adam": cfg["grid"]["Adam"]}}
    assert grid("logreg", cfg, "RMSProp,Adam", ["RMSProp=0.01"], None) == {
        "grid": {"RMSProp": [0.01], "Adam": cfg["grid"]["Adam"]}}
    assert grid("logreg", cfg, None, None, None) == {}
    det = experiments.config("mlp_deterministic", full=True)
    assert grid("mlp_deterministic", det, "Adam", None, None) == {"lbfgs": None}
    assert grid("mlp_deterministic", det, "L-BFGS", None, 10) == {
        "epochs": 10, "grid": {}, "lbfgs": {"history_size": 20, "evaluations": 20}}
    assert grid("vae", experiments.config("vae"), None, ["Adam=1e-3,1e-2"], 5) == {"epochs": 5, "log10_lr": [-3, -2]}


def test_a_small_run_from_the_command_line_writes_readable_files(tmp_path, capsys, cache):
    old = os.umask(0o022)
    try:
        status, captured = cli(["run", "logreg", "--epochs", "1", "--optimizers", "Adam", "--lrs", "Adam=0.1",
                                "--seeds", "0", "--eval-batch-size", "500", "--out", str(tmp_path / "out")], capsys)
    finally:
        os.umask(old)
    assert status == 0, captured.err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["logreg-fast-verdicts.md", "logreg-fast.csv", "logreg-fast.json", "logreg-fast.png"]
    for p in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    for p in cache.glob("*.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    blob = json.loads((tmp_path / "out" / "logreg-fast.json").read_text())
    assert blob["config"]["grid"] == {"Adam": [0.1]} and blob["config"]["eval_batch_size"] == 500
    assert f"wrote {tmp_path / 'out' / 'logreg-fast'}.json, .csv, .png, -verdicts.md" in captured.out
    # progress=True and no terminal: one plain line per finished run on stderr
    assert captured.err == "logreg: run 1/1 done (Adam lr 0.1): final cost " + \
        f"{blob['runs'][0]['epoch_loss'][-1]:.4g}; " + captured.err.split("; ", 1)[1]


def test_atomic_file_gives_the_mode_open_gives_and_leaves_nothing_on_failure(tmp_path):
    old = os.umask(0o027)
    try:
        with _atomic.atomic_file(tmp_path / "a.txt", "w") as f:
            f.write("x")
        with open(tmp_path / "b.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640
    with pytest.raises(RuntimeError):
        with _atomic.atomic_file(tmp_path / "a.txt", "w") as f:
            f.write("half")
            raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


# --- progress ----------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_silent_by_default_off_a_terminal_even_when_computing(cache, capsys):
    # a chapter in a notebook (or nbval, on a cold cache): stdout and stderr stay empty
    for name in ("logreg", "mlp_deterministic", "vae"):
        result = experiments.run(name, overrides=TINY[name])
        assert not result.cached
    assert capsys.readouterr() == ("", "")


def test_progress_true_off_a_terminal_prints_one_line_per_finished_run(cache, capsys):
    experiments.run("mlp_deterministic", overrides=TINY["mlp_deterministic"], progress=True)
    experiments.run("vae", overrides={**TINY["vae"], "epochs": 2, "checkpoints": [1, 2]}, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith("mlp_deterministic: run 1/2 done (Adam lr 0.01): final cost ")
    assert lines[1].startswith("mlp_deterministic: run 2/2 done (L-BFGS (full batch)): final cost ")
    assert lines[2].startswith("vae: epoch 1/2 of 2 models, best cost ") and "left" in lines[2]
    assert lines[3].startswith("vae: epoch 2/2 of 2 models") and len(lines) == 4


def test_one_bar_over_the_whole_grid_on_a_terminal(cache, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    experiments.run("logreg", overrides={"epochs": 2, "grid": {"Adam": [0.1, 0.3]}, **ONE})
    experiments.run("mlp_deterministic", overrides=TINY["mlp_deterministic"])
    text = terminal.getvalue()
    assert "logreg run 2/2" in text and "/4 [" in text           # 2 runs x 2 epochs, one bar
    assert "mlp_deterministic run 2/2" in text and "L-BFGS" in text and "/5 [" in text  # 1 + 4 evaluations
    assert "run 3/" not in text


# --- the full configurations, end to end on small files in the real formats ---------------------

_spec = importlib.util.spec_from_file_location(
    "fake_data", Path(__file__).resolve().parents[1] / "tools" / "fake_data.py")
fake_formats = importlib.util.module_from_spec(_spec)  # the writers of the real formats
_spec.loader.exec_module(fake_formats)


def _register(monkeypatch, dataset, filename, path, md5=None):
    import hashlib

    url, _ = data_module.SOURCES[dataset][filename]
    md5 = md5 or hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(data_module.SOURCES, dataset, {**data_module.SOURCES[dataset], filename: (url, md5)})


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    """A data folder with MNIST (40 images) and CIFAR-10 (5 x 8 + 8 images) in their formats."""
    monkeypatch.setattr(data_module, "_download", lambda url, target: (_ for _ in ()).throw(OSError("offline")))
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", rng.integers(0, 256, size=(40, 28, 28))),
                            ("labels-idx1", rng.integers(0, 10, size=40))):
            path = root / "mnist" / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(fake_formats.idx(array), mtime=0))
            _register(monkeypatch, "mnist", path.name, path)
    path = fake_formats.write_tar_gz(root / "cifar10" / "cifar-10-python.tar.gz", fake_formats.cifar10_batches(rng, 8))
    _register(monkeypatch, "cifar10", path.name, path)
    monkeypatch.setenv("ADAMLIB_DATA", str(root))
    return root


def test_full_cnn_evaluates_cifar_in_slices(fake_data, cache):
    with RowSpy() as spy:
        result = experiments.run("cnn", full=True, overrides={
            "epochs": 1, "batch_size": 8, "eval_batch_size": 12, "grid": {"Adam": [1e-4]},
            "variants": {"": {}}, "seeds": None})
    assert max(spy.rows[False]) == 12 and max(spy.rows[True]) == 8
    run = result.runs[0]
    assert len(run["epoch_loss"]) == 2 and len(run["iteration_loss"]) == 5 and run["monitor"]


def test_full_vae_and_lbfgs_evaluate_mnist_in_slices(fake_data, cache):
    with RowSpy() as spy:
        vae = experiments.run("vae", full=True, overrides={
            "epochs": 1, "batch_size": 10, "eval_batch_size": 16, "checkpoints": [1],
            "beta1": [0.9], "beta2": [0.999], "log10_lr": [-3], "seeds": None})
        det = experiments.run("mlp_deterministic", full=True, overrides={
            "epochs": 1, "batch_size": 10, "eval_batch_size": 16, "grid": {"Adam": [1e-3]},
            "lbfgs": {"history_size": 5, "evaluations": 3}, "seeds": None})
    assert max(spy.rows[False]) == 16 and max(spy.rows[True]) == 16
    assert vae.extra["K"] == 2 and len(det.runs) == 2


def test_the_command_line_finds_data_in_data_dir_and_can_skip_verification(fake_data, tmp_path, capsys,
                                                                             cache, monkeypatch):
    monkeypatch.delenv("ADAMLIB_DATA")
    argv = ["run", "logreg", "--full", "--epochs", "1", "--optimizers", "Adam", "--lrs", "Adam=1e-3",
            "--out", str(tmp_path / "out")]
    monkeypatch.setitem(experiments.EXPERIMENTS, "logreg", experiments.Experiment(
        **{**experiments.EXPERIMENTS["logreg"].__dict__,
           "full": {**experiments.EXPERIMENTS["logreg"].full, "batch_size": 10}}))
    status, captured = cli(argv, capsys)                      # not in ~/.cache: missing
    assert status == 1 and "mnist: 2 files are missing" in captured.err
    status, captured = cli(argv + ["--data-dir", str(fake_data)], capsys)
    assert status == 0, captured.err
    assert "ADAMLIB_DATA" not in os.environ                    # main() leaves the environment as it was
    # a local copy whose checksum differs: refused, saying how to accept it; accepted with --no-verify
    path = fake_data / "mnist" / "train-labels-idx1-ubyte.gz"
    _register(monkeypatch, "mnist", path.name, path, md5="0" * 32)
    status, captured = cli(argv + ["--data-dir", str(fake_data)], capsys)
    assert status == 0 and "from cache" in captured.out        # verified results are cached: no check
    status, captured = cli(argv + ["--data-dir", str(fake_data), "--no-cache"], capsys)
    assert status == 1 and "ADAMLIB_DATA_VERIFY=0 (the command line's --no-verify)" in captured.err
    status, captured = cli(argv + ["--data-dir", str(fake_data), "--no-verify"], capsys)
    assert status == 0, captured.err
    assert "from cache" not in captured.out                    # unverified data: cached apart
    assert captured.err.startswith("python -m adamlib.experiments: warning: mnist: file ")
    assert "used anyway (ADAMLIB_DATA_VERIFY=0)" in captured.err
    assert len(list(cache.glob("logreg-full-*.json"))) == 2


def test_out_of_memory_is_one_line_saying_what_is_saved_and_what_to_try(cache, capsys, monkeypatch):
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)
    original = experiments.runner.train_stack
    calls = []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise oom("CUDA out of memory. Tried to allocate 13.10 GiB (GPU 0; 15.77 GiB total capacity)")
        return original(*args, **kwargs)
    monkeypatch.setattr(experiments.runner, "train_stack", train)
    status, captured = cli(["run", "logreg", "--epochs", "1", "--optimizers", "Adam", "--lrs", "Adam=0.1,0.3",
                            "--seeds", "0", "--stack", "run", "--out", str(cache.parent / "out")], capsys)
    assert status == 1
    err = captured.err.splitlines()
    assert err[-1].startswith("python -m adamlib.experiments: error: out of memory (CUDA out of memory.")
    assert "1 of 2 runs are saved" in err[-1] and "--eval-batch-size" in err[-1]
    assert "Traceback" not in captured.err


def test_an_interrupt_while_loading_says_nothing_was_computed(cache, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(experiments.runner, "_load_data", interrupted)
    with pytest.raises(experiments.Interrupted, match=r"logreg \(fast\): stopped before its first run"):
        experiments.run("logreg", overrides=TINY["logreg"])
    with pytest.raises(experiments.Interrupted, match=r"vae \(fast\): stopped before its first run"):
        experiments.run("vae", overrides=TINY["vae"])


def test_an_interrupted_vae_grid_before_its_first_evaluated_epoch_says_when_it_saves(cache, monkeypatch):
    counting(monkeypatch, experiments.runner, "grid_adam_step", fail_at=3)
    with pytest.raises(experiments.Interrupted,
                       match=r"vae \(fast\): nothing is saved yet \(the 2 models' state is saved after "
                             r"each evaluated epoch, 1, 2\)"):
        experiments.run("vae", overrides={**TINY["vae"], "epochs": 3, "checkpoints": [1, 2]})


# --- a finished full run writes its figure and its verdict table --------------------------------

ONE_EPOCH = {
    "logreg": {"grid": {"SGDNesterov": [0.1], "Adagrad": [0.1], "Adam": [0.1]}},
    "mlp": {"grid": {"SGDNesterov": [0.01], "Adagrad": [0.01], "RMSProp": [1e-3], "AdaDelta": [1.0],
                     "Adam": [1e-3]}, "model": {"name": "mlp", "hidden": [32, 32], "input_dropout": 0.2,
                                                 "dropout": 0.5}},
    "mlp_deterministic": {"grid": {"Adam": [1e-3]}, "lbfgs": {"history_size": 5, "evaluations": 2},
                          "model": {"name": "mlp", "hidden": [32, 32]}, "batch_size": 10},
    "cnn": {"grid": {"SGDNesterov": [1e-3], "Adagrad": [1e-3], "Adam": [1e-4]}, "batch_size": 16},
    "vae": {"checkpoints": [1], "model": {"hidden": 20, "latent": 5}},
}


@pytest.mark.parametrize("name", list(ONE_EPOCH))
def test_a_one_epoch_full_run_writes_its_figure_and_verdict_table(name, fake_data, tmp_path, cache):
    overrides = {"epochs": 1, "seeds": [0, 1], "momentum": {"SGDNesterov": [0.9]}, **ONE_EPOCH[name]}
    if name in ("vae", "mlp_deterministic"):
        overrides.pop("momentum")
    out = tmp_path / "out"
    result = experiments.run(name, full=True, out=out, overrides=overrides)
    assert result.seeds == [0, 1]
    png = out / f"{name}-full.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / f"{name}-full-verdicts.md").read_text()
    assert table.startswith(f"**{name} (full)") and "| claim (the paper's words) |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "**" in line]
    verdicts = ("**reproduces**", "**does not reproduce**", "**not at this budget**")
    assert rows and all(sum(v in line for v in verdicts) == 1 for line in rows)
    assert ("(2 seeds)" in table) or name == "vae"
    if name == "vae":
        assert (out / "vae-full-figure4.png").read_bytes()[:4] == b"\x89PNG"


def test_a_subset_of_the_grid_says_why_it_has_no_verdict_table(tmp_path, cache):
    experiments.run("logreg", out=tmp_path, overrides={"epochs": 1, "seeds": [0], "grid": {"Adam": [0.3]}})
    text = (tmp_path / "logreg-fast-verdicts.md").read_text()
    assert text.startswith("No verdict table: logreg (fast) lacks optimizer 'SGDNesterov', optimizer 'Adagrad'")


def test_every_full_experiment_is_estimated_to_fit_a_16_gb_gpu_and_cnn_did_not_without_slices():
    from adamlib.experiments import memory

    peaks = memory.table()
    assert set(peaks) == set(experiments.EXPERIMENTS)
    assert all(0.1e9 < peak < 16e9 for peak in peaks.values()), peaks
    # without evaluation slices the whole set went through at once: the out-of-memory
    assert memory.estimate("cnn", eval_batch_size=None) > 20e9
    assert memory.estimate("vae", eval_batch_size=None) > 20e9


def test_the_estimates_follow_the_measured_peaks_within_a_factor_of_two():
    # a configuration change moves the estimate, not the stored measurement: then this fails
    # and tools/measure_memory.py is run again
    from adamlib.experiments import memory

    assert set(memory.MEASURED) == set(experiments.EXPERIMENTS)
    for name, measured in memory.MEASURED.items():
        assert 0.1e9 < measured < 16e9, (name, measured)
        assert 0.5 < memory.estimate(name) / measured < 2.0, (name, memory.estimate(name), measured)


def test_list_prints_each_experiments_measured_and_estimated_peak_memory(capsys):
    assert experiments.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "peak memory" in lines[0] and "measured" in lines[1] and "estimate" in lines[1]
    import re

    rows = {line.split()[0]: [float(v) for v in re.findall(r" (\d+(?:\.\d+)?) GB", line)]
            for line in lines[2:-1]}
    assert set(rows) == set(experiments.EXPERIMENTS)
    from adamlib.experiments import memory

    for name, (measured, estimated) in rows.items():
        assert measured == float(f"{memory.MEASURED[name] / 1e9:.2g}") and 0.1 < estimated < 16
