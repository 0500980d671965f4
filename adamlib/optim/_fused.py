"""Fused optimizer steps: one pass over memory per parameter per step.

An elementwise optimizer step does a handful of flops per element and is bound by memory
traffic: Adam must read theta, g, m, v and write theta, m, v, 28 bytes per float32 parameter,
and no implementation can move less. torch's per-tensor loop makes about seven passes (one
per tensor op, each reading and writing whole tensors, plus temporaries). A *fused* step
reads every stream once and writes every updated stream once.

Three implementations, all held equal to the readable per-tensor loop by tests/test_fused.py
and tests/test_fused_triton.py:

* **torch's own fused kernels** (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``,
  ``_fused_adagrad_``), on any device, where adamlib's configuration is exactly one that torch
  implements (SGD, Momentum, Adagrad, Adam/AdamW/AMSGrad with bias correction). They come
  first (see ``AdamlibOptimizer._step_fused``): nothing to compile, nothing to install.
* **CPU: numba kernels** (``_fused_kernels``) for the rest (RMSProp, AdaMax, Adam without bias
  correction). One ``@njit(parallel=True, cache=True, fastmath=False)`` kernel per algorithm.
  A step hands it a table of raw data pointers (one row per parameter: theta, g and the state
  tensors), so the parameters of one param group are stepped in ONE parallel region, split
  into chunks of ``CHUNK`` elements that the threads share. Scalars that depend on a
  parameter's own step count (bias corrections) come in a per-parameter table. The
  arithmetic is that of the per-tensor loop, in the same order and in the parameter's dtype;
  ``fastmath=False`` keeps IEEE semantics (no reassociation, no approximate sqrt/div).
  Kernels are compiled once per dtype and cached on disk (numba's ``cache=True``: beside this
  file in ``__pycache__``, or in the user's cache directory when that is not writable).
* **GPU: Triton kernels** (``_triton_kernels``) for the same rest, with the same pointer
  tables (kept on the device) and the same arithmetic; one launch per param group and step.
  Triton compiles a kernel once per dtype and caches it on disk (``~/.triton``). Without
  Triton those configurations take the multi-tensor path.

``run_numba`` and ``run_triton`` are the two launchers an optimizer's ``_fused_kernel`` calls,
with the same arguments. numba and Triton are optional: ``import adamlib`` works without them,
and ``fused=True`` on a CPU parameter without numba raises an ImportError that says what to
install.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections import defaultdict

import torch

#: elements of one work item: threads share a step's parameters in pieces of this size
CHUNK = 1 << 15

#: dtypes adamlib's kernels handle (complex tensors go through their real view)
KERNEL_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)

INSTALL_HINT = "pip install numba"


@functools.cache
def numba_available() -> bool:
    """Whether numba can be imported (checked once, without importing it: that takes ~1 s)."""
    return importlib.util.find_spec("numba") is not None


def require_numba(owner: str) -> None:
    if not numba_available():
        raise ImportError(
            f"{owner}(fused=True) on a CPU parameter needs numba, which is not installed: "
            f"{INSTALL_HINT} (or pass fused=False / fused=None to use the unfused paths)"
        )


_KERNELS = None
_LOCK = threading.Lock()

#: a group smaller than this (elements) is stepped by one thread: waking a second one
#: costs more than it saves
PARALLEL_MIN_NUMEL = 4 * CHUNK


def kernels():
    """The compiled-on-demand numba kernels (module ``adamlib.optim._fused_kernels``).

    numba's thread pool, unless the user chose one (``NUMBA_THREADING_LAYER``): its OpenMP
    layer where that runs on torch's own OpenMP runtime (:func:`shares_torch_openmp`), its
    "workqueue" pool otherwise. The reason is the threads torch leaves behind: after every
    parallel torch operation (a backward pass, say) torch's OpenMP workers spin for a few
    milliseconds waiting for more work. A kernel on a separate pool then shares the cores with
    them: on the 2-core machine that builds the book an RMSProp loop over 10M float32 numbers
    took 9.5 ms (median) right after a torch operation against 5.5 ms on idle cores. On torch's
    runtime the spinning workers *are* the kernel's threads: 5.1 ms and 5.2 ms. A separate
    OpenMP runtime would be the worst of both (two pools spinning on the same cores; all steps
    2-3x slower), hence the check.
    """
    global _KERNELS
    if _KERNELS is None:
        require_numba("adamlib")
        import numba
        if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
            numba.config.THREADING_LAYER = "omp" if shares_torch_openmp() else "workqueue"
        _start_numba_threads()
        from . import _fused_kernels
        _KERNELS = _fused_kernels
    return _KERNELS


def shares_torch_openmp() -> bool:
    """Whether numba's OpenMP layer would run on the OpenMP runtime torch runs on.

    numba's ``omppool`` takes its ``GOMP_*`` functions from the process's global symbol
    scope, where torch's wheel puts its own libgomp (Linux). True when the global
    ``GOMP_parallel`` lives in a library inside torch's package and torch parallelises with
    OpenMP; False elsewhere (macOS, Windows, a torch built on another runtime).
    """
    import ctypes
    try:
        if "OpenMP" not in torch.__config__.parallel_info():
            return False
        address = ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except (AttributeError, OSError):
        return False
    package = os.path.dirname(os.path.realpath(torch.__file__))
    torch_dirs = (os.path.join(package, "lib"), package + ".libs")  # wheels: torch/lib, torch.libs
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            path = os.path.realpath(fields[5])
            return os.path.dirname(path) in torch_dirs and os.path.basename(path).startswith("libgomp")
    return False


def _start_numba_threads() -> None:
    """Start numba's pool now, and undo what starting it does to torch's OpenMP settings.

    numba's OpenMP layer, on start, sets the thread count of the calling thread to numba's
    (``omp_set_num_threads``) and enables nested parallel regions. On torch's runtime both
    would change torch: restore torch's thread count and its number of active levels.
    (Like torch's own OpenMP pool, it does not survive fork(): a forked child that steps in
    parallel hangs in torch, and numba's layer terminates it with a message instead.)
    """
    import ctypes

    import numba
    from numba.np.ufunc import parallel
    openmp = ctypes.CDLL(None)
    threads = torch.get_num_threads()
    levels = openmp.omp_get_max_active_levels() if hasattr(openmp, "omp_get_max_active_levels") else None
    parallel._launch_threads()  # what numba's first parallel kernel would do
    if numba.threading_layer() == "omp":
        torch.set_num_threads(threads)
        if levels is not None:
            openmp.omp_set_max_active_levels(levels)


def launch(kernel, ptrs, sizes, *args) -> None:
    """Run one kernel: on one thread for a small group, else on as many as torch uses.

    (The lock: numba's workqueue pool must not be entered from two threads at once.)
    """
    import numba
    threads = 1 if int(sizes.sum()) < PARALLEL_MIN_NUMEL else \
        max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    with _LOCK:
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            kernel(ptrs, sizes, *args)
        finally:
            numba.set_num_threads(before)


#: dtypes torch's fused kernels take on a GPU
TORCH_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                      torch.complex64, torch.complex128)


#: the tensor types whose data_ptr() is their memory
PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def plain(p: torch.Tensor) -> bool:
    """A parameter and gradient of the plain tensor types (not DTensor or another subclass)."""
    return type(p) in PLAIN_TYPES and type(p.grad) in PLAIN_TYPES


def kernel_eligible(p: torch.Tensor, state: dict) -> bool:
    """A parameter whose tensors adamlib's kernels can treat as flat arrays of equal layout.

    ``state``: the parameter's optimizer state (its tensors other than ``step`` are checked).
    Called for every parameter on every fused step, so it uses the cheapest attributes.
    """
    g = p.grad
    dtype = p.dtype
    if not (dtype in KERNEL_DTYPES and g.dtype == dtype and g.device == p.device
            and p.is_contiguous() and g.is_contiguous()):
        return False
    for name, s in state.items():
        if name != "step" and isinstance(s, torch.Tensor) and not (s.is_contiguous() and s.dtype == dtype):
            return False
    return True


def real(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors are stepped as pairs of reals, as torch.optim does (C treated as R^2)."""
    return torch.view_as_real(t) if t.is_complex() else t


def real_numel(p: torch.Tensor) -> int:
    return p.numel() * (2 if p.is_complex() else 1)


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def table(rows: list[list[torch.Tensor]]):
    """(pointers[K, S], sizes[K]) as int64 numpy arrays for K parameters and S streams."""
    import numpy as np
    ptrs = np.array([[t.data_ptr() for t in row] for row in rows], dtype=np.int64)
    sizes = np.array([real_numel(row[0]) for row in rows], dtype=np.int64)
    return ptrs, sizes


def np_dtype(dtype: torch.dtype):
    import numpy as np
    return np.float32 if real_dtype(dtype) == torch.float32 else np.float64


def per_param(values, dtype: torch.dtype):
    """A [K, R] numpy table of per-parameter scalars in the kernel's dtype."""
    import numpy as np
    return np.ascontiguousarray(np.array(values, dtype=np_dtype(dtype)).reshape(len(values), -1))


def scalars(dtype: torch.dtype, *values):
    """Scalars as numpy scalars of the parameter's real dtype, as torch casts them."""
    t = np_dtype(dtype)
    return tuple(t(v) for v in values)


def proto(dtype: torch.dtype):
    """An empty numpy array that tells a kernel the real dtype of its tensors."""
    import numpy as np
    return np.empty(0, dtype=np_dtype(dtype))


def lerp_weights(w: float, dtype: torch.dtype):
    """(w, 1 - w) as torch's lerp computes them in the tensor's dtype."""
    t = np_dtype(dtype)
    return t(w), t(1) - t(w)


# ---- the two launchers an optimizer's _fused_kernel calls ---------------------------------


def _scal_rows(scal_rows) -> list[tuple[float, ...]]:
    return [tuple(map(float, s)) if isinstance(s, (list, tuple)) else (float(s),) for s in scal_rows]


def run_numba(name: str, rows: list[list[torch.Tensor]], scal_rows, dtype: torch.dtype, *args) -> None:
    """Step K CPU parameters with numba kernel ``name``.

    ``rows``: per parameter, its streams (theta, g, state tensors); ``scal_rows``: per parameter,
    its step-count-dependent scalars (a number or a tuple); ``args``: the kernel's other
    scalars (``scalars`` / ``lerp_weights``, in ``dtype``) and flags.
    """
    ptrs, sizes = table(rows)
    launch(getattr(kernels(), name), ptrs, sizes, per_param(_scal_rows(scal_rows), dtype),
           proto(dtype), *args)


@functools.cache
def triton_available() -> bool:
    """Whether Triton can be imported (checked once, without importing it)."""
    return importlib.util.find_spec("triton") is not None


_TRITON = None


def triton_kernels():
    """The Triton kernels (module ``adamlib.optim._triton_kernels``), imported on first use."""
    global _TRITON
    if _TRITON is None:
        from . import _triton_kernels
        _TRITON = _triton_kernels
    return _TRITON


#: device-side block tables, by (device, pointers, sizes): see ``triton_table``
_TABLES: dict = {}
_TABLES_MAX = 64


def triton_table(rows: list[list[torch.Tensor]]):
    """(ptrs[K, S], owner[B], start[B], sizes[K]) on the parameters' device, for B blocks.

    Made once and cached by the pointers and sizes themselves (a tensor re-allocated at
    another address gets a new table), so a step neither copies to the GPU nor waits for it.
    """
    import numpy as np
    device = rows[0][0].device
    key = (device, tuple(t.data_ptr() for row in rows for t in row),
           tuple(real_numel(row[0]) for row in rows))
    hit = _TABLES.get(key)
    if hit is None:
        block = triton_kernels().BLOCK
        ptrs, sizes = table(rows)
        counts = -(-sizes // block)
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        start = (np.arange(int(counts.sum()), dtype=np.int64)
                 - np.repeat(np.cumsum(counts) - counts, counts)) * block
        # one transfer; each part starts on a 16-byte boundary, so every table has the same
        # alignment and Triton (which specialises a kernel on its pointers' alignment) compiles
        # each kernel once
        parts = [ptrs.ravel(), owner, start, sizes]
        padded = [np.pad(a, (0, a.size % 2)) for a in parts]
        packed = torch.from_numpy(np.concatenate(padded)).to(device)
        offsets = np.cumsum([0] + [a.size for a in padded])
        views = [packed[o:o + a.size] for o, a in zip(offsets, parts)]
        hit = (views[0].view(ptrs.shape), *views[1:])
        if len(_TABLES) >= _TABLES_MAX:
            _TABLES.clear()
        _TABLES[key] = hit
    return hit


def run_triton(name: str, rows: list[list[torch.Tensor]], scal_rows, dtype: torch.dtype, *args) -> None:
    """Step K parameters on their device with Triton kernel ``name``; arguments as ``run_numba``.

    The per-parameter scalars are passed as kernel arguments, one launch per distinct value
    (every parameter of a group is usually at the same step), so nothing is copied per step.
    """
    kernel = getattr(triton_kernels(), name)
    by_scal = defaultdict(list)
    for row, scal in zip(rows, _scal_rows(scal_rows)):
        by_scal[scal].append(row)
    args = [float(a) if not isinstance(a, (bool, int)) else a for a in args]
    proto_tensor = real(rows[0][0])  # only its dtype is read
    for scal, bucket in by_scal.items():
        ptrs, owner, start, sizes = triton_table(bucket)
        if owner.numel():
            kernel[(owner.numel(),)](ptrs, ptrs.shape[1], owner, start, sizes, proto_tensor,
                                     *scal, *args, **triton_kernels().LAUNCH)
