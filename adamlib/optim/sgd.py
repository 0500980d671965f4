"""Stochastic gradient descent, heavy-ball/Nesterov (torch's form) and the talk's momentum."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, number, real, step_count


class SGD(AdamlibOptimizer):
    r"""Stochastic gradient descent with optional momentum, exactly ``torch.optim.SGD``.

    g_t = grad f_t(theta_{t-1}) (+ weight_decay * theta_{t-1})
    b_t = g_1 at t = 1, then b_t = momentum b_{t-1} + (1 - dampening) g_t   (heavy ball)
    d_t = g_t + momentum b_t if nesterov else b_t   (d_t = g_t without momentum)
    theta_t = theta_{t-1} - lr d_t

    Note torch's convention: the buffer starts as a copy of the first gradient and lr
    multiplies the whole buffer, so this is not the (1 - beta)-weighted average of the talk;
    see :class:`Momentum` for that one. State: ``momentum_buffer`` (only when momentum > 0).
    """

    counts_steps = False

    def __init__(
        self, params, lr=1e-3, momentum=0, dampening=0, nesterov=False, weight_decay=0,
        maximize=False, foreach=None, fused=None,
    ):
        name = type(self).__name__
        _validate.unit_interval(name, "momentum", momentum)
        _validate.unit_interval(name, "dampening", dampening, closed_right=True)
        _validate.flag(name, "nesterov", nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"{name}: invalid nesterov = True with momentum = {momentum!r} and dampening = "
                f"{dampening!r}; Nesterov momentum needs momentum > 0 and dampening = 0"
            )
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused,
        )
        super().__init__(params, defaults)

    def _step_per_tensor(self, group, params):
        lr, mu, damp, wd = number(group["lr"]), group["momentum"], group["dampening"], group["weight_decay"]
        for p in params:
            g = self._grad(p, group)
            if wd != 0:
                g = g.add(p, alpha=wd)                              # L2: g <- g + lambda theta
            if mu != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.detach().clone()  # b_1 = g_1
                else:
                    buf.mul_(mu).add_(g, alpha=1 - damp)            # b_t = mu b + (1 - damp) g
                g = g.add(buf, alpha=mu) if group["nesterov"] else buf
            real(p).add_(real(g), alpha=-lr)                        # theta -= lr d_t

    def _step_foreach(self, group, params):
        lr, mu, damp, wd = number(group["lr"]), group["momentum"], group["dampening"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            theta, g = self._lists(bucket, group)
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            if mu != 0:
                bufs = []
                fresh = []  # buffers created this step from g_1: not decayed
                for p, g_i in zip(bucket, g):
                    state = self.state[p]
                    if state.get("momentum_buffer") is None:
                        state["momentum_buffer"] = torch.view_as_complex(g_i.detach().clone()) \
                            if torch.is_complex(p) else g_i.detach().clone()
                        fresh.append(True)
                    else:
                        fresh.append(False)
                    bufs.append(real(state["momentum_buffer"]))
                old = [b for b, f in zip(bufs, fresh) if not f]
                if old:
                    g_old = [g_i for g_i, f in zip(g, fresh) if not f]
                    torch._foreach_mul_(old, mu)
                    torch._foreach_add_(old, g_old, alpha=1 - damp)
                g = torch._foreach_add(g, bufs, alpha=mu) if group["nesterov"] else bufs
            torch._foreach_add_(theta, g, alpha=-lr)

    def _buffers(self, group, params):
        """(buffers, fresh flags): b_1 = g_1 is written by the kernel into a new buffer."""
        bufs, fresh = [], []
        for p in params:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            fresh.append(buf is None)
            if buf is None:
                buf = state["momentum_buffer"] = torch.empty_like(p)
            bufs.append(buf)
        return bufs, fresh

    def _fused_kernel(self, group, params, run):
        lr, mu, damp, wd = number(group["lr"]), group["momentum"], group["dampening"], group["weight_decay"]
        dtype = params[0].dtype
        if mu != 0:
            bufs, fresh = self._buffers(group, params)
        else:  # no buffer: the kernel gets theta in its place and never touches it
            bufs, fresh = params, [False] * len(params)
        sign = -1.0 if group["maximize"] else 1.0
        run("sgd", [[p, p.grad, b] for p, b in zip(params, bufs)], fresh, dtype,
            *_fused.scalars(dtype, -lr, mu, 1 - damp, wd, sign), group["nesterov"], mu != 0)

    @classmethod
    def _torch_fused_matches(cls, group):
        return True  # torch.optim.SGD is this algorithm, knob for knob

    def _fused_torch(self, group, params):
        mu = group["momentum"]
        kw = dict(weight_decay=group["weight_decay"], momentum=mu, lr=number(group["lr"]),
                  dampening=group["dampening"], nesterov=group["nesterov"],
                  maximize=group["maximize"])
        theta, grads = self._columns([[p, p.grad] for p in params])
        if mu == 0:
            torch._fused_sgd_(theta, grads, [], is_first_step=False, **kw)
            return
        bufs, fresh = self._buffers(group, params)
        for first in (True, False):  # torch's kernel takes one is_first_step for the whole list
            idx = [i for i, f in enumerate(fresh) if f == first]
            if idx:
                torch._fused_sgd_([theta[i] for i in idx], [grads[i] for i in idx],
                                  [real(bufs[i]) for i in idx], is_first_step=first, **kw)


class Momentum(AdamlibOptimizer):
    r"""The talk's momentum: an exponentially weighted average of gradients, bias-corrected.

    m_t     = beta m_{t-1} + (1 - beta) g_t      (g_t + weight_decay * theta_{t-1} if wd > 0)
    m_hat_t = m_t / (1 - beta^t)                 (only if bias_correction)
    theta_t = theta_{t-1} - lr m_hat_t

    With ``bias_correction=False`` it equals ``torch.optim.SGD(lr=lr * (1 - beta),
    momentum=beta)``; with bias correction torch.optim has no equivalent setting (optax:
    ``chain(ema(beta, debias=True), scale(-lr))``). torch's fused SGD *kernel* does compute
    it, given a zero buffer, momentum = dampening = beta and the step size lr / (1 - beta^t)
    of each step, and ``fused=True`` uses it (see ``_fused_torch``). State: ``step``,
    ``exp_avg`` (m).
    """

    def __init__(self, params, lr=1e-2, beta=0.9, bias_correction=True, weight_decay=0,
                 maximize=False, foreach=None, fused=None):
        name = type(self).__name__
        _validate.unit_interval(name, "beta", beta)
        _validate.flag(name, "bias_correction", bias_correction)
        defaults = dict(lr=lr, beta=beta, bias_correction=bias_correction,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    state_names = ("exp_avg",)

    def _step_size(self, group, t: float) -> float:
        bc = 1 - group["beta"] ** t if group["bias_correction"] else 1.0
        return number(group["lr"]) / bc

    def _step_per_tensor(self, group, params):
        beta, wd = group["beta"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            if wd != 0:
                g = g.add(p, alpha=wd)
            state["step"] += 1                                     # t <- t + 1
            m = real(state["exp_avg"])
            m.lerp_(real(g), 1 - beta)                             # m_t = beta m + (1 - beta) g
            real(p).add_(m, alpha=-self._step_size(group, step_count(state["step"])))  # theta -= lr m_hat

    def _step_foreach(self, group, params):
        beta, wd = group["beta"], group["weight_decay"]
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, m = self._lists(bucket, group, "exp_avg")
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_lerp_(m, g, 1 - beta)
            if len(set(ts)) == 1:  # the usual case: every parameter at the same t
                torch._foreach_add_(theta, m, alpha=-self._step_size(group, ts[0]))
            else:  # foreach_add_ takes one alpha per call, so step the stragglers one by one
                for theta_i, m_i, t in zip(theta, m, ts):
                    theta_i.add_(m_i, alpha=-self._step_size(group, t))

    def _fused_kernel(self, group, params, run):
        beta, wd, dtype = group["beta"], group["weight_decay"], params[0].dtype
        steps = [-self._step_size(group, t) for t in self._advance_steps(params)]
        w, one_minus_w = _fused.lerp_weights(1 - beta, dtype)
        run("momentum", [[p, p.grad, self.state[p]["exp_avg"]] for p in params], steps, dtype,
            w, one_minus_w, abs(float(w)) >= 0.5,
            *_fused.scalars(dtype, wd, -1.0 if group["maximize"] else 1.0))

    @classmethod
    def _torch_fused_matches(cls, group):
        # beta = 0 would leave torch's buffer untouched (it skips momentum) where m_t = g_t here
        return group["beta"] > 0

    def _fused_torch(self, group, params):
        """torch's fused SGD step with a zero-initialised buffer: m_t = beta m + (1 - beta) g
        (is_first_step=False, so the buffer is never seeded with g_1), theta -= lr_t m_t with
        lr_t = lr / (1 - beta^t), one call per distinct t."""
        beta = group["beta"]
        ts = self._advance_steps(params)
        by_t = {}
        for p, t in zip(params, ts):
            by_t.setdefault(t, []).append(p)
        state = self.state
        for t, bucket in by_t.items():
            theta, grads, m = self._columns([[p, p.grad, state[p]["exp_avg"]] for p in bucket])
            torch._fused_sgd_(
                theta, grads, m,
                weight_decay=group["weight_decay"], momentum=beta, dampening=beta,
                lr=self._step_size(group, t), nesterov=False, maximize=group["maximize"],
                is_first_step=False,
            )
