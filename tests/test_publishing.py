"""How readers get the book: the publishing workflow, Colab, Binder, the execution record.

- The GitHub workflow parses, runs the README's build and test commands, uploads the
  execution reports when a cell fails, deploys to Pages only from the default branch, and
  points the book at the repository it runs in (so a fork publishes working buttons).
- Every chapter's first code cell is the Colab cell that tools/book_repository.py writes
  from _config.yml. Run under a simulated Colab (a fake ``google.colab`` module, pip
  replaced by a recorder) it installs adamlib, and only adamlib, from that repository; run
  anywhere else it does nothing.
- binder/ installs torch's CPU build at the book's version and adamlib, pinned like
  requirements.txt.
- chapters/execution.json (the execution-status page's data) names only real chapters.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# The version Binder and the README's Jupyter instructions install.
JUPYTERLAB_MYST = "2.7.0"
JUPYTERLAB = "4.4.10"  # the newest JupyterLab that extension loads in (4.5+ ship @jupyter/ydoc 4)


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_repository = _load_tool("book_repository")


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def _readme_commands() -> list[str]:
    """The commands of the README's "Two commands" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------
# The workflow

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def _runs(workflow: dict, job: str) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow, job))


def test_workflow_triggers(workflow):
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers), triggers


def test_workflow_runs_the_readme_commands(workflow):
    build, test = _readme_commands()
    assert build == "python3 tasks.py build" and test == "python3 tasks.py test"
    assert build in _runs(workflow, "build").splitlines()
    # .ci/run is the test command with the browser checks made mandatory.
    assert ".ci/run" in _runs(workflow, "test").splitlines()
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()


def test_workflow_points_the_book_at_its_own_repository(workflow):
    for job in ("build", "test"):
        runs = _runs(workflow, job)
        assert "tools/book_repository.py set" in runs
        assert "${{ github.server_url }}/${{ github.repository }}" in runs
        # ...before the book is built or tested.
        names = [s.get("run", "") for s in _steps(workflow, job)]
        set_at = next(i for i, r in enumerate(names) if "book_repository.py set" in r)
        use_at = next(i for i, r in enumerate(names) if "tasks.py build" in r or ".ci/run" in r)
        assert set_at < use_at


