"""A local Sphinx extension: light chapter pages whose figures work with no kernel.

Three jobs at ``html-page-context`` time, on the page's rendered body:

1. **Frames out of the HTML.** A static face (:func:`adamlib.widgets.static_figure`) carries
   its frames as ``data:`` URIs, so that a notebook is self-contained. On the page they would
   make the HTML itself several megabytes, parsed before anything shows. Each frame is written
   once to ``_images/face-<sha256>.png`` and referenced from there; the frames not shown first
   load lazily (only when the reader moves the slider to them).
2. **Offscreen figures load lazily.** Every other output image gets ``loading="lazy"`` and
   ``decoding="async"`` (the browser fetches it when it nears the viewport).
3. **A launch link where a figure needs a kernel.** The one line a live figure leaves on the
   page (``adamlib.widgets.LIVE_NOTE``) links to this chapter in Colab.

When the pages are written, every Colab link (the launch menu's too) is pointed at the Colab
edition on the ``colab`` branch (tools/colab_edition.py), whose MyST is plain Markdown.

And a ``<meta name="description">`` for every page: its first paragraph, shortened. Each
static face gets an id (``adamlib-face-N``), and a page with one gets a second skip link next
to the theme's "Skip to main content", "Skip to the interactive figure": a keyboard user
reaches the first figure's slider in three presses of Tab, not seventy.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

FACE = re.compile(r'<div class="adamlib-face" role="group"')
SKIP_LINK = '<div id="pst-skip-link" class="skip-link d-print-none"><a href="#main-content">Skip to main content</a>'
FRAME = re.compile(r'<img data-frame="(\d+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"([^>]*)>')
# Not a static face's frame (``data-frame``): the one it shows first stays eager, the rest
# are already lazy (``frame`` below).
OUTPUT_IMG = re.compile(r'<img (?!data-frame=)(?![^>]*\bloading=)(?=[^>]*src="(?!data:)[^"]*_images/)')
LIVE_NOTE = re.compile(r'<p class="adamlib-live-note">(.*?)</p>', re.S)
DESCRIPTION_CHARS = 155
COLAB_BRANCH = "colab"  # where the Pages workflow pushes the Colab edition


def _write_frame(app: Sphinx, data: str) -> str:
    png = base64.b64decode(data)
    name = f"face-{hashlib.sha256(png).hexdigest()[:20]}.png"
    path = Path(app.outdir) / "_images" / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(png)
        tmp.replace(path)  # atomic: a parallel writer never leaves half a PNG
    return f"_images/{name}"


def _colab_url(app: Sphinx, pagename: str) -> str | None:
    options = app.config.html_theme_options or {}
    url = (options.get("repository_url") or "").rstrip("/")
    colab = ((options.get("launch_buttons") or {}).get("colab_url") or "").rstrip("/")
    if not url.startswith("https://github.com/") or not colab:
        return None
    branch = options.get("repository_branch") or "main"
    prefix = (options.get("path_to_docs") or "").strip("/")
    notebook = "/".join(p for p in (prefix, f"{pagename}.ipynb") if p)
    return f"{colab}/github/{url.removeprefix('https://github.com/')}/blob/{branch}/{notebook}"


def _description(doctree) -> str:
    for paragraph in doctree.findall(nodes.paragraph):
        text = re.sub(r"\s+", " ", paragraph.astext()).strip()
        if len(text) < 40:  # a byline or a one-word label, not what the page is about
            continue
        if len(text) > DESCRIPTION_CHARS:
            text = text[:DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
        return text
    return ""


def _rewrite(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    body = context.get("body")
    if body:
        pathto = context["pathto"]

        def frame(match: re.Match) -> str:
            index, data, rest = match.groups()
            src = pathto(_write_frame(app, data), 1)
            lazy = ' loading="lazy"' if " hidden" in rest else ""
            return f'<img data-frame="{index}" src="{src}"{lazy} decoding="async"{rest}>'

        body = FRAME.sub(frame, body)
        faces = iter(range(1, 1000))
        body = FACE.sub(lambda m: f'<div class="adamlib-face" id="adamlib-face-{next(faces)}" tabindex="-1" '
                        'role="group"', body)
        body = OUTPUT_IMG.sub('<img loading="lazy" decoding="async" ', body)
        colab = _colab_url(app, pagename) if (Path(app.srcdir) / f"{pagename}.ipynb").is_file() else None
        if colab:
            body = LIVE_NOTE.sub(
                lambda m: (f'<p class="adamlib-live-note">{m.group(1)} '
                           f'<a href="{html.escape(colab)}">Open this chapter in Colab</a>.</p>'), body)
        context["body"] = body
    if doctree is not None:
        description = _description(doctree)
        if description:
            context["metatags"] = (context.get("metatags", "") +
                                   f'\n<meta name="description" content="{html.escape(description)}" />')


def _colab_links(app: Sphinx) -> re.Pattern | None:
    options = app.config.html_theme_options or {}
    url = (options.get("repository_url") or "").rstrip("/")
    if not url.startswith("https://github.com/"):
        return None
    owner_name = re.escape(url.removeprefix("https://github.com/"))
    return re.compile(rf"(https://colab\.research\.google\.com/github/{owner_name}/blob/)[^/\"]+/")


def _written_pages(app: Sphinx, exception) -> None:
    """The skip link to the first figure; every Colab link to the Colab edition's branch
    (tools/colab_edition.py: the chapters with their MyST as plain Markdown)."""
    if exception is not None or app.builder.format != "html":
        return
    colab = _colab_links(app)
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = text
        if 'id="adamlib-face-1"' in new and SKIP_LINK in new:
            new = new.replace(SKIP_LINK, SKIP_LINK + '<a href="#adamlib-face-1">Skip to the interactive figure</a>', 1)
        if colab is not None:
            new = colab.sub(rf"\g<1>{COLAB_BRANCH}/", new)
        if new != text:
            page.write_text(new, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _rewrite, priority=800)
    # Before book_archive (priority 900) zips the pages.
    app.connect("build-finished", _written_pages, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
