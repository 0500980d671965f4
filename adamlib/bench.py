"""How fast is one optimizer step? adamlib vs torch.optim, every path, against the memory bound.

    python -m adamlib.bench                      # CPU: 1 x 10M and 200 x 50k elements, float32
    python -m adamlib.bench --large              # ... and 1 x 100M (needs ~8 GB of memory)
    python -m adamlib.bench --device cuda --json results/bench_cuda.json
    python -m adamlib.bench --quick              # seconds: tiny sizes, for tests

For each algorithm, every path of adamlib (per-tensor loop, multi-tensor, fused) and of its
torch.optim counterpart (for-loop, foreach, and fused where torch has a kernel) steps its own
copy of the same parameters, with the same preset gradients (a step's time does not depend on
the values). The paths are timed **interleaved** in one process: warm-up steps, then rounds in
which every path takes one step in turn, so a change in machine load hits all of them alike.
Reported per path: the median and min-max over the rounds; the ratio to torch's fastest path
for the same algorithm (median / median); the achieved bandwidth, counting only the bytes an
ideal kernel must move (read theta, g and the state, write theta and the state: 28 B per
float32 parameter for Adam); and the *yardstick*: on a CPU with numba, a one-pass kernel that
moves exactly those streams (reads theta, g and k state arrays, writes theta and the k state
arrays, one addition each: no optimizer arithmetic), timed once in every round beside that
algorithm's paths, so yardstick and optimizers share the rounds and the statistic (the median).
``fraction_of_stream`` is yardstick median / path median. (Without numba, or on a GPU, the
yardstick is an in-place ``a.add_(b)``, 3 streams, scaled to the algorithm's bytes.) Every
round's time is stored (``times_ms``, ``yardstick_times_ms``), with the quartiles.

Shared machines are noisy: /proc/loadavg is recorded before and after, and only ratios within
one run should be compared. The JSON output is written atomically (temp file + rename).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

import adamlib

SCHEMA = "adamlib.bench/2"


@dataclass(frozen=True)
class Algorithm:
    name: str               # adamlib class
    kwargs: dict
    torch_name: str         # torch.optim counterpart
    torch_kwargs: dict
    state_streams: int      # state tensors read and written per step
    torch_fused: bool       # whether torch.optim has a fused kernel for the counterpart

    @property
    def bytes_per_param(self) -> int:
        """The floor of memory traffic per float32 parameter: read theta, g, state; write theta, state."""
        return 4 * (2 + self.state_streams + 1 + self.state_streams)


ALGORITHMS = [
    Algorithm("SGD", dict(lr=1e-3, momentum=0.9), "SGD", dict(lr=1e-3, momentum=0.9), 1, True),
    # torch.optim has no bias-corrected EWA momentum; its nearest is heavy ball (same traffic).
    # adamlib's fused Momentum runs torch's SGD kernel (momentum = dampening = beta, zero buffer)
    Algorithm("Momentum", dict(lr=1e-2, beta=0.9), "SGD", dict(lr=1e-3, momentum=0.9), 1, True),
    Algorithm("Adagrad", dict(lr=1e-2), "Adagrad", dict(lr=1e-2), 1, True),
    Algorithm("RMSProp", dict(lr=1e-3), "RMSprop", dict(lr=1e-3), 1, False),
    Algorithm("Adam", dict(lr=1e-3), "Adam", dict(lr=1e-3), 2, True),
    Algorithm("AdamW", dict(lr=1e-3), "AdamW", dict(lr=1e-3), 2, True),
    Algorithm("AMSGrad", dict(lr=1e-3), "Adam", dict(lr=1e-3, amsgrad=True), 3, True),
    Algorithm("AdaMax", dict(lr=2e-3), "Adamax", dict(lr=2e-3), 2, False),
]
ALGORITHM_BY_NAME = {a.name: a for a in ALGORITHMS}

DEFAULT_SIZES = ["1x10M", "200x50k"]
LARGE_SIZE = "1x100M"
QUICK_SIZES = ["1x20k", "4x5k"]


def parse_size(spec: str) -> tuple[int, int]:
    """'200x50k' -> (200, 50000); suffixes k, M, G."""
    count, numel = spec.lower().split("x")
    mult = {"k": 10**3, "m": 10**6, "g": 10**9}
    n = int(float(numel[:-1]) * mult[numel[-1]]) if numel[-1] in mult else int(numel)
    return int(count), n


def paths(algo: Algorithm, device: str) -> list[tuple[str, str, dict]]:
    """(library, path, constructor kwargs) for every path of both libraries.

    On a GPU, where adamlib's fused path is torch's own kernel (``torch_fused``), adamlib's
    Triton kernel for the same algorithm is timed too ("fused-triton"), so the two kernels
    meet in one table. (A ``_fused_backend`` key is set on the optimizer, not passed to it.)
    """
    out = [("adamlib", "per-tensor", dict(foreach=False, fused=False)),
           ("adamlib", "foreach", dict(foreach=True, fused=False))]
    if device != "cpu" or adamlib.optim._fused.numba_available():
        out.append(("adamlib", "fused", dict(fused=True)))
    if device != "cpu" and algo.torch_fused and adamlib.optim._fused.triton_available():
        out.append(("adamlib", "fused-triton", dict(fused=True, _fused_backend="triton")))
    out += [("torch", "for-loop", dict(foreach=False)), ("torch", "foreach", dict(foreach=True))]
    if algo.torch_fused:
        out.append(("torch", "fused", dict(fused=True)))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def stream_step(count: int, numel: int, device: str):
    """An in-place a.add_(b) over tensors of these sizes: 12 B per element (3 streams)."""
    a = [torch.zeros(numel, device=device) for _ in range(count)]
    b = [torch.ones(numel, device=device) for _ in range(count)]

    def step():
        for x, y in zip(a, b):
            x.add_(y)

    return step


_STREAM_KERNELS = {}


def _stream_kernel(k: int):
    """A numba kernel over the pointer table of k + 2 streams (theta, g, k state arrays): reads
    every stream once and writes theta and the state once, like a fused optimizer step with k
    state tensors, with one addition per stream instead of the optimizer's arithmetic. The same
    chunks, threads and launcher as adamlib's fused kernels."""
    if k not in _STREAM_KERNELS:
        from numba import njit, prange

        from adamlib.optim import _fused
        kernels = _fused.kernels()  # sets numba's threading layer first, as the optimizers do
        _chunks, _view, CHUNK = kernels._chunks, kernels._view, _fused.CHUNK

        @njit(parallel=True, fastmath=False)
        def stream(ptrs, sizes, proto):
            owner, start = _chunks(sizes)
            for c in prange(owner.shape[0]):
                j = owner[c]
                s = start[c]
                n = min(CHUNK, sizes[j] - s)
                th = _view(ptrs, j, 0, s, n, proto)
                g = _view(ptrs, j, 1, s, n, proto)
                a = _view(ptrs, j, 2, s, n, proto)
                b = _view(ptrs, j, min(3, k + 1), s, n, proto)
                d = _view(ptrs, j, min(4, k + 1), s, n, proto)
                for i in range(n):
                    gi = g[i]
                    th[i] = th[i] + gi
                    a[i] = a[i] + gi
                    if k >= 2:
                        b[i] = b[i] + gi
                    if k >= 3:
                        d[i] = d[i] + gi

        _STREAM_KERNELS[k] = stream
    return _STREAM_KERNELS[k]


