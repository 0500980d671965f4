"""Where results are kept: the cache (:func:`cache_dir`, :func:`cache_key`), the per-run
results of a grid as each run finishes (:class:`_Grid`), atomic writes and locks."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import torch

from .. import __version__
from .._atomic import atomic_file
from .progress import _Progress
from .results import Result

def cache_dir() -> Path:
    """``$ADAMLIB_CACHE`` if set; in a source checkout ``<repo>/.adamlib_cache``; else ``~/.cache/adamlib/results``."""
    if os.environ.get("ADAMLIB_CACHE"):
        return Path(os.environ["ADAMLIB_CACHE"]).expanduser()
    repo = Path(__file__).resolve().parents[2]  # adamlib/experiments/store.py -> the checkout
    if (repo / "pyproject.toml").exists() and os.access(repo, os.W_OK):
        return repo / ".adamlib_cache"
    return Path("~/.cache/adamlib/results").expanduser()


# Bumped whenever the runners compute something different for the same configuration (2: the
# initial weights are drawn in the experiment's dtype; 3: classification runs trained in stacks,
# SGD-Nesterov runs carry their momentum), so that no cache serves stale results.
PROTOCOL = 3


def cache_key(name: str, cfg: dict, mode: str, device: str, extra: dict | None = None) -> str:
    """A hash of everything a result depends on: name, configuration, mode, device, versions.

    ``extra``: more that it depends on, outside the configuration (e.g. that the data's
    checksums were not verified); None or empty leaves the key as it was without it.
    """
    fields = {"name": name, "config": cfg, "mode": mode, "device": device, "protocol": PROTOCOL,
              "adamlib": __version__, "torch": torch.__version__}
    if extra:
        fields["extra"] = extra
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _read_cached(path: Path) -> "Result | None":
    if not path.exists():
        return None
    try:
        return Result.from_json(json.loads(path.read_text()), cached=True)
    except (ValueError, TypeError):
        return None  # unreadable entry: recompute and overwrite


@contextlib.contextmanager
def _computing(path: Path | None):
    """Hold an exclusive lock on ``path``'s entry while it is computed.

    A second process asking for the same experiment (a chapter and a test in parallel, two
    jobs of a sweep) waits for the first and then reads its result instead of computing it
    again. Advisory (fcntl) locks exist on POSIX only; elsewhere both compute, as before.
    """
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def _json_safe(value):
    """NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class _Job:
    """One run of a grid: what identifies it, its share of the progress, how to compute it."""

    label: str                   # for people: "+dropout Adam lr 0.001"
    spec: dict                   # the configuration of this run alone: the key of its saved result
    units: int                   # epochs (L-BFGS: evaluations), for the progress bar
    compute: Callable            # compute(advance) -> the run's dict; advance(n) after n units
    tag: dict = field(default_factory=dict)  # entries every copy of the run carries ({"seed": s}
    #   in a sweep over seeds: a run read back from a single-seed sweep's file has no "seed")
    many: bool = False           # compute returns a list of runs (a stack), kept as one file
    size: int = 1                # how many runs it computes (for "k of N runs are saved")


