"""adamlib.train: counts, seeding, records and argument checks of the training loop."""
import math

import pytest
import torch
import torch.nn.functional as F

from adamlib import SGD
from adamlib.train import History, seed_everything, train, updates_per_epoch


def make_problem(m=50, n=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, n, generator=g)
    y = torch.randint(0, classes, (m,), generator=g)
    return X, y


def run(batch_size, epochs=2, seed=0, lr=0.1, shuffle=True, record="iteration", m=50):
    X, y = make_problem(m=m)
    torch.manual_seed(0)
    model = torch.nn.Linear(X.shape[1], 3)
    return train(model, F.cross_entropy, SGD(model.parameters(), lr=lr), X, y, epochs=epochs,
                 batch_size=batch_size, seed=seed, shuffle=shuffle, record=record)


@pytest.mark.parametrize("m, b, expected", [(1797, 1797, 1), (1797, 128, 15), (1797, 32, 57),
                                            (1797, 1, 1797), (50, 7, 8), (50, 50, 1)])
def test_updates_per_epoch_is_ceil_m_over_b(m, b, expected):
    assert updates_per_epoch(m, b) == expected == math.ceil(m / b)


@pytest.mark.parametrize("b", [1, 7, 16, 50])
def test_counts_of_updates_and_examples(b):
    h = run(b, epochs=3)
    per_epoch = math.ceil(50 / b)
    assert isinstance(h, History)
    assert h.updates_per_epoch == per_epoch
    assert len(h.iteration_loss) == len(h.iteration_examples) == 3 * per_epoch
    assert h.epoch == [0, 1, 2, 3]
    assert h.updates == [0, per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert h.examples == [0, 50, 100, 150]
    assert h.iteration_examples[per_epoch - 1] == 50 and h.iteration_examples[-1] == 150
    # the last mini-batch of an epoch holds the leftover m - (ceil(m/b) - 1) b examples
    sizes = [h.iteration_examples[0]] + [
        h.iteration_examples[i] - h.iteration_examples[i - 1] for i in range(1, per_epoch)]
    assert sizes == [b] * (per_epoch - 1) + [50 - (per_epoch - 1) * b]
    assert len(h.epoch_loss) == len(h.time) == 4
    assert h.time[0] == 0.0 and all(t1 >= t0 for t0, t1 in zip(h.time, h.time[1:]))
    assert h.seconds_per_update > 0 and h.seconds_per_epoch > 0


def test_same_seed_gives_identical_histories_and_parameters():
    a, b = run(7, seed=3), run(7, seed=3)
    assert a.same_numbers(b)
    assert a.iteration_loss == b.iteration_loss and a.epoch_loss == b.epoch_loss


def test_other_seed_changes_the_order_but_not_the_start():
    a, b = run(7, seed=3), run(7, seed=4)
    assert a.epoch_loss[0] == b.epoch_loss[0]
    assert a.iteration_loss != b.iteration_loss


def test_batch_order_ignores_the_global_generator():
    X, y = make_problem()
    histories = []
    for global_seed in (0, 123):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        torch.manual_seed(global_seed)  # must not matter: the order has its own generator
        histories.append(train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y,
                               epochs=2, batch_size=7, seed=0))
    assert histories[0].same_numbers(histories[1])


def test_full_batch_equals_hand_written_gradient_descent():
    X, y = make_problem()
    h = run(50, epochs=3, lr=0.5)
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    costs = []
    for _ in range(3):
        model.zero_grad()
        loss = F.cross_entropy(model(X), y)
        costs.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    assert h.iteration_loss == pytest.approx(costs, rel=1e-6)
    assert h.epoch_loss[:3] == pytest.approx(costs, rel=1e-6)
    assert h.final_loss < h.epoch_loss[0]


def test_no_shuffle_visits_examples_in_order():
    X, y = make_problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    h = train(model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.0), X, y,
              epochs=1, batch_size=10, shuffle=False)
    expected = [F.cross_entropy(model(X[i:i + 10]), y[i:i + 10]).item() for i in range(0, 50, 10)]
    assert h.iteration_loss == pytest.approx(expected, rel=1e-6)


def test_record_epoch_skips_per_update_costs():
    h = run(7, record="epoch")
    assert h.iteration_loss == [] and h.iteration_examples == []
    assert h.epoch_loss == run(7).epoch_loss  # recording does not change the run


