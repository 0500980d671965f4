"""The project's commands: the build's parallel execution and the test command's perturbation."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_execute_chapters_fills_a_fresh_cache_in_parallel_and_leaves_the_notebooks(tmp_path):
    a = _notebook(tmp_path / "a.ipynb", "import os; print(os.environ['OMP_NUM_THREADS'], 6 * 7)")
    b = _notebook(tmp_path / "b.ipynb", "from pathlib import Path; print(Path.cwd().name)")
    before = a.read_text(), b.read_text()
    cache_dir = tmp_path / "cache"
    (cache_dir).mkdir()
    (cache_dir / "stale").write_text("x")          # emptied first: every build executes afresh
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_chapters.py"), str(cache_dir),
                           str(a), str(b), "--jobs", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 notebooks in" in done.stdout and not (cache_dir / "stale").exists()
    assert (a.read_text(), b.read_text()) == before
    cache = get_cache(str(cache_dir))
    outputs = {}
    for path in (a, b):
        _, merged = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
        outputs[path.name] = merged.cells[0].outputs[0]["text"]
    # one thread per kernel, run in the notebook's own folder (relative paths work)
    assert outputs == {"a.ipynb": "1 42\n", "b.ipynb": f"{tmp_path.name}\n"}


def test_execute_chapters_fails_on_a_failing_cell(tmp_path):
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_chapters.py"), str(tmp_path / "c"),
                           str(bad)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "bad.ipynb: a cell failed" in done.stderr and "boom" in done.stderr


def test_the_probe_covers_every_perturbed_setting():
    tasks = _load(ROOT / "tasks.py")
    probe = _load(ROOT / "tools" / "perturbation_probe.py")
    assert {k for keys in probe.GROUPS.values() for k in keys} == set(tasks.PERTURBED)
    env = tasks.perturbed_env()
    assert all(env[k] == v for k, v in tasks.PERTURBED.items())
    assert env["ADAMLIB_CACHE"].endswith("perturbed")
