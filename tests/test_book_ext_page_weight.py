"""book_ext/page_weight.py: style sheets cut to the rules a page can match, fonts to the glyphs
the pages draw (no built book needed; the built book's side is in tests/test_browser.py)."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STIX = ROOT / "book_static" / "vendor" / "stix-two-math" / "STIXTwoMath-Regular.woff2"


def _load():
    spec = importlib.util.spec_from_file_location("book_ext_page_weight", ROOT / "book_ext" / "page_weight.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pw = _load()
USED = {"btn", "show", "bd-sidebar", "highlight", "n"}


def used(name: str) -> bool:
    return name in USED or name.startswith("bs-")


def test_purge_drops_rules_no_element_can_match_and_keeps_the_rest_in_order():
    css = ('@charset "UTF-8";\n/*! licence */\n/* a plain comment */'
           ':root{--x:1}.fa-rocket:before{content:"\\f135"}.btn{color:red}'
           '.btn.fa-rocket,.btn:hover{color:blue}'
           '.unused,.highlight .n{color:green}'
           '.btn:not(.disabled){cursor:pointer}'
           '.bs-tooltip-auto[data-popper-placement^=top]{margin:0}'
           'a[href$=".pdf"]{x:y}'
           '.carousel:is(.a,.b) .btn{z:1}'
           '@media (min-width:960px){.unused{a:b}.bd-sidebar{width:1px}}'
           '@media print{.unused{a:b}}'
           '@font-face{font-family:X;src:url(x.woff2)}'
           '@keyframes spin{0%{a:b}to{a:c}}'
           '.quote{content:"}{;"}.show{d:e}')
    out = pw.purge_css(css, used)
    assert out.splitlines()[:2] == ['@charset "UTF-8";', "/*! licence */"]
    assert "a plain comment" not in out
    for kept in (":root{--x:1}", ".btn{color:red}", ".btn:hover{color:blue}", ".highlight .n{color:green}",
                 ".btn:not(.disabled){cursor:pointer}", ".bs-tooltip-auto[data-popper-placement^=top]{margin:0}",
                 'a[href$=".pdf"]{x:y}', "@media (min-width:960px){.bd-sidebar{width:1px}}",
                 "@font-face{font-family:X;src:url(x.woff2)}", "@keyframes spin{0%{a:b}to{a:c}}", ".show{d:e}"):
        assert kept in out, kept
    for dropped in ("fa-rocket", ".unused", "@media print", ".carousel", ".quote"):
        assert dropped not in out, dropped
    # what is kept keeps its order (the cascade)
    assert out.index(".btn{color:red}") < out.index(".btn:hover") < out.index(".show{d:e}")


def test_selectors_split_at_top_level_commas_only():
    assert pw.split_selectors('.a,:is(.b,.c) .d,[x="1,2"]') == [".a", ":is(.b,.c) .d", '[x="1,2"]']
    assert pw.required_classes(".a.b:not(.c) [data-x='.e'] .f::before") == ["a", "b", "f"]


def test_used_classes_read_pages_and_scripts_but_not_font_awesomes_script(tmp_path):
    (tmp_path / "_static" / "scripts").mkdir(parents=True)
    (tmp_path / "index.html").write_text('<div class="bd-page fa-bars">text</div>')
    # minified code leaves short tokens such as `w-` (w-1): not taken as prefixes
    (tmp_path / "_static" / "x.js").write_text('el.classList.add("collapsing"); t=`bs-${n}-auto`; w-1')
    (tmp_path / "_static" / "scripts" / "fontawesome.js").write_text('"fa-rocket"')
    used_ = pw.used_classes(tmp_path)
    assert used_("bd-page") and used_("fa-bars") and used_("collapsing") and used_("bs-tooltip-auto")
    assert not used_("fa-rocket") and not used_("offcanvas") and not used_("w-25")


def test_math_italic_is_what_mathml_draws_for_a_one_letter_mi():
    assert pw.math_italic("x") == "\U0001d465"
    assert pw.math_italic("h") == "\u210e"      # the hole in the italic alphabet
    assert pw.math_italic("A") == "\U0001d434"
    assert pw.math_italic("\u03b1") == "\U0001d6fc"  # alpha
    assert pw.math_italic("\u03f5") == "\U0001d716"  # lunate epsilon (\\epsilon)
    assert pw.math_italic("\u2202") == "\U0001d715"  # partial
    assert pw.math_italic("1") is None and pw.math_italic("+") is None


def test_math_characters_are_the_mathml_text_not_the_tex_source():
    page = ('<p>prose ∀</p><math alttext="\\hat{m}_t"><semantics><mrow><msub><mover><mi>m</mi>'
            '<mo>^</mo></mover><mi>t</mi></msub><mo>&lt;</mo><mi>β</mi></mrow>'
            '<annotation encoding="application/x-tex">\\hat{m}_t Q</annotation></semantics></math>')
    assert pw.math_characters(page) == {"m", "^", "t", "<", "β"}


def test_math_font_subset_keeps_the_characters_their_italics_and_the_math_table():
    from fontTools.ttLib import TTFont

    chars = pw.math_font_characters({"≜", "𝔼"})
    assert {"≜", "𝔼", "√", "x", "\U0001d465", "β", "\U0001d6fd", "∑"} <= chars
    data = pw.subset_font(STIX, {ord(c) for c in chars})
    assert data == pw.subset_font(STIX, {ord(c) for c in chars}), "the subset is not reproducible"
    font = TTFont(io.BytesIO(data))
    cmap = font.getBestCmap()
    full = TTFont(STIX).getBestCmap()
    missing = sorted(c for c in chars if ord(c) in full and ord(c) not in cmap)
    assert not missing, f"the subset lacks {missing}"
    assert "MATH" in font and "GSUB" in font, "the subset lost the tables MathML layout needs"
    # the radical's and the sum's larger variants (what msqrt and a display sum stretch to)
    variants = font["MATH"].table.MathVariants
    vertical = dict(zip(variants.VertGlyphCoverage.glyphs, variants.VertGlyphConstruction))
    for char in "√∑":
        construction = vertical.get(cmap[ord(char)])
        assert construction is not None and construction.VariantCount > 1, char
        assert all(v.VariantGlyph in font.getGlyphOrder() for v in construction.MathGlyphVariantRecord)
    assert len(data) < STIX.stat().st_size / 4, f"subset {len(data)} bytes: not much smaller"
