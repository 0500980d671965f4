"""Triton kernels for adamlib's fused GPU steps (imported only when a fused step runs one).

The GPU twins of ``_fused_kernels`` (numba, CPU): the same streams, the same arithmetic in the
same order, one program per block of ``BLOCK`` elements. Every kernel has the same shape:

* ``ptrs[K, S]``: the data pointers of K parameters' S streams (theta, g, then the state
  tensors, as the kernel's docstring lists them); ``owner[B]`` and ``start[B]``: which
  parameter block b belongs to and where it starts; ``sizes[K]``: element counts (complex
  tensors count as twice as many reals). All of it lives on the device and is cached by
  ``_fused`` (it changes only when a tensor is re-allocated), so a step copies nothing to
  the GPU and waits for nothing.
* ``proto``: a tensor of the parameters' real dtype (float32 or float64), which the kernel
  reads its element type from.
* The scalars, float64 on the way in and rounded to the element type inside, as torch rounds
  a Python number it multiplies a tensor by. The per-parameter ones (bias corrections, which
  depend on each parameter's step count) come first: ``_fused`` launches one kernel per
  distinct value, in practice one per step.
* Flags (maximize, weight decay, AMSGrad, ...) are ordinary arguments: a branch on them costs
  nothing next to the memory traffic.
* Lanes past a parameter's end are masked: never stored, and their denominators are loaded
  as 1 so that eps = 0 does not compute 0/0 there.

float32 square roots and divisions are the IEEE-rounded ones (``sqrt_rn``, ``div_rn``; Triton's
plain ``/`` and ``sqrt`` are approximate in float32; float64 ones are always IEEE-rounded), and
no multiply-add is contracted (``LAUNCH``), so every operation is rounded as in the per-tensor
loop; the tests hold them to it within their tolerances.

``TRITON_INTERPRET=1`` runs these kernels on CPU tensors with numpy: tests/test_fused_triton.py
holds them to the per-tensor loop on a machine without a GPU.
"""
from __future__ import annotations

import triton
import triton.language as tl

#: elements per program (1024 with 4 warps: 8 per thread)
BLOCK = 1024

#: launch options of every kernel. No FP fusion: Triton would otherwise contract a * b + c into
#: one fused multiply-add (rounded once), and the per-tensor loop rounds twice; without it each
#: operation is rounded as torch rounds it (memory-bound kernels lose nothing by it).
LAUNCH = dict(BLOCK=BLOCK, num_warps=4, enable_fp_fusion=False)


@triton.jit
def _block(owner, start, sizes, BLOCK: tl.constexpr):
    """(k, offsets, mask) of this program's block: parameter k, elements start .. start + BLOCK."""
    b = tl.program_id(0)
    k = tl.load(owner + b)
    offs = tl.load(start + b) + tl.arange(0, BLOCK)
    return k, offs, offs < tl.load(sizes + k)


@triton.jit
def _stream(ptrs, S, k, j, dt: tl.constexpr):
    """Stream j of parameter k as a pointer to its elements."""
    return tl.load(ptrs + k * S + j).to(tl.pointer_type(dt))


@triton.jit
def _div(a, b):
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    return a / b


@triton.jit
def _sqrt(a):
    if a.dtype == tl.float32:
        return tl.sqrt_rn(a)
    return tl.sqrt(a)


@triton.jit
def _lerp(a, b, w, one_minus_w, big):
    # torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w)
    d = b - a
    return tl.where(big, b - d * one_minus_w, a + w * d)


@triton.jit
def _grad(g, th, sign, wd):
    """g_t with maximize folded in, plus the L2 term when weight_decay is not 0."""
    g = tl.cast(sign, g.dtype) * g
    if wd != 0:
        g = g + tl.cast(wd, g.dtype) * th
    return g


@triton.jit
def sgd(ptrs, S, owner, start, sizes, proto, fresh: tl.float64, neg_lr: tl.float64,
        mu: tl.float64, one_minus_damp: tl.float64, wd: tl.float64, sign: tl.float64,
        nesterov, momentum, BLOCK: tl.constexpr):
    """Streams theta, g, momentum_buffer (theta again when momentum is off). fresh: b_1 = g_1."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = _grad(tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask), th, sign, wd)
    d = g
    if momentum:
        buf_p = _stream(ptrs, S, k, 2, dt) + offs
        if fresh != 0:
            b = g
        else:
            b = tl.load(buf_p, mask=mask) * tl.cast(mu, dt) + tl.cast(one_minus_damp, dt) * g
        tl.store(buf_p, b, mask=mask)
        if nesterov:
            d = g + tl.cast(mu, dt) * b
        else:
            d = b
    tl.store(th_p, th + tl.cast(neg_lr, dt) * d, mask=mask)


@triton.jit
def momentum(ptrs, S, owner, start, sizes, proto, step: tl.float64, w: tl.float64,
             one_minus_w: tl.float64, big, wd: tl.float64, sign: tl.float64, BLOCK: tl.constexpr):
    """Streams theta, g, exp_avg. step: -lr / (1 - beta^t)."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    m_p = _stream(ptrs, S, k, 2, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = _grad(tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask), th, sign, wd)
    m = _lerp(tl.load(m_p, mask=mask), g, tl.cast(w, dt), tl.cast(one_minus_w, dt), big)
    tl.store(m_p, m, mask=mask)
    tl.store(th_p, th + tl.cast(step, dt) * m, mask=mask)


