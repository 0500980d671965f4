"""A local Sphinx extension: the whole built book as one download (``adam-companion.zip``).

When the HTML build finishes without an error, every file of the output folder is packed
into ``<outdir>/adam-companion.zip`` under one top folder, so a reader who downloads it
from the published site (the link is on the front page) unpacks a book that works offline:
MathJax, RequireJS and the widget manager are vendored (see offline_assets.py).

The archive is reproducible: files in sorted order, fixed timestamps and permissions, so
two builds with the same pages give the same bytes. Left out: the archive itself, Sphinx's
``.buildinfo`` and the ``reports/`` of failed cells (a successful build has none).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)
ARCHIVE = "adam-companion.zip"
TOP = "adam-companion"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
SKIP_TOP = {ARCHIVE, ".buildinfo", "reports"}
ALREADY_COMPRESSED = {".png", ".jpg", ".jpeg", ".gif", ".woff", ".woff2", ".zip", ".gz"}


def write_archive(outdir: Path, name: str = ARCHIVE, top: str = TOP) -> Path:
    target = outdir / name
    files = sorted(
        p for p in outdir.rglob("*")
        if p.is_file() and p.relative_to(outdir).parts[0] not in SKIP_TOP
    )
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w") as archive:
        for path in files:
            rel = path.relative_to(outdir).as_posix()
            info = zipfile.ZipInfo(f"{top}/{rel}", date_time=EPOCH)
            info.external_attr = 0o644 << 16
            stored = path.suffix.lower() in ALREADY_COMPRESSED
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=None if stored else 6)
    os.replace(tmp, target)
    return target


def _on_build_finished(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = write_archive(Path(app.outdir))
    logger.info("book archive: %s (%.1f MB)", target, target.stat().st_size / 1e6)


def setup(app: Sphinx) -> dict:
    # Last, after every pass that writes into the output (the extensions' asset copies at the
    # default 500, book_ext/page_weight.py at 800), so the archive holds what is served.
    app.connect("build-finished", _on_build_finished, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
