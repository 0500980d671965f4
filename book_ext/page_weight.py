"""A local Sphinx extension: what a page loads, cut to what the book uses.

When the build has finished (after the other extensions have rewritten the pages and copied
their style sheets, before book_archive zips them), in ``_build/html`` only; the sources in
book_static/ and the theme's files are not touched:

1. **Style sheets without the rules no page can match.** The theme's CSS is Bootstrap,
   Font Awesome's icon rules and the theme's own: 397 kB in pydata-sphinx-theme.css alone, and
   about 540 kB render-blocking on every page, of which Lighthouse found over 85% unused. A
   rule is dropped when each of its selectors names a class that appears in no written page
   and in no script the pages load (the scripts add classes as they run: ``show``,
   ``collapsing``, ``bs-tooltip-auto``...). The check is conservative: any word of any page
   or script counts as a used class; a class starting with a prefix a script builds names
   from (``bs-``, ``offcanvas-``, ...) is kept; classes inside ``:not()``, ``:is()``,
   ``:has()`` or an attribute selector are not looked at; a selector with a CSS escape is
   kept. At-rules other than ``@media``/``@supports``/``@layer``/``@container`` (font faces,
   keyframes) stay as they are. The order of what is kept does not change, so the cascade is
   the same.
2. **Font Awesome's fonts cut to the icons left.** Only the icons whose rules survived 1. can
   ever be drawn; the three web fonts (about 290 kB, two of them fetched by every page) keep
   just those glyphs.
3. **The math font cut to the book's formulas.** STIX Two Math (403 kB, 4605 characters,
   book_static/vendor/stix-two-math) draws the MathML that book_ext/math_prerender.py writes.
   The build writes ``STIXTwoMath-book.woff2``, which book_static/css/book.css loads and the
   math pages preload: the characters in the written pages' ``<math>`` elements, the italic
   letters the browser shows for a one-letter ``<mi>`` (MathML's automatic italic maps *x*
   to U+1D465), the radical sign ``msqrt`` draws, and a safety set (Latin, digits, Greek,
   the common operators and fences), with every glyph the font's MATH and GSUB tables reach
   from those (stretched fences and roots, display sums, script-size alternates). The full
   font is not copied to the output. The subset is the same bytes for the same pages
   (no timestamps).

fontTools writes the woff2 files with brotli (both pinned in requirements.txt). Each step
logs the bytes before and after.
"""
from __future__ import annotations

import html
import io
import logging as std_logging
import re
import unicodedata
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATH_FONT_SOURCE = "_static/vendor/stix-two-math/STIXTwoMath-Regular.woff2"
MATH_FONT = "_static/vendor/stix-two-math/STIXTwoMath-book.woff2"  # book_static/css/book.css


# ---------------------------------------------------------------------------------------
# 1. Style sheets

def css_statements(css: str) -> list[tuple[str, str | None]]:
    """The top-level statements of a style sheet, in order: ``(prelude, body)`` for a block
    (``body`` without its braces), ``(statement, None)`` for ``@charset ...;`` and the like,
    and for a ``/*! licence */`` comment (other comments are dropped). Strings, escapes and
    comments may hold braces and semicolons."""
    out: list[tuple[str, str | None]] = []
    i, n, start, depth, body_start = 0, len(css), 0, 0, 0
    prelude = ""
    while i < n:
        c = css[i]
        if c == "/" and css.startswith("/*", i):
            end = css.find("*/", i + 2)
            end = n if end < 0 else end + 2
            if depth == 0 and not css[start:i].strip():  # between statements
                if css.startswith("/*!", i):
                    out.append((css[i:end], None))
                start = end
            i = end
            continue
        if c in "\"'":
            j = i + 1
            while j < n and css[j] != c:
                j += 2 if css[j] == "\\" else 1
            i = j + 1
            continue
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                prelude, body_start = css[start:i], i + 1
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                out.append((prelude.strip(), css[body_start:i]))
                start = i + 1
        elif c == ";" and depth == 0:
            out.append((css[start:i + 1].strip(), None))
            start = i + 1
        i += 1
    return out


def split_selectors(prelude: str) -> list[str]:
    """A selector list split at its top-level commas (not those in ``:is(a, b)`` or ``[x="a,b"]``)."""
    parts, depth, last, quote = [], 0, 0, None
    for i, c in enumerate(prelude):
        if quote:
            if c == quote and prelude[i - 1] != "\\":
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(prelude[last:i])
            last = i + 1
    parts.append(prelude[last:])
    return [p.strip() for p in parts if p.strip()]


