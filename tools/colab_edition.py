"""The Colab edition of the chapters: their MyST markup turned into the plain Markdown Colab renders.

usage: python tools/colab_edition.py OUT_DIR [NB ...]     (default: every chapter)

Colab cannot take a JupyterLab extension, so it shows MyST as raw text: ``{cite}`...` ``,
``{eq}`...` ``, equation labels, and every ``{exercise}``/``{solution}`` block as a code block,
with the solution printed right under its exercise. This writes, for each chapter, a copy in
which

* citations are author-year links (``[Kingma & Ba, 2015](https://arxiv.org/abs/1412.6980)``),
  from references.bib;
* equation references are the book's numbers ("(6.2)"), and labelled equations carry them
  (``\\tag{6.2}``); ``{ref}``/``{prf:ref}`` become the text of their target;
* glued numbers (``{glue:text}``) are the values the stored outputs glued;
* an exercise is a bold "Exercise N.k" paragraph; its solution is a ``<details>`` block,
  folded until the reader opens it; the code cells of a solution (between ``solution-start``
  and ``solution-end``) are folded too (Colab's form view) and stored without outputs, so the
  answer appears only when the reader runs them;
* theorem-like blocks (``{prf:theorem}`` ...) are quoted paragraphs with their title;
* links to other chapters open their Colab edition, links to the book's other pages open the
  published book.

The build writes the edition to ``_build/colab/chapters/`` (``tasks.py build``); the Pages
workflow pushes it to the repository's ``colab`` branch, where the book's Colab links point
(book_ext/page_faces.py). tests/test_colab_edition.py checks that no MyST role or directive is
left and that every solution is folded.
"""
from __future__ import annotations

import ast
import copy
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_BRANCH = "colab"

ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                       re.S | re.M)
OPTION = re.compile(r"^:([\w-]+):[ \t]*(.*)$")
EQ_LABEL = re.compile(r"\$\$(?P<tex>.*?)\$\$[ \t]*\((?P<label>[\w:.-]+)\)", re.S)
TARGET = re.compile(r"^\((?P<label>[\w:.-]+)\)=[ \t]*\n", re.M)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.M)
PRF_NAMES = {"algorithm": "Algorithm", "definition": "Definition", "assumption": "Assumption",
             "theorem": "Theorem", "corollary": "Corollary", "lemma": "Lemma", "proof": "Proof",
             "remark": "Remark", "example": "Example", "proposition": "Proposition"}


# ---------------------------------------------------------------------------------------
# What the whole book knows: citations, equation numbers, targets, repository.

def bibliography(path: Path = ROOT / "references.bib") -> dict[str, tuple[str, str]]:
    """{key: (author-year text, url or '')} from a BibTeX file."""
    text = path.read_text(encoding="utf-8")
    entries = {}
    for match in re.finditer(r"@\w+\{([^,\s]+),(.*?)\n\}", text, re.S):
        key, body = match.group(1), match.group(2)
        fields = dict(re.findall(r"(\w+)\s*=\s*\{((?:[^{}]|\{[^{}]*\})*)\}", body))
        authors = [a.strip() for a in fields.get("author", "").replace("\n", " ").split(" and ") if a.strip()]
        names = [a.split(",")[0].strip() if "," in a else a.split()[-1] for a in authors]
        names = [n.replace("{", "").replace("}", "") for n in names]
        who = (names[0] if len(names) == 1 else f"{names[0]} & {names[1]}" if len(names) == 2
               else f"{names[0]} et al." if names else key)
        year = fields.get("year", "n.d.")
        url = fields.get("url") or (f"https://doi.org/{fields['doi']}" if "doi" in fields else "")
        entries[key] = (f"{who}, {year}", url)
    return entries


def chapter_number(path: Path) -> int:
    return int(path.name[:2])


