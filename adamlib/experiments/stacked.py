"""Many runs of one classifier trained at once, as one stacked model.

A grid search trains the same small model many times: every step size (and momentum) of an
optimizer, for every seed. One at a time, a small model spends most of each update in
Python and in launching tiny kernels. Here the runs of one optimizer are *stacked*: every
parameter gets two leading dimensions ``(S, n)``, ``S`` seeds by ``n`` settings (step size,
momentum) per seed, and one forward/backward pass computes every run's mini-batch cost
(batched matrix products; grouped convolutions). The runs stay independent: the gradient of
the sum of their costs is each run's own gradient, and the optimizers' updates are
element-wise with per-run hyper-parameters.

What a run of seed ``s`` sees, as the paper's protocol asks (the same for every setting of
one seed, different across seeds):

* ``theta_0``: the weights a model built right after ``seed_everything(s)`` has (the model
  of :func:`adamlib.experiments.runner._build_model`);
* the mini-batch order: ``torch.randperm(m)`` per epoch from a generator seeded with ``s``,
  as :func:`adamlib.train.train` draws it;
* the dropout masks: drawn per mini-batch from a generator seeded with ``s + 1``, one mask per
  seed shared by all its settings.

The update rules are torch's (``weight_decay`` added to the gradient, as ``torch.optim`` does):

* SGD with Nesterov momentum ``mu``: ``b <- mu b + g``, ``theta <- theta - alpha (g + mu b)``;
* Adagrad: ``s <- s + g^2``, ``theta <- theta - alpha g / (sqrt(s) + 1e-10)``;
* RMSProp: ``s <- 0.99 s + 0.01 g^2``, ``theta <- theta - alpha g / (sqrt(s) + 1e-8)``;
* AdaDelta (rho 0.95, eps 1e-6): ``s <- rho s + (1 - rho) g^2``,
  ``d = sqrt(u + eps) / sqrt(s + eps) g``, ``u <- rho u + (1 - rho) d^2``, ``theta <- theta - alpha d``;
* Adam (0.9, 0.999, 1e-8): ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g^2``,
  ``theta <- theta - alpha_t m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1^t)``,
  ``v_hat = v / (1 - beta2^t)``; ``alpha_t = alpha / sqrt(t)`` with the ``inv_sqrt`` schedule.

``tests/test_stacked.py`` checks every rule against ``torch.optim`` / adamlib's optimizers
run one model at a time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import models

#: The optimizers a stack can train, and the hyper-parameters fixed for each (the usual
#: defaults, which the paper also uses; only alpha, and SGD's momentum, are searched).
FIXED = {
    "SGDNesterov": {},
    "Adagrad": {"eps": 1e-10},
    "RMSProp": {"beta": 0.99, "eps": 1e-8},
    "AdaDelta": {"rho": 0.95, "eps": 1e-6},
    "Adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}


@dataclass
class Setting:
    """One run of a stack: its seed and its searched hyper-parameters."""

    seed: int
    lr: float
    momentum: float | None = None   # SGD-Nesterov only


# ---------------------------------------------------------------------------------------------
# The stacked model
# ---------------------------------------------------------------------------------------------

class _Layer:
    """One layer of the single model, as the stack runs it."""

    def __init__(self, kind: str, module: nn.Module | None = None, p: float = 0.0):
        self.kind, self.module, self.p = kind, module, p


def _plan(model: nn.Module) -> list[_Layer]:
    """The single model as a list of layers the stack knows: linear, conv, relu, pool, dropout, flatten."""
    if isinstance(model, models.LogisticRegression):
        modules = [model.dropout, model.linear]
    elif isinstance(model, models.MLP):
        modules = list(model.net)
    elif isinstance(model, models.CNN):
        modules = list(model.features) + list(model.classifier)
    else:
        raise ValueError(f"model={type(model).__name__} is not accepted: expected LogisticRegression, MLP or CNN")
    plan = []
    for module in modules:
        if isinstance(module, models.Dropout):
            if module.p > 0:
                plan.append(_Layer("dropout", module, module.p))
        elif isinstance(module, nn.Linear):
            plan.append(_Layer("linear", module))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            plan.append(_Layer("conv", module))
        elif isinstance(module, nn.ReLU):
            plan.append(_Layer("relu"))
        elif isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
            plan.append(_Layer("pool", module))
        elif isinstance(module, nn.Flatten):
            plan.append(_Layer("flatten"))
        else:
            raise ValueError(f"layer {type(module).__name__} is not accepted by a stack")
    return plan


class Stack:
    """``S x n`` copies of one classifier, each run with its own weights.

    ``singles[s]`` is the model of seed ``s`` (its weights are run ``(s, j)``'s ``theta_0`` for
    every setting ``j``). ``forward(x, masks)`` takes the inputs of each seed, ``(S, B, ...)``
    (or ``(1, B, ...)``: the same inputs for every seed, as in evaluation) and returns the
    logits ``(S, n, B, K)``.
    """

    def __init__(self, singles: list[nn.Module], n: int):
        self.S, self.n = len(singles), n
        self.plan = _plan(singles[0])
        self.dims = getattr(singles[0], "dims", None)
        self.params: list[torch.Tensor] = []
        self.layer_params: dict[str, int] = {}   # CNN layer name -> index of its weight in params
        index_of = {}
        for i, tensors in enumerate(zip(*(list(m.parameters()) for m in singles))):
            stacked = torch.stack([t.detach() for t in tensors]).unsqueeze(1).repeat(
                1, n, *([1] * tensors[0].ndim)).contiguous()
            self.params.append(stacked.requires_grad_(True))
            index_of[id(tensors[0])] = i
        if hasattr(singles[0], "layers"):
            for name, params in singles[0].layers().items():
                self.layer_params[name] = index_of[id(params[0])]
        self._param_of = {}
        k = 0
        for layer in self.plan:
            if layer.kind in ("linear", "conv"):
                self._param_of[id(layer)] = (k, k + 1)
                k += 2

    # -- pieces ----------------------------------------------------------------------------
    def _linear(self, h, W, b, shared_runs: bool):
        """``h``: (S, B, in) when every setting of a seed has the same input (the first layer),
        else (S, n, B, in); ``W``: (S, n, out, in), ``b``: (S, n, out) -> (S, n, B, out)."""
        S, n = self.S, self.n
        out = W.shape[2]
        if shared_runs:
            x = h.expand(S, *h.shape[1:]) if h.shape[0] != S else h
            # one product per seed for all its settings: x (S, B, in) @ (S, in, n*out)
            y = torch.bmm(x, W.permute(0, 3, 1, 2).reshape(S, W.shape[3], n * out))
            return y.view(S, x.shape[1], n, out).permute(0, 2, 1, 3) + b.unsqueeze(2)
        B = h.shape[2]
        y = torch.baddbmm(b.reshape(S * n, 1, out), h.reshape(S * n, B, -1), W.reshape(S * n, out, -1).transpose(1, 2))
        return y.view(S, n, B, out)

    def _conv(self, h, W, b, module, shared_runs: bool):
        """Grouped convolution: ``h`` (S, B, C, ...) for the first layer, else (B, S*n*C, ...)
        kept channel-stacked; returns (B, S*n*C_out, ...)."""
        S, n = self.S, self.n
        conv = F.conv1d if self.dims == 1 else F.conv2d
        c_out = W.shape[2]
        if shared_runs:
            x = h.expand(S, *h.shape[1:]) if h.shape[0] != S else h
            # (S, B, C, L) -> (B, S*C, L): group s gets seed s's input and all its settings' filters
            x = x.transpose(0, 1).reshape(x.shape[1], S * x.shape[2], *x.shape[3:])
            return conv(x, W.reshape(S * n * c_out, *W.shape[3:]), b.reshape(-1),
                        padding=module.padding, groups=S)
        return conv(h, W.reshape(S * n * c_out, *W.shape[3:]), b.reshape(-1),
                    padding=module.padding, groups=S * n)

    def forward(self, x, masks=None):
        """Logits (S, n, B, K). ``masks``: a callable ``masks(layer_index, shape)`` giving each
        seed's dropout keep-mask (S, B, ...) for the dropout layers, or None (evaluation)."""
        S, n = self.S, self.n
        h = x
        shared = True        # h is per seed (S or 1, B, ...), not yet per run
        channels = False     # h is channel-stacked (B, S*n*C, ...) inside the convolutions
        for index, layer in enumerate(self.plan):
            kind = layer.kind
            if kind == "dropout":
                if masks is None:
                    continue
                if channels:
                    raise ValueError("dropout between convolutions is not accepted by a stack")
                elif shared:
                    if h.shape[0] != S:
                        h = h.expand(S, *h.shape[1:])
                    keep = masks(index, tuple(h.shape), sparse_from=h)
                    h = h * keep / (1 - layer.p)
                else:
                    keep = masks(index, (S,) + tuple(h.shape[2:]))             # (S, B, F)
                    h = h * keep.unsqueeze(1) / (1 - layer.p)
            elif kind == "linear":
                w, b = self._param_of[id(layer)]
                h = self._linear(h, self.params[w], self.params[b], shared)
                shared = False
            elif kind == "conv":
                w, b = self._param_of[id(layer)]
                if shared and self.dims == 1 and h.ndim == 3:
                    h = h.unsqueeze(2)   # flat signals (S, B, L) -> (S, B, 1, L)
                h = self._conv(h, self.params[w], self.params[b], layer.module, shared)
                shared, channels = False, True
            elif kind == "relu":
                h = F.relu(h)
            elif kind == "pool":
                module = layer.module
                pool = F.max_pool1d if self.dims == 1 else F.max_pool2d
                h = pool(h, module.kernel_size, module.stride, module.padding)
            elif kind == "flatten":
                if not channels:
                    raise ValueError("a flatten outside the convolution stages is not accepted by a stack")
                B = h.shape[0]
                h = h.reshape(B, S, n, -1).permute(1, 2, 0, 3)   # (S, n, B, C*L): as nn.Flatten per run
                channels = False
        return h

    def losses(self, x, y, masks=None):
        """Each run's mean cross-entropy on its seed's mini-batch: (S, n). ``y``: (S or 1, B)."""
        logits = self.forward(x, masks)
        S, n, B, K = logits.shape
        target = y.expand(S, B).unsqueeze(1).expand(S, n, B)
        return F.cross_entropy(logits.reshape(-1, K), target.reshape(-1), reduction="none").view(S, n, B).mean(-1)


