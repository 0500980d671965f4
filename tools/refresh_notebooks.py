#!/usr/bin/env python3
"""Re-execute notebooks in place and store their outputs (what nbval compares against).

    python tools/refresh_notebooks.py chapters/01_gradient_descent.ipynb [...]

Each notebook runs top to bottom in a fresh ``python3`` kernel of the running interpreter
(run this with the project's ``.venv`` Python, as ``python3 tasks.py refresh`` does), in the
notebook's own folder. The widget state is stored, so static sliders work on the published page.
Per-cell timing and execution metadata are dropped so a refresh changes only what changed.
Prints the wall time and size of each notebook; exits non-zero if a cell fails.
Each refreshed chapter's wall time, machine and versions are recorded in
chapters/execution.json (tools/execution_status.py), which the book's execution-status page shows.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import execution_status  # tools/execution_status.py, beside this script

# Cell metadata that records when or how a cell ran, not what it is.
NOISY_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop per-cell run metadata; keep tags and everything else authored."""
    for cell in nb.cells:
        for key in NOISY_CELL_METADATA:
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    # No widget state: the live figures need a kernel anyway, the static faces are plain HTML,
    # and stored state went stale whenever a notebook was saved half-run from JupyterLab.
    nb.metadata.pop("widgets", None)
    fold_solution_code(nb)


def fold_solution_code(nb: nbformat.NotebookNode) -> None:
    """The code cells of a gated solution ({solution-start} ... {solution-end}) start collapsed
    in JupyterLab (``jupyter.source_hidden`` / ``outputs_hidden``), as the solution itself is
    folded there by jupyterlab-myst and on the page by the book: the numbers they print are the
    solution's answer."""
    inside = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            start, end = cell.source.rfind("{solution-start}"), cell.source.rfind("{solution-end}")
            if start > end:
                inside = True
            elif end >= 0:
                inside = False
        elif cell.cell_type == "code" and inside:
            cell.metadata.setdefault("jupyter", {}).update(source_hidden=True, outputs_hidden=True)
    # The kernel's exact Python patch version is noise in diffs; keep name and major version.
    info = nb.metadata.get("language_info")
    if info is not None:
        info.pop("version", None)


def refresh(path: Path) -> float:
    """Execute the notebook at ``path`` in place; return the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        store_widget_state=False,
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    clean(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    if path.parent.name == "chapters":
        execution_status.record(path, seconds, nb)
    return seconds


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    failed = []
    report = []
    for name in argv:
        path = Path(name).resolve()
        if not path.is_file() or path.suffix != ".ipynb":
            print(f"refresh: {name}: not a notebook file", file=sys.stderr)
            failed.append(name)
            continue
        print(f"refresh: {name} ...", flush=True)
        try:
            seconds = refresh(path)
        except CellExecutionError as error:
            print(f"refresh: {name}: a cell failed; outputs not written\n{error}", file=sys.stderr)
            failed.append(name)
            continue
        size = path.stat().st_size
        report.append((name, seconds, size))
    if report:
        print("\ntiming report (wall time of execution, size on disk):")
        width = max(len(n) for n, _, _ in report)
        for name, seconds, size in report:
            print(f"  {name:<{width}}  {seconds:7.1f} s  {size / 1e6:6.2f} MB")
        print(f"  {'total':<{width}}  {sum(s for _, s, _ in report):7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
