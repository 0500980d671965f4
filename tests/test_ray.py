"""adamlib.experiments on Ray (the optional extra ``adamlib[cluster]``): the same mini-sweep run
serially and as Ray tasks on a 2-worker local cluster gives identical results; per-run results
resume across the two; without Ray, ``--ray`` says how to install it."""
import importlib.util
import sys
import time

import pytest
import torch

from adamlib import experiments
from adamlib.experiments import ray_backend

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed: pip install "adamlib[cluster]"')

MINI = {"epochs": 3, "grid": {"Adam": [0.1, 0.3], "Adagrad": [0.3, 1.0]}}   # two optimizers: 2 stacks of 6 runs
ONE_BY_ONE = {**MINI, "seeds": None, "stack": "run"}                        # 4 runs, one task each


def without_time(runs):
    return [{k: v for k, v in r.items() if k != "time"} for r in runs]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with two workers' worth of CPUs (two tasks at once)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fail_here(monkeypatch):
    """Make training in this process fail: a run computed here, not in a Ray worker, would raise."""
    def train(*args, **kwargs):
        raise AssertionError("trained in the driver, not in a Ray task")
    monkeypatch.setattr(experiments.runner, "train_stack", train)


@needs_ray
def test_a_mini_sweep_serially_and_on_two_ray_workers_gives_identical_results(cluster, cache, tmp_path,
                                                                             monkeypatch, capsys):
    start = time.perf_counter()
    serial = experiments.run("logreg", overrides=MINI, cache=False)
    serial_seconds = time.perf_counter() - start
    with monkeypatch.context() as patch:
        fail_here(patch)
        start = time.perf_counter()
        on_ray = experiments.run("logreg", overrides=MINI, ray=True, store=tmp_path / "runs")
        ray_seconds = time.perf_counter() - start      # the workers' first tasks: they import torch
        start = time.perf_counter()
        again = experiments.run("logreg", overrides=MINI, ray=True, cache=False)
        warm_seconds = time.perf_counter() - start
    assert without_time(again.runs) == without_time(serial.runs)
    assert not on_ray.cached
    assert without_time(on_ray.runs) == without_time(serial.runs)           # bit for bit, in order
    assert on_ray.extra == serial.extra and on_ray.config == serial.config
    assert on_ray.best("Adam")["lr"] == serial.best("Adam")["lr"]
    # the entry is the serial sweep's: the same call without Ray reads it from the cache
    assert experiments.run("logreg", overrides=MINI).cached
    with capsys.disabled():
        print(f"\n[ray] logreg mini-sweep ({len(serial.runs)} runs in 2 stacks x 3 epochs): serial "
              f"{serial_seconds:.1f} s, "
              f"Ray (2 workers) {ray_seconds:.1f} s cold, {warm_seconds:.1f} s warm", file=sys.stderr)
    assert len(serial.runs) == 12 and serial.seeds == [0, 1, 2]   # 4 settings x 3 seeds, one stack each


@needs_ray
def test_seeds_and_the_lbfgs_and_vae_runners_are_identical_on_ray(cluster, cache):
    det = {"epochs": 1, "grid": {"Adam": [1e-2]}, "lbfgs": {"history_size": 5, "evaluations": 3},
           "seeds": [0, 1]}
    vae = {"epochs": 2, "checkpoints": [1, 2], "beta1": [0.9], "beta2": [0.999], "log10_lr": [-3, -2],
           "seeds": [0, 1]}                                   # one task per seed
    for name, overrides in (("logreg", {**MINI, "epochs": 1, "seeds": [0, 1, 2]}),
                            ("mlp_deterministic", det), ("vae", vae)):
        serial = experiments.run(name, overrides=overrides, cache=False)
        on_ray = experiments.run(name, overrides=overrides, cache=False, ray=True)
        assert without_time(on_ray.runs) == without_time(serial.runs), name
        assert on_ray.extra == serial.extra, name
    kept = experiments.run("vae", overrides=vae, ray=True, store=cache / "runs")
    assert without_time(kept.runs) == without_time(serial.runs)
    assert not list((cache / "runs").iterdir())                             # no state left behind
    logreg = experiments.run("logreg", overrides={**MINI, "epochs": 1, "seeds": [0, 1, 2]}, cache=False, ray=True)
    assert logreg.seeds == [0, 1, 2] and len(logreg.runs) == 12


