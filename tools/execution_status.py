#!/usr/bin/env python3
"""The execution-status record: how long each chapter took to run, where, and with what.

    python tools/execution_status.py measure chapters/01_gradient_descent.ipynb [...]
    python tools/execution_status.py show

The record is ``chapters/execution.json``, one entry per chapter, committed beside the
notebooks whose stored outputs it describes. ``tools/refresh_notebooks.py`` (what
``python3 tasks.py refresh`` runs) updates a chapter's entry every time it stores that
chapter's outputs, so the record always describes the outputs in the repository.
``measure`` executes notebooks in memory (nothing is written to them) and records only the
timing: use it to fill the record without touching the notebooks.

The book's page ``execution.md`` renders the record with the ``execution-status`` directive
(book_ext/execution_status.py). Builds only read the file, so a build never changes the
working tree and two builds of the same commit give the same page.

Each entry: wall time of the whole notebook (s), the day it was recorded (UTC), the machine
(OS, CPU model, cores, GPU if torch saw one), Python, torch, NumPy and adamlib versions, and
a hash of the notebook's code cells, so the page can say when a chapter changed after its
time was recorded.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "chapters" / "execution.json"


def code_hash(nb) -> str:
    """sha256 (16 hex digits) of the notebook's code cells, the Colab cell excluded.

    The Colab cell is excluded because tools/book_repository.py rewrites it when the
    repository moves (a fork), which does not change what the chapter computes.
    """
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if cells and "remove-cell" in cells[0].get("metadata", {}).get("tags", []):
        cells = cells[1:]
    digest = hashlib.sha256()
    for cell in cells:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        digest.update(source.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where and with what a chapter ran (no host names, no user names)."""
    info = {
        "os": f"{platform.system()} {platform.machine()}",
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    for name in ("torch", "numpy", "adamlib"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 (a broken CUDA set-up must not stop the record)
        info["gpu"] = None
    return info


@contextlib.contextmanager
def _locked():
    """Serialize read-modify-write of the record (several refreshes may run at once).

    The lock is on the record's folder itself, so no lock file is left in the tree.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock; refreshes there run one at a time
        yield
        return
    fd = os.open(RECORD.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def load(path: Path = RECORD) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def record(notebook: Path, seconds: float, nb=None, path: Path = RECORD) -> dict:
    """Store (or replace) the entry of one chapter; return it."""
    import nbformat

    notebook = Path(notebook).resolve()
    if nb is None:
        nb = nbformat.read(notebook, as_version=4)
    entry = {
        "seconds": round(seconds, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
        "code_sha256": code_hash(nb),
        **machine(),
    }
    key = notebook.stem
    with _locked():
        data = load(path)
        data[key] = entry
        text = json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True) + "\n"
        # Atomic replace: a reader (a build) never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".execution.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return entry


def measure(notebook: Path) -> float:
    """Execute a notebook in memory (as refresh does, nothing written); return seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(Path(notebook).resolve().parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    record(notebook, seconds, nbformat.read(notebook, as_version=4))
    return seconds


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"measure", "show"}:
        print(__doc__)
        return 2
    if argv[0] == "show":
        print(json.dumps(load(), indent=1))
        return 0
    status = 0
    for name in argv[1:]:
        try:
            seconds = measure(Path(name))
        except Exception as error:  # noqa: BLE001 (report and go on with the next one)
            print(f"execution_status: {name}: {type(error).__name__}: {error}", file=sys.stderr)
            status = 1
            continue
        print(f"execution_status: {name}: {seconds:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
