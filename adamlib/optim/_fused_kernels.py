"""numba kernels for adamlib's fused CPU steps (imported only when a fused step runs).

Every kernel has the same shape:

* ``ptrs[K, S]``: the data pointers of K parameters' S streams (theta, g, then the state
  tensors, in the order the kernel's docstring gives); ``sizes[K]``: their element counts
  (complex tensors count as twice as many reals); ``scal[K, R]``: per-parameter scalars
  (bias corrections depend on each parameter's own step count); ``proto``: an empty array of
  the dtype (float32 or float64) the tensors hold; then the hyper-parameters as scalars of
  that dtype, and flags.
* The parameters are cut into chunks of ``CHUNK`` elements and the chunks are shared among
  threads (``prange``): one parallel region per param group and step, whatever the number of
  parameters.
* The loop body is the per-tensor path's arithmetic, in its order, one element at a time:
  each stream is read once and each updated stream written once.

Indexing runs from 0 over a view that starts at the chunk (not from the chunk's offset into the
whole tensor): numba then knows that the index is not negative, drops its wrap-around check,
and LLVM vectorizes the loop (AVX2 sqrt/div measured in the assembly).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._fused import CHUNK


@intrinsic
def _address(typingctx, addr):
    """An int64 address as a void pointer, for numba.carray (a view of a torch tensor's data)."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


@njit(cache=True)
def _chunks(sizes):
    total = 0
    for k in range(sizes.shape[0]):
        total += (sizes[k] + CHUNK - 1) // CHUNK
    owner = np.empty(total, np.int64)
    start = np.empty(total, np.int64)
    j = 0
    for k in range(sizes.shape[0]):
        for s in range(0, sizes[k], CHUNK):
            owner[j] = k
            start[j] = s
            j += 1
    return owner, start


@njit(cache=True, inline="always")
def _view(ptrs, k, stream, start, n, proto):
    return numba.carray(_address(ptrs[k, stream] + start * proto.itemsize), (n,), proto.dtype)


@njit(cache=True, inline="always")
def _lerp(a, b, w, one_minus_w, big):
    # torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w)
    d = b - a
    return b - d * one_minus_w if big else a + w * d


@njit(cache=True, inline="always")
def _maximum(a, b):
    # torch.maximum: NaN wins
    if a != a or a > b:
        return a
    return b


@njit(cache=True, parallel=True, fastmath=False)
def sgd(ptrs, sizes, scal, proto, neg_lr, mu, one_minus_damp, wd, sign, nesterov, momentum):
    """Streams theta, g, momentum_buffer (theta again when momentum is off). scal: [fresh]."""
    owner, start = _chunks(sizes)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        buf = _view(ptrs, k, 2, s, n, proto)
        fresh = scal[k, 0] != 0
        for i in range(n):
            gi = sign * g[i]
            if wd != 0:
                gi = gi + wd * th[i]
            d = gi
            if momentum:
                b = gi if fresh else buf[i] * mu + one_minus_damp * gi
                buf[i] = b
                d = gi + mu * b if nesterov else b
            th[i] = th[i] + neg_lr * d


@njit(cache=True, parallel=True, fastmath=False)
def momentum(ptrs, sizes, scal, proto, w, one_minus_w, big, wd, sign):
    """Streams theta, g, exp_avg. scal: [-lr / (1 - beta^t)]."""
    owner, start = _chunks(sizes)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        m = _view(ptrs, k, 2, s, n, proto)
        step = scal[k, 0]
        for i in range(n):
            gi = sign * g[i]
            if wd != 0:
                gi = gi + wd * th[i]
            mi = _lerp(m[i], gi, w, one_minus_w, big)
            m[i] = mi
            th[i] = th[i] + step * mi


@njit(cache=True, parallel=True, fastmath=False)
def adagrad(ptrs, sizes, scal, proto, eps, wd, sign):
    """Streams theta, g, sum. scal: [-lr / (1 + (t - 1) lr_decay)]."""
    owner, start = _chunks(sizes)
    one = proto.dtype.type(1)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        acc = _view(ptrs, k, 2, s, n, proto)
        neg_lr = scal[k, 0]
        for i in range(n):
            gi = sign * g[i]
            if wd != 0:
                gi = gi + wd * th[i]
            a = acc[i] + one * gi * gi
            acc[i] = a
            th[i] = th[i] + neg_lr * (gi / (math.sqrt(a) + eps))


@njit(cache=True, parallel=True, fastmath=False)
def rmsprop(ptrs, sizes, scal, proto, neg_lr, beta, one_minus_beta, eps, wd, sign, mu, w, one_minus_w,
            big, bias_correction, eps_inside_sqrt, centered, momentum):
    """Streams theta, g, square_avg, grad_avg, momentum_buffer (an absent one is square_avg
    again, never touched). scal: [1 - beta^t]."""
    owner, start = _chunks(sizes)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        v = _view(ptrs, k, 2, s, n, proto)
        m = _view(ptrs, k, 3, s, n, proto)
        b = _view(ptrs, k, 4, s, n, proto)
        bc = scal[k, 0]
        for i in range(n):
            gi = sign * g[i]
            if wd != 0:
                gi = gi + wd * th[i]
            vi = v[i] * beta
            vi = vi + one_minus_beta * gi * gi
            v[i] = vi
            vh = vi / bc if bias_correction else vi
            if centered:
                mi = _lerp(m[i], gi, w, one_minus_w, big)
                m[i] = mi
                vh = vi - mi * mi                       # s_t = v_t - m_t^2 (never bias-corrected)
            denom = math.sqrt(vh + eps) if eps_inside_sqrt else math.sqrt(vh) + eps
            if momentum:
                bi = b[i] * mu + gi / denom             # b_t = mu b + g / denom
                b[i] = bi
                th[i] = th[i] + neg_lr * bi
            else:
                th[i] = th[i] + neg_lr * (gi / denom)


@njit(cache=True, parallel=True, fastmath=False)
def adam(ptrs, sizes, scal, proto, w1, one_minus_w1, big1, beta2, one_minus_beta2, eps, wd,
         sign, decay, decoupled, amsgrad):
    """Streams theta, g, exp_avg, exp_avg_sq[, max_exp_avg_sq]. scal: [-lr / bc1, sqrt(bc2)]."""
    owner, start = _chunks(sizes)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        m = _view(ptrs, k, 2, s, n, proto)
        v = _view(ptrs, k, 3, s, n, proto)
        vmax = _view(ptrs, k, 4 if amsgrad else 3, s, n, proto)
        step = scal[k, 0]
        bc2_sqrt = scal[k, 1]
        for i in range(n):
            gi = sign * g[i]
            ti = th[i]
            if wd != 0:
                if decoupled:
                    ti = ti * decay                     # AdamW: theta (1 - lr lambda)
                else:
                    gi = gi + wd * ti                   # L2
            mi = _lerp(m[i], gi, w1, one_minus_w1, big1)
            vi = v[i] * beta2
            vi = vi + one_minus_beta2 * gi * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                vi = _maximum(vmax[i], vi)
                vmax[i] = vi
            th[i] = ti + step * (mi / (math.sqrt(vi) / bc2_sqrt + eps))


@njit(cache=True, parallel=True, fastmath=False)
def adamax(ptrs, sizes, scal, proto, w1, one_minus_w1, big1, beta2, eps, wd, sign):
    """Streams theta, g, exp_avg, exp_inf. scal: [-lr / (1 - beta1^t)]."""
    owner, start = _chunks(sizes)
    for c in prange(owner.shape[0]):
        k = owner[c]
        s = start[c]
        n = min(CHUNK, sizes[k] - s)
        th = _view(ptrs, k, 0, s, n, proto)
        g = _view(ptrs, k, 1, s, n, proto)
        m = _view(ptrs, k, 2, s, n, proto)
        u = _view(ptrs, k, 3, s, n, proto)
        step = scal[k, 0]
        for i in range(n):
            gi = sign * g[i]
            if wd != 0:
                gi = gi + wd * th[i]
            mi = _lerp(m[i], gi, w1, one_minus_w1, big1)
            m[i] = mi
            ui = _maximum(u[i] * beta2, abs(gi) + eps)
            u[i] = ui
            th[i] = th[i] + step * (mi / ui)
