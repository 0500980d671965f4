"""The runners: data, models and the training of each kind of experiment's runs."""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F

from .. import data as data_module
from .. import models
from ..train import seed_everything, train
from .optimizers import make_optimizer
from .stacked import Setting, train_stack
from .store import _Grid, _Job

def _dtype(cfg: dict) -> torch.dtype:
    name = cfg.get("dtype", "float32")
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype={name!r} is not accepted: expected 'float32' or 'float64'")
    return getattr(torch, name)


def _load_data(spec: dict, device, dtype: torch.dtype = torch.float32) -> data_module.Dataset:
    spec = dict(spec, device=device, dtype=dtype)
    loader = spec.pop("loader")
    binary = spec.pop("binary", False)
    if loader == "digits":
        data = data_module.load_digits(device=device, dtype=dtype, standardize=spec.get("standardize", not binary))
    elif loader == "mnist1d":
        data = data_module.load_mnist1d(**spec)
    elif loader == "sparse_bow":
        data = data_module.make_sparse_bow(**spec)
    elif loader == "mnist":
        data = data_module.load_mnist(flatten=True, **spec)
    elif loader == "cifar10":
        data = data_module.load_cifar10(**spec)
    elif loader == "imdb":
        data = data_module.load_imdb(**spec)
    else:
        raise ValueError(f"loader={loader!r} is not accepted")
    return data_module.binarize(data) if binary else data


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Create tensors in ``dtype``: the initial weights are drawn in it, not cast to it.

    Drawn in float32 and cast, the weights of one seed differ in their last float32 bit between
    torch's kernel paths (its generic kernels vs AVX2/AVX-512), and training amplifies that.
    """
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _build_model(spec: dict, data: data_module.Dataset, overrides: dict):
    """The model of ``spec`` for ``data``, its parameters drawn in ``data.X``'s dtype."""
    spec = {**spec, **overrides}
    name = spec.pop("name")
    with _default_dtype(data.X.dtype):
        if name == "cnn":
            if data.X.ndim == 2 and spec.get("dims") == 2:  # flat images: restore (C, H, W)
                raise ValueError("the 2-D CNN needs images of shape (m, C, H, W)")
            return models.CNN(n_classes=data.n_classes, **spec)
        if name == "mlp":
            spec["hidden"] = tuple(spec.get("hidden", (1000, 1000)))
        return models.build(name, n_features=data.n_features, n_classes=data.n_classes, **spec)


