"""A local Sphinx extension: the ``execution-status`` directive (the page execution.md).

Renders chapters/execution.json, the record that tools/refresh_notebooks.py keeps (see
tools/execution_status.py), as a table: per chapter the wall time of its last recorded
execution, the day, the machine and the versions of Python, torch, NumPy and adamlib.

The build only reads committed files, so the page is the same on every build of a commit
and building never writes into the working tree. A chapter in the book without an entry is
listed as "not recorded"; one whose code cells changed after its entry was recorded is
marked, so a stale time cannot pass for a current one.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RECORD = "chapters/execution.json"
# (label, how to read it from an entry): shown once above the table when every chapter
# shares the value, else as a column.
SHARED = [
    ("Machine", lambda e: _machine(e)),
    ("Python", lambda e: e.get("python", "?")),
    ("torch", lambda e: e.get("torch", "?")),
    ("NumPy", lambda e: e.get("numpy", "?")),
    ("adamlib", lambda e: e.get("adamlib", "?")),
]


def _code_hash(path: Path) -> str | None:
    """The hash tools/execution_status.py records (one definition, loaded from there)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _recorder().code_hash(nb)


def _recorder():
    # tools/ is not a package; load the recorder module by path so the hash has one definition.
    spec = importlib.util.spec_from_file_location(
        "adam_book_execution_status", Path(__file__).resolve().parents[1] / "tools" / "execution_status.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _machine(entry: dict) -> str:
    text = f"{entry.get('cpu', '?')}, {entry.get('cores', '?')} cores, {entry.get('os', '?')}"
    if entry.get("gpu"):
        text += f"; GPU: {entry['gpu']}"
    return text


def _row(cells: list) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        if isinstance(cell, nodes.Node):
            entry += nodes.paragraph("", "", cell)
        else:
            entry += nodes.paragraph(text=str(cell))
        row += entry
    return row


class ExecutionStatus(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        srcdir = Path(self.env.srcdir)
        record_path = srcdir / RECORD
        self.env.note_dependency(str(record_path))
        record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
        chapters = sorted(d for d in self.env.found_docs if d.startswith("chapters/"))
        entries = {d: record.get(Path(d).name) for d in chapters}
        recorded = [e for e in entries.values() if e is not None]
        common = [(label, read) for label, read in SHARED if len({read(e) for e in recorded}) == 1]
        varying = [(label, read) for label, read in SHARED if (label, read) not in common]
        columns = ["Chapter", "Run time", "Recorded"] + [label for label, _ in varying]

        table = nodes.table(classes=["execution-status"])
        group = nodes.tgroup(cols=len(columns))
        table += group
        for _ in columns:
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        head += _row(columns)
        group += head
        body = nodes.tbody()
        group += body

        total, stale = 0.0, 0
        for doc, entry in entries.items():
            ref = addnodes.pending_xref(
                "", nodes.inline(text=doc), refdomain="std", reftype="doc",
                reftarget="/" + doc, refexplicit=False, refwarn=True,
            )
            notebook = srcdir / f"{doc}.ipynb"
            self.env.note_dependency(str(notebook))
            if entry is None:
                body += _row([ref, "not recorded", ""] + [""] * len(varying))
                continue
            seconds = float(entry.get("seconds", 0))
            total += seconds
            when = entry.get("date", "?")
            if entry.get("code_sha256") != _code_hash(notebook):
                stale += 1
                when += " (code changed since)"
            body += _row([ref, f"{seconds:.0f} s", when] + [read(entry) for _, read in varying])
        body += _row(["All recorded chapters", f"{total:.0f} s", ""] + [""] * len(varying))

        result: list[nodes.Node] = []
        if common:
            shared = nodes.bullet_list()
            for label, read in common:
                item = nodes.list_item()
                item += nodes.paragraph("", "", nodes.strong(text=f"{label}: "),
                                        nodes.Text(read(recorded[0])))
                shared += item
            result += [nodes.paragraph(text="Every recorded chapter ran with:"), shared]
        summary = nodes.paragraph(
            text=f"{len(recorded)} of {len(chapters)} chapters recorded; "
            f"{stale} changed since their time was recorded."
        )
        return result + [table, summary]


def setup(app: Sphinx) -> dict:
    app.add_directive("execution-status", ExecutionStatus)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