# ---------------------------------------------------------------------------------------------
# The optimizers, element-wise over the runs
# ---------------------------------------------------------------------------------------------

class StackedOptimizer:
    """One optimizer's update for every run of a stack, each with its own ``lr`` (and momentum)."""

    def __init__(self, name: str, params: list[torch.Tensor], lr: torch.Tensor,
                 momentum: torch.Tensor | None = None, weight_decay: float = 0.0,
                 schedule: str | None = None):
        if name not in FIXED:
            raise ValueError(f"optimizer={name!r} is not accepted: expected one of {sorted(FIXED)}")
        if schedule not in (None, "inv_sqrt"):
            raise ValueError(f"schedule={schedule!r} is not accepted: expected None or 'inv_sqrt'")
        self.name, self.params, self.lr, self.weight_decay, self.schedule = name, params, lr, weight_decay, schedule
        self.momentum = momentum
        self.fixed = FIXED[name]
        self.t = 0
        self.state = [dict() for _ in params]

    def _view(self, value, p):
        return value.view(*value.shape, *([1] * (p.ndim - value.ndim)))

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        t = self.t
        lr = self.lr / math.sqrt(t) if self.schedule == "inv_sqrt" else self.lr
        for p, g, state in zip(self.params, grads, self.state):
            if self.weight_decay:
                g = g + self.weight_decay * p
            a = self._view(lr, p)
            if self.name == "SGDNesterov":
                mu = self._view(self.momentum, p)
                if "b" not in state:
                    state["b"] = g.clone()
                else:
                    state["b"].mul_(mu).add_(g)
                p.sub_(a * (g + mu * state["b"]))
            elif self.name == "Adagrad":
                s = state.setdefault("s", torch.zeros_like(p))
                s.addcmul_(g, g)
                p.sub_(a * g / (s.sqrt() + self.fixed["eps"]))
            elif self.name == "RMSProp":
                beta = self.fixed["beta"]
                s = state.setdefault("s", torch.zeros_like(p))
                s.mul_(beta).addcmul_(g, g, value=1 - beta)
                p.sub_(a * g / (s.sqrt() + self.fixed["eps"]))
            elif self.name == "AdaDelta":
                rho, eps = self.fixed["rho"], self.fixed["eps"]
                s = state.setdefault("s", torch.zeros_like(p))
                u = state.setdefault("u", torch.zeros_like(p))
                s.mul_(rho).addcmul_(g, g, value=1 - rho)
                d = (u + eps).sqrt() / (s + eps).sqrt() * g
                u.mul_(rho).addcmul_(d, d, value=1 - rho)
                p.sub_(a * d)
            else:  # Adam
                beta1, beta2, eps = self.fixed["beta1"], self.fixed["beta2"], self.fixed["eps"]
                m = state.setdefault("m", torch.zeros_like(p))
                v = state.setdefault("v", torch.zeros_like(p))
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
                p.sub_(a / bc1 * m / (v.sqrt() / math.sqrt(bc2) + eps))

    def sqrt_v_hat(self, index: int) -> torch.Tensor | None:
        """Adam's sqrt(v_hat_t) of parameter ``index`` (None before the first step / for others)."""
        if self.name != "Adam" or "v" not in self.state[index]:
            return None
        return (self.state[index]["v"] / (1 - self.fixed["beta2"] ** self.t)).sqrt()


