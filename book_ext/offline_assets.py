"""A local Sphinx extension: pages that work with no network, and load light.

At ``html-page-context`` time, after every other extension has added its scripts for the page:

1. Drop duplicated scripts. sphinx-thebe 0.3.1 adds its inline configuration
   (``const THEBE_JS_URL = ...``) with ``filename=None`` when the environment starts
   reading; Sphinx's HTML builder re-registers the same script from the registry with
   ``filename=''``. The two compare unequal, so every page carried the ``const`` twice and
   the browser raised "Identifier 'THEBE_JS_URL' has already been declared", which
   also stopped the rest of that script. (sphinx-togglebutton's selector ``var`` is
   duplicated the same way, harmlessly.)
2. Defer scripts. Sphinx and the extensions put a dozen plain ``<script src>`` in ``<head>``;
   each stops the parser until it has loaded and run, so nothing paints until the last one
   (searchindex.js, 116 kB) is in. ``defer`` keeps their order and runs them before
   ``DOMContentLoaded``, which is when they act. Two stay as they are:
   ``documentation_options.js`` (an inline script right after it assigns to the
   ``DOCUMENTATION_OPTIONS`` it defines) and ``doctools.js`` (its global ``_ready`` is called
   by scripts the theme's template writes outside Sphinx's list). Those template scripts,
   searchtools.js, language_data.js and searchindex.js (116 kB), are deferred in the written
   pages (4. below).
3. Refuse scripts and style sheets loaded from another host. MathJax is vendored in
   book_static/vendor (see _config.yml); a page that still pulls a script from a CDN is a
   build warning, and the strict build (``-W``) turns it into an error. Thebe's own bundle is
   not among them: sphinx-thebe loads it only when a reader presses the launch button, which
   needs a network anyway.

When the build has finished:

4. Drop Font Awesome's script. The theme loads Font Awesome twice: as CSS with web fonts (in
   pydata-sphinx-theme.css, which draws every icon) and as ``scripts/fontawesome.js``, 1.4 MB
   that swaps the same icons for inline SVG: the largest file on every page and a large part
   of its blocked main-thread time. Its ``<script>`` tag is written by the theme's template
   (webpack-macros.html), not registered with Sphinx, so it is removed from the written
   pages; the icons stay. The search scripts the template writes get ``defer`` there too.
"""
from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _key(asset) -> tuple:
    # None and '' both mean "inline script"; compare by content, not by spelling.
    return (asset.filename or "", tuple(sorted(asset.attributes.items())))


def _is_remote(filename) -> bool:
    return bool(filename) and "://" in str(filename)


# Scripts that must run where they stand (see 2. above), matched on the end of their path.
KEEP_IN_PLACE = ("documentation_options.js", "doctools.js")


def _defer(asset) -> None:
    name = str(asset.filename or "").split("?")[0]
    if not name or name.endswith(KEEP_IN_PLACE) or {"async", "defer"} & set(asset.attributes):
        return
    if asset.attributes.get("type", "text/javascript") != "text/javascript":
        return
    asset.attributes["defer"] = "defer"


def _clean_page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    for name in ("script_files", "css_files"):
        assets = context.get(name)
        if not assets:
            continue
        seen: set[tuple] = set()
        unique = []
        for asset in assets:
            key = _key(asset)
            if key in seen:
                continue
            seen.add(key)
            unique.append(asset)
            if name == "script_files":
                _defer(asset)
            if _is_remote(asset.filename):
                logger.warning(
                    "page %r loads %s from the network; vendor it under book_static/vendor "
                    "so the book works offline", pagename, asset.filename,
                    type="offline_assets", location=pagename,
                )
        # In place: the builder keeps this list and restores it after the page.
        assets[:] = unique


FONTAWESOME_SCRIPT = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')


TEMPLATE_SEARCH_SCRIPTS = re.compile(
    r'<script src="([^"]*(?:searchtools\.js|language_data\.js|searchindex\.js))"></script>')


def _rewrite_written_pages(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = FONTAWESOME_SCRIPT.sub("", text)
        new = TEMPLATE_SEARCH_SCRIPTS.sub(r'<script defer src="\1"></script>', new)
        if new != text:
            page.write_text(new, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    # Before book_archive (priority 900) zips the pages.
    app.connect("build-finished", _rewrite_written_pages, priority=100)
    # Late priority: run after sphinx.ext.mathjax, myst-nb and the theme add their files.
    app.connect("html-page-context", _clean_page_assets, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