def book_labels(paths: list[Path]) -> dict[str, str]:
    """Equation label -> number ("6.2"), exercise label -> "Exercise 6.2", section and
    theorem-like targets -> their text, over the given chapters (numbered as the book does:
    per chapter, in order of appearance)."""
    labels = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        chapter = chapter_number(path)
        equations = exercises = 0
        counts: dict[str, int] = {}
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for item in re.finditer(EQ_LABEL.pattern + r"|(?P<directive>^(?:`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[^\n]*\n(?P<opts>(?::[\w-]+:[^\n]*\n)*))"
                                    r"|(?P<target>^\((?P<tlabel>[\w:.-]+)\)=[ \t]*\n#{1,6}[ \t]+(?P<title>[^\n]+))",
                                    cell.source, re.S | re.M):
                if item.group("label"):
                    equations += 1
                    labels[item.group("label")] = f"{chapter}.{equations}"
                elif item.group("directive"):
                    name = item.group("name")
                    label = re.search(r"^:label:[ \t]*(\S+)", item.group("opts") or "", re.M)
                    if name == "math" and label:
                        equations += 1
                        labels[label.group(1)] = f"{chapter}.{equations}"
                    elif name == "exercise":
                        exercises += 1
                        if label:
                            labels[label.group(1)] = f"Exercise {chapter}.{exercises}"
                    elif name.startswith("prf:") and label:
                        kind = PRF_NAMES.get(name[4:], name[4:].capitalize())
                        counts[kind] = counts.get(kind, 0) + 1
                        labels[label.group(1)] = f"{kind} {chapter}.{counts[kind]}"
                else:
                    labels[item.group("tlabel")] = item.group("title").strip()
    return labels


def repository() -> tuple[str, str]:
    """(owner/name, branch) from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/")
    return url.removeprefix("https://github.com/"), config["repository"].get("branch", "main")


def colab_url(owner_name: str, notebook: str) -> str:
    """Where Colab opens the edition of ``notebook`` (a path such as chapters/01_x.ipynb)."""
    return f"https://colab.research.google.com/github/{owner_name}/blob/{COLAB_BRANCH}/{notebook}"


# ---------------------------------------------------------------------------------------
# One notebook.

def glued_values(nb) -> dict[str, str]:
    """The text each ``glue(name, text)`` stored in the notebook's outputs."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if not scrap:
                continue
            prefix = scrap.get("mime_prefix", "")
            text = output.get("data", {}).get(prefix + "text/plain")
            if text is None:
                continue
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            values[scrap["name"]] = str(value)
    return values


