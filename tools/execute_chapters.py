#!/usr/bin/env python3
"""Execute the book's notebooks in parallel into a fresh jupyter-cache, for `tasks.py build`.

    python tools/execute_chapters.py CACHE_DIR NB [NB ...] [--jobs N] [--warm-experiments]

Jupyter Book executes notebooks one after another. This runs them ``--jobs`` at a time
(default 2: the machine's two cores), each in its own kernel limited to one thread
(OMP_NUM_THREADS=1 and friends), so two chapters never share a core's threads; the longest
chapters (by chapters/execution.json) start first. Each executed notebook goes into the
jupyter-cache at CACHE_DIR, which is emptied first, and the build then runs with
``execute_notebooks: cache`` against it: every chapter is still executed afresh on every
build, and the stored notebooks in chapters/ are not touched. A failing cell fails the
whole run (exit 1, with the cell's traceback), as the strict build does.

With ``--warm-experiments`` the fast experiments of adamlib.experiments are computed first, as
jobs of the same pool (heaviest first), into the on-disk cache the chapters read: on a cold
cache the VAE grid alone takes as long as several chapters, and it would otherwise start only
when chapter 13 does. A chapter that needs a result still being computed waits for it (the
cache entry is locked while it is computed) instead of computing it a second time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def execute(path: str, timeout: int) -> tuple[str, float, str | None, str]:
    """Run one notebook in its folder; return (path, seconds, error or None, notebook JSON)."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    os.environ.update(ONE_THREAD)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)  # as tools/refresh_notebooks.py stores them: no widget state
    # IPC (a Unix socket file per channel), not TCP: with TCP each kernel's ports are picked
    # free by its manager and bound later by the kernel, and two kernels started at once (this
    # pool's, or another process's) can pick the same port ("Address already in use", then
    # "Kernel died before replying to kernel_info").
    # The sockets' path is absolute: the kernel runs in the notebook's folder, its manager here.
    sockets = tempfile.mkdtemp(prefix="kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "ipc"))
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3", record_timing=False,
                            store_widget_state=False,
                            resources={"metadata": {"path": str(Path(path).parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        return path, time.perf_counter() - start, str(error), ""
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return path, time.perf_counter() - start, None, nbformat.writes(nb)


def warm(name: str) -> tuple[str, float, str | None, str]:
    """Compute experiment ``name`` in fast mode into the on-disk cache (nothing if it is there)."""
    os.environ.update(ONE_THREAD)
    from adamlib import experiments

    start = time.perf_counter()
    try:
        experiments.run(name)
    except Exception as error:  # reported like a failing cell: the chapter would fail the same way
        return name, time.perf_counter() - start, f"{type(error).__name__}: {error}", ""
    return name, time.perf_counter() - start, None, ""


def experiment_names() -> list[str]:
    """The fast experiments, heaviest first (adamlib lists them from the lightest, logreg, to the VAE grid)."""
    from adamlib import experiments

    return list(experiments.EXPERIMENTS)[::-1]


def longest_first(paths: list[str]) -> list[str]:
    """Order by the last recorded run time (chapters/execution.json), longest first."""
    record = Path(__file__).resolve().parents[1] / "chapters" / "execution.json"
    try:
        seconds = {k: v.get("seconds", 0.0) for k, v in json.loads(record.read_text()).items()
                   if isinstance(v, dict)}
    except (OSError, ValueError, AttributeError):
        seconds = {}
    return sorted(paths, key=lambda p: -float(seconds.get(Path(p).stem, 0.0)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--warm-experiments", action="store_true",
                        help="compute the fast experiments first, heaviest first, into their cache")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs} is not accepted: expected an integer >= 1")

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    shutil.rmtree(args.cache, ignore_errors=True)
    cache = get_cache(str(args.cache))
    failed = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        warming = {pool.submit(warm, name) for name in (experiment_names() if args.warm_experiments else [])}
        futures = [*warming] + [pool.submit(execute, str(Path(p).resolve()), args.timeout)
                                for p in longest_first(args.notebooks)]
        for future in as_completed(futures):
            path, seconds, error, text = future.result()
            name = Path(path).name
            if future in warming:
                if error is not None:
                    print(f"execute: experiment {name} failed after {seconds:.1f} s: {error}", file=sys.stderr, flush=True)
                    failed.append(f"experiment {name}")
                else:
                    print(f"execute: experiment {name} {seconds:6.1f} s", flush=True)
                continue
            if error is not None:
                print(f"execute: {name}: a cell failed after {seconds:.1f} s\n{error}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(nbformat.reads(text, as_version=4), path, data={"execution_seconds": seconds}),
                check_validity=False, overwrite=True)
            print(f"execute: {name} {seconds:6.1f} s", flush=True)
    notebooks_failed = [f for f in failed if not f.startswith("experiment ")]
    print(f"execute: {len(args.notebooks) - len(notebooks_failed)} notebooks in {time.perf_counter() - start:.0f} s "
          f"({args.jobs} at a time)", flush=True)
    if failed:
        print(f"execute: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