class _Grid:
    """What a runner needs from :func:`run`: where finished runs are kept, and the progress.

    With the cache on, each finished run is written at once (atomically) to
    ``cache_dir()/partial/NAME-MODE-run-KEY.json``, ``KEY`` a hash of that run's own
    configuration (:meth:`_Job.spec`: the experiment's with the grid cut down to this run), so
    a grid that stops (interrupt, out of memory, pre-emption) resumes at its first unfinished
    run, and a grid that shares runs with another (a subset of the step sizes) reuses them.
    The VAE trains its 60 models jointly: it keeps its state at every evaluated epoch instead
    (``NAME-MODE-KEY.state.pt``). Both are removed once the experiment's entry is written.
    """

    def __init__(self, name: str, mode: str, device: str, key: str, key_extra: dict | None,
                 folder: Path | None, progress: _Progress):
        self.name, self.mode, self.device, self.key, self.key_extra = name, mode, device, key, key_extra
        self.folder, self.progress = folder, progress
        self.total, self.saved = 0, 0
        self.written: list[Path] = []
        self.state_note: str | None = None   # the VAE: what its saved state holds
        self.backend = None                  # where unsaved jobs run: None here, in turn; else
        #   an object whose run_jobs(grid, jobs, runs) computes them (ray_backend.Backend)
        self.unsaved_note: str | None = None  # the VAE: when it will have saved something

    # --- per-run results -------------------------------------------------------------------
    def _run_path(self, spec: dict) -> Path:
        key = cache_key(self.name, spec, self.mode, self.device, self.key_extra)
        return self.folder / f"{self.name}-{self.mode}-run-{key}.json"

    def _read_run(self, spec: dict) -> dict | None:
        if self.folder is None:
            return None
        path = self._run_path(spec)
        try:
            blob = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # absent, being replaced, or damaged: compute it
        if json.dumps(blob.get("spec"), sort_keys=True) != json.dumps(spec, sort_keys=True):
            return None
        self.written.append(path)
        return blob.get("run")

    def _write_run(self, spec: dict, run: dict) -> None:
        if self.folder is None:
            return
        path = self._run_path(spec)
        _atomic_write(path, json.dumps({"spec": spec, "run": run}))
        self.written.append(path)

    def run_jobs(self, jobs: list[_Job]) -> list[dict]:
        """Every job's run, in order: read back where saved, computed (and saved) otherwise."""
        runs = [self._read_run(job.spec) for job in jobs]
        self.total = sum(job.size for job in jobs)
        self.saved = sum(job.size for job, r in zip(jobs, runs) if r is not None)
        self.progress.plan([job.units for job in jobs], [r is not None for r in runs])
        if self.backend is not None:
            runs = self.backend.run_jobs(self, jobs, runs)
        else:
            for index, job in enumerate(jobs):
                if runs[index] is not None:
                    continue
                self.progress.start_run(index, job.label)
                run = _json_safe(job.compute(self.progress.advance))
                self._write_run(job.spec, run)
                runs[index] = run
                self.saved += job.size
                self.progress.finish_run(index, job.label, run)
        # a job's file holds its runs as computed; the tag ({"seed": s}) is added on the way out
        return [{**r, **job.tag} for job, value in zip(jobs, runs) for r in (value if job.many else [value])]

    # --- a joint run's state (the VAE grid) ------------------------------------------------
    def _state_path(self) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.name}-{self.mode}-{self.key}.state.pt"

    def load_state(self) -> dict | None:
        path = self._state_path()
        if path is None or not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # damaged (the write is atomic, but a disk can fail): start over
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        self.written.append(path)
        return state

    def save_state(self, state: dict, note: str) -> None:
        path = self._state_path()
        if path is None:
            return
        with atomic_file(path, "wb") as f:
            torch.save({**state, "key": self.key}, f)
        self.written.append(path)
        self.state_note = note

    def discard_state(self) -> None:
        """Remove the joint run's saved state, once its finished result is kept elsewhere."""
        path = self._state_path()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    # --- what is saved ---------------------------------------------------------------------
    def saved_message(self) -> str:
        where = f"{self.name} ({self.mode})"
        if self.folder is None:
            return f"{where}: nothing is kept (the cache is off: --no-cache, cache=False)"
        if self.state_note is not None:
            return (f"{where}: {self.state_note} is saved in {self.folder}; "
                    f"the same command (or call) again resumes from there")
        if self.total == 0:
            return f"{where}: stopped before its first run (loading its data): nothing to save"
        if self.unsaved_note is not None:
            return f"{where}: nothing is saved yet ({self.unsaved_note})"
        return (f"{where}: {self.saved} of {self.total} runs are saved in {self.folder}; "
                f"the same command (or call) again resumes from there")

    def discard(self) -> None:
        """Remove the per-run files and the saved state: the experiment's entry holds it all."""
        for path in dict.fromkeys(self.written):
            with contextlib.suppress(OSError):
                path.unlink()

