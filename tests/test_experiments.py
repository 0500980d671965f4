"""adamlib.experiments: the cache, the command line, the batched Adam, and the paper's
qualitative results in fast mode.

The qualitative tests run the fast configurations through the default on-disk cache (the
one the chapters use, see ``experiments.cache_dir``): after the chapters have run they take
seconds; from a fresh clone they compute each experiment once (a few minutes on 2 cores).
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from adamlib import Adam, experiments, models


# --- the cache and the runner ----------------------------------------------------------------

#: One seed, each run alone: the fast configurations run 3 seeds in stacks; these tests check
#: the cache and the per-run files on the smallest grids.
ONE = {"seeds": None, "stack": "run"}

def test_cache_is_keyed_by_config_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    small = {"epochs": 1, "grid": {"Adam": [0.1]}, **ONE}
    a = experiments.run("logreg", overrides=small)
    assert not a.cached and len(a.runs) == 1 and len(a.runs[0]["epoch_loss"]) == 2
    def entries():  # the results; beside each a lock file (see the next test), no temporary file
        names = sorted(p.name for p in tmp_path.iterdir())
        assert not [n for n in names if n.endswith(".part")], names
        return [tmp_path / n for n in names if n.endswith(".json")]
    files = entries()
    assert len(files) == 1
    b = experiments.run("logreg", overrides=small)
    assert b.cached and b.runs == a.runs
    c = experiments.run("logreg", overrides={**small, "epochs": 2})
    assert not c.cached and len(entries()) == 2
    key = experiments.cache_key("logreg", experiments.config("logreg"), "fast", "cpu")
    assert key != experiments.cache_key("logreg", experiments.config("logreg"), "full", "cpu")
    # a damaged entry is recomputed, not trusted
    files[0].write_text("{not json")
    assert not experiments.run("logreg", overrides=small).cached


def test_two_processes_asking_for_one_experiment_compute_it_once(tmp_path):
    # a chapter and a test (or two jobs of a sweep) in parallel: the second waits for the first
    code = ("from adamlib import experiments; "
            "r = experiments.run('logreg', overrides={'epochs': 3, 'grid': {'Adam': [0.1, 0.3]}}); "
            "print(r.cached)")
    env = {**os.environ, "ADAMLIB_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = sorted(p.communicate(timeout=300)[0].strip() for p in procs)
    assert outs == ["False", "True"]
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_results_are_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    small = {"epochs": 2, "grid": {"Adagrad": [0.3]}}
    a = experiments.run("logreg", overrides=small, cache=False)
    b = experiments.run("logreg", overrides=small, cache=False)
    assert a.runs[0]["epoch_loss"] == b.runs[0]["epoch_loss"]


def test_best_uses_the_mean_log_cost_and_treats_divergence_as_worst():
    result = experiments.Result("x", "fast", {}, "cpu", "0", runs=[
        {"variant": "", "optimizer": "A", "lr": 0.1, "epoch_loss": [1.0, 0.5, 0.4]},
        {"variant": "", "optimizer": "A", "lr": 1.0, "epoch_loss": [1.0, 2.0, 0.3]},
        {"variant": "", "optimizer": "A", "lr": 10.0, "epoch_loss": [1.0, None, None]}])
    assert result.best("A")["lr"] == 0.1
    assert experiments.score([1.0, None]) == math.inf


def test_best_step_size_breaks_near_ties_towards_the_smaller_lr():
    # 0.005 apart: a tie (TIE = 0.01), whichever side rounding puts ahead; the smaller lr wins
    assert experiments.best_step_size({1.0: -2.000, 3.0: -2.005}) == 1.0
    assert experiments.best_step_size({1.0: -2.005, 3.0: -2.000}) == 1.0
    # 0.02 apart: a real difference, the lower score wins
    assert experiments.best_step_size({1.0: -2.00, 3.0: -2.02}) == 3.0
    # a tie only counts against the best score, not in a chain (1 ties 3, 3 ties 10, 1 does not tie 10)
    assert experiments.best_step_size({1.0: -1.987, 3.0: -1.994, 10.0: -2.000}) == 3.0
    assert experiments.best_step_size({0.1: math.inf, 1.0: math.inf}) == 0.1   # all diverged
    assert experiments.best_step_size({1.0: 0.0, 3.0: 0.0}, tie=0.0) == 1.0
    with pytest.raises(ValueError, match="scores=\\{\\} is not accepted"):
        experiments.best_step_size({})
    with pytest.raises(ValueError, match="tie=-1 is not accepted"):
        experiments.best_step_size({1.0: 0.0}, tie=-1)
    with pytest.raises(ValueError, match="not NaN"):
        experiments.best_step_size({1.0: math.nan})
    result = experiments.Result("x", "fast", {}, "cpu", "0", runs=[
        {"variant": "", "optimizer": "A", "lr": lr, "epoch_loss": [1.0, math.exp(s)]}
        for lr, s in ((3.0, -2.005), (1.0, -2.0))])
    assert result.best("A")["lr"] == 1.0


def test_fast_mode_trains_in_float64_and_full_mode_in_float32():
    # float32 training at these step sizes is chaotic: the 3rd digit of the cost depended on the CPU
    for name in experiments.EXPERIMENTS:
        assert experiments.config(name)["dtype"] == "float64", name
        assert experiments.config(name, full=True)["dtype"] == "float32", name
    small = {"epochs": 1, "grid": {"Adam": [0.1]}}
    assert experiments._load_data({"loader": "digits"}, torch.device("cpu"), torch.float64).X.dtype == torch.float64
    with pytest.raises(ValueError, match="dtype='float16' is not accepted"):
        experiments.run("logreg", overrides={**small, "dtype": "float16"}, cache=False)


def test_grid_adam_step_equals_adamlib_adam():
    torch.manual_seed(0)
    K = 4
    f64 = torch.float64
    lr = torch.tensor([1e-3, 1e-2, 1e-1, 1e-2], dtype=f64)
    beta1 = torch.tensor([0.0, 0.9, 0.9, 0.0], dtype=f64)
    beta2 = torch.tensor([0.99, 0.999, 0.9999, 0.99], dtype=f64)
    bc = torch.tensor([True, False, True, False])
    p0 = torch.randn(3, 2, dtype=f64)
    stacked = p0.expand(K, 3, 2).clone()
    singles = [p0.clone().requires_grad_() for _ in range(K)]
    opts = [Adam([singles[k]], lr=lr[k].item(), betas=(beta1[k].item(), beta2[k].item()),
                 bias_correction=bool(bc[k])) for k in range(K)]
    state = {}
    for step in range(5):
        g = torch.randn(K, 3, 2, dtype=f64)
        experiments.grid_adam_step([stacked], [g], state, lr, beta1, beta2, bc, 1e-8)
        for k in range(K):
            singles[k].grad = g[k].clone()
            opts[k].step()
    for k in range(K):
        assert torch.allclose(stacked[k], singles[k].detach(), rtol=1e-12, atol=1e-14)


# --- seeds -----------------------------------------------------------------------------------

def without_time(runs):
    return [{k: v for k, v in r.items() if k != "time"} for r in runs]


def counting_train(monkeypatch, fail_at=None):
    """Count the runner's calls of train(); raise KeyboardInterrupt at call ``fail_at``."""
    original, calls = experiments.runner.train_stack, []

    def train(*args, **kwargs):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(experiments.runner, "train_stack", train)
    return calls