def test_workflow_uploads_reports_and_deploys_from_main_only(workflow):
    uploads = [s for s in _steps(workflow, "build") if s.get("uses", "").startswith("actions/upload-artifact")]
    assert any(s.get("if") == "failure()" and "_build/html/reports" in s["with"]["path"] for s in uploads)
    pages = [s for s in _steps(workflow, "build") if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert pages and pages[0]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert set(deploy["needs"]) == {"build", "test"}
    assert "github.event_name == 'push'" in deploy["if"]
    assert "default_branch" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_publishes_the_colab_edition_to_its_branch_from_main_only(workflow):
    uploads = [s for s in _steps(workflow, "build") if s.get("uses", "").startswith("actions/upload-artifact")]
    assert any(s["with"]["name"] == "colab-edition" and s["with"]["path"] == "_build/colab" for s in uploads)
    job = workflow["jobs"]["colab"]
    assert set(job["needs"]) == {"build", "test"} and "default_branch" in job["if"]
    assert job["permissions"] == {"contents": "write"}
    script = " ".join(s.get("run", "") for s in job["steps"])
    assert "git push -f" in script and script.rstrip().endswith(" colab")
    text = (ROOT / "tasks.py").read_text(encoding="utf-8")
    assert '"colab_edition.py", ROOT / "_build" / "colab"' in text, "tasks.py build writes the edition"


def test_workflow_installs_torch_cpu(workflow):
    assert workflow["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


# ---------------------------------------------------------------------------------------
# The repository URL: one source, every Colab cell

def test_repository_url_is_a_github_repository():
    url, branch = book_repository.repository()
    assert url == _config()["repository"]["url"]
    # The workflow sets the branch to the repository's default branch (main here).
    assert branch == _config()["repository"]["branch"]


def test_every_chapter_starts_with_the_colab_cell():
    assert CHAPTERS
    expected = book_repository.colab_cell_source()
    bad = {p.name: book_repository.problems(p, expected) for p in CHAPTERS}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{bad}\nfix with: python tools/book_repository.py write"


def _first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


class PipRecorder:
    """Stands in for subprocess.run: records the command instead of running pip."""

    def __init__(self):
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, args, **kwargs):
        self.calls.append((list(args), kwargs))
        return subprocess.CompletedProcess(args, 0)


def _run_cell(source: str, monkeypatch, in_colab: bool) -> PipRecorder:
    """Execute a cell as IPython would, with pip recorded, optionally inside "Colab"."""
    from IPython.core.inputtransformer2 import TransformerManager

    recorder = PipRecorder()
    monkeypatch.setattr(subprocess, "run", recorder)
    monkeypatch.setattr(subprocess, "check_call", recorder)
    monkeypatch.setattr(subprocess, "call", recorder)
    if in_colab:
        google = types.ModuleType("google")
        colab = types.ModuleType("google.colab")
        google.colab = colab
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    code = TransformerManager().transform_cell(source)
    assert "get_ipython" not in code, "the Colab cell must be plain Python (no magics)"
    exec(compile(code, "<colab cell>", "exec"), {"__name__": "__main__"})
    return recorder


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_colab_cell_installs_adamlib_only_in_colab(path, monkeypatch):
    from packaging.requirements import Requirement

    source = _first_code_cell(path)
    assert _run_cell(source, monkeypatch, in_colab=False).calls == [], "it must do nothing outside Colab"

    calls = _run_cell(source, monkeypatch, in_colab=True).calls
    assert len(calls) == 1, calls
    args, kwargs = calls[0]
    assert args[:4] == [sys.executable, "-m", "pip", "install"], args
    assert kwargs.get("check") is True, "a failed install must stop the notebook"
    # Colab's own torch (and numpy, matplotlib, ipywidgets) stay: no dependency resolution.
    assert "--no-deps" in args
    packages = [a for a in args[4:] if not a.startswith("-")]
    # adamlib, and mnist1d (not on Colab; the experiments chapters generate their data with it)
    assert [Requirement(p).name for p in packages[1:]] == ["mnist1d"], f"installs more: {packages}"
    requirement = Requirement(packages[0])
    url, branch = book_repository.repository()
    assert requirement.name == "adamlib"
    assert requirement.url == f"git+{url}@{branch}"
    assert not any("torch" in a for a in args)


def test_set_repository_moves_config_and_cells(tmp_path, monkeypatch):
    """`set` (what the workflow runs in a fork) rewrites _config.yml, keeps its comments,
    and the Colab cell follows."""
    config = tmp_path / "_config.yml"
    original = (ROOT / "_config.yml").read_text(encoding="utf-8")
    config.write_text(original, encoding="utf-8")
    book_repository.set_repository("https://github.com/someone/fork.git", "trunk", config)
    text = config.read_text(encoding="utf-8")
    assert book_repository.repository(config) == ("https://github.com/someone/fork", "trunk")
    assert text.count("#") == original.count("#"), "comments were lost"
    assert len(text.splitlines()) == len(original.splitlines())
    source = book_repository.colab_cell_source(config)
    assert '"adamlib @ git+https://github.com/someone/fork@trunk"' in source

    notebook = tmp_path / "chapter.ipynb"
    notebook.write_bytes(CHAPTERS[0].read_bytes())
    assert book_repository.write([notebook], source) == [notebook]
    assert book_repository.problems(notebook, source) == []
    assert book_repository.write([notebook], source) == [], "a second write must change nothing"
    calls = _run_cell(_first_code_cell(notebook), monkeypatch, in_colab=True).calls
    assert calls[0][0][-2] == "adamlib @ git+https://github.com/someone/fork@trunk"


def test_write_inserts_a_missing_colab_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "new.ipynb"
    nbformat.write(nb, path)
    source = book_repository.colab_cell_source()
    book_repository.write([path], source)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[1].source == source and cells[1].metadata["tags"] == ["remove-cell"]
    assert cells[2].source == "x = 1"


def test_check_command_passes():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "book_repository.py"), "check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------
# Binder

def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_binder_installs_cpu_torch_at_the_books_version():
    text = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text.splitlines()
    binder, book = _pins(ROOT / "binder" / "requirements.txt"), _pins(ROOT / "requirements.txt")
    assert binder["torch"] == book["torch"] + "+cpu"
    # JupyterLab's MyST renderer: Binder's Jupyter side only, not needed to build or test.
    assert binder.get("jupyterlab-myst") == JUPYTERLAB_MYST and binder.get("jupyterlab") == JUPYTERLAB
    differing = {k: (v, book.get(k)) for k, v in binder.items()
                 if k not in ("torch", "jupyterlab-myst", "jupyterlab") and book.get(k) != v}
    assert not differing, f"binder/requirements.txt pins differ from requirements.txt: {differing}"
    # Everything adamlib imports at run time is there (or comes with Binder's Jupyter).
    needed = {"torch", "numpy", "matplotlib", "ipywidgets", "scikit-learn", "tqdm", "scipy"}
    assert needed <= set(binder), needed - set(binder)


def test_binder_installs_adamlib_without_touching_torch():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    commands = [l for l in post_build.read_text().splitlines() if l and not l.startswith("#")]
    assert any(re.fullmatch(r"python -m pip install (--no-cache-dir )?--no-deps -e \.", c) for c in commands), commands
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(1[0-9])", runtime)


