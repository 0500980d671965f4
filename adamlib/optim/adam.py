"""Adam (Kingma & Ba, 2015, Algorithm 1), with AdamW and AMSGrad as settings of it."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, foreach_addcdiv_, number, real, step_count


class Adam(AdamlibOptimizer):
    r"""Adam: Algorithm 1 of Kingma & Ba (2015), eps outside the root and after bias correction.

    For each parameter, at step t = 1, 2, ...::

        g_t     = grad f_t(theta_{t-1})             (+ weight_decay * theta_{t-1}, the L2 form)
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t   biased first moment
        v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2 biased second raw moment
        m_hat_t = m_t / (1 - beta1^t)               bias-corrected moments (Section 3)
        v_hat_t = v_t / (1 - beta2^t)
        theta_t = theta_{t-1} - alpha m_hat_t / (sqrt(v_hat_t) + eps)

    Options beyond the box, each an explicit switch:

    * ``amsgrad=True``: divide by the running max of v (torch's form: the max of the raw v,
      then bias-corrected). ``adamlib.reference.amsgrad`` has all three published variants.
    * ``decoupled_weight_decay=True``: AdamW (Loshchilov & Hutter): theta <- theta (1 - alpha
      lambda) before the update, instead of adding lambda theta to g.
    * ``bias_correction=False``: m and v used raw, "RMSProp with momentum" of Section 5; the
      ablation of the paper's Figure 4.

    Agrees with ``torch.optim.Adam`` (and ``AdamW`` when decoupled); state uses torch's names
    ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq``.
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        bias_correction=True, decoupled_weight_decay=False, maximize=False, foreach=None, fused=None,
        capturable=False,
    ):
        name = type(self).__name__
        _validate.betas(name, betas)
        for flag, value in (("amsgrad", amsgrad), ("bias_correction", bias_correction),
                            ("decoupled_weight_decay", decoupled_weight_decay)):
            _validate.flag(name, flag, value)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            bias_correction=bias_correction, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize, foreach=foreach, fused=fused, capturable=capturable,
        )
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        super()._init_state(p, state, group)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _bias_corrections(self, group, t: float) -> tuple[float, float]:
        if not group["bias_correction"]:
            return 1.0, 1.0
        beta1, beta2 = map(number, group["betas"])
        return 1 - beta1**t, 1 - beta2**t

    def _step_per_tensor(self, group, params):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1                                           # t <- t + 1
            t = step_count(state["step"])
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * wd)                                  # AdamW: shrink theta
                else:
                    g = g.add(p, alpha=wd)                               # L2: g <- g + lambda theta
            theta, g = real(p), real(g)
            m, v = real(state["exp_avg"]), real(state["exp_avg_sq"])
            m.lerp_(g, 1 - beta1)                                        # m_t = b1 m + (1 - b1) g
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)                # v_t = b2 v + (1 - b2) g^2
            bc1, bc2 = self._bias_corrections(group, t)
            if group["amsgrad"]:
                v_max = real(state["max_exp_avg_sq"])
                torch.maximum(v_max, v, out=v_max)                       # v_max = max(v_max, v_t)
                v = v_max
            denom = (v.sqrt() / bc2**0.5).add_(eps)                      # sqrt(v_hat) + eps
            theta.addcdiv_(m, denom, value=-lr / bc1)                    # theta -= a m_hat / denom

    def _step_foreach(self, group, params):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, m, v, *v_max = self._lists(bucket, group, *names)
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    torch._foreach_mul_(theta, 1 - lr * wd)
                else:
                    g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, 1 - beta2)
            bcs = [self._bias_corrections(group, t) for t in ts]
            if v_max:
                torch._foreach_maximum_(v_max[0], v)
                v = v_max[0]
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, [bc2**0.5 for _, bc2 in bcs])
            torch._foreach_add_(denom, eps)
            foreach_addcdiv_(theta, m, denom, [-lr / bc1 for bc1, _ in bcs])

    def _state_rows(self, group, params):
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
        state = self.state
        return [[p, p.grad, *map(state[p].__getitem__, names)] for p in params]

    def _fused_kernel(self, group, params, run):
        lr, (beta1, beta2), eps, wd = number(group["lr"]), map(number, group["betas"]), group["eps"], group["weight_decay"]
        dtype = params[0].dtype
        bcs = [self._bias_corrections(group, t) for t in self._advance_steps(params)]
        w, one_minus_w = _fused.lerp_weights(1 - beta1, dtype)
        run("adam", self._state_rows(group, params), [(-lr / bc1, bc2**0.5) for bc1, bc2 in bcs], dtype,
            w, one_minus_w, abs(float(w)) >= 0.5,
            *_fused.scalars(dtype, beta2, 1 - beta2, eps, wd, -1.0 if group["maximize"] else 1.0,
                            1 - lr * wd),
            group["decoupled_weight_decay"], group["amsgrad"])

    @classmethod
    def _torch_fused_matches(cls, group):
        # torch's kernels always bias-correct; everything else (L2 or decoupled decay,
        # amsgrad, maximize) is a knob of theirs too.
        return bool(group["bias_correction"])

    def _fused_torch(self, group, params):
        beta1, beta2 = map(number, group["betas"])
        steps = self._device_steps(params)
        theta, grads, m, v, *v_max = self._columns(self._state_rows(group, params))
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        kernel(theta, grads, m, v, v_max[0] if v_max else [], steps,
               lr=number(group["lr"]), beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
               eps=group["eps"], amsgrad=group["amsgrad"], maximize=group["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``torch.optim.AdamW``.

    theta_t = theta_{t-1} (1 - alpha lambda) - alpha m_hat_t / (sqrt(v_hat_t) + eps)
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        bias_correction=True, maximize=False, foreach=None, fused=None, capturable=False,
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            bias_correction=bias_correction, decoupled_weight_decay=True, maximize=maximize,
            foreach=foreach, fused=fused, capturable=capturable,
        )


class AMSGrad(Adam):
    """Adam with ``amsgrad=True`` (Reddi, Kale & Kumar, 2018), torch's form:

    v_max_t = max(v_max_{t-1}, v_t);  theta_t = theta_{t-1} - alpha m_hat_t / (sqrt(v_max_t / (1 - beta2^t)) + eps)

    The max is of the raw v, as in ``torch.optim.Adam(amsgrad=True)``; Reddi et al.'s box has
    no bias correction and optax takes the max of v_hat (see ``adamlib.reference.amsgrad``).
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, bias_correction=True,
        decoupled_weight_decay=False, maximize=False, foreach=None, fused=None, capturable=False,
    ):
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=True,
            bias_correction=bias_correction, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize, foreach=foreach, fused=fused, capturable=capturable,
        )