def test_every_optimizer_step_size_and_seed_is_one_run_and_one_seed_is_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    small = {"epochs": 2, "grid": {"Adam": [0.1, 0.3], "Adagrad": [0.3]}, **ONE}
    single = experiments.run("logreg", overrides=small)
    assert single.seeds == [0] and not any("seed" in r for r in single.runs)   # as before seeds
    # the default spelled out, or one seed equal to it: the same configuration, key and entry
    assert experiments.run("logreg", overrides={**small, "seeds": None}).cached
    same = experiments.run("logreg", overrides={**small, "seeds": [0]})
    assert same.cached and "seeds" not in same.config
    several = experiments.run("logreg", overrides={**small, "seeds": (0, 1, 2)})
    assert not several.cached and several.config["seeds"] == [0, 1, 2] and several.seeds == [0, 1, 2]
    assert [(r["optimizer"], r["lr"], r["seed"]) for r in several.runs] == [
        (o, lr, seed) for o, lrs in small["grid"].items() for lr in lrs for seed in (0, 1, 2)]
    # seed 0 of the sweep is the single-seed run, bit for bit; the other seeds differ
    for r in single.runs:
        assert several.run_at(r["optimizer"], r["lr"], seed=0)["epoch_loss"] == r["epoch_loss"]
        assert several.run_at(r["optimizer"], r["lr"], seed=1)["epoch_loss"] != r["epoch_loss"]
    # one seed other than the configuration's: that seed's runs, as the seed-1 runs of the sweep
    one = experiments.run("logreg", overrides={**small, "seeds": [1]})
    assert one.config["seed"] == 1 and "seeds" not in one.config
    assert without_time(one.runs) == [{k: v for k, v in r.items() if k not in ("time", "seed")}
                                      for r in several.runs if r["seed"] == 1]
    # the seed is part of each run's key: kept apart while the sweep runs (2 of 9 runs saved)
    with monkeypatch.context() as patch:
        counting_train(patch, fail_at=3)
        with pytest.raises(experiments.Interrupted, match="2 of 9 runs are saved"):
            experiments.run("logreg", overrides={**small, "seeds": [3, 4, 5]})
    assert len(list((tmp_path / "partial").glob("logreg-fast-run-*.json"))) == 2


