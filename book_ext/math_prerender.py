"""A local Sphinx extension: typeset the book's math at build time, as MathML.

MathJax typesets in the reader's browser: 1.3 MB of JavaScript, a flash of raw TeX for about
two seconds, then a reflow when every formula takes its real size (Lighthouse measured layout
shifts of 0.11-0.17 and over a second of blocked main thread on the chapter pages). Browsers
render MathML themselves (Chromium since 109, Firefox, Safari), so each formula is converted
here, once, with ``latex2mathml``, and the page needs no script for its math.

A formula the converter cannot take is left as TeX; a page with any left over keeps MathJax,
which then typesets only those (its ``processHtmlClass`` still matches ``math``). The build
logs how many formulas each page left to MathJax. ``aligned``/``split`` (``&`` columns, ``\\\\``
rows), which ``latex2mathml`` does not lay out, become an ``mtable`` of converted cells.

The TeX source stays on the page as the formula's ``alttext`` (and in an ``annotation``), for
copy and paste and for screen readers without MathML.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

INLINE = re.compile(r'<span class="math notranslate nohighlight">\\\((.*?)\\\)</span>', re.S)
DISPLAY = re.compile(r'(<div class="math notranslate nohighlight"[^>]*>\s*(?:<span class="eqno">.*?</span>)?)'
                     r'\s*\\\[(.*?)\\\]\s*</div>', re.S)
ALIGNED = re.compile(r"\\begin\{(aligned|split|align\*?)\}(.*?)\\end\{\1\}", re.S)
MATHML = re.compile(r'^<math xmlns="http://www.w3.org/1998/Math/MathML" display="(block|inline)">(.*)</math>$', re.S)


def _inner(tex: str) -> str:
    """The MathML children (no <math> wrapper) of one TeX formula; raises if it cannot."""
    tex = tex.strip()
    if not tex:
        return ""
    # Sphinx wraps a multi-line display in split. Without it the formula is an aligned block if
    # it has rows or columns of its own (a & or \\ outside any inner environment), else plain.
    split = re.fullmatch(r"\\begin\{split\}(.*)\\end\{split\}", tex, re.S)
    if split:
        inner = split.group(1).strip()
        top = inner
        while True:  # drop inner environments (cases, aligned, ...) to look at the top level
            shorter = re.sub(r"\\begin\{(\w+\*?)\}(?:(?!\\begin\{).)*?\\end\{\1\}", "", top, flags=re.S)
            if shorter == top:
                break
            top = shorter
        tex = f"\\begin{{aligned}}{inner}\\end{{aligned}}" if ("&" in top or "\\\\" in top) else inner
    parts = []
    last = 0
    for match in ALIGNED.finditer(tex):  # aligned blocks by hand, the rest by latex2mathml
        parts.append(_plain_inner(tex[last:match.start()]))
        parts.append(_table(match.group(2)))
        last = match.end()
    parts.append(_plain_inner(tex[last:]))
    return "".join(parts)


def _plain_inner(tex: str) -> str:
    from latex2mathml.converter import convert

    if not tex.strip():
        return ""
    if "\\begin{" in tex and not re.search(r"\\begin\{(cases|matrix|pmatrix|bmatrix)\}", tex):
        raise ValueError("an environment latex2mathml does not lay out")
    mathml = convert(tex)
    match = MATHML.match(mathml)
    if not match:
        raise ValueError(f"unexpected converter output {mathml[:60]!r}")
    return match.group(2)


def _table(body: str) -> str:
    rows = [r for r in re.split(r"\\\\(?:\[[^\]]*\])?", body) if r.strip()]
    out = []
    for row in rows:
        cells = row.split("&")
        tds = []
        for i, cell in enumerate(cells):
            align = "right" if i % 2 == 0 else "left"
            tds.append(f'<mtd columnalign="{align}"><mrow>{_plain_inner(cell)}</mrow></mtd>')
        out.append("<mtr>" + "".join(tds) + "</mtr>")
    return '<mtable displaystyle="true" columnspacing="0em 1em" rowspacing="0.5em">' + "".join(out) + "</mtable>"


def mathml(tex: str, display: bool) -> str:
    """One formula as a <math> element (raises ValueError/others if it cannot be converted)."""
    inner = _inner(tex)
    mode = "block" if display else "inline"
    source = html.escape(" ".join(tex.split()))
    return (f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}" alttext="{source}">'
            f'<semantics><mrow>{inner}</mrow><annotation encoding="application/x-tex">{source}'
            f"</annotation></semantics></math>")


def render(body: str) -> tuple[str, int, int]:
    """The body with its math as MathML; (body, converted, left as TeX)."""
    counts = [0, 0]

    def one(tex_html: str, display: bool) -> str | None:
        try:
            out = mathml(html.unescape(tex_html), display)
        except Exception:  # noqa: BLE001  (any converter failure: leave it to MathJax)
            counts[1] += 1
            return None
        counts[0] += 1
        return out

    def display_math(m: re.Match) -> str:
        out = one(m.group(2), True)
        return m.group(0) if out is None else m.group(1) + out + "</div>"

    def inline_math(m: re.Match) -> str:
        out = one(m.group(1), False)
        return m.group(0) if out is None else '<span class="math notranslate nohighlight">' + out + "</span>"

    body = DISPLAY.sub(display_math, body)
    body = INLINE.sub(inline_math, body)
    return body, counts[0], counts[1]


# The subset book_ext/page_weight.py writes at build-finished (book_static/css/book.css loads it).
MATH_FONT = "_static/vendor/stix-two-math/STIXTwoMath-book.woff2"
FONT_PRELOAD_MARK = "data-math-font"
MATHJAX_SCRIPTS = re.compile(r'\s*<script[^>]*src="[^"]*mathjax/[^"]*"[^>]*></script>'
                             r'|\s*<script>\s*window\.MathJax = [^<]*</script>')


def _prerender(app: Sphinx, exception) -> None:
    """Every written page, whole (the body, and the section titles in the navigation and the
    page's table of contents, which the theme writes outside the body)."""
    if exception is not None or app.builder.format != "html":
        return
    total = [0, 0]
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "math notranslate" not in text and "MathJax" not in text:
            continue
        new, converted, left = render(text)
        total[0] += converted
        total[1] += left
        if left:
            logger.info("math_prerender: %s: %d formulas as MathML, %d left to MathJax",
                        page.relative_to(app.outdir), converted, left)
        else:
            new = MATHJAX_SCRIPTS.sub("", new)
        if converted and FONT_PRELOAD_MARK not in new:
            # The math font is fetched with the style sheets, not when layout first meets a
            # formula: the text it draws (font-display: block) shows that much sooner.
            href = os.path.relpath(Path(app.outdir) / MATH_FONT, page.parent).replace(os.sep, "/")
            new = new.replace("</head>", f'<link rel="preload" href="{href}" as="font" type="font/woff2" '
                                         f'crossorigin {FONT_PRELOAD_MARK}>\n</head>', 1)
        if new != text:
            page.write_text(new, encoding="utf-8")
    logger.info("math_prerender: %d formulas as MathML, %d left to MathJax", *total)


def setup(app: Sphinx) -> dict:
    # Before book_archive (priority 900) zips the pages.
    app.connect("build-finished", _prerender, priority=200)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
