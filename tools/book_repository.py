#!/usr/bin/env python3
"""The book's repository URL, from its one source (_config.yml), into every Colab cell.

    python tools/book_repository.py check                 every chapter's first code cell is the Colab cell
    python tools/book_repository.py write [NB ...]        (re)write that cell (default: every chapter)
    python tools/book_repository.py set URL [--branch B]  point the book at another repository (a fork)

`repository.url` and `repository.branch` in _config.yml name the repository. The launch
buttons and the repository button read them from there at build time; the notebooks cannot
(Colab opens the .ipynb file straight from GitHub), so this tool writes the URL into each
chapter's first code cell, and tests/test_publishing.py checks that every chapter's cell is
exactly what this tool would write. `set` rewrites _config.yml and then every cell: the
GitHub workflow runs it with the repository it builds, so a fork publishes a book whose
buttons point at the fork with no edits.

The cell (hidden from the book by its `remove-cell` tag) does nothing outside Colab. In
Colab it pip-installs adamlib from the repository's branch with `--no-deps`: every
dependency adamlib declares (torch, numpy, matplotlib, ipywidgets, scikit-learn, tqdm) is
preinstalled there, and letting pip resolve them could replace Colab's torch (built for
its CUDA driver) or upgrade numpy under already-imported modules, which needs a runtime
restart. `--no-deps` makes "leave Colab's torch alone" a guarantee, not a hope.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
CHAPTERS = ROOT / "chapters"
TAG = "remove-cell"
MARKER = "# Colab only:"  # how the tool recognises a Colab cell it wrote (or an older one)

CELL_TEMPLATE = '''\
# Colab only: install adamlib, the book's library, from the book's repository.
# --no-deps keeps Colab's own torch, numpy, matplotlib and ipywidgets: adamlib needs nothing
# else but mnist1d (the generated data set of the experiments chapters), and replacing them
# would force a runtime restart. Elsewhere this cell does nothing.
# Written by tools/book_repository.py from _config.yml (repository.url, .branch): edit those.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "{requirement}", "mnist1d==0.0.2.post1"],
        check=True,
    )'''


def repository(config: Path = CONFIG) -> tuple[str, str]:
    """(url, branch) of the repository named in _config.yml."""
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    repo = data.get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    branch = str(repo.get("branch") or "main")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"{config}: repository.url must be https://github.com/OWNER/NAME, not {url!r}")
    return url, branch


def requirement(url: str, branch: str) -> str:
    """The pip requirement that installs adamlib from the repository's branch."""
    if not re.fullmatch(r"[\w./-]+", branch):
        raise SystemExit(f"repository.branch {branch!r} is not a plain branch name")
    return f"adamlib @ git+{url}@{branch}"


def colab_cell_source(config: Path = CONFIG) -> str:
    url, branch = repository(config)
    return CELL_TEMPLATE.format(requirement=requirement(url, branch))


def chapters() -> list[Path]:
    return sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))


def _source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def first_code_cell(nb):
    return next((c for c in nb.cells if c.cell_type == "code"), None)


def is_colab_cell(cell) -> bool:
    return cell is not None and _source(cell).lstrip().startswith(MARKER)


def problems(path: Path, expected: str) -> list[str]:
    """Why a chapter's first code cell is not the expected Colab cell (empty: it is)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = first_code_cell(nb)
    if cell is None:
        return ["has no code cell"]
    found = []
    if _source(cell) != expected:
        found.append("its first code cell is not the Colab cell that tools/book_repository.py writes")
    if TAG not in cell.metadata.get("tags", []):
        found.append(f"its first code cell is not tagged {TAG!r}")
    if cell.get("outputs"):
        found.append("its Colab cell has stored outputs")
    return found


def write(paths: list[Path], source: str) -> list[Path]:
    """Make the first code cell of each notebook the Colab cell; return those changed.

    An existing Colab cell is replaced in place (other metadata kept); a notebook without
    one gets a new cell before its first code cell.
    """
    import nbformat

    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cell = first_code_cell(nb)
        if is_colab_cell(cell):
            # execution_count is left as it is: refresh_notebooks.py sets it on every run.
            before = (_source(cell), list(cell.metadata.get("tags", [])), cell.outputs)
            cell.source = source
            tags = cell.metadata.setdefault("tags", [])
            if TAG not in tags:
                tags.append(TAG)
            cell.outputs = []
            if before == (source, list(cell.metadata["tags"]), []):
                continue
        else:
            new = nbformat.v4.new_code_cell(source, metadata={"tags": [TAG]})
            new.pop("id", None)
            if nb.nbformat_minor >= 5:
                new["id"] = "colab-install"
            index = nb.cells.index(cell) if cell is not None else 0
            nb.cells.insert(index, new)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        changed.append(path)
    return changed


def set_repository(url: str, branch: str | None, config: Path = CONFIG) -> None:
    """Rewrite repository.url (and .branch) in _config.yml, keeping its comments."""
    url = url.rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    text = config.read_text(encoding="utf-8")
    block = re.search(r"(?m)^repository:\n((?:[ \t]+.*\n|[ \t]*\n)*)", text)
    if block is None:
        raise SystemExit(f"{config}: no top-level `repository:` block")
    body = block.group(1)
    body, n = re.subn(r"(?m)^([ \t]+url:[ \t]*).*$", lambda m: m.group(1) + url, body, count=1)
    if n != 1:
        raise SystemExit(f"{config}: no `url:` under `repository:`")
    if branch:
        body, n = re.subn(r"(?m)^([ \t]+branch:[ \t]*).*$", lambda m: m.group(1) + branch, body, count=1)
        if n != 1:
            raise SystemExit(f"{config}: no `branch:` under `repository:`")
    config.write_text(text[: block.start(1)] + body + text[block.end(1):], encoding="utf-8")
    repository(config)  # validates the result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="fail unless every chapter's first code cell is the Colab cell")
    w = sub.add_parser("write", help="(re)write the Colab cell of the notebooks given (default: all chapters)")
    w.add_argument("notebooks", nargs="*", type=Path)
    s = sub.add_parser("set", help="set repository.url (and branch) in _config.yml, then rewrite every Colab cell")
    s.add_argument("url")
    s.add_argument("--branch")
    args = parser.parse_args(argv)

    if args.command == "set":
        set_repository(args.url, args.branch)
        url, branch = repository()
        print(f"_config.yml: repository {url} (branch {branch})")
    source = colab_cell_source()
    if args.command == "check":
        bad = {p: problems(p, source) for p in chapters()}
        bad = {p: v for p, v in bad.items() if v}
        for path, why in bad.items():
            print(f"{path.relative_to(ROOT)}: " + "; ".join(why), file=sys.stderr)
        if bad:
            print("fix with: python tools/book_repository.py write", file=sys.stderr)
            return 1
        print(f"{len(chapters())} chapters: Colab cell matches _config.yml")
        return 0
    paths = getattr(args, "notebooks", None) or chapters()
    for path in write([Path(p).resolve() for p in paths], source):
        print(f"wrote the Colab cell of {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