def test_an_interrupted_sweep_over_seeds_resumes_and_reuses_the_single_seed_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    small = {"epochs": 2, "grid": {"Adam": [0.1, 0.3]}, **ONE}
    reference = experiments.run("logreg", overrides={**small, "seeds": [0, 1]}, cache=False)
    # a single-seed sweep stopped after its first run (Adam 0.1, seed 0)
    with monkeypatch.context() as patch:
        counting_train(patch, fail_at=2)
        with pytest.raises(experiments.Interrupted, match="1 of 2 runs are saved"):
            experiments.run("logreg", overrides=small)
    # the two-seed sweep reads that run back and stops in its third run: 2 of 4 saved
    with monkeypatch.context() as patch:
        calls = counting_train(patch, fail_at=2)
        with pytest.raises(experiments.Interrupted, match="2 of 4 runs are saved"):
            experiments.run("logreg", overrides={**small, "seeds": [0, 1]})
    assert len(calls) == 2
    with monkeypatch.context() as patch:
        calls = counting_train(patch)
        resumed = experiments.run("logreg", overrides={**small, "seeds": [0, 1]})
    assert len(calls) == 2                                   # the two runs not yet saved
    assert without_time(resumed.runs) == without_time(reference.runs)
    assert not list((tmp_path / "partial").glob("*.json"))   # the entry holds it all now


def test_lbfgs_and_adam_each_run_once_per_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    small = {"epochs": 1, "grid": {"Adam": [1e-2]}, "lbfgs": {"history_size": 5, "evaluations": 3},
             "seeds": [0, 1]}
    result = experiments.run("mlp_deterministic", overrides=small, cache=False)
    assert [(r["optimizer"], r["seed"]) for r in result.runs] == [
        ("Adam", 0), ("Adam", 1), ("L-BFGS (full batch)", 0), ("L-BFGS (full batch)", 1)]
    curves = result.seed_curves("L-BFGS (full batch)")
    assert curves[0][0] != curves[1][0]                      # different initial weights


@pytest.mark.parametrize("seeds, message", [
    ([], "a non-empty list"), ([0, 0], "distinct"), ([-1], "ints >= 0"), ([1.0], "ints >= 0"),
    ([True], "ints >= 0"), ("012", "a non-empty list"), (3, "a non-empty list")])
def test_bad_seeds_are_refused_before_anything_runs(seeds, message, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=rf"^seeds=.* is not accepted: expected None or .*{message}"):
        experiments.run("logreg", overrides={"epochs": 1, "grid": {"Adam": [0.1]}, "seeds": seeds})
    with pytest.raises(ValueError, match=rf"^seeds=.* is not accepted: expected None or .*{message}"):
        experiments.run("vae", overrides={"seeds": seeds})
    assert not list(tmp_path.rglob("*.json"))