def test_readme_jupyter_instructions_install_jupyterlab_myst_and_start_at_the_root():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Working on a chapter in Jupyter", 1)[1].split("\n## ", 1)[0]
    assert "python3 tasks.py setup" in section
    assert f"jupyterlab=={JUPYTERLAB} jupyterlab-myst=={JUPYTERLAB_MYST}" in section
    assert re.search(r"^\.venv/bin/jupyter lab\s*(#.*)?$", section, re.M), "start JupyterLab at the root"


# ---------------------------------------------------------------------------------------
# The stored chapters: executed whole, in order, from a fresh kernel, with no widget state

@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_stored_fully_executed_without_widget_state(path):
    """What `python3 tasks.py refresh` stores. A chapter saved from JupyterLab half-run, re-run
    out of order, or with the widget state Lab writes on save fails here, before nbval would
    compare a fresh run against stale outputs."""
    nb = nbformat.read(path, as_version=4)
    counts = [c.get("execution_count") for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts[:12]}...: expected 1, 2, ... in order; "
        "store it with `python3 tasks.py refresh " + f"chapters/{path.name}`")
    assert "widgets" not in nb.metadata, (
        f"{path.name} stores widget state (JupyterLab writes it on save); refresh it with tasks.py")
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                assert data.get("text/html", "").startswith('<p class="adamlib-live-note">'), (
                    f"{path.name}: a widget output without the live figure's note (adamlib.widgets.live)")


# ---------------------------------------------------------------------------------------
# The execution record

def test_execution_record_names_real_chapters():
    path = ROOT / "chapters" / "execution.json"
    if not path.is_file():
        pytest.skip("no chapters/execution.json yet (tools/refresh_notebooks.py writes it)")
    record = json.loads(path.read_text(encoding="utf-8"))
    names = {p.stem for p in CHAPTERS}
    assert set(record) <= names, set(record) - names
    for name, entry in record.items():
        assert entry["seconds"] > 0, name
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"]), name
        assert {"cpu", "cores", "python", "torch", "numpy", "adamlib", "code_sha256"} <= set(entry), name


# ---------------------------------------------------------------------------------------
# The book's own Sphinx extensions (book_ext/)

def _load_ext(name: str):
    spec = importlib.util.spec_from_file_location(f"book_ext_{name}", ROOT / "book_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_book_archive_is_complete_and_reproducible(tmp_path):
    book_archive = _load_ext("book_archive")
    out = tmp_path / "html"
    (out / "chapters").mkdir(parents=True)
    (out / "reports").mkdir()
    (out / "index.html").write_text("<html></html>")
    (out / "chapters" / "01.html").write_text("<html>1</html>")
    (out / "reports" / "01.err.log").write_text("traceback")
    (out / ".buildinfo").write_text("x")
    first = book_archive.write_archive(out).read_bytes()
    import os
    os.utime(out / "index.html", (0, 0))  # a later build: same pages, other times
    second = book_archive.write_archive(out).read_bytes()
    assert first == second, "the archive must not depend on file times"
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(second)) as archive:
        assert sorted(archive.namelist()) == ["adam-companion/chapters/01.html", "adam-companion/index.html"]


def test_figure_alt_reads_titles_from_the_cell():
    figure_alt = _load_ext("figure_alt")
    code = 'ax.set_title(f"EWA weights for $\\\\beta$ = {b}")\nfig.suptitle("Noisy bowl")\nplt.title(r"$\\alpha_t$")'
    assert figure_alt._titles(code) == ["EWA weights for beta = …", "Noisy bowl", "alpha_t"]


def test_math_prerender_turns_tex_into_mathml_and_leaves_what_it_cannot():
    math = _load_ext("math_prerender")
    body = ('<p>Step <span class="math notranslate nohighlight">\\(\\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)\\)</span>.</p>'
            '<div class="math notranslate nohighlight" id="equation-x">\n<span class="eqno">(6.1)</span>'
            '\\[\\begin{aligned} m_t &amp;= \\beta_1 m_{t-1} \\\\ v_t &amp;= \\beta_2 v_{t-1} \\end{aligned}\\]</div>'
            '<span class="math notranslate nohighlight">\\(\\begin{tabular}x\\end{tabular}\\)</span>')
    out, converted, left = math.render(body)
    assert (converted, left) == (2, 1)
    assert out.count("<math ") == 2 and '<span class="eqno">(6.1)</span><math' in out
    assert 'display="block"' in out and "<mtable" in out and out.count("<mtr>") == 2
    assert "<msqrt>" in out and "&#x003F5;" in out  # sqrt and TeX's \\epsilon (lunate)
    assert 'alttext="\\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)"' in out  # the source, for copy and screen readers
    assert "\\(\\begin{tabular}x\\end{tabular}\\)" in out  # left to MathJax, untouched


