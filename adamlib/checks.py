"""Verdicts instead of residues: how a chapter says that two computations agree or a claim holds.

A printed difference such as ``3.2e-15`` is a rounding residue: its digits change with the CPU
(AVX2 or AVX-512 kernels), the thread count (the order of a parallel sum) and the BLAS in use,
while the science behind it does not. So a chapter never prints one as a value. It states the
bound it checks, and the check decides::

    >>> agree(theta_adamlib, theta_torch, "adamlib.Adam", "torch.optim.Adam", dtype="float64", ops=500)
    adamlib.Adam agrees with torch.optim.Adam to < 1e-12 relative (float64, 500 steps)

The bound comes from the dtype and the number of rounding steps: machine epsilon of the dtype
times the operation count, rounded up to a power of ten (:func:`bound`). Rounding errors of
``n`` operations grow at most linearly in ``n`` (and typically like ``sqrt(n)``), so a bound
``n * eps`` holds on every machine while a real bug (a wrong formula, a missing bias
correction) is many orders of magnitude above it. The comparison is normwise: the largest
absolute difference divided by the largest magnitude of the expected values, so entries that
pass through zero do not blow it up.

:func:`rounding_margin` says how far a printed value is from flipping its last digit, and
:func:`glue` hands a formatted number to the prose of the published page.

:func:`claim` asserts a chapter's stated result ("Adam ends below Adagrad", "the weights sum
to 1 - beta^t") and prints ``check: ... holds``; a regression fails on the claim, in a visible
cell. Both raise ``AssertionError`` with the measured number when the check fails, so a reader
(and nbval) sees what broke.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["bound", "relative_difference", "agree", "claim", "within", "rounding_margin", "glue"]

_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps),
        "float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0 ** -7}


def _dtype_name(dtype) -> str:
    """'float64' for torch.float64, np.float64, np.dtype('float64') or the string."""
    name = str(dtype).replace("torch.", "")
    if name not in _EPS:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in _EPS:
        raise ValueError(f"dtype={dtype!r} is not accepted: expected one of {', '.join(_EPS)}")
    return name


def bound(dtype, ops: int = 1) -> float:
    """The relative tolerance for ``ops`` rounding steps in ``dtype``: 10**ceil(log10(ops * eps)).

    ``bound("float64", 500) == 1e-12`` (500 x 2.2e-16 = 1.1e-13, rounded up); ``bound("float32", 50) == 1e-5``.
    """
    if not (isinstance(ops, int) and ops >= 1):
        raise ValueError(f"ops={ops!r} is not accepted: expected an integer >= 1")
    return 10.0 ** math.ceil(math.log10(ops * _EPS[_dtype_name(dtype)]))


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):                       # a torch tensor (bfloat16 has no numpy dtype)
        x = x.detach().cpu()
        x = x.numpy() if x.is_complex() else x.double().numpy()
    return np.asarray(x)


def relative_difference(actual, expected) -> float:
    """max |actual - expected| / max |expected| (0 when both are exactly equal)."""
    a, e = _as_array(actual), _as_array(expected)
    if a.shape != e.shape:
        raise ValueError(f"actual has shape {a.shape} and expected {e.shape}: expected equal shapes")
    difference = float(np.max(np.abs(a - e))) if a.size else 0.0
    if difference == 0.0:
        return 0.0
    scale = float(np.max(np.abs(e)))
    return math.inf if scale == 0.0 else difference / scale


def agree(actual, expected, name: str, other: str, *, dtype=None, ops: int = 1,
          rtol: float | None = None, unit: str = "steps", quiet: bool = False) -> str:
    """Check that ``actual`` equals ``expected`` to a stated relative bound; print the verdict.

    The bound is ``rtol`` if given, else :func:`bound` (``dtype``, ``ops``). Returns the verdict
    line (also printed unless ``quiet``); raises AssertionError, with the measured relative
    difference, if the bound is exceeded.
    """
    if rtol is None:
        if dtype is None:
            raise ValueError("dtype=None is not accepted without rtol: expected a dtype (float64, float32, ...)")
        rtol = bound(dtype, ops)
    if not rtol > 0:
        raise ValueError(f"rtol={rtol!r} is not accepted: expected a positive number")
    measured = relative_difference(actual, expected)
    context = ", ".join(part for part in (
        None if dtype is None else _dtype_name(dtype),
        None if ops == 1 else f"{ops} {unit}") if part)
    verdict = f"{name} agrees with {other} to < {rtol:.0e} relative" + (f" ({context})" if context else "")
    if not measured < rtol:
        raise AssertionError(f"{name} differs from {other} by {measured:.3g} relative, "
                             f"above the bound {rtol:.0e}")
    if not quiet:
        print(verdict)
    return verdict


def claim(holds, text: str, detail: str = "") -> str:
    """Assert a chapter's stated result; print ``check: <text> holds``.

    ``holds`` is the computed condition (a bool or a numpy bool); ``detail`` (the numbers
    behind it) goes into the AssertionError when it does not hold.
    """
    if not bool(holds):
        raise AssertionError(f"check failed: {text}" + (f" ({detail})" if detail else ""))
    line = f"check: {text} holds"
    print(line)
    return line


def within(value: float, target: float, rtol: float) -> bool:
    """|value - target| <= rtol * |target|: for claims such as "about 31.6 eps"."""
    return abs(value - target) <= rtol * abs(target)


def rounding_margin(x: float, digits: int) -> float:
    """The relative distance of ``x`` from the nearest value at which its ``digits``-digit rounding flips.

    A printed value is stable on another machine only if this exceeds the relative change the
    machine can make (e.g. ~1e-15 for a well-conditioned float64 result): chapters claim
    ``rounding_margin(x, 4) > 1e-6`` for what they print to 4 digits.
    """
    if not (isinstance(digits, int) and digits >= 1):
        raise ValueError(f"digits={digits!r} is not accepted: expected an integer >= 1")
    if x == 0 or not math.isfinite(x):
        return math.inf
    unit = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
    return abs(abs(x) / unit % 1 - 0.5) * unit / abs(x)


def glue(name: str, text: str) -> None:
    """Hand ``text`` to the prose as ``{glue:text}`name```: myst-nb's glue, hidden in the cell.

    Only formatted strings are accepted: nbval compares the stored repr of a glued value, and a
    raw float's repr carries the digits that change from machine to machine. Where myst-nb is
    not installed (Colab, Binder) this does nothing; the cell prints the value anyway.
    """
    if not isinstance(text, str):
        raise TypeError(f"text={text!r} is not accepted: expected a formatted string, e.g. f'{{x:.4g}}'")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, text, display=False)
