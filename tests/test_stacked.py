"""Stacked training (adamlib.experiments.stacked): each run of a stack is the run one model
trained alone computes, the runs are independent, and a stack is the unit a sweep keeps."""
import math

import pytest
import torch
import torch.nn.functional as F

from adamlib import data as data_module
from adamlib import experiments
from adamlib.experiments import stacked
from adamlib.experiments.stacked import Setting, train_stack
from adamlib.train import seed_everything, train

MODELS = {
    "logreg": {"name": "logreg"},
    "mlp": {"name": "mlp", "hidden": [16, 8]},
    "cnn": {"name": "cnn", "in_channels": 1, "input_size": 40, "dims": 1, "channels": [4, 4, 8], "fc": 16,
            "kernel": 5},
}


def small_data():
    data = data_module.load_mnist1d(num_samples=100, dtype=torch.float64)
    return data


def build(spec, data, seed):
    seed_everything(seed)
    return experiments._build_model(spec, data, {})


def alone(spec, data, name, lr, seed, epochs=2, momentum=0.9, schedule=None):
    """The run trained by itself with adamlib's / torch's optimizer and train()."""
    model = build(spec, data, seed)
    optimizer, scheduler = experiments.make_optimizer(name, model.parameters(), lr, 0.0, schedule)
    if name == "SGDNesterov":
        for group in optimizer.param_groups:
            group["momentum"] = momentum
    history = train(model, F.cross_entropy, optimizer, data.X, data.y, epochs=epochs, batch_size=32, seed=seed,
                    progress=False, scheduler=scheduler)
    return history.epoch_loss


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(stacked.FIXED))
def test_every_run_of_a_stack_is_the_run_of_one_model_alone(model, name):
    data = small_data()
    spec = MODELS[model]
    lrs = {"SGDNesterov": [0.03, 0.1], "Adagrad": [0.03, 0.1], "RMSProp": [1e-3, 3e-3],
           "AdaDelta": [1.0, 3.0], "Adam": [3e-3, 1e-2]}[name]
    momenta = [0.5, 0.9] if name == "SGDNesterov" else [None, None]
    seeds = [0, 1]
    schedule = "inv_sqrt" if name == "Adam" else None
    settings = [[Setting(seed, lr, mu) for lr, mu in zip(lrs, momenta)] for seed in seeds]
    out = train_stack([build(spec, data, seed) for seed in seeds], settings, name, data.X, data.y,
                      epochs=2, batch_size=32, schedule=schedule)
    for s, seed in enumerate(seeds):
        for j, (lr, mu) in enumerate(zip(lrs, momenta)):
            expected = alone(spec, data, name, lr, seed, momentum=mu, schedule=schedule)
            got = out[s][j]["epoch_loss"]
            assert len(got) == 3
            for a, b in zip(got, expected):
                assert math.isclose(a, b, rel_tol=1e-11), (model, name, seed, lr, got, expected)


def test_dropout_masks_are_per_seed_and_shared_by_its_settings():
    data = small_data()
    spec = {"name": "mlp", "hidden": [16], "input_dropout": 0.2, "dropout": 0.5}
    seeds = [0, 1]
    settings = [[Setting(seed, 0.01), Setting(seed, 0.01)] for seed in seeds]
    singles = []
    for seed in seeds:
        seed_everything(seed)
        singles.append(experiments._build_model(spec, data, {}))
    out = train_stack(singles, settings, "Adam", data.X, data.y, epochs=2, batch_size=32)
    assert out[0][0]["epoch_loss"] == out[0][1]["epoch_loss"]      # same seed, same setting: same masks
    assert out[0][0]["epoch_loss"] != out[1][0]["epoch_loss"]      # another seed: other masks and order
    # dropout makes the run differ from the same seed's run without it
    plain = train_stack([build({"name": "mlp", "hidden": [16]}, data, 0)], [[Setting(0, 0.01)]], "Adam",
                        data.X, data.y, epochs=2, batch_size=32)
    assert plain[0][0]["epoch_loss"][-1] != out[0][0]["epoch_loss"][-1]


def test_a_diverging_run_leaves_the_others_as_they_are():
    data = small_data()
    spec = MODELS["mlp"]
    both = train_stack([build(spec, data, 0)], [[Setting(0, 1e6, 0.9), Setting(0, 0.05, 0.9)]], "SGDNesterov",
                       data.X, data.y, epochs=2, batch_size=32)
    one = train_stack([build(spec, data, 0)], [[Setting(0, 0.05, 0.9)]], "SGDNesterov",
                      data.X, data.y, epochs=2, batch_size=32)
    assert any(v is None or v > 1e3 for v in both[0][0]["epoch_loss"][1:])
    for a, b in zip(both[0][1]["epoch_loss"], one[0][0]["epoch_loss"]):
        assert math.isclose(a, b, rel_tol=1e-11)


