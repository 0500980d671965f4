"""A local Sphinx extension: keep every page of the book working with no network.

Two jobs, both at ``html-page-context`` time, after every other extension has added
its scripts for the page:

1. Drop duplicated scripts. sphinx-thebe 0.3.1 adds its inline configuration
   (``const THEBE_JS_URL = ...``) with ``filename=None`` when the environment starts
   reading; Sphinx's HTML builder re-registers the same script from the registry with
   ``filename=''``. The two compare unequal, so every page carried the ``const`` twice and
   the browser raised "Identifier 'THEBE_JS_URL' has already been declared", which
   also stopped the rest of that script. (sphinx-togglebutton's selector ``var`` is
   duplicated the same way, harmlessly.)
2. Refuse scripts and style sheets loaded from another host. MathJax, RequireJS and the
   ipywidgets embed manager are vendored in book_static/vendor (see _config.yml); a
   page that still pulls one from a CDN is a build warning, and the strict build
   (``-W``) turns it into an error. Thebe's own bundle is not among them: sphinx-thebe
   loads it only when a reader presses the launch button, which needs a network anyway.
"""
from __future__ import annotations

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _key(asset) -> tuple:
    # None and '' both mean "inline script"; compare by content, not by spelling.
    return (asset.filename or "", tuple(sorted(asset.attributes.items())))


def _is_remote(filename) -> bool:
    return bool(filename) and "://" in str(filename)


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
            if _is_remote(asset.filename):
                logger.warning(
                    "page %r loads %s from the network; vendor it under book_static/vendor "
                    "so the book works offline", pagename, asset.filename,
                    type="offline_assets", location=pagename,
                )
        # In place: the builder keeps this list and restores it after the page.
        assets[:] = unique


def setup(app: Sphinx) -> dict:
    # Late priority: run after sphinx.ext.mathjax, myst-nb and the theme add their files.
    app.connect("html-page-context", _clean_page_assets, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
