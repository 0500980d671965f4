"""The Colab edition (tools/colab_edition.py): no MyST left, every solution folded."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("colab_edition", ROOT / "tools" / "colab_edition.py")
colab_edition = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab_edition)

MYST_ROLE = re.compile(r"\{[\w:-]+\}`")
MYST_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{", re.M)
MYST_TARGET = re.compile(r"^\([\w:.-]+\)=\s*$", re.M)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    out = tmp_path_factory.mktemp("colab")
    written = colab_edition.write_edition(out, CHAPTERS)
    return {p.name: nbformat.read(p, as_version=4) for p in written}


def _markdown(nb) -> str:
    texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(texts)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_myst_role_directive_or_target_is_left(edition, path):
    text = _markdown(edition[path.name])
    assert not MYST_ROLE.findall(text), MYST_ROLE.findall(text)[:5]
    assert not MYST_DIRECTIVE.findall(text)
    assert not MYST_TARGET.findall(text)
    assert not re.search(r"\$\$\s*\([\w:.-]+\)", text), "an equation label left after $$"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_its_solution_folded(edition, path):
    source = nbformat.read(path, as_version=4)
    exercises = sum(c.source.count("{exercise}") for c in source.cells if c.cell_type == "markdown")
    text = _markdown(edition[path.name])
    assert exercises > 0
    assert len(re.findall(r"^\*\*Exercise \d+\.\d+\*\*", text, re.M)) == exercises
    assert text.count("<details>") == text.count("</details>") == exercises
    # every solution's text is inside its fold: words of each solution's first line lie
    # between a <details> and its </details>
    folded = " ".join(re.findall(r"<details>(.*?)</details>", text, re.S))
    checked = 0
    for cell in source.cells:
        if cell.cell_type != "markdown":
            continue
        for match in re.finditer(r"```\{solution(?:-start)?\}[^\n]*\n", cell.source):
            lines = cell.source[match.end():].split("\n")
            first = next((line for line in lines if line.strip() and not line.startswith(":")
                          and line.strip() != "```"), "")
            # the longest plain run of words in it (math, code and roles cut out: a role's
            # text changes in the edition, a run with a space is never a role's key)
            runs = [r.strip() for r in re.split(r"[{}$`]", first) if " " in r.strip()]
            words = max(runs, key=len, default="")
            if len(words) >= 8:
                assert words in folded, (path.name, words)
                checked += 1
    assert checked > 0 or path.stem.startswith("16"), path.name
    # A gated solution's code cells are folded and hold no output until the reader runs them.
    nb = edition[path.name]
    for cell in nb.cells:
        if cell.get("metadata", {}).get("cellView") == "form":
            assert cell.source.startswith("#@title") and cell.outputs == []


def test_citations_equations_glue_and_links_become_plain_markdown():
    bib = {"kingma2015adam": ("Kingma & Ba, 2015", "https://arxiv.org/abs/1412.6980")}
    labels = {"alg-update": "6.2", "sec-x": "A section", "ex-a": "Exercise 6.1"}
    converter = colab_edition.Converter(ROOT / "chapters" / "06_adam_algorithm.ipynb", bib, labels,
                                        "o/r", "https://o.github.io/r")
    converter.glue = {"ch06_T": "500"}
    text = converter.markdown(
        "See {cite}`kingma2015adam` and {eq}`alg-update` over {glue:text}`ch06_T` steps, "
        "{ref}`sec-x`, [chapter 3](03_momentum.ipynb#a), [errata](../conventions.md#b).\n\n"
        "$$\nx = 1\n$$ (alg-update)\n\n"
        "```{exercise}\n:label: ex-a\n\nWhy?\n```\n\n```{solution} ex-a\n:class: dropdown\n\nBecause.\n```\n")
    assert "([Kingma & Ba, 2015](https://arxiv.org/abs/1412.6980))" in text
    assert "(6.2) over 500 steps, A section" in text
    assert "(https://colab.research.google.com/github/o/r/blob/colab/chapters/03_momentum.ipynb)" in text
    assert "(https://o.github.io/r/conventions.html#b)" in text
    assert "x = 1 \\tag{6.2}" in text
    assert "**Exercise 6.1**" in text and "<details>" in text and "Because." in text
    # a gated solution: its text follows the directive, and it is folded with it
    gated = converter.markdown_cell("```{solution-start} ex-a\n:class: dropdown\n```\n\nSince 2 > 1.\n")
    assert gated.index("<details>") < gated.index("Since 2 > 1.") < gated.index("</details>")
    assert gated.count("</details>") == 1 and converter.markdown_cell("```{solution-end}\n```\n") == "\n"


def test_a_glue_name_no_cell_glues_is_an_error():
    converter = colab_edition.Converter(ROOT / "chapters" / "06_adam_algorithm.ipynb", {}, {}, "o/r", "x")
    with pytest.raises(ValueError, match="glue 'missing' is used but no cell glues it"):
        converter.markdown("{glue:text}`missing`")