def matched_stream_step(count: int, numel: int, k: int):
    """The yardstick of an algorithm with k state tensors on a CPU: one pass over theta, g and
    the k state arrays (see ``_stream_kernel``); 4 (2 + k + 1 + k) bytes per element."""
    import numpy as np

    from adamlib.optim import _fused
    rows = [[torch.zeros(numel) for _ in range(k + 2)] for _ in range(count)]
    ptrs, sizes = _fused.table(rows)
    proto = np.empty(0, dtype=np.float32)
    kernel = _stream_kernel(k)

    def step():
        _fused.launch(kernel, ptrs, sizes, proto)

    step.rows = rows  # keep the tensors alive as long as the step
    return step


def _quartiles(ts):
    q = statistics.quantiles(ts, n=4, method="inclusive") if len(ts) > 1 else [ts[0]] * 3
    return q[0], q[2]


def bench_case(count: int, numel: int, algos, device: str, repeats: int, warmup: int,
               progress=None) -> tuple[list[dict], float]:
    """(rows, streaming GB/s): every path of every algorithm, interleaved, and its yardstick
    timed once in every round beside them (see the module docstring); the GB/s returned is the
    median over algorithms of their yardsticks' median bandwidths."""
    matched = device == "cpu" and adamlib.optim._fused.numba_available()
    plain_stream = None if matched else stream_step(count, numel, device)
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(numel, generator=gen).mul_(0.1) for _ in range(count)]
    grads = [torch.randn(numel, generator=gen).to(device) for _ in range(count)]
    rows, stream_gbps = [], []
    for algo in algos:
        stream = matched_stream_step(count, numel, algo.state_streams) if matched else plain_stream
        # bytes the yardstick moves per element: the algorithm's own (matched) or add_'s 12
        stream_bytes = algo.bytes_per_param if matched else 12
        runners = []
        for library, path, kw in paths(algo, device):
            params = [t.to(device).clone().requires_grad_() for t in init]
            for p, g in zip(params, grads):
                p.grad = g  # shared and read-only: every path reads the same gradient
            if library == "adamlib":
                kw = dict(kw)
                backend = kw.pop("_fused_backend", "auto")
                opt = getattr(adamlib, algo.name)(params, **algo.kwargs, **kw)
                opt._fused_backend = backend
            else:
                opt = getattr(torch.optim, algo.torch_name)(params, **algo.torch_kwargs, **kw)
            runners.append((library, path, opt))
        for _ in range(warmup):
            stream()
            for *_, opt in runners:
                opt.step()
        times = {(lib, path): [] for lib, path, _ in runners}
        stream_times = []
        for r in range(repeats):
            order = runners[r % len(runners):] + runners[:r % len(runners)]  # rotate who goes first
            for lib, path, opt in order:
                times[(lib, path)].append(_timed(opt.step, device))
            stream_times.append(_timed(stream, device))
        stream_med = statistics.median(stream_times)
        # the time the yardstick would take for this algorithm's bytes
        bound = stream_med * algo.bytes_per_param / stream_bytes
        stream_gbps.append(stream_bytes * count * numel / stream_med / 1e9)
        torch_best = min(statistics.median(v) for (lib, _), v in times.items() if lib == "torch")
        for (lib, path), ts in times.items():
            med = statistics.median(ts)
            q1, q3 = _quartiles(ts)
            rows.append(dict(
                algorithm=algo.name, torch_counterpart=algo.torch_name, library=lib, path=path,
                median_ms=1e3 * med, min_ms=1e3 * min(ts), max_ms=1e3 * max(ts),
                q1_ms=1e3 * q1, q3_ms=1e3 * q3, times_ms=[1e3 * t for t in ts],
                bytes_per_param=algo.bytes_per_param,
                gbps=algo.bytes_per_param * count * numel / med / 1e9,
                ratio_vs_torch_best=med / torch_best,
                yardstick="matched" if matched else "add_",
                yardstick_times_ms=[1e3 * t for t in stream_times],
                stream_gbps=stream_gbps[-1],
                bound_ms=1e3 * bound, fraction_of_stream=bound / med,
            ))
        if progress:
            progress(algo.name)
        del runners, stream
    return rows, statistics.median(stream_gbps)