@triton.jit
def adagrad(ptrs, S, owner, start, sizes, proto, neg_lr: tl.float64, eps: tl.float64,
            wd: tl.float64, sign: tl.float64, BLOCK: tl.constexpr):
    """Streams theta, g, sum. neg_lr: -lr / (1 + (t - 1) lr_decay)."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    acc_p = _stream(ptrs, S, k, 2, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = _grad(tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask), th, sign, wd)
    a = tl.load(acc_p, mask=mask, other=1) + g * g
    tl.store(acc_p, a, mask=mask)
    tl.store(th_p, th + tl.cast(neg_lr, dt) * _div(g, _sqrt(a) + tl.cast(eps, dt)), mask=mask)


@triton.jit
def rmsprop(ptrs, S, owner, start, sizes, proto, bc: tl.float64, neg_lr: tl.float64,
            beta: tl.float64, one_minus_beta: tl.float64, eps: tl.float64, wd: tl.float64,
            sign: tl.float64, mu: tl.float64, w: tl.float64, one_minus_w: tl.float64, big,
            bias_correction, eps_inside_sqrt, centered, momentum, BLOCK: tl.constexpr):
    """Streams theta, g, square_avg, grad_avg, momentum_buffer (an absent one is square_avg
    again, never touched). bc: 1 - beta^t."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    v_p = _stream(ptrs, S, k, 2, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = _grad(tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask), th, sign, wd)
    v = tl.load(v_p, mask=mask, other=1) * tl.cast(beta, dt)
    v = v + tl.cast(one_minus_beta, dt) * g * g
    tl.store(v_p, v, mask=mask)
    if bias_correction:
        v = _div(v, tl.cast(bc, dt))
    if centered:
        m_p = _stream(ptrs, S, k, 3, dt) + offs
        m = _lerp(tl.load(m_p, mask=mask), g, tl.cast(w, dt), tl.cast(one_minus_w, dt), big)
        tl.store(m_p, m, mask=mask)
        v = v - m * m                              # s_t = v_t - m_t^2 (never bias-corrected)
    if eps_inside_sqrt:
        denom = _sqrt(v + tl.cast(eps, dt))
    else:
        denom = _sqrt(v) + tl.cast(eps, dt)
    if momentum:
        b_p = _stream(ptrs, S, k, 4, dt) + offs
        b = tl.load(b_p, mask=mask) * tl.cast(mu, dt) + _div(g, denom)   # b_t = mu b + g / denom
        tl.store(b_p, b, mask=mask)
        tl.store(th_p, th + tl.cast(neg_lr, dt) * b, mask=mask)
    else:
        tl.store(th_p, th + tl.cast(neg_lr, dt) * _div(g, denom), mask=mask)


@triton.jit
def adam(ptrs, S, owner, start, sizes, proto, step: tl.float64, bc2_sqrt: tl.float64,
         w1: tl.float64, one_minus_w1: tl.float64, big1, beta2: tl.float64,
         one_minus_beta2: tl.float64, eps: tl.float64, wd: tl.float64, sign: tl.float64,
         decay: tl.float64, decoupled, amsgrad, BLOCK: tl.constexpr):
    """Streams theta, g, exp_avg, exp_avg_sq[, max_exp_avg_sq]. step: -lr / bc1."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    m_p = _stream(ptrs, S, k, 2, dt) + offs
    v_p = _stream(ptrs, S, k, 3, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = tl.cast(sign, dt) * tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask)
    if wd != 0:
        if decoupled:
            th = th * tl.cast(decay, dt)                      # AdamW: theta (1 - lr lambda)
        else:
            g = g + tl.cast(wd, dt) * th                      # L2
    m = _lerp(tl.load(m_p, mask=mask), g, tl.cast(w1, dt), tl.cast(one_minus_w1, dt), big1)
    v = tl.load(v_p, mask=mask, other=1) * tl.cast(beta2, dt)
    v = v + tl.cast(one_minus_beta2, dt) * g * g
    tl.store(m_p, m, mask=mask)
    tl.store(v_p, v, mask=mask)
    if amsgrad:
        vmax_p = _stream(ptrs, S, k, 4, dt) + offs
        v = tl.maximum(tl.load(vmax_p, mask=mask), v, propagate_nan=tl.PropagateNan.ALL)
        tl.store(vmax_p, v, mask=mask)
    denom = _div(_sqrt(v), tl.cast(bc2_sqrt, dt)) + tl.cast(eps, dt)
    tl.store(th_p, th + tl.cast(step, dt) * _div(m, denom), mask=mask)


@triton.jit
def adamax(ptrs, S, owner, start, sizes, proto, step: tl.float64, w1: tl.float64,
           one_minus_w1: tl.float64, big1, beta2: tl.float64, eps: tl.float64, wd: tl.float64,
           sign: tl.float64, BLOCK: tl.constexpr):
    """Streams theta, g, exp_avg, exp_inf. step: -lr / (1 - beta1^t)."""
    dt = proto.dtype.element_ty
    k, offs, mask = _block(owner, start, sizes, BLOCK)
    th_p = _stream(ptrs, S, k, 0, dt) + offs
    m_p = _stream(ptrs, S, k, 2, dt) + offs
    u_p = _stream(ptrs, S, k, 3, dt) + offs
    th = tl.load(th_p, mask=mask)
    g = _grad(tl.load(_stream(ptrs, S, k, 1, dt) + offs, mask=mask), th, sign, wd)
    m = _lerp(tl.load(m_p, mask=mask), g, tl.cast(w1, dt), tl.cast(one_minus_w1, dt), big1)
    tl.store(m_p, m, mask=mask)
    u = tl.maximum(tl.load(u_p, mask=mask, other=1) * tl.cast(beta2, dt), tl.abs(g) + tl.cast(eps, dt),
                   propagate_nan=tl.PropagateNan.ALL)
    tl.store(u_p, u, mask=mask)
    tl.store(th_p, th + tl.cast(step, dt) * _div(m, u), mask=mask)