def test_the_monitor_gives_each_layers_median_and_the_fractions_below_10_and_100_eps():
    data = small_data()
    spec = MODELS["cnn"]
    out = train_stack([build(spec, data, 0)], [[Setting(0, 1e-3), Setting(0, 1e-2)]], "Adam", data.X, data.y,
                      epochs=2, batch_size=32, monitor=True)
    monitor = out[0][0]["monitor"]
    assert len(monitor) == 3 and monitor[0] == {}
    layers = monitor[-1]
    assert set(layers) == set(build(spec, data, 0).layers())
    for entry in layers.values():
        assert entry["median"] >= 0
        assert 0.0 <= entry["below_10eps"] <= entry["below_100eps"] <= 1.0
    assert max(entry["median"] for entry in layers.values()) > 1e-6
    assert out[0][0]["monitor"] != out[0][1]["monitor"]


def test_bad_input_is_refused_with_the_parameter_named():
    data = small_data()
    model = build(MODELS["logreg"], data, 0)
    with pytest.raises(ValueError, match="optimizer='LBFGS' is not accepted"):
        train_stack([model], [[Setting(0, 0.1)]], "LBFGS", data.X, data.y, epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="settings is not accepted"):
        train_stack([model], [[Setting(0, 0.1)], [Setting(1, 0.1)]], "Adam", data.X, data.y, epochs=1,
                    batch_size=32)
    with pytest.raises(ValueError, match="schedule='cosine' is not accepted"):
        train_stack([model], [[Setting(0, 0.1)]], "Adam", data.X, data.y, epochs=1, batch_size=32,
                    schedule="cosine")
    with pytest.raises(ValueError, match="stack='all' is not accepted"):
        experiments.run("logreg", cache=False, overrides={"stack": "all", "epochs": 1})
    with pytest.raises(ValueError, match="momentum=.* is not accepted"):
        experiments.run("logreg", cache=False, overrides={"momentum": {"SGDNesterov": [1.5]}, "epochs": 1})


SMALL = {"epochs": 2, "seeds": [0, 1], "grid": {"SGDNesterov": [0.1, 0.3], "Adam": [0.3]},
         "momentum": {"SGDNesterov": [0.5, 0.9]}}


def test_a_stack_of_the_whole_grid_equals_each_run_alone_in_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    by_optimizer = experiments.run("logreg", overrides={**SMALL, "stack": "optimizer"})
    by_run = experiments.run("logreg", overrides={**SMALL, "stack": "run"})
    key = lambda r: (r["optimizer"], r["lr"], r.get("momentum"), r["seed"])
    assert [key(r) for r in by_optimizer.runs] == [key(r) for r in by_run.runs]
    assert [key(r) for r in by_run.runs] == [
        ("SGDNesterov", lr, mu, seed) for mu in (0.5, 0.9) for lr in (0.1, 0.3) for seed in (0, 1)] + [
        ("Adam", 0.3, None, seed) for seed in (0, 1)]
    for a, b in zip(by_optimizer.runs, by_run.runs):
        for x, y in zip(a["epoch_loss"], b["epoch_loss"]):
            assert math.isclose(x, y, rel_tol=1e-12)
    assert by_run.best_setting("SGDNesterov") == by_optimizer.best_setting("SGDNesterov")
    assert by_run.best_momentum("Adam") is None


def test_an_interrupted_sweep_keeps_its_finished_stacks_and_computes_only_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMLIB_CACHE", str(tmp_path))
    original, calls = experiments.runner.train_stack, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    overrides = {**SMALL, "stack": "optimizer"}
    monkeypatch.setattr(experiments.runner, "train_stack", failing)
    with pytest.raises(experiments.Interrupted, match="8 of 10 runs are saved"):
        experiments.run("logreg", overrides=overrides)
    monkeypatch.setattr(experiments.runner, "train_stack", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    calls.clear()
    result = experiments.run("logreg", overrides=overrides)
    assert len(calls) == 1 and len(result.runs) == 10         # only Adam's stack was computed
    whole = experiments.run("logreg", cache=False, overrides=overrides)
    assert [r["epoch_loss"] for r in result.runs] == [r["epoch_loss"] for r in whole.runs]