# ---------------------------------------------------------------------------------------------
# Training a stack
# ---------------------------------------------------------------------------------------------

class _Masks:
    """Each seed's dropout keep-masks for one mini-batch, from its own generator."""

    def __init__(self, generators: list[torch.Generator], device, dtype):
        self.generators, self.device, self.dtype = generators, device, dtype
        self.p: dict[int, float] = {}          # dropout layer index -> its rate
        self.sparse: dict[int, bool] = {}      # -> draw only for the non-zero inputs

    def __call__(self, index, shape, sparse_from=None):
        p = self.p[index]
        S = shape[0]
        if sparse_from is not None and self.sparse.get(index, False):
            # draw only where the input is non-zero (dropping a zero changes nothing)
            keep = torch.ones(shape, dtype=self.dtype, device=self.device)
            for s in range(S):
                nz = sparse_from[s].nonzero(as_tuple=True)
                draw = torch.rand(nz[0].shape, generator=self.generators[s]).to(self.device)
                keep[s][nz] = (draw >= p).to(self.dtype)
            return keep
        return torch.stack([(torch.rand(shape[1:], generator=g) >= p) for g in self.generators]).to(
            device=self.device, dtype=self.dtype)


def _monitor(stack: Stack, optimizer: StackedOptimizer, eps: float) -> list[list[dict]]:
    """Per run (S x n nested lists): per layer, the median of sqrt(v_hat) over its weights and
    the fractions of weights with sqrt(v_hat) below 10 eps and below 100 eps."""
    out = [[{} for _ in range(stack.n)] for _ in range(stack.S)]
    for layer, index in stack.layer_params.items():
        root = optimizer.sqrt_v_hat(index)
        if root is None:
            continue
        flat = root.reshape(stack.S, stack.n, -1)
        median = flat.median(dim=-1).values
        below10 = (flat < 10 * eps).to(flat.dtype).mean(-1)
        below100 = (flat < 100 * eps).to(flat.dtype).mean(-1)
        for s in range(stack.S):
            for j in range(stack.n):
                out[s][j][layer] = {"median": float(median[s, j]), "below_10eps": float(below10[s, j]),
                                    "below_100eps": float(below100[s, j])}
    return out