def _median_sqrt_vhat(model, optimizer) -> dict[str, float]:
    """Per layer: the median over its weights of sqrt(v_hat_t) = sqrt(v_t / (1 - beta2^t))."""
    out = {}
    beta2 = optimizer.param_groups[0]["betas"][1]
    for layer, params in model.layers().items():
        weight = params[0]
        state = optimizer.state.get(weight, {})
        if "exp_avg_sq" not in state:
            continue
        t = float(state["step"])
        out[layer] = float((state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt().median())
    return out


# ---------------------------------------------------------------------------------------------
# The runners
# ---------------------------------------------------------------------------------------------

def _lr_label(variant: str, optimizer: str, lr: float, seed: int | None = None) -> str:
    return f"{variant + ' ' if variant else ''}{optimizer} lr {lr:g}" + ("" if seed is None else f" seed {seed}")


def _per_seed(cfg: dict) -> list[tuple[int | None, dict]]:
    """``(seed, configuration of that seed)`` for each seed of ``cfg``.

    One seed (no ``seeds`` entry): ``[(None, cfg)]``, ``cfg`` itself, so that a run's spec, key
    and result are those of before seeds existed. Several: each seed's configuration is
    ``cfg`` with ``seed`` set to it and no ``seeds``: the spec of a run of seed s is the spec of
    the same run in a single-seed sweep with ``seed=s``, so the two share their saved runs.
    """
    if cfg.get("seeds") is None:
        return [(None, cfg)]
    rest = {k: v for k, v in cfg.items() if k != "seeds"}
    return [(seed, {**rest, "seed": seed}) for seed in cfg["seeds"]]


def _momenta(cfg: dict, optimizer_name: str) -> list[float | None]:
    """The momenta searched for ``optimizer_name``: SGD-Nesterov's ``cfg["momentum"]`` list
    (default [0.9], torch's usual value); [None] for the others, which have none."""
    if optimizer_name != "SGDNesterov":
        return [None]
    return [float(mu) for mu in (cfg.get("momentum") or {}).get("SGDNesterov", [0.9])]


#: How a classification grid's runs are grouped into stacks (:mod:`.stacked`), the unit that
#: is computed and saved as one file: "optimizer" (all of one optimizer's settings and seeds:
#: fastest on a CPU, what the fast configurations use), "seed" (one seed's settings) or "run"
#: (each run alone: every run is kept the moment it ends, what a long full sweep wants).
STACKS = ("optimizer", "seed", "run")


def _run_classify(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    """Every (variant, optimizer, step size, momentum, seed) of ``cfg``, trained in stacks.

    A stack's runs are independent and each is the run one model trained alone computes (to
    rounding: see :mod:`.stacked`); a run of seed ``s`` starts from the model built after
    ``seed_everything(s)``, sees mini-batches in the order of seed ``s`` and seed ``s``'s
    dropout masks, whatever its step size.
    """
    how = cfg.get("stack") or "run"
    if how not in STACKS:
        raise ValueError(f"stack={how!r} is not accepted: expected one of {', '.join(map(repr, STACKS))}")
    data = _load_data(cfg["data"], device, _dtype(cfg))
    several = cfg.get("seeds") is not None
    seeds = [int(s) for s in cfg["seeds"]] if several else [cfg["seed"]]
    jobs = []
    for variant, overrides in cfg["variants"].items():
        for optimizer_name, lrs in cfg["grid"].items():
            pairs = [(lr, mu) for mu in _momenta(cfg, optimizer_name) for lr in lrs]
            if how == "optimizer":
                groups = [(seeds, pairs)]
            elif how == "seed":
                groups = [([seed], pairs) for seed in seeds]
            else:
                groups = [([seed], [pair]) for pair in pairs for seed in seeds]
            for group, settings in groups:
                # the spec of this job alone: its file's key. One seed: "seed" (and no "seeds"),
                # so that a single-seed sweep and a sweep over seeds share their runs' files.
                spec = {k: v for k, v in cfg.items() if k not in ("seeds", "seed", "momentum")}
                spec.update({"variants": {variant: overrides},
                             "grid": {optimizer_name: list(dict.fromkeys(lr for lr, _ in settings))}})
                if optimizer_name == "SGDNesterov":
                    spec["momentum"] = {"SGDNesterov": list(dict.fromkeys(mu for _, mu in settings))}
                if len(group) == 1:
                    spec["seed"] = group[0]
                else:
                    spec["seeds"] = list(group)

                def compute(advance, variant=variant, overrides=overrides, optimizer_name=optimizer_name,
                            settings=settings, group=group):
                    singles = []
                    for seed in group:
                        seed_everything(seed)   # theta_0 of seed s: the model built right after
                        singles.append(_build_model(cfg["model"], data, overrides).to(device))
                    trained = train_stack(
                        singles, [[Setting(seed, lr, mu) for lr, mu in settings] for seed in group],
                        optimizer_name, data.X, data.y, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                        weight_decay=cfg.get("weight_decay", 0.0),
                        schedule=cfg.get("schedule", {}).get(optimizer_name), record=cfg.get("record", "epoch"),
                        eval_batch_size=cfg.get("eval_batch_size"), monitor=bool(cfg.get("monitor")),
                        on_epoch_end=lambda epoch: advance(1))
                    runs = []  # ordered by setting, then seed, as a run-by-run sweep orders them
                    for j, (lr, mu) in enumerate(settings):
                        for seed, row in zip(group, trained):
                            run = {"variant": variant, "optimizer": optimizer_name, "lr": lr}
                            if mu is not None:
                                run["momentum"] = mu
                            if len(group) > 1:
                                run["seed"] = seed
                            runs.append({**run, **row[j]})
                    return runs

                if len(settings) == 1 and len(group) == 1:
                    (lr, mu), = settings
                    label = _lr_label(variant, optimizer_name, lr, group[0] if several else None)
                    if mu is not None:
                        label += f" momentum {mu:g}"
                else:
                    label = (f"{variant + ' ' if variant else ''}{optimizer_name} x {len(settings)} settings"
                             + (f" x {len(group)} seeds" if len(group) > 1 else
                                (f" seed {group[0]}" if several else "")))
                jobs.append(_Job(label, spec, cfg["epochs"], compute,
                                 {"seed": group[0]} if several and len(group) == 1 else {},
                                 many=True, size=len(settings) * len(group)))
    runs = grid.run_jobs(jobs)
    return runs, {"m": data.m, "n_features": data.n_features,
                  "parameters": models.parameter_count(_build_model(cfg["model"], data, {}))}


def _run_deterministic(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    """Adam (mini-batches) vs full-batch L-BFGS on cross-entropy + (l2/2)||theta||^2, no dropout."""
    data = _load_data(cfg["data"], device, _dtype(cfg))
    l2 = cfg["l2"]
    eval_batch_size = cfg.get("eval_batch_size")
    m = data.m

    def penalty(model):
        return 0.5 * l2 * sum(p.pow(2).sum() for p in model.parameters())

    def objective(model):
        def loss_fn(output, target):
            penalty = sum(p.pow(2).sum() for p in model.parameters())
            return F.cross_entropy(output, target) + 0.5 * l2 * penalty
        return loss_fn

    jobs = []
    for lr, (seed, cfg_seed) in ((lr, s) for lr in cfg["grid"].get("Adam", []) for s in _per_seed(cfg)):
        def compute(advance, lr=lr, seed=seed, cfg=cfg_seed):
            seed_everything(cfg["seed"])
            model = _build_model(cfg["model"], data, {}).to(device)
            optimizer, _ = make_optimizer("Adam", model.parameters(), lr)
            h = train(model, objective(model), optimizer, data.X, data.y, epochs=cfg["epochs"],
                      batch_size=cfg["batch_size"], seed=cfg["seed"], record="epoch",
                      eval_batch_size=eval_batch_size, progress=False,
                      on_epoch_end=lambda epoch, history: advance(1) if epoch > 0 else None)
            return {"variant": "", "optimizer": "Adam", "lr": lr, **({} if seed is None else {"seed": seed}),
                    "epoch_loss": h.epoch_loss, "time": h.time, "epochs": h.epoch}
        jobs.append(_Job(_lr_label("", "Adam", lr, seed), {**cfg_seed, "grid": {"Adam": [lr]}, "lbfgs": None},
                         cfg["epochs"], compute, {} if seed is None else {"seed": seed}))

    # L-BFGS: one "epoch" = one evaluation of the full-data cost and gradient, the unit of
    # work an epoch of mini-batch gradients also costs; line-search evaluations count too. One
    # step() call runs the whole budget; the closure records every evaluation, and the curve is
    # the lowest cost found so far (trial points of a line search may be worse than the iterate).
    def compute_lbfgs(advance, seed=None, cfg=cfg):
        seed_everything(cfg["seed"])
        model = _build_model(cfg["model"], data, {}).to(device)
        loss_fn = objective(model)
        budget = cfg["lbfgs"]["evaluations"]
        lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=10 * budget, max_eval=budget,
                                  history_size=cfg["lbfgs"]["history_size"], line_search_fn="strong_wolfe",
                                  tolerance_grad=0.0, tolerance_change=0.0)
        seen: list[float] = []
        stamps: list[float] = []
        start = time.perf_counter()

        def closure():
            lbfgs.zero_grad()
            if eval_batch_size is None or eval_batch_size >= m:
                loss = loss_fn(model(data.X), data.y)
                loss.backward()
            else:
                # The same full-batch objective and gradient, accumulated over slices: the mean
                # cross-entropy is sum_b (|b| / m) mean_b, and backward() adds up the gradients.
                loss = torch.zeros((), dtype=data.X.dtype, device=device)
                for first in range(0, m, eval_batch_size):
                    xb, yb = data.X[first:first + eval_batch_size], data.y[first:first + eval_batch_size]
                    part = F.cross_entropy(model(xb), yb) * (len(xb) / m)
                    part.backward()
                    loss += part.detach()
                part = penalty(model)
                part.backward()
                loss += part.detach()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seen.append(float(loss.detach()))
            stamps.append(time.perf_counter() - start)
            advance(1)
            return loss

        lbfgs.step(closure)
        losses, times, epochs = [seen[0]], [0.0], [0]
        for k in range(1, len(seen)):
            losses.append(min(losses[-1], seen[k]))
            times.append(stamps[k])
            epochs.append(k)
        return {"variant": "", "optimizer": "L-BFGS (full batch)", "lr": 1.0,
                **({} if seed is None else {"seed": seed}), "epoch_loss": losses,
                "time": times, "epochs": epochs}

    if cfg.get("lbfgs") is not None:
        for seed, cfg_seed in _per_seed(cfg):
            jobs.append(_Job("L-BFGS (full batch)" + ("" if seed is None else f" seed {seed}"),
                             {**cfg_seed, "grid": {}}, cfg["lbfgs"]["evaluations"],
                             lambda advance, seed=seed, cfg_seed=cfg_seed: compute_lbfgs(advance, seed, cfg_seed),
                             {} if seed is None else {"seed": seed}))
    runs = grid.run_jobs(jobs)
    return runs, {"m": data.m, "parameters": models.parameter_count(_build_model(cfg["model"], data, {}))}


def grid_adam_step(params, grads, state, lr, beta1, beta2, bias_correction, eps: float) -> None:
    """One Adam step for K stacked models at once, each with its own hyper-parameters.

    ``lr``, ``beta1``, ``beta2`` are float tensors of shape ``(K,)``, ``bias_correction`` a
    bool tensor ``(K,)``; every parameter has a leading dimension ``K``. Model ``k`` takes
    exactly the step of :class:`adamlib.Adam` (``bias_correction=False`` sets both
    corrections to 1). A model whose parameters became non-finite is left as it is.
    """
    state["step"] = state.get("step", 0) + 1
    t = state["step"]
    one = torch.ones_like(lr)
    bc1 = torch.where(bias_correction, 1 - beta1 ** t, one)
    bc2 = torch.where(bias_correction, 1 - beta2 ** t, one)
    for p, g in zip(params, grads):
        shape = (-1,) + (1,) * (p.ndim - 1)
        m = state.setdefault(("m", id(p)), torch.zeros_like(p))
        v = state.setdefault(("v", id(p)), torch.zeros_like(p))
        m.mul_(beta1.view(shape)).add_((1 - beta1).view(shape) * g)
        v.mul_(beta2.view(shape)).add_((1 - beta2).view(shape) * g * g)
        denom = (v / bc2.view(shape)).sqrt() + eps
        p.sub_((lr / bc1).view(shape) * m / denom)


def marginal_entropy(X: torch.Tensor) -> float:
    """The loss of a collapsed VAE, in nats: the posterior is the prior (KL 0) and the decoder
    outputs each pixel's marginal probability p_j, so the loss is
    sum_j -[p_j log p_j + (1 - p_j) log(1 - p_j)] over the binary data ``X`` (m x d); a pixel
    that is always 0 or always 1 adds 0."""
    p = X.mean(0).double()
    return float((-(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))).sum())


def _run_vae_grid(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    data = _load_data(cfg["data"], device, _dtype(cfg))
    grid.total = 1  # one joint run of all the models
    X = data.X
    points = [(b1, b2, lg, bc) for b1 in cfg["beta1"] for b2 in cfg["beta2"]
              for lg in cfg["log10_lr"] for bc in (True, False)]
    K = len(points)
    tensor = lambda values, dtype=X.dtype: torch.tensor(values, dtype=dtype, device=device)
    beta1 = tensor([g[0] for g in points])
    beta2 = tensor([g[1] for g in points])
    lr = tensor([10.0 ** g[2] for g in points])
    bias_correction = tensor([g[3] for g in points], dtype=torch.bool)

    seed_everything(cfg["seed"])
    with _default_dtype(X.dtype):
        single = models.VAE(data.n_features, **cfg["model"])
        model = models.BatchedVAE(single, K).to(device)
    params = list(model.parameters())
    state: dict = {}
    batch_order = torch.Generator().manual_seed(cfg["seed"])
    noise_gen = torch.Generator(device=device).manual_seed(cfg["seed"] + 1)
    eval_noise = torch.randn(len(X), single.latent, generator=torch.Generator(device=device)
                             .manual_seed(cfg["seed"] + 2), device=device, dtype=X.dtype)
    eval_batch_size = cfg.get("eval_batch_size")

    def vae_losses(output, x):
        return models.vae_loss(output, x.unsqueeze(0).expand(K, *x.shape))

    @torch.no_grad()
    def evaluate() -> list[float]:
        # the negative ELBO on the whole set with one fixed noise draw, the same for every model
        if eval_batch_size is None or eval_batch_size >= len(X):
            return vae_losses(model(X, eval_noise), X).tolist()
        # in slices: every model's activations for the whole set at once take K times the memory
        # of one model's (34 GB for the full grid on MNIST)
        total = torch.zeros(K, dtype=X.dtype, device=device)
        for first in range(0, len(X), eval_batch_size):
            xb = X[first:first + eval_batch_size]
            total += vae_losses(model(xb, eval_noise[first:first + eval_batch_size]), xb) * len(xb)
        return (total / len(X)).tolist()

    # the whole-set loss only at the checkpoint epochs: evaluating 60 models on every example
    # costs as much as an epoch of updates
    checkpoints = sorted(set(cfg["checkpoints"]) | {cfg["epochs"]})
    grid.unsaved_note = (f"the {K} models' state is saved after each evaluated epoch, "
                         f"{', '.join(str(c) for c in checkpoints if c < cfg['epochs']) or 'none before the last'}")
    saved = grid.load_state()
    if saved is not None:
        # resume after the last evaluated epoch: weights, Adam's moments and both generators as
        # they were then, so the rest of the run is the one an uninterrupted run computes
        with torch.no_grad():
            for p, value in zip(params, saved["params"]):
                p.copy_(value)
        state["step"] = saved["step"]
        for p, m, v in zip(params, saved["exp_avg"], saved["exp_avg_sq"]):
            state[("m", id(p))], state[("v", id(p))] = m.to(device), v.to(device)
        batch_order.set_state(saved["batch_order"])
        noise_gen.set_state(saved["noise_gen"])
        curves, times, epochs, seconds = saved["curves"], saved["times"], saved["epochs"], saved["seconds"]
        first_epoch = saved["epoch"] + 1
        grid.state_note = f"the state of its {K} models after epoch {saved['epoch']} of {cfg['epochs']}"
    else:
        curves = [evaluate()]
        times = [0.0]
        epochs = [0]
        seconds = 0.0
        first_epoch = 1
    progress = grid.progress
    progress.plan([cfg["epochs"]], [False], initial=first_epoch - 1)
    progress.start_run(0, f"{K} models")
    for epoch in range(first_epoch, cfg["epochs"] + 1):
        order = torch.randperm(len(X), generator=batch_order).to(device)
        start = time.perf_counter()
        for first in range(0, len(X), cfg["batch_size"]):
            xb = X[order[first:first + cfg["batch_size"]]]
            noise = torch.randn(len(xb), single.latent, generator=noise_gen, device=device, dtype=X.dtype)
            losses = vae_losses(model(xb, noise), xb)
            # the models are independent: the gradient of the sum is each model's own gradient
            grads = torch.autograd.grad(torch.nan_to_num(losses, nan=0.0, posinf=0.0).sum(), params)
            with torch.no_grad():
                grid_adam_step(params, grads, state, lr, beta1, beta2, bias_correction, cfg["eps"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        progress.advance(1)
        if epoch in checkpoints:
            curves.append(evaluate())
            times.append(seconds)
            epochs.append(epoch)
            finite = [c for c in curves[-1] if math.isfinite(c)]
            progress.note(f"epoch {epoch}/{cfg['epochs']} of {K} models, best cost "
                          f"{min(finite) if finite else math.nan:.4g}")
            if epoch < cfg["epochs"]:
                grid.save_state({
                    "epoch": epoch, "params": [p.detach().cpu() for p in params], "step": state["step"],
                    "exp_avg": [state[("m", id(p))].cpu() for p in params],
                    "exp_avg_sq": [state[("v", id(p))].cpu() for p in params],
                    "batch_order": batch_order.get_state(), "noise_gen": noise_gen.get_state(),
                    "curves": curves, "times": times, "epochs": epochs, "seconds": seconds},
                    note=f"the state of its {K} models after epoch {epoch} of {cfg['epochs']}")
    runs = []
    for k, (b1, b2, lg, bc) in enumerate(points):
        runs.append({"variant": "bias correction" if bc else "no bias correction",
                     "optimizer": f"beta1={b1}, beta2={b2}", "lr": 10.0 ** lg, "beta1": b1, "beta2": b2,
                     "log10_lr": lg, "bias_correction": bc,
                     "epoch_loss": [c[k] for c in curves], "time": times, "epochs": epochs})
    grid.saved = 1
    return runs, {"m": data.m, "K": K, "parameters_per_model": models.parameter_count(single),
                  "marginal_entropy": marginal_entropy(X)}


def _run_vae_seeds(cfg: dict, device, grid: _Grid) -> tuple[list[dict], dict]:
    """The VAE grid once per seed (its models train jointly, from one seed).

    One seed: :func:`_run_vae_grid` itself. Several: each seed's joint run in turn, kept as it
    finishes (``NAME-MODE-run-KEY.json``, ``KEY`` that of the single-seed experiment with that
    seed, whose saved state it also resumes from), every run with its ``seed``.
    """
    if cfg.get("seeds") is None:
        return _run_vae_grid(cfg, device, grid)
    from .progress import _Progress
    from .store import cache_key

    seeds = _per_seed(cfg)
    grid.total, grid.saved = len(seeds), 0
    runs, extra = [], {}
    for index, (seed, cfg_seed) in enumerate(seeds):
        saved = grid._read_run(cfg_seed)
        if saved is None:
            sub = _Grid(grid.name, grid.mode, grid.device,
                        cache_key(grid.name, cfg_seed, grid.mode, grid.device, grid.key_extra),
                        grid.key_extra, grid.folder, _Progress(f"{grid.name} seed {seed}", grid.progress.style))
            grid.state_note = None
            try:
                seed_runs, seed_extra = _run_vae_grid(cfg_seed, device, sub)
            except BaseException:
                done = f"{index} of {len(seeds)} seeds' grids"
                if sub.state_note is not None:
                    grid.state_note = f"{done}, and for seed {seed} {sub.state_note},"
                elif index:
                    grid.state_note = done
                else:
                    grid.unsaved_note = sub.unsaved_note
                raise
            finally:
                sub.progress.close()
            saved = {"runs": seed_runs, "extra": seed_extra}
            grid._write_run(cfg_seed, saved)
            sub.discard_state()  # the seed's grid is kept whole now
        grid.saved += 1
        runs += [{**r, "seed": seed} for r in saved["runs"]]
        extra = saved["extra"]
    return runs, extra


_RUNNERS = {"classify": _run_classify, "deterministic": _run_deterministic, "vae_grid": _run_vae_seeds}
