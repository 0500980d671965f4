"""RMSProp (Tieleman & Hinton, 2012, lecture 6e), its centred form with momentum (Graves, 2013),
and the talk's bias-corrected variant."""
from __future__ import annotations

import torch

from . import _fused, _validate
from ._base import AdamlibOptimizer, number, real, step_count


class RMSProp(AdamlibOptimizer):
    r"""RMSProp: divide the gradient by a running root mean square of recent gradients.

    v_t     = beta v_{t-1} + (1 - beta) g_t^2                   (state ``square_avg``)
    v_hat_t = v_t / (1 - beta^t)                     if bias_correction, else v_t
    theta_t = theta_{t-1} - lr g_t / (sqrt(v_hat_t) + eps)   (default: Hinton's and torch's form)
    theta_t = theta_{t-1} - lr g_t / sqrt(v_hat_t + eps)     (eps_inside_sqrt=True)

    ``centered=True`` (Graves, 2013, eqs. 38-41) divides by a running standard deviation
    instead of the root mean square: the mean gradient is tracked too and its square removed,

    m_t     = beta m_{t-1} + (1 - beta) g_t                     (state ``grad_avg``)
    s_t     = v_t - m_t^2

    and s_t takes the place of v_hat_t under the root. (Not with ``bias_correction``: the
    corrected s_1 = g_1^2 - g_1^2 is 0, one gradient having no spread, so the first step
    would be g_1 / eps; that combination is refused.) ``momentum = mu > 0`` keeps a buffer of
    the *scaled* steps (state ``momentum_buffer``, starting at 0), as Graves and torch do:

    b_t     = mu b_{t-1} + g_t / denom_t;    theta_t = theta_{t-1} - lr b_t

    The defaults equal ``torch.optim.RMSprop(alpha=beta)``, and ``centered``/``momentum`` are
    torch's. Graves's own setting is ``RMSProp(lr=1e-4, beta=0.95, momentum=0.9,
    centered=True, eps=1e-4, eps_inside_sqrt=True)`` (see ``adamlib.reference.rmsprop_graves``).
    The talk's slide is ``bias_correction=True, eps_inside_sqrt=True`` (TensorFlow and optax
    also put eps inside). State: ``step``, ``square_avg`` (v), ``grad_avg`` (m, centred only),
    ``momentum_buffer`` (b, momentum only). ``state_dict()`` also writes torch's group key
    ``alpha`` (= beta), so a checkpoint resumes in ``torch.optim.RMSprop``.
    """

    torch_group_keys = {"alpha": lambda group: group["beta"]}

    def __init__(self, params, lr=1e-2, beta=0.99, eps=1e-8, bias_correction=False,
                 eps_inside_sqrt=False, weight_decay=0, maximize=False, centered=False, momentum=0,
                 foreach=None, fused=None, capturable=False):
        name = type(self).__name__
        _validate.unit_interval(name, "beta", beta)
        _validate.unit_interval(name, "momentum", momentum)
        for flag, value in (("bias_correction", bias_correction), ("eps_inside_sqrt", eps_inside_sqrt),
                            ("centered", centered)):
            _validate.flag(name, flag, value)
        if centered and bias_correction:
            raise ValueError(
                f"{name}: invalid centered = True with bias_correction = True; expected at most one "
                "of them: the bias-corrected variance v_hat_1 - m_hat_1^2 is 0 at t = 1 (one gradient "
                "has no spread), so the first step would be g_1 / eps"
            )
        defaults = dict(lr=lr, beta=beta, eps=eps, bias_correction=bias_correction,
                        eps_inside_sqrt=eps_inside_sqrt, weight_decay=weight_decay,
                        maximize=maximize, centered=centered, momentum=momentum,
                        foreach=foreach, fused=fused, capturable=capturable)
        super().__init__(params, defaults)

    def _state_names(self, group) -> tuple[str, ...]:
        return (("square_avg",) + (("grad_avg",) if group["centered"] else ())
                + (("momentum_buffer",) if group["momentum"] > 0 else ()))

    def _init_state(self, p, state, group):
        super()._init_state(p, state, group)
        for name in self._state_names(group):
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _from_torch_group(self, group):
        if "beta" not in group and "alpha" in group:
            group["beta"] = group["alpha"]

    def _denominator(self, group, v: torch.Tensor, m, t: float) -> torch.Tensor:
        """sqrt(v_hat) + eps, or sqrt(v - m^2) + eps when centred (m given), or eps inside the root."""
        eps = group["eps"]
        if group["bias_correction"]:
            v = v / (1 - group["beta"] ** t)                      # v_hat_t
        if m is not None:
            v = v.addcmul(m, m, value=-1)                         # s_t = v_t - m_t^2
        if group["eps_inside_sqrt"]:
            return v.add(eps).sqrt_()                             # sqrt(v_hat + eps)
        return v.sqrt().add_(eps)                                 # sqrt(v_hat) + eps

    def _step_per_tensor(self, group, params):
        lr, beta, wd, mu = number(group["lr"]), group["beta"], group["weight_decay"], group["momentum"]
        for p in params:
            state = self.state[p]
            g = self._grad(p, group)
            state["step"] += 1
            if wd != 0:
                g = g.add(p, alpha=wd)
            theta, g, v = real(p), real(g), real(state["square_avg"])
            v.mul_(beta).addcmul_(g, g, value=1 - beta)           # v_t = beta v + (1 - beta) g^2
            m = None
            if group["centered"]:
                m = real(state["grad_avg"]).lerp_(g, 1 - beta)    # m_t = beta m + (1 - beta) g
            denom = self._denominator(group, v, m, step_count(state["step"]))
            if mu > 0:
                b = real(state["momentum_buffer"])
                b.mul_(mu).addcdiv_(g, denom)                     # b_t = mu b + g / denom
                theta.add_(b, alpha=-lr)                          # theta -= lr b_t
            else:
                theta.addcdiv_(g, denom, value=-lr)               # theta -= lr g / denom

    def _step_foreach(self, group, params):
        lr, beta, eps, wd, mu = (number(group["lr"]), group["beta"], group["eps"], group["weight_decay"],
                                 group["momentum"])
        for bucket in self._by_device_and_dtype(params).values():
            ts = self._advance_steps(bucket)
            theta, g, v, *extra = self._lists(bucket, group, *self._state_names(group))
            m = extra.pop(0) if group["centered"] else None
            b = extra.pop(0) if mu > 0 else None
            if wd != 0:
                g = torch._foreach_add(g, theta, alpha=wd)
            torch._foreach_mul_(v, beta)
            torch._foreach_addcmul_(v, g, g, value=1 - beta)
            if m is not None:
                torch._foreach_lerp_(m, g, 1 - beta)
            denom = v
            if group["bias_correction"]:
                denom = torch._foreach_div(v, [1 - beta**t for t in ts])
            if m is not None:
                denom = torch._foreach_addcmul(v, m, m, value=-1)
            if group["eps_inside_sqrt"]:
                denom = torch._foreach_add(denom, eps)
                torch._foreach_sqrt_(denom)
            else:
                denom = torch._foreach_sqrt(denom)
                torch._foreach_add_(denom, eps)
            if b is not None:
                torch._foreach_mul_(b, mu)
                torch._foreach_addcdiv_(b, g, denom)
                torch._foreach_add_(theta, b, alpha=-lr)
            else:
                torch._foreach_addcdiv_(theta, g, denom, value=-lr)

    def _fused_kernel(self, group, params, run):
        lr, beta, eps, wd, mu = (number(group["lr"]), group["beta"], group["eps"], group["weight_decay"],
                                 group["momentum"])
        dtype = params[0].dtype
        bcs = [1 - beta**t if group["bias_correction"] else 1.0 for t in self._advance_steps(params)]
        # streams theta, g, v, m, b; an absent m or b is v again (never read or written)
        state = self.state
        rows = [[p, p.grad, state[p]["square_avg"], state[p].get("grad_avg", state[p]["square_avg"]),
                 state[p].get("momentum_buffer", state[p]["square_avg"])] for p in params]
        w, one_minus_w = _fused.lerp_weights(1 - beta, dtype)
        run("rmsprop", rows, bcs, dtype,
            *_fused.scalars(dtype, -lr, beta, 1 - beta, eps, wd, -1.0 if group["maximize"] else 1.0, mu),
            w, one_minus_w, abs(float(w)) >= 0.5,
            group["bias_correction"], group["eps_inside_sqrt"], group["centered"], mu > 0)