def synthetic(curves: dict) -> "experiments.Result":
    """A Result of optimizer A with {(lr, seed): final cost} over two epochs (cost 1 at epoch 0)."""
    return experiments.Result("x", "fast", {"seed": 0, "seeds": sorted({s for _, s in curves})}, "cpu", "0",
                              runs=[{"variant": "", "optimizer": "A", "lr": lr, "seed": seed,
                                     "epoch_loss": [1.0, cost]} for (lr, seed), cost in curves.items()])


def test_the_best_step_size_is_chosen_on_the_seed_mean_with_the_tie_rule():
    # seed 0 alone prefers lr 1 (cost e^-3 vs e^-2); the mean over seeds prefers lr 3
    result = synthetic({(1.0, 0): math.exp(-3), (1.0, 1): math.exp(-1),
                        (3.0, 0): math.exp(-2), (3.0, 1): math.exp(-2.5)})
    assert result.best_lr("A") == 3.0
    assert result.best("A") == result.run_at("A", 3.0, seed=0) and result.best("A", seed=1)["seed"] == 1
    assert result.seed_mean("A") == [1.0, (math.exp(-2) + math.exp(-2.5)) / 2]
    assert result.spread("A") == ([1.0, math.exp(-2.5)], [1.0, math.exp(-2)])
    assert result.spread("A", kind="std")[1] == pytest.approx(abs(math.exp(-2) - math.exp(-2.5)) / math.sqrt(2))
    assert result.curves() == {"A": result.seed_mean("A")}
    assert result.seed_curves("A", lr=1.0) == {0: [1.0, math.exp(-3)], 1: [1.0, math.exp(-1)]}
    # means within TIE (0.01 in mean log cost): the smaller step size wins
    tied = synthetic({(1.0, 0): math.exp(-2.000), (1.0, 1): math.exp(-2.000),
                      (3.0, 0): math.exp(-2.010), (3.0, 1): math.exp(-1.999)})
    assert tied.best_lr("A") == 1.0
    # a diverged seed makes its step size the worst, and its mean and band missing
    diverged = synthetic({(1.0, 0): 0.5, (1.0, 1): 0.6, (3.0, 0): 0.01, (3.0, 1): None})
    assert diverged.best_lr("A") == 1.0
    assert diverged.seed_mean("A", lr=3.0) == [1.0, None] and diverged.spread("A", lr=3.0) == ([1.0, None], [1.0, None])
    with pytest.raises(ValueError, match="seed=7 is not accepted: expected one of \\[0, 1\\]"):
        diverged.select("A", seed=7)
    with pytest.raises(ValueError, match="kind='iqr' is not accepted"):
        diverged.spread("A", kind="iqr")