def machine_info(device: str) -> dict:
    info = dict(
        platform=platform.platform(), python=platform.python_version(),
        torch=torch.__version__, torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
    )
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        import numba
        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        if device == "cpu":
            adamlib.optim._fused.kernels()  # picks and starts numba's thread pool
            info["numba_threading_layer"] = numba.threading_layer()
            info["numba_on_torch_openmp"] = adamlib.optim._fused.shares_torch_openmp()
    except ImportError:
        info["numba"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        try:  # adamlib's fused RMSProp, AdaMax and Adam without bias correction run Triton here
            import triton
            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = None
    return info


def loadavg() -> str | None:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return None


def run(sizes=None, large=False, device="cpu", repeats=15, warmup=3, algorithms=None,
        quick=False, progress=None) -> dict:
    """Run the benchmark and return its results as a JSON-ready dict."""
    if quick:
        sizes, repeats, warmup = sizes or QUICK_SIZES, min(repeats, 3), 1
    sizes = list(sizes or DEFAULT_SIZES) + ([LARGE_SIZE] if large else [])
    algos = [ALGORITHM_BY_NAME[a] for a in algorithms] if algorithms else ALGORITHMS
    out = dict(schema=SCHEMA, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               machine=machine_info(device), loadavg_before=loadavg(),
               settings=dict(device=device, dtype="float32", repeats=repeats, warmup=warmup,
                             interleaved=True, quick=quick),
               cases=[])
    for spec in sizes:
        count, numel = parse_size(spec)
        rows, bw = bench_case(count, numel, algos, device, repeats, warmup,
                          progress=(lambda a, s=spec: progress(f"{s} {a}")) if progress else None)
        out["cases"].append(dict(size=spec, tensors=count, numel_per_tensor=numel,
                                 stream_gbps=bw, loadavg=loadavg(), results=rows))
    out["loadavg_after"] = loadavg()
    return out


def table(result: dict) -> str:
    """A readable text table of a run."""
    machine, device = result["machine"], result["settings"]["device"]
    on_gpu = device.startswith("cuda")
    compiler = f"triton {machine.get('triton')}" if on_gpu else f"numba {machine.get('numba')}"
    lines = [f"adamlib.bench on {machine.get('gpu' if on_gpu else 'cpu_model', '?')} "
             f"({device}, torch {machine['torch']}, {compiler}); "
             f"loadavg before: {result['loadavg_before']}"]
    for case in result["cases"]:
        lines.append("")
        lines.append(f"{case['size']}: yardstick {case['stream_gbps']:.1f} GB/s (median over algorithms), "
                     f"loadavg {case['loadavg']}")
        lines.append(f"{'algorithm':<9} {'library':<8} {'path':<12} {'median ms':>9} {'min-max ms':>15} "
                     f"{'x torch best':>12} {'GB/s':>6} {'% stream':>8}")
        for r in case["results"]:
            lines.append(
                f"{r['algorithm']:<9} {r['library']:<8} {r['path']:<12} {r['median_ms']:9.2f} "
                f"{r['min_ms']:7.2f}-{r['max_ms']:<7.2f} {r['ratio_vs_torch_best']:12.2f} "
                f"{r['gbps']:6.1f} {100 * r['fraction_of_stream']:7.0f}%")
        # the yardstick of each algorithm (same rounds, same statistic)
        seen = []
        for r in case["results"]:
            if r["algorithm"] not in seen:
                seen.append(r["algorithm"])
                lines.append(f"{r['algorithm']:<9} {'stream':<8} {r['yardstick']:<12} {r['bound_ms']:9.2f} "
                             f"{'':15} {'':12} {r['stream_gbps']:6.1f} {'':>8}")
    lines.append(f"\nloadavg after: {result['loadavg_after']}")
    return "\n".join(lines)


def write_json(result: dict, path: str) -> None:
    """Write atomically: a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bench-", suffix=".json")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a results file is not
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m adamlib.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", help=f"COUNTxNUMEL, e.g. 200x50k (default {' '.join(DEFAULT_SIZES)})")
    ap.add_argument("--large", action="store_true", help=f"also {LARGE_SIZE} (DRAM-bound)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per path first (default 3)")
    ap.add_argument("--algorithms", nargs="+", choices=list(ALGORITHM_BY_NAME))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds (a smoke test)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device here")
    result = run(args.sizes, args.large, args.device, args.repeats, args.warmup, args.algorithms,
                 args.quick, progress=lambda s: print(f"  done {s}", file=sys.stderr, flush=True))
    print(table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