def test_zero_epochs_only_evaluates():
    h = run(7, epochs=0)
    assert h.epoch == [0] and h.updates == [0] and len(h.epoch_loss) == 1
    assert math.isnan(h.seconds_per_update) and math.isnan(h.seconds_per_epoch)


def test_progress_bar_only_when_asked(capsys):
    # default (progress=None): quiet, as stderr is not a terminal under pytest
    X, y = make_problem()
    model = torch.nn.Linear(5, 3)
    train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=25)
    assert capsys.readouterr().err == ""
    train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=25,
          progress=True)
    assert "update" in capsys.readouterr().err


def test_seed_everything_repeats_initialisation():
    seed_everything(5)
    a = torch.nn.Linear(4, 2).weight.detach().clone()
    seed_everything(5)
    b = torch.nn.Linear(4, 2).weight.detach().clone()
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"^seed=-1 .*expected"):
        seed_everything(-1)
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 51}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"seed": -3}, "seed"),
        ({"record": "step"}, "record"),
        ({"shuffle": "no"}, "shuffle"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    X, y = make_problem()
    model = torch.nn.Linear(5, 3)
    args = {"epochs": 1, "batch_size": 10, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name}=.*expected"):
        train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, **args)


def test_bad_objects_raise_value_error():
    X, y = make_problem()
    model = torch.nn.Linear(5, 3)
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="^model="):
        train(lambda x: x, F.cross_entropy, opt, X, y, epochs=1, batch_size=10)
    with pytest.raises(ValueError, match="^optimizer="):
        train(model, F.cross_entropy, object(), X, y, epochs=1, batch_size=10)
    with pytest.raises(ValueError, match="^y has 49 examples"):
        train(model, F.cross_entropy, opt, X, y[:-1], epochs=1, batch_size=10)


def test_chunked_evaluation_matches_whole():
    a = run(10)
    X, y = make_problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    b = train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, epochs=2,
              batch_size=10, eval_batch_size=16)
    assert b.epoch_loss == pytest.approx(a.epoch_loss, rel=1e-6)


def test_scheduler_steps_after_every_update():
    X, y = make_problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    opt = SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / math.sqrt(k + 1))
    train(model, F.cross_entropy, opt, X, y, epochs=2, batch_size=10, scheduler=sched)
    # 2 epochs x 5 updates: the lr now is alpha / sqrt(11), the one the 11th update would use
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / math.sqrt(11))
    with pytest.raises(ValueError, match="^scheduler="):
        train(model, F.cross_entropy, opt, X, y, epochs=1, batch_size=10, scheduler=object())


def test_on_epoch_end_sees_every_epoch_and_changes_nothing():
    seen = []
    X, y = make_problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    h = train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=7,
              on_epoch_end=lambda epoch, history: seen.append((epoch, history.epoch_loss[-1])))
    assert [e for e, _ in seen] == [0, 1, 2] and [c for _, c in seen] == h.epoch_loss
    assert h.same_numbers(run(7))


# --- the full-data cost in slices -------------------------------------------------------------

def _mlp64(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                               torch.nn.Linear(16, 3)).double()


@pytest.mark.parametrize("eval_batch_size", [1, 7, 100, 1002, 1003, 5000])
def test_batched_full_loss_equals_the_one_shot_value_in_float64(eval_batch_size):
    from adamlib.train import full_loss

    g = torch.Generator().manual_seed(1)
    X = torch.randn(1003, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (1003,), generator=g)
    model = _mlp64()
    whole = full_loss(model, F.cross_entropy, X, y)
    sliced = full_loss(model, F.cross_entropy, X, y, eval_batch_size)
    assert abs(sliced - whole) <= 1e-12 * abs(whole)
    assert model.training  # evaluation switches dropout off and back on


def test_the_model_never_sees_more_than_eval_batch_size_rows_when_evaluating():
    # memory is hard to measure in a test; what bounds it is the rows per forward pass
    X, y = make_problem(m=50)
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    rows = {True: [], False: []}   # grad enabled (training) -> rows per call
    model.register_forward_pre_hook(
        lambda module, args: rows[torch.is_grad_enabled()].append(args[0].shape[0]))
    h = train(model, F.cross_entropy, SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=10,
              eval_batch_size=16)
    assert max(rows[False]) == 16 and sum(rows[False]) == 3 * 50   # epochs 0, 1, 2 in slices
    assert set(rows[True]) == {10}
    # and the sliced costs are the one-shot ones
    assert h.epoch_loss == pytest.approx(run(10).epoch_loss, rel=1e-6)