class Converter:
    def __init__(self, path: Path, bib, labels, owner_name: str, pages_url: str):
        self.path, self.bib, self.labels = path, bib, labels
        self.owner_name, self.pages_url = owner_name, pages_url.rstrip("/")
        self.chapter = chapter_number(path)
        self.exercises = 0
        self.glue: dict[str, str] = {}
        self.open_solution = False   # a solution-start's <details> not closed yet (this cell)

    # Roles -------------------------------------------------------------------------------
    def role(self, match: re.Match) -> str:
        name, text = match.group(1), match.group(2)
        if name.startswith("cite"):
            keys = [k.strip() for k in text.split(",") if k.strip()]
            cited = []
            for key in keys:
                label, url = self.bib.get(key, (key, ""))
                cited.append(f"[{label}]({url})" if url else label)
            return "(" + "; ".join(cited) + ")" if name in ("cite", "cite:p") else "; ".join(cited)
        if name in ("eq", "numref"):
            number = self.labels.get(text)
            return f"({number})" if number else f"({text})"
        if name == "glue:text" or name == "glue":
            key = text.split(":", 1)[0]
            if key not in self.glue:
                raise ValueError(f"{self.path.name}: glue {key!r} is used but no cell glues it")
            return self.glue[key]
        if name in ("ref", "prf:ref", "doc", "numref"):
            explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", text, re.S)
            if explicit:
                return explicit.group(1)
            return self.labels.get(text, text)
        if name in ("math",):
            return f"${text}$"
        return text  # an unknown role: its text, plain

    # Directives ---------------------------------------------------------------------------
    def directive(self, match: re.Match) -> str:
        name, arg, body = match.group("name"), match.group("arg").strip(), match.group("body")
        lines = body.split("\n")
        options = {}
        while lines and OPTION.match(lines[0]):
            key, value = OPTION.match(lines[0]).groups()
            options[key] = value
            lines.pop(0)
        content = self.markdown("\n".join(lines).strip("\n"))
        if name == "exercise":
            self.exercises += 1
            title = f" ({arg})" if arg else ""
            return f"**Exercise {self.chapter}.{self.exercises}**{title}\n\n{content}\n"
        if name == "solution":
            return f"<details>\n<summary><b>Solution</b> (click to open)</summary>\n\n{content}\n\n</details>\n"
        if name == "solution-start":
            # A gated solution's text follows the directive, in this cell (a <details> cannot
            # span notebook cells): it opens here and closes at its solution-end or at the end
            # of the cell (:meth:`markdown_cell`).
            self.open_solution = True
            return f"<details>\n<summary><b>Solution</b> (click to open)</summary>\n\n{content}"
        if name == "solution-end":
            return self._close_solution()
        if name == "math":
            label = options.get("label")
            tag = f" \\tag{{{self.labels[label]}}}" if label in self.labels else ""
            return f"$$\n{content}{tag}\n$$\n"
        if name.startswith("prf:"):
            kind = PRF_NAMES.get(name[4:], name[4:].capitalize())
            number = self.labels.get(options.get("label", ""), kind)
            head = f"**{number}**" + (f" ({arg})" if arg else "")
            quoted = "\n".join("> " + line if line else ">" for line in content.split("\n"))
            return f"> {head}\n>\n{quoted}\n"
        # Admonitions and anything else: a quoted paragraph under its name.
        title = arg or name.replace("-", " ").capitalize()
        quoted = "\n".join("> " + line if line else ">" for line in content.split("\n"))
        return f"> **{title}**\n>\n{quoted}\n"

    # Links ---------------------------------------------------------------------------------
    def link(self, match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+://|mailto:|#", target):
            return match.group(0)
        path, _, fragment = target.partition("#")
        here = self.path.parent
        resolved = (here / path).resolve()
        try:
            relative = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        if relative.endswith(".ipynb"):
            return f"[{text}]({colab_url(self.owner_name, relative)})"
        if relative.endswith((".md", ".rst")):
            page = relative.rsplit(".", 1)[0] + ".html" + (f"#{fragment}" if fragment else "")
            return f"[{text}]({self.pages_url}/{page})"
        return match.group(0)

    def _close_solution(self) -> str:
        if not self.open_solution:
            return ""
        self.open_solution = False
        return ("\n\n*The folded code cells below compute this solution's numbers: run them to see the "
                "numbers.*\n\n</details>\n")

    def markdown_cell(self, text: str) -> str:
        """A markdown cell's text; a gated solution opened in it is closed at its end."""
        return self.markdown(text) + self._close_solution()

    def markdown(self, text: str) -> str:
        text = DIRECTIVE.sub(self.directive, text)
        text = EQ_LABEL.sub(lambda m: f"$${m.group('tex').rstrip()} \\tag{{{self.labels.get(m.group('label'), m.group('label'))}}}\n$$", text)
        text = TARGET.sub("", text)
        text = ROLE.sub(self.role, text)
        text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", self.link, text)
        return text

    def notebook(self, nb):
        nb = copy.deepcopy(nb)
        self.glue = glued_values(nb)
        in_solution = False
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                # Inside a gated solution from its solution-start to its solution-end.
                last_start = cell.source.rfind("{solution-start}")
                last_end = cell.source.rfind("{solution-end}")
                if last_start > last_end:
                    in_solution = True
                elif last_end >= 0:
                    in_solution = False
                cell.source = self.markdown_cell(cell.source)
                continue
            if cell.cell_type != "code":
                continue
            if in_solution:
                # Folded (Colab's form view) and without outputs: the answer appears when run.
                cell.metadata["cellView"] = "form"
                if not cell.source.startswith("#@title"):
                    cell.source = "#@title Solution: run to compute its numbers\n" + cell.source
                cell.outputs = []
                cell.execution_count = None
                continue
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "text/markdown" in data:
                    data["text/markdown"] = self.markdown(data["text/markdown"])
        nb.metadata["colab"] = {"name": self.path.name, "provenance": []}
        return nb


def pages_url(owner_name: str) -> str:
    owner, name = owner_name.split("/", 1)
    return f"https://{owner.lower()}.github.io/{name}"


def write_edition(out: Path, paths: list[Path]) -> list[Path]:
    every = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    bib, labels = bibliography(), book_labels(every)
    owner_name, _ = repository()
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        edition = Converter(path.resolve(), bib, labels, owner_name, pages_url(owner_name)).notebook(nb)
        target = out / path.resolve().relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        nbformat.write(edition, tmp)
        tmp.replace(target)  # atomic: an interrupted build never leaves half a notebook
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    paths = [Path(p) for p in argv[1:]] or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"colab_edition: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    written = write_edition(out, paths)
    print(f"colab edition: {len(written)} chapters in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
