#!/usr/bin/env python3
"""The project's commands. Needs nothing but Python 3 (3.10 or newer).

    python3 tasks.py setup             set up .venv only (the pinned packages)
    python3 tasks.py build             set up .venv and build the book strictly into _build/html
    python3 tasks.py test              set up .venv, build the book, run every test
    python3 tasks.py refresh [NB ...]  re-execute notebooks and store their outputs (default: all)
    python3 tasks.py check NB [...]    run nbval on these notebooks only, perturbed as `test` does
                                       (pytest options may follow, e.g. -n 1)

`build` and `test` are the README's two commands; `.ci/run` calls `test`.
The set-up step creates `.venv` and installs requirements.txt into it, and repeats the
install only when requirements.txt or pyproject.toml change (a hash is kept in .venv).
"""
from __future__ import annotations

import hashlib
import json
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
TEST_STAMP = VENV / ".requirements-test.sha256"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"

# The test command runs under a perturbed numerical environment, against outputs that
# `refresh` stores without it: a printed digit that depends on the machine then fails here,
# on the developer's machine, not on a reader's. Each setting changes the low-order bits of
# float sums and products on a machine that has the default (tools/perturbation_probe.py
# shows which, and `test` prints it first):
PERTURBED = {
    # One thread instead of one per core: a parallel reduction is split differently.
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    # torch's generic kernels instead of AVX-512/AVX2 ones (another vector width, no FMA).
    "ATEN_CPU_CAPABILITY": "default",
    # MKL's reproducible code path: torch's float32/float64 matmul sums in another order.
    "MKL_CBWR": "COMPATIBLE",
    # NumPy's OpenBLAS with the AVX kernels of Sandy Bridge, not this CPU's own.
    "OPENBLAS_CORETYPE": "Sandybridge",
    # NumPy's own loops (exp, log, power, tanh) in their baseline SSE code instead of the
    # AVX2/AVX-512 versions it picks at run time: those round differently in the last bit.
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}
# Experiments computed under the perturbation are cached apart from the book's own.
PERTURBED_CACHE = ROOT / ".adamlib_cache" / "perturbed"


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


def setup_tests() -> None:
    """Add requirements-test.txt to .venv (what only the tests need; skipped when unchanged)."""
    setup()
    wanted = hashlib.sha256((ROOT / "requirements-test.txt").read_bytes()).hexdigest()
    if TEST_STAMP.exists() and TEST_STAMP.read_text().strip() == wanted:
        return
    t0 = time.perf_counter()
    run(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", "requirements-test.txt")
    TEST_STAMP.write_text(wanted + "\n")
    print(f"test set-up: {time.perf_counter() - t0:.0f} s", flush=True)


def build(stored_outputs: bool = False) -> None:
    """Build the HTML book. Strict: any Sphinx warning or failing cell fails the build.

    By default every chapter is executed afresh, two at a time (tools/execute_chapters.py,
    into a fresh jupyter-cache that the build then reads; the stored notebooks are not
    touched). With ``stored_outputs`` the chapters' committed outputs are rendered as they
    are: `test` does that because nbval, in the same run, re-executes every chapter and fails
    if any cell errs or its output differs.
    """
    setup()
    t0 = time.perf_counter()
    text = (ROOT / "_config.yml").read_text()
    if "execute_notebooks: force" not in text:
        sys.exit("tasks.py: _config.yml must say `execute_notebooks: force` (build and test replace it)")
    if stored_outputs:
        mode = "execute_notebooks: 'off'"
    else:
        cache = ROOT / "_build" / ".jupyter_cache"
        run(PY, ROOT / "tools" / "execute_chapters.py", cache, *chapters(), "--jobs", "2", "--warm-experiments")
        mode = f"execute_notebooks: cache\n  cache: {json.dumps(str(cache))}"
    # Beside _config.yml, because Jupyter Book resolves relative paths in it (the local
    # Sphinx extension in book_ext/) from the config file's folder. Hidden and ignored.
    built = ROOT / ".config.build.yml"
    built.write_text(text.replace("execute_notebooks: force", mode))
    run(BIN / "jupyter-book", "build", "--all", "-W", "--keep-going", "--config", str(built), ".")
    # The Colab edition (MyST as plain Markdown), which the Pages workflow pushes to the
    # `colab` branch, where the book's Colab links point.
    run(PY, ROOT / "tools" / "colab_edition.py", ROOT / "_build" / "colab")
    print(f"book built in {time.perf_counter() - t0:.0f} s: open {ROOT / '_build/html/index.html'}", flush=True)


def perturbed_env() -> dict:
    env = dict(os.environ, **PERTURBED, ADAMLIB_CACHE=str(PERTURBED_CACHE))
    return env


def pytest(*args: str | Path) -> None:
    """pytest with nbval, in the perturbed environment, two workers (the CI machine's cores)."""
    # `loadfile` keeps each notebook's cells together in one worker, so they run in order in
    # one kernel as nbval requires.
    workers = [] if any(str(a).startswith("-n") for a in args) else ["-n", "2"]
    print("perturbed: " + " ".join(f"{k}={v}" for k, v in PERTURBED.items()), flush=True)
    run(
        PY, "-m", "pytest", *workers, "--dist", "loadfile",
        "--nbval", "--nbval-current-env", "--nbval-sanitize-with", SANITIZE,
        *args, env=perturbed_env(),
    )


# The fast experiments, heaviest first, into the perturbed cache: started beside the tests, so
# that the VAE grid (the longest) is not left for whichever test or chapter reaches it last.
WARM = ("from adamlib import experiments\n"
        "for name in list(experiments.EXPERIMENTS)[::-1]:\n"
        "    experiments.run(name)\n")


def test(extra: list[str]) -> None:
    """Build the book (the browser tests read it), then run unit tests, nbval and browser tests."""
    setup_tests()
    build(stored_outputs=True)
    t0 = time.perf_counter()
    run(PY, ROOT / "tools" / "perturbation_probe.py")
    # A test or chapter that needs a result still being computed waits for it (the cache entry
    # is locked meanwhile); if warming fails, the tests that need the result fail and say why.
    warming = subprocess.Popen([str(PY), "-c", WARM], cwd=ROOT, env=perturbed_env(),
                               stdout=subprocess.DEVNULL)
    try:
        pytest("tests", "chapters", *extra)
    except BaseException:
        warming.terminate()  # the tests failed or were interrupted: no need to finish warming
        raise
    finally:
        warming.wait()
    print(f"tests passed in {time.perf_counter() - t0:.0f} s", flush=True)


def check(notebooks: list[str]) -> None:
    """nbval on the named notebooks only, perturbed as in `test` (no build)."""
    setup()
    if not notebooks:
        sys.exit("tasks.py check: name the notebooks to check, e.g. chapters/06_adam_algorithm.ipynb")
    pytest(*notebooks)


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
    elif command == "check":
        check(rest)
    elif command == "setup":
        setup()
    else:
        sys.exit(f"tasks.py: unknown command {command!r}; expected one of: build, test, refresh, check, setup")


if __name__ == "__main__":
    main(sys.argv[1:])