def test_outputs_and_the_command_line_with_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path / "cache"))
    status = experiments.main(["run", "logreg", "--epochs", "1", "--optimizers", "Adam", "--lrs", "Adam=0.1,0.3",
                               "--seeds", "0,1,2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0
    assert "Adam: best lr " in out and " on the mean of 3 seeds, final training cost " in out and "(seeds " in out
    blob = json.loads((tmp_path / "out" / "logreg-fast.json").read_text())
    assert blob["config"]["seeds"] == [0, 1, 2] and len(blob["runs"]) == 6
    csv = (tmp_path / "out" / "logreg-fast.csv").read_text().splitlines()
    assert csv[0] == "variant,optimizer,lr,seed,epoch,training_cost,seconds" and len(csv) == 1 + 6 * 2
    assert csv[3].startswith('"","Adam",0.1,1,0,')


# --- the command line ------------------------------------------------------------------------

def test_cli_list_names_the_experiments(capsys):
    assert experiments.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("logreg", "sparse", "mlp", "cnn", "vae"):
        assert name in out


@pytest.mark.parametrize("argv", [["run", "resnet"], ["run", "logreg", "--bogus"], ["frobnicate"],
                                  ["run", "logreg", "--device", "no-such-device"]])
def test_cli_errors_are_one_line_and_non_zero(argv, capsys):
    try:
        status = experiments.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and "Traceback" not in err and "error" in err


def test_cli_as_a_module_without_traceback():
    done = subprocess.run([sys.executable, "-m", "adamlib.experiments", "run", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown experiment 'nope'" in done.stderr


def test_write_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path / "cache"))
    result = experiments.run("logreg", overrides={"epochs": 1, "grid": {"Adam": [0.1]}, **ONE},
                             out=tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["logreg-fast-verdicts.md", "logreg-fast.csv", "logreg-fast.json", "logreg-fast.png"]
    assert json.loads((tmp_path / "out" / "logreg-fast.json").read_text())["runs"] == result.runs
    csv = (tmp_path / "out" / "logreg-fast.csv").read_text()
    assert csv.count("\n") == 3  # header + epochs 0, 1
    assert csv.startswith("variant,optimizer,lr,epoch,training_cost,seconds\n")  # one seed: no seed column


# --- the paper's qualitative results, fast mode ----------------------------------------------

@pytest.fixture(scope="module")
def results():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = experiments.run(name)
        return cache[name]
    return get


def test_logreg_adam_beats_adagrad_early_and_matches_nesterov(results):
    result = results("logreg")
    curves = result.curves()   # the seed means at each optimizer's best setting
    adam, adagrad, nesterov = curves["Adam"], curves["Adagrad"], curves["SGDNesterov"]
    assert adam[3] < adagrad[3]
    # Single epochs spike (the digits' last mini-batch holds 1797 - 14 * 128 = 5 examples, and a
    # seed moves the spikes around): the end is judged on the mean of the last epochs, as the
    # verdict table does (claims/logreg.py). Adam within 20 % of SGD-Nesterov there, on the mean.
    from adamlib.experiments.claims import logreg as claims

    late = {name: sum(claims._late_costs(result, name)) / len(result.seeds) for name in ("Adam", "SGDNesterov")}
    assert abs(late["Adam"] - late["SGDNesterov"]) <= 0.2 * late["SGDNesterov"], late


def test_sparse_adam_and_adagrad_beat_nesterov(results):
    curves = results("sparse").curves()
    assert curves["Adam"][-1] < curves["SGDNesterov"][-1]
    assert curves["Adagrad"][-1] < curves["SGDNesterov"][-1]


def test_mlp_with_dropout_adam_beats_nesterov_and_adagrad(results):
    curves = results("mlp").curves()
    assert curves["Adam"][-1] < curves["SGDNesterov"][-1]
    assert curves["Adam"][-1] < curves["Adagrad"][-1]


def test_cnn_adam_at_most_adagrad(results):
    result = results("cnn")
    for variant in result.variants:
        curves = result.curves(variant)
        assert curves["Adam"][-1] <= curves["Adagrad"][-1], variant


@pytest.mark.parametrize("name", ["logreg", "sparse", "mlp", "mlp_deterministic", "cnn"])
def test_fast_mode_best_step_sizes_are_inside_their_grids(results, name):
    # The grids are trimmed to keep the chapters fast; a best step size on a grid's edge would
    # mean the grid cut off the optimum (L-BFGS has a single "step size" and is not searched).
    result = results(name)
    for variant in result.variants:
        for optimizer in dict.fromkeys(r["optimizer"] for r in result.runs if r["variant"] == variant):
            lr, momentum = result.best_setting(optimizer, variant)
            lrs = sorted({r["lr"] for r in result.select(optimizer, variant, momentum=momentum)})
            if len(lrs) == 1:
                continue
            assert lrs[0] < lr < lrs[-1], (variant, optimizer, momentum, lrs)


def test_vae_bias_correction_best_at_most_uncorrected_and_large_alpha_hurts(results):
    result = results("vae")
    for name in result.optimizers:  # one per (beta1, beta2)
        def best(variant):
            return min(r["epoch_loss"][-1] if r["epoch_loss"][-1] is not None else math.inf
                       for r in result.select(name, variant))
        assert best("bias correction") <= best("no bias correction"), name
    for beta1 in (0.0, 0.9):
        name = f"beta1={beta1}, beta2=0.9999"
        corrected = result.run_at(name, 1e-2, "bias correction")["epoch_loss"][-1]
        uncorrected = result.run_at(name, 1e-2, "no bias correction")["epoch_loss"][-1]
        assert uncorrected is None or uncorrected > 1.2 * corrected, beta1