CLASS = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")


def required_classes(selector: str) -> list[str]:
    """The classes an element must have for the selector to match it (those inside a
    functional pseudo-class, which may match without them, or an attribute value, left out)."""
    s = selector
    while True:
        shorter = re.sub(r"\([^()]*\)", "", s)
        if shorter == s:
            break
        s = shorter
    s = re.sub(r"\[[^\]]*\]", "", s)
    return CLASS.findall(s)


NESTED_AT_RULES = ("@media", "@supports", "@layer", "@container")


def purge_css(css: str, used) -> str:
    """The style sheet without the rules no element can match: ``used(class_name)`` says
    whether a class may appear (see 1. in the module's docstring)."""
    out = []
    for prelude, body in css_statements(css):
        if body is None:
            out.append(prelude)
        elif prelude.startswith("@"):
            if prelude.lower().startswith(NESTED_AT_RULES):
                inner = purge_css(body, used)
                if inner.strip():
                    out.append(prelude + "{" + inner + "}")
            else:  # @font-face, @keyframes, @page, @property: as they are
                out.append(prelude + "{" + body + "}")
        elif "\\" in prelude:  # an escaped class name: not worth parsing, keep it
            out.append(prelude + "{" + body + "}")
        else:
            kept = [s for s in split_selectors(prelude) if all(used(c) for c in required_classes(s))]
            if kept:
                out.append(",".join(kept) + "{" + body + "}")
    return "\n".join(out)


WORD = re.compile(r"[\w-]+")
# Scripts no page loads (Font Awesome's is removed from the pages by offline_assets; MathJax
# styles its own output), and the search index (words of the book, not class names).
NOT_LOADED = ("fontawesome.js", "searchindex.js")


def used_classes(outdir: Path):
    """``used(class_name)``: every word of every written page and of every script."""
    words: set[str] = set()
    for page in outdir.rglob("*.html"):
        words.update(WORD.findall(page.read_text(encoding="utf-8")))
    prefixes: set[str] = set()
    for script in outdir.rglob("*.js"):
        if script.name.endswith(NOT_LOADED) or "mathjax" in script.parts:
            continue
        tokens = set(WORD.findall(script.read_text(encoding="utf-8", errors="replace")))
        words |= tokens
        # `bs-${name}-auto`: a script that builds a class name from a prefix
        prefixes |= {t for t in tokens if t.endswith("-") and len(t) >= 3 and t[0].isalpha()}
    prefix_tuple = tuple(sorted(prefixes))
    return lambda name: name in words or name.startswith(prefix_tuple)


def _purge_style_sheets(outdir: Path) -> list[Path]:
    used = used_classes(outdir)
    before = after = 0
    sheets = sorted(p for p in (outdir / "_static").rglob("*.css") if "vendor" not in p.parts)
    for sheet in sheets:
        css = sheet.read_text(encoding="utf-8")
        new = purge_css(css, used)
        before, after = before + len(css.encode()), after + len(new.encode())
        if new != css:
            sheet.write_text(new, encoding="utf-8")
    logger.info("page_weight: %d style sheets, %d -> %d bytes", len(sheets), before, after)
    return sheets


# ---------------------------------------------------------------------------------------
# 2. and 3. Fonts

def subset_font(source: Path, codepoints: set[int]) -> bytes:
    """The font (woff2) with only what draws ``codepoints``, closed over its GSUB, GPOS and
    MATH tables; deterministic (no timestamp is written)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    # fontTools logs each table it prunes at INFO: hundreds of lines in the build's log once
    # something (by the end of the build, something has) sends INFO records to the console.
    std_logging.getLogger("fontTools").setLevel(std_logging.WARNING)
    font = TTFont(source, recalcTimestamp=False)
    options = subset.Options()
    options.layout_features = ["*"]  # ssty (script-size glyphs), flac, dtls...: the MathML layout's
    options.name_IDs = ["*"]         # the licence and the font's names, as they were
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.flavor = "woff2"
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(codepoints & set(font.getBestCmap())))
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


CSS_CODEPOINT = re.compile(r"\\([0-9a-fA-F]{1,6})")
FONT_URL = re.compile(r"url\(([^)\"']*fontawesome/webfonts/[^)\"']+\.woff2)\)")


def _subset_icon_fonts(outdir: Path, sheets: list[Path]) -> None:
    codepoints: set[int] = set()
    fonts: set[Path] = set()
    for sheet in sheets:
        css = sheet.read_text(encoding="utf-8")
        codepoints |= {int(h, 16) for h in CSS_CODEPOINT.findall(css)}
        codepoints |= {ord(c) for c in css if ord(c) > 0x7f}
        fonts |= {(sheet.parent / url).resolve() for url in FONT_URL.findall(css)}
    before = after = 0
    for font in sorted(f for f in fonts if f.is_file()):
        data = font.read_bytes()
        new = subset_font(font, codepoints)
        before, after = before + len(data), after + len(new)
        font.write_bytes(new)
    logger.info("page_weight: %d icon fonts, %d -> %d bytes", len(fonts), before, after)


MATH_ELEMENT = re.compile(r"<math\b.*?</math>", re.S)
ANNOTATION = re.compile(r"<annotation\b.*?</annotation>", re.S)
TAG = re.compile(r"<[^>]*>")


def math_characters(page_html: str) -> set[str]:
    """The characters a page's MathML draws (its text, not the TeX source in the annotation)."""
    chars: set[str] = set()
    for element in MATH_ELEMENT.findall(page_html):
        chars |= set(html.unescape(TAG.sub("", ANNOTATION.sub("", element))))
    return chars


