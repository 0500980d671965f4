"""A local Sphinx extension: alt text for the figures that notebook cells draw.

A figure a code cell outputs (a PNG from matplotlib) reaches the page as an image with no
alt text, which HTML writers replace by the file's path: a screen reader then reads a
hash. A cell can set its own with the cell metadata ``{"mystnb": {"image": {"alt": ...}}}``
(MyST-NB applies it; this extension leaves such images alone). For every other output image
this sets an alt text: the description the figure carries in its PNG ``Description`` text
chunk (adamlib.plots.display_png writes one for every figure a chapter shows: its titles,
axis labels and legend entries, :func:`adamlib.plots.describe`); failing that, what the
cell says about its figure: the titles it passes to ``set_title``, ``suptitle`` or ``title``
(string literals), else the section the figure is in. tests/test_browser.py checks that no image on a page is left with a path as its alt.
"""
from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

TITLE_CALL = re.compile(r"""\b(?:set_title|suptitle|title)\(\s*(r|f|rf|fr)?(["'])(.+?)\2""")
TEX = re.compile(r"\$([^$]*)\$")


def _titles(code: str) -> list[str]:
    titles = []
    for match in TITLE_CALL.finditer(code):
        prefix, text = match.group(1) or "", match.group(3)
        if "f" in prefix:
            text = re.sub(r"\{[^{}]*\}", "…", text)  # f-string fields: value unknown here
        text = _plain(TEX.sub(lambda m: m.group(1), text))
        if text and text not in titles:
            titles.append(text)
    return titles


def _plain(tex: str) -> str:
    """Text a screen reader can say: \\alpha -> alpha, braces dropped."""
    return re.sub(r"\\+([A-Za-z]+)", r"\1", tex).replace("{", "").replace("}", "").strip()


def _cell_of(node: nodes.Node) -> nodes.Element | None:
    while node is not None:
        if isinstance(node, nodes.container) and "cell" in node.get("classes", []):
            return node
        node = node.parent
    return None


def _section_title(node: nodes.Node) -> str | None:
    while node is not None:
        if isinstance(node, nodes.section) and node.children and isinstance(node[0], nodes.title):
            return node[0].astext()
        node = node.parent
    return None


def png_description(path: Path) -> str | None:
    """The ``Description`` of a PNG's tEXt/zTXt/iTXt chunks, or None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"tEXt" and chunk.startswith(b"Description\0"):
            return chunk.split(b"\0", 1)[1].decode("latin-1")
        if kind == b"zTXt" and chunk.startswith(b"Description\0"):
            return zlib.decompress(chunk.split(b"\0", 1)[1][1:]).decode("latin-1")
        if kind == b"iTXt" and chunk.startswith(b"Description\0"):
            rest = chunk.split(b"\0", 1)[1]
            compressed, rest = rest[0], rest[2:]
            _, _, text = rest.split(b"\0", 2)
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
        if kind == b"IEND":
            break
    return None


def _image_path(app: Sphinx, image) -> Path:
    uri = Path(image["uri"])
    if uri.is_absolute():
        return uri
    return Path(app.srcdir) / uri


def add_alt_text(app: Sphinx, doctree: nodes.document) -> None:
    page_title = None
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        described = png_description(_image_path(app, image))
        if described:
            image["alt"] = described
            continue
        cell = _cell_of(image)
        if cell is None:
            continue
        code = "\n".join(
            block.astext() for block in cell.findall(nodes.literal_block)
            if "cell_input" in getattr(block.parent, "get", lambda *_: [])("classes", [])
        )
        titles = _titles(code)
        if titles:
            image["alt"] = "Figure: " + "; ".join(titles)
            continue
        if page_title is None:
            first = next(iter(doctree.findall(nodes.title)), None)
            page_title = first.astext() if first is not None else ""
        section = _section_title(image)
        where = f"section “{_plain(section)}”" if section and section != page_title else "this page"
        image["alt"] = f"Figure drawn by this cell's code, in {where} of “{_plain(page_title)}”"


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", add_alt_text)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