def test_page_faces_writes_frames_as_files_and_loads_hidden_ones_lazily(tmp_path):
    import base64

    faces = _load_ext("page_faces")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nframe").decode()

    class App:
        outdir = str(tmp_path)
        srcdir = str(ROOT)
        config = types.SimpleNamespace(html_theme_options={
            "repository_url": "https://github.com/o/r", "repository_branch": "main",
            "launch_buttons": {"colab_url": "https://colab.research.google.com"}})

    body = (f'<div class="adamlib-face" role="group"><img data-frame="0" src="data:image/png;base64,{png}" '
            f'width="3" height="2" alt="a"><img data-frame="1" src="data:image/png;base64,{png}" width="3" '
            'height="2" alt="b" hidden></div><img alt="x" src="../_images/fig.png">'
            '<p class="adamlib-live-note">Live controls.</p>')
    context = {"body": body, "pathto": lambda name, resource: "../" + name}
    faces._rewrite(App(), "chapters/01_gradient_descent", "page.html", context, None)
    out = context["body"]
    files = list((tmp_path / "_images").glob("face-*.png"))
    assert len(files) == 1 and files[0].read_bytes() == base64.b64decode(png)  # one file per distinct frame
    # The first frame: eager (not made lazy by the pass for the other output images).
    assert f'<img data-frame="0" src="../_images/{files[0].name}" decoding="async" width' in out
    assert all(tag.count("decoding=") == 1 for tag in re.findall(r"<img [^>]*>", out))
    assert f'src="../_images/{files[0].name}" loading="lazy"' in out and "data:image" not in out
    assert 'id="adamlib-face-1"' in out
    assert '<img loading="lazy" decoding="async" alt="x"' in out
    assert ('href="https://colab.research.google.com/github/o/r/blob/main/chapters/01_gradient_descent.ipynb"'
            in out)


def test_figure_alt_reads_the_description_the_figure_carries(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adamlib import plots

    figure_alt = _load_ext("figure_alt")
    fig, ax = plots.figure()
    ax.plot([0, 1], [1, 0], label=r"Adam, $\beta_2 = 0.999$")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.set_title(r"$\hat v_t$ after bias correction")
    ax.legend()
    png, metadata = plots.display_png(fig)
    plt.close(fig)
    (tmp_path / "f.png").write_bytes(png)
    assert figure_alt.png_description(tmp_path / "f.png") == (
        "v\u0302_t after bias correction, training cost against epoch; curves: Adam, β_2 = 0.999")
    assert figure_alt.png_description(tmp_path / "missing.png") is None


def test_math_prerender_leaves_a_display_formula_it_cannot_convert_exactly_as_it_was():
    math = _load_ext("math_prerender")
    body = ('<section><div class="math notranslate nohighlight" id="equation-y">\n<span class="eqno">(5.1)</span>'
            '\\[\\begin{tabular}{cc} a &amp; b \\end{tabular}\\]</div><p>after</p></section>')
    out, converted, left = math.render(body)
    assert (converted, left) == (0, 1) and out == body  # no extra </div> closing the section


def test_the_test_command_installs_ray_for_the_cluster_tests_at_the_extras_version():
    pins = _pins(ROOT / "requirements-test.txt")
    extra = re.search(r'cluster\s*=\s*\[\s*"ray==([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert extra and pins.get("ray") == extra.group(1)
    assert "ray" not in _pins(ROOT / "requirements.txt"), "Ray is for the tests and clusters, not the book"
    text = (ROOT / "tasks.py").read_text(encoding="utf-8")
    assert "setup_tests()" in text.split("def test(", 1)[1].split("def ", 1)[0]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_solutions_code_cells_sit_inside_its_fold_and_start_collapsed(path):
    """Every hidden code cell that computes a solution's numbers is inside the gated solution
    ({solution-start} ... {solution-end}), so its output is folded with the answer on the page,
    and starts collapsed in JupyterLab."""
    nb = nbformat.read(path, as_version=4)
    labels = set(re.findall(r"\{solution(?:-start)?\}[ \t]*(\S+)", "\n".join(
        c.source for c in nb.cells if c.cell_type == "markdown")))
    inside = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            start, end = cell.source.rfind("{solution-start}"), cell.source.rfind("{solution-end}")
            inside = True if start > end else (False if end >= 0 else inside)
            continue
        head = "\n".join(cell.source.split("\n")[:3])
        named = [l for l in labels if re.search(rf"(?<![\w-]){re.escape(l)}(?![\w-])", head)]
        if named:
            assert inside, f"{path.name}: the code for {named[0]} is outside its solution's fold"
        if inside:
            hidden = cell.metadata.get("jupyter", {})
            assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), (
                f"{path.name}: a code cell of a solution is not collapsed for JupyterLab: "
                "refresh it with tasks.py (tools/refresh_notebooks.py folds them)")