def train_stack(singles: list[nn.Module], settings: list[list[Setting]], optimizer_name: str,
                X: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
                weight_decay: float = 0.0, schedule: str | None = None, record: str = "epoch",
                eval_batch_size: int | None = None, monitor: bool = False, on_epoch_end=None) -> list[list[dict]]:
    """Train ``len(singles)`` seeds x ``len(settings[0])`` settings of one optimizer at once.

    ``singles[s]``: the model of seed ``settings[s][0].seed`` (its weights are every one of that
    seed's runs' ``theta_0``). Returns per seed, per setting, a dict with ``epoch_loss`` (the
    full-data cost, without dropout, at epochs 0..E; None where it is not finite), ``time``
    (cumulative training seconds of the stack, shared by its runs), ``updates_per_epoch`` and,
    as asked, ``iteration_loss`` (each update's mini-batch cost) and ``monitor`` (Adam: per
    epoch, per layer, :func:`_monitor`'s statistics).
    """
    S, n = len(singles), len(settings[0])
    if any(len(row) != n for row in settings) or len(settings) != S:
        raise ValueError("settings is not accepted: expected one row of equally many settings per seed")
    device, dtype = X.device, X.dtype
    m = len(X)
    stack = Stack(singles, n)
    lr = torch.tensor([[s.lr for s in row] for row in settings], dtype=dtype, device=device)
    momentum = (torch.tensor([[s.momentum for s in row] for row in settings], dtype=dtype, device=device)
                if optimizer_name == "SGDNesterov" else None)
    optimizer = StackedOptimizer(optimizer_name, stack.params, lr, momentum, weight_decay, schedule)
    seeds = [row[0].seed for row in settings]
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    masks = _Masks([torch.Generator().manual_seed(seed + 1) for seed in seeds], device, dtype)
    for index, layer in enumerate(stack.plan):
        if layer.kind == "dropout":
            masks.p[index] = layer.p
            masks.sparse[index] = layer.module.sparse
    n_updates = -(-m // batch_size)

    @torch.no_grad()
    def evaluate() -> list[list]:
        chunk = m if eval_batch_size is None else eval_batch_size
        total = torch.zeros(S, n, dtype=dtype, device=device)
        for first in range(0, m, chunk):
            xb, yb = X[first:first + chunk], y[first:first + chunk]
            total += stack.losses(xb.unsqueeze(0), yb.unsqueeze(0)) * len(xb)
        values = (total / m).tolist()
        return [[v if math.isfinite(v) else None for v in row] for row in values]

    curves = [[[c] for c in row] for row in evaluate()]
    times = [0.0]
    iteration: list = [[[] for _ in range(n)] for _ in range(S)]
    watch = monitor and optimizer_name == "Adam"
    monitors = [[[] for _ in range(n)] for _ in range(S)]
    if watch:
        for s in range(S):
            for j in range(n):
                monitors[s][j].append({})
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        perms = [torch.randperm(m, generator=g).to(device) for g in orders]
        start = time.perf_counter()
        for first in range(0, m, batch_size):
            index = torch.stack([perm[first:first + batch_size] for perm in perms])   # (S, B)
            xb, yb = X[index], y[index]
            losses = stack.losses(xb, yb, masks)
            grads = torch.autograd.grad(torch.nan_to_num(losses, nan=0.0, posinf=0.0).sum(), stack.params)
            optimizer.step(grads)
            if record == "iteration":
                for s, row in enumerate(losses.detach().tolist()):
                    for j, v in enumerate(row):
                        iteration[s][j].append(v if math.isfinite(v) else None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        for s, row in enumerate(evaluate()):
            for j, v in enumerate(row):
                curves[s][j].append(v)
        times.append(seconds)
        if watch:
            for s, row in enumerate(_monitor(stack, optimizer, FIXED["Adam"]["eps"])):
                for j, entry in enumerate(row):
                    monitors[s][j].append(entry)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    out = []
    for s in range(S):
        row = []
        for j in range(n):
            run = {"epoch_loss": curves[s][j], "time": list(times), "updates_per_epoch": n_updates}
            if record == "iteration":
                run["iteration_loss"] = iteration[s][j]
            if watch:
                run["monitor"] = monitors[s][j]
            row.append(run)
        out.append(row)
    return out