def _span(first: int, last: int) -> set[str]:
    return {chr(c) for c in range(first, last + 1)}


# Kept whatever the pages use: a formula added later that uses only these still looks right if
# it somehow escaped the scan (say, inserted by a script).
SAFETY = (_span(0x20, 0x7E) | set("±×÷·¬°") | _span(0x391, 0x3A9) | _span(0x3B1, 0x3C9) | set("ϑϕϖϵϱς")
          | set("√∑∏∫−∓∞≤≥≠≈≡∼∝∈∉⊂⊆∪∩∂∇∀∃′″‴‖⋅…⋯⋮⋱→←↔⇒⇐⇔↦⟨⟩⌈⌉⌊⌋"))
RADICAL = "\u221a"  # msqrt draws it, though it is not in the text

# MathML Core's italic mapping beyond the Latin and Greek letters (its table, with the hole in
# the italic alphabet at h: U+210E PLANCK CONSTANT).
MATH_ITALIC_EXTRA = {
    "h": "\u210e", "\u0131": "\U0001d6a4", "\u0237": "\U0001d6a5", "\u03f4": "\U0001d6f3",
    "\u2207": "\U0001d6fb", "\u2202": "\U0001d715", "\u03f5": "\U0001d716", "\u03d1": "\U0001d717",
    "\u03f0": "\U0001d718", "\u03d5": "\U0001d719", "\u03f1": "\U0001d71a", "\u03d6": "\U0001d71b",
}


def math_italic(c: str) -> str | None:
    """What the browser draws for a one-letter <mi> (MathML Core's text-transform: math-auto)."""
    if c in MATH_ITALIC_EXTRA:
        return MATH_ITALIC_EXTRA[c]
    name = unicodedata.name(c, "")
    for script in ("LATIN ", "GREEK "):
        for case in ("CAPITAL ", "SMALL "):
            prefix = script + case + "LETTER "
            if name.startswith(prefix):
                try:
                    return unicodedata.lookup("MATHEMATICAL ITALIC " + case + name[len(prefix):])
                except KeyError:
                    return None
    return None


def math_font_characters(pages_chars: set[str]) -> set[str]:
    chars = set(pages_chars) | SAFETY | {RADICAL}
    return chars | {i for i in map(math_italic, chars) if i}


def _subset_math_font(outdir: Path) -> None:
    source = outdir / MATH_FONT_SOURCE
    if not source.is_file():
        return
    chars: set[str] = set()
    for page in outdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "<math" in text:
            chars |= math_characters(text)
    data = subset_font(source, {ord(c) for c in math_font_characters(chars)})
    (outdir / MATH_FONT).write_bytes(data)
    logger.info("page_weight: math font for %d characters of the pages' MathML, %d -> %d bytes",
                len(chars), source.stat().st_size, len(data))
    source.unlink()  # no page loads it


def _lighten(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    sheets = _purge_style_sheets(outdir)
    _subset_icon_fonts(outdir, sheets)
    _subset_math_font(outdir)


def setup(app: Sphinx) -> dict:
    # After the passes that rewrite the pages (offline_assets and page_faces at 100,
    # math_prerender at 200) and after the extensions that write their style sheets at the
    # end of the build (default priority 500: myst-nb's mystnb.*.css, sphinx-exercise's and
    # sphinx-proof's, the theme's pygments.css, which would otherwise replace purged files
    # with whole ones); before book_archive (900) zips the output.
    app.connect("build-finished", _lighten, priority=800)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
