#!/usr/bin/env python3
"""The project's commands. Needs nothing but Python 3 (3.10 or newer).

    python3 tasks.py build             set up .venv and build the book strictly into _build/html
    python3 tasks.py test              set up .venv, build the book, run every test
    python3 tasks.py refresh [NB ...]  re-execute notebooks and store their outputs (default: all)

`build` and `test` are the README's two commands; `.ci/run` calls `test`.
The set-up step creates `.venv` and installs requirements.txt into it, and repeats the
install only when requirements.txt or pyproject.toml change (a hash is kept in .venv).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".requirements.sha256"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def run(*cmd: str | Path, env: dict | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def chapters() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.ipynb"))


def setup() -> None:
    """Create .venv and install the pinned requirements (skipped when nothing changed)."""
    wanted = hashlib.sha256(
        b"".join((ROOT / f).read_bytes() for f in ("requirements.txt", "pyproject.toml"))
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PY.exists():
        return
    t0 = time.perf_counter()
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", "requirements.txt")
    STAMP.write_text(wanted + "\n")
    print(f"set-up: {time.perf_counter() - t0:.0f} s", flush=True)


def build(stored_outputs: bool = False) -> None:
    """Build the HTML book. Strict: any Sphinx warning or failing cell fails the build.

    By default every chapter is executed afresh. With ``stored_outputs`` the chapters'
    committed outputs are rendered as they are: `test` does that because nbval, in the same
    run, re-executes every chapter and fails if any cell errs or its output differs.
    """
    setup()
    t0 = time.perf_counter()
    config = []
    if stored_outputs:
        text = (ROOT / "_config.yml").read_text()
        if "execute_notebooks: force" not in text:
            sys.exit("tasks.py: _config.yml must say `execute_notebooks: force` (test switches it off)")
        # Beside _config.yml, because Jupyter Book resolves relative paths in it (the local
        # Sphinx extension in book_ext/) from the config file's folder. Hidden and ignored.
        stored = ROOT / ".config.stored_outputs.yml"
        stored.write_text(text.replace("execute_notebooks: force", "execute_notebooks: 'off'"))
        config = ["--config", str(stored)]
    run(BIN / "jupyter-book", "build", "--all", "-W", "--keep-going", *config, ".")
    print(f"book built in {time.perf_counter() - t0:.0f} s: open {ROOT / '_build/html/index.html'}", flush=True)


def test(extra: list[str]) -> None:
    """Build the book (the browser tests read it), then run unit tests, nbval and browser tests."""
    build(stored_outputs=True)
    t0 = time.perf_counter()
    # Two workers (the CI machine has two cores); `loadfile` keeps each notebook's cells
    # together in one worker, so they run in order in one kernel as nbval requires.
    workers = [] if any(a.startswith("-n") for a in extra) else ["-n", "2"]
    run(
        PY, "-m", "pytest", "tests", "chapters", *workers, "--dist", "loadfile",
        "--nbval", "--nbval-current-env", "--nbval-sanitize-with", SANITIZE,
        *extra,
    )
    print(f"tests passed in {time.perf_counter() - t0:.0f} s", flush=True)


def refresh(notebooks: list[str]) -> None:
    """Re-execute notebooks in place with nbclient and store their outputs for nbval."""
    setup()
    paths = notebooks or [str(p) for p in chapters()]
    run(PY, ROOT / "tools" / "refresh_notebooks.py", *paths)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command == "build":
        build()
    elif command == "test":
        test(rest)
    elif command == "refresh":
        refresh(rest)
    elif command == "setup":
        setup()
    else:
        sys.exit(f"tasks.py: unknown command {command!r}; expected one of: build, test, refresh, setup")


if __name__ == "__main__":
    main(sys.argv[1:])