@needs_ray
def test_a_sweep_stopped_serially_resumes_on_ray_from_the_store(cluster, cache, tmp_path, monkeypatch, capsys):
    store = tmp_path / "runs"
    original, calls = experiments.runner.train_stack, []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(experiments.runner, "train_stack", train)
        with pytest.raises(experiments.Interrupted, match="1 of 4 runs are saved in .*runs"):
            experiments.run("logreg", overrides=ONE_BY_ONE, store=store)
    assert len(list(store.glob("logreg-fast-run-*.json"))) == 1
    reference = experiments.run("logreg", overrides=ONE_BY_ONE, cache=False)
    capsys.readouterr()
    resumed = experiments.run("logreg", overrides=ONE_BY_ONE, ray=True, store=store, progress=True)
    err = capsys.readouterr().err
    assert "logreg: 1 of 4 runs already saved: resuming" in err
    assert err.count(" done (") == 3                                          # three tasks ran
    assert without_time(resumed.runs) == without_time(reference.runs)
    assert not list(store.glob("*.json"))                                     # the entry holds it all


@needs_ray
def test_the_command_line_runs_a_sweep_on_ray(cluster, cache, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        fail_here(patch)
        status = experiments.main(["run", "logreg", "--epochs", "1", "--optimizers", "Adam,Adagrad",
                                   "--lrs", "Adam=0.1,0.3", "--lrs", "Adagrad=0.3", "--seeds", "0,1",
                                   "--stack", "run", "--ray", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Adam: best lr " in captured.out and "on the mean of 2 seeds" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["logreg-fast-verdicts.md", "logreg-fast.csv", "logreg-fast.json",
                                                  "logreg-fast.png", "runs"]
    assert captured.err.count(" done (") == 6


@needs_ray
def test_cuda_on_a_ray_cluster_without_gpus_is_refused_not_left_waiting(cluster, cache):
    assert cluster.cluster_resources().get("GPU", 0) == 0
    with pytest.raises(ValueError, match="device='cuda' is not accepted: the Ray cluster has no GPU"):
        experiments.run("logreg", overrides=MINI, device="cuda", ray=True)


def test_each_task_asks_for_a_gpu_on_cuda_and_none_on_the_cpu():
    assert ray_backend.resources(torch.device("cuda")) == {"num_cpus": 1, "num_gpus": 1}
    assert ray_backend.resources(torch.device("cuda:0")) == {"num_cpus": 1, "num_gpus": 1}
    assert ray_backend.resources(torch.device("cpu")) == {"num_cpus": 1, "num_gpus": 0}
    assert ray_backend.worker_device(torch.device("cuda:0")) == "cuda"


@pytest.mark.parametrize("option", [["--ray"], ["--ray-address", "10.0.0.1:6379"]])
def test_without_ray_the_option_says_how_to_install_it_in_one_line(option, monkeypatch, capsys, cache):
    monkeypatch.setitem(sys.modules, "ray", None)                   # `import ray` fails as if absent
    try:
        status = experiments.main(["run", "logreg", "--epochs", "1", *option])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"python -m adamlib.experiments: error: argument {option[0]}: "
                                   f"Ray is not installed"), captured.err
    assert 'pip install "adamlib[cluster]"' in captured.err
    with pytest.raises(ray_backend.RayUnavailable, match=r'pip install "adamlib\[cluster\]"'):
        experiments.run("logreg", overrides={"epochs": 1}, ray=True)
    assert not cache.exists()


def test_a_bad_ray_address_or_device_is_one_line(capsys, cache):
    if not HAS_RAY:
        pytest.skip('Ray is not installed: pip install "adamlib[cluster]"')
    for argv, option in ((["--ray-address", " "], "--ray-address"), (["--ray", "--device", "cuda:1"], "--device")):
        try:
            status = experiments.main(["run", "logreg", *argv])
        except SystemExit as exit_:
            status = exit_.code
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and f"argument {option}: " in err, err
