"""The built book in a real browser, with the network cut off.

Every page listed in _toc.yml is served from _build/html on 127.0.0.1 and opened in
headless Chromium (Debian's, driven by Playwright). Every request that does not go to that
local server is blocked and recorded, so passing these tests proves the book works offline.

Per page: no page errors, no console errors, no failed or blocked requests; all math is
typeset (as MathML at build time, or by MathJax for what the build left; no raw TeX left);
every visible image has loaded; every image has alt text (not a file name). Per chapter also:
no widget view and no widget state on the page (so no control that does nothing without a
kernel); at least one figure; every static face (adamlib.widgets.static_figure: range inputs
over precomputed frames) changes the displayed picture when each of its inputs is moved with
the keyboard, and its inputs say their value (aria-valuetext and the readout); each live
figure's note links to the chapter in Colab; there are exercises, their solutions folded; the
page and what it loads weigh at most PAGE_BUDGET_BYTES; at 390 px wide nothing overflows the
page sideways and every input and its readout are inside the screen; the launch menu's Binder
and Colab links open this chapter's notebook (chapters/NN_x.ipynb on the branch under
repository.url of _config.yml), and the Thebe, repository and .ipynb download buttons are
there (the download served). The front page links the whole book as one archive, which must
unpack to a complete book. Screenshots go to _build/screenshots/: every page in full
(<page>.png), the viewport before and after each input move (<page>.face-N-input-M.*.png), the
first face at 390 px (<page>.phone.png) and each chapter's open launch menu
(<page>.launch-menu.png).

Run `python3 tasks.py build` first (`python3 tasks.py test` does). Without Chromium the
tests skip, unless ADAMLIB_REQUIRE_BROWSER=1 (set by .ci/run), which makes that a failure.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# What one chapter page may weigh, with everything it loads before the reader moves a slider
# (issue 16: at most 2.5 MB uncompressed).
PAGE_BUDGET_BYTES = 2_500_000
# What its style sheets may weigh: they block the first paint (issue 16: Lighthouse performance
# >= 90). The theme's come to about 540 kB; book_ext/page_weight.py drops the rules no page
# can match, leaving about 165 kB.
STYLE_BUDGET_BYTES = 200_000
MATH_FONT = "_static/vendor/stix-two-math/STIXTwoMath-book.woff2"  # book_ext/page_weight.py
PHONE_WIDTH = 390
# Console messages that are not faults of the book. Keep this list short and say why.
ALLOWED_CONSOLE_ERRORS: list[re.Pattern] = [
    # (none: the sphinx-thebe duplicate `const THEBE_JS_URL` is removed at build time by
    # book_ext/offline_assets.py, and the theme's "invalid theme mode" by html_context.)
]
PAGE_TIMEOUT_MS = 60_000


# ---------------------------------------------------------------------------------------
# Which pages to check: the ones _toc.yml puts in the book.

def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb|rst)$", "", f) for f in files]


TOC_PAGES = _toc_files()
CHAPTERS = [p for p in TOC_PAGES if p.startswith("chapters/")]
# Pages Sphinx makes that are not in the table of contents, but a reader reaches.
GENERATED_PAGES = ["genindex", "search"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
ARCHIVE = "adam-companion.zip"  # book_ext/book_archive.py


def expected_launch_links(page_path: str) -> dict[str, str]:
    """Where the launch menu of a chapter must point: its notebook, in the repository of
    _config.yml, on its branch (the URL forms of sphinx-book-theme 1.3)."""
    repo = CONFIG["repository"]
    owner_name = repo["url"].rstrip("/").removeprefix("https://github.com/")
    branch = repo.get("branch", "main")
    prefix = (repo.get("path_to_book") or "").strip("/")
    notebook = "/".join(p for p in (prefix, f"{page_path}.ipynb") if p)
    buttons = CONFIG["launch_buttons"]
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[buttons.get("notebook_interface", "classic")]
    return {
        "Binder": f"{buttons['binderhub_url'].rstrip('/')}/v2/gh/{owner_name}/{branch}"
                  f"?urlpath={ui}/{notebook}",
        # The Colab edition (tools/colab_edition.py), which the workflow pushes to `colab`.
        "Colab": f"{buttons['colab_url'].rstrip('/')}/github/{owner_name}/blob/colab/{notebook}",
    }


# ---------------------------------------------------------------------------------------
# Fixtures: the built book, a local server, the browser.

@pytest.fixture(scope="module")
def built_book() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail(
            f"{HTML} has no built book: run `python3 tasks.py build` first "
            "(`python3 tasks.py test` builds before testing)",
            pytrace=False,
        )
    return HTML


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "Chromium is not installed (Debian: apt-get install -y chromium); browser checks need it"
        if os.environ.get("ADAMLIB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and ADAMLIB_REQUIRE_BROWSER=1 requires them", pytrace=False)
        pytest.skip(reason)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def server(built_book: Path):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_context(chromium_path: str, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


# ---------------------------------------------------------------------------------------
# Opening one page, recording everything that goes wrong.

class PageProblems:
    def __init__(self):
        self.blocked: list[str] = []
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.failed: list[str] = []

    def report(self) -> list[str]:
        lines = []
        lines += [f"needed the network (blocked): {u}" for u in self.blocked]
        lines += [f"page error: {e}" for e in self.page_errors]
        lines += [f"console error: {e}" for e in self.console_errors]
        lines += [f"failed request: {e}" for e in self.failed]
        return lines


def _is_local(url: str, base: str) -> bool:
    scheme = urlsplit(url).scheme
    if scheme in ("data", "blob", "about"):
        return True
    host = urlsplit(url).hostname
    return url.startswith(base) or host in ("127.0.0.1", "localhost")


def open_page(context, base: str, page_path: str):
    """Open a page with the network blocked; return (page, problems)."""
    page = context.new_page()
    problems = PageProblems()

    def route(route_):
        url = route_.request.url
        if _is_local(url, base):
            route_.continue_()
        else:
            problems.blocked.append(url)
            route_.abort("blockedbyclient")

    def on_console(message):
        if message.type != "error":
            return
        text = message.text
        if any(p.search(text) for p in ALLOWED_CONSOLE_ERRORS):
            return
        location = message.location.get("url", "") if message.location else ""
        problems.console_errors.append(f"{text} ({location})" if location else text)

    def on_response(response):
        if response.status >= 400:
            problems.failed.append(f"HTTP {response.status} {response.url}")

    def on_request_failed(request):
        if request.url in problems.blocked:
            return  # already reported as blocked
        problems.failed.append(f"{request.failure} {request.url}")

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.goto(base + page_path + ".html", wait_until="load")
    return page, problems


def wait_until(page, condition: str, failures: list[str], what: str, arg=None,
               timeout_ms: int = 20_000) -> bool:
    """Wait for a JavaScript condition; on timeout record `what` instead of raising."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_ms)
        return True
    except PlaywrightTimeout:
        failures.append(f"{what} (waited {timeout_ms / 1000:.0f} s)")
        return False


def wait_for_mathjax(page, failures: list[str]) -> None:
    """If the build left formulas to MathJax, wait until it has started and typeset them."""
    ready = wait_until(
        page,
        "() => !document.querySelector('.math:not(:has(math))') ||"
        " (window.MathJax && MathJax.startup && MathJax.startup.promise && MathJax.typesetPromise)",
        failures, "MathJax did not start",
    )
    if ready:
        page.evaluate(
            "async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            " { await MathJax.startup.promise; } }"
        )


def math_report(page) -> dict:
    return page.evaluate(
        r"""() => {
        const article = document.querySelector('article') || document.body;
        const maths = Array.from(article.querySelectorAll('.math'));
        const untypeset = maths.filter(m => !m.querySelector('mjx-container, math'))
                               .map(m => m.textContent.trim().slice(0, 80));
        const clone = article.cloneNode(true);
        clone.querySelectorAll('pre, code, script, style, .highlight, mjx-container, math')
             .forEach(e => e.remove());
        const text = clone.textContent;
        const raw = [];
        for (const token of ['$$', '\\(', '\\)', '\\[', '\\]', '\\begin{', '\\frac', '\\alpha']) {
            const i = text.indexOf(token);
            if (i >= 0) raw.push(text.slice(Math.max(0, i - 40), i + 40).replace(/\s+/g, ' '));
        }
        return {
            math: maths.length,
            containers: document.querySelectorAll('mjx-container, .math math').length,
            errors: Array.from(document.querySelectorAll('mjx-merror'))
                         .map(e => e.textContent.slice(0, 80)),
            untypeset: untypeset,
            raw: raw,
        };
    }"""
    )


def wait_for_images(page, failures: list[str]) -> list[dict]:
    """Load every shown image now (they load lazily, book_ext/page_faces.py), wait until all
    have loaded, and list them. Frames a reader has not asked for stay hidden and unloaded."""
    page.evaluate("""() => document.querySelectorAll('article img').forEach(i => {
        if (i.checkVisibility()) i.loading = 'eager';  // fetch now what a reader would on scrolling
    })""")
    wait_until(
        page,
        "() => Array.from(document.querySelectorAll('article img'))"
        ".filter(i => i.checkVisibility()).every(i => i.complete)",
        failures, "images still loading",
    )
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('article img')).filter(i => i.checkVisibility())
            .map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth, height: i.naturalHeight}))"""
    )


# ---------------------------------------------------------------------------------------
# The figures' faces: no widget on the page, every static face's inputs switch its frames.

FACE_FRAMES = """(face) => Array.from(face.querySelectorAll('img[data-frame]'))
    .filter(i => i.checkVisibility())
    .map(i => {
        const c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight;
        c.getContext('2d').drawImage(i, 0, 0);
        return {frame: i.dataset.frame, loaded: i.complete && i.naturalWidth > 0,
                alt: i.getAttribute('alt') || '', pixels: c.toDataURL('image/png')};
    })"""


def _frames(face) -> list[dict]:
    return [{**f, "pixels": hashlib.sha256(f["pixels"].encode()).hexdigest()[:16]}
            for f in face.evaluate(FACE_FRAMES)]


def _shot_name(page_path: str) -> str:
    return page_path.replace("/", "__")


def scroll_to(page, element) -> None:
    """Scroll ``element`` to the middle of the screen, again until it stays there: the sections
    around it are laid out only when near the screen (book.css: content-visibility), and
    until then count 1200 px, so one scroll lands where their real heights move it away."""
    top = None
    for _ in range(20):
        element.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(100)
        now = element.evaluate("e => e.getBoundingClientRect().top")
        if top is not None and abs(now - top) < 1:
            return
        top = now


def move_input(page, face, index: int, shot: str, label: str, failures: list[str]) -> None:
    """Press an arrow key on one range input; the frame shown must change, pixels included,
    and the input must say its new value."""
    range_input = face.locator("input[type=range]").nth(index)
    scroll_to(page, face)
    shown_loaded = ("(f) => { const shown = Array.from(f.querySelectorAll('img[data-frame]'))"
                    ".filter(i => i.checkVisibility()); return shown.length === 1 && shown[0].complete"
                    " && shown[0].naturalWidth > 0; }")
    wait_until(page, shown_loaded, failures, f"{label}: the first frame did not load",
               arg=face.element_handle(), timeout_ms=10_000)
    before = _frames(face)
    page.screenshot(path=SCREENSHOTS / f"{shot}.before.png")
    if len(before) != 1 or not before[0]["loaded"]:
        failures.append(f"{label}: {len(before)} frames shown before the move, expected one, loaded")
        return
    at_end = range_input.get_attribute("value") == range_input.get_attribute("max")
    range_input.focus()
    page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
    wait_until(page, shown_loaded, failures, f"{label}: the new frame did not load",
               arg=face.element_handle(), timeout_ms=10_000)
    after = _frames(face)
    page.screenshot(path=SCREENSHOTS / f"{shot}.after.png")
    if len(after) != 1:
        failures.append(f"{label}: {len(after)} frames shown after the move, expected one")
    elif after[0]["frame"] == before[0]["frame"]:
        failures.append(f"{label}: the displayed frame did not change after a key press")
    elif after[0]["pixels"] == before[0]["pixels"]:
        failures.append(f"{label}: a new frame is shown but its pixels are the same")
    elif after[0]["alt"] == before[0]["alt"]:
        failures.append(f"{label}: the new frame has the old frame's alt text")
    said = range_input.evaluate("x => [x.getAttribute('aria-valuetext'),"
                                " x.parentNode.querySelector('output').textContent,"
                                " JSON.parse(x.dataset.labels)[+x.value], x.getAttribute('aria-label')]")
    if not (said[0] == said[1] == said[2]):
        failures.append(f"{label}: the input says {said[0]!r} (aria-valuetext) and {said[1]!r} "
                        f"(readout), its value is {said[2]!r}")
    if not (said[3] or "").strip():
        failures.append(f"{label}: the input has no accessible name")


def check_faces(page, name: str, failures: list[str]) -> None:
    """No widget on the page; every input of every static face moves its frames."""
    views = page.locator(f'script[type="{WIDGET_VIEW}"]').count()
    states = page.locator(f'script[type="{WIDGET_STATE}"]').count()
    if views or states:
        failures.append(f"{views} widget views and {states} widget states on the page: their controls "
                        "do nothing without a kernel (expected the live figure's note instead)")
    notes = page.locator(".adamlib-live-note")
    for i in range(notes.count()):
        if not notes.nth(i).locator('a[href^="https://colab.research.google.com/"]').count():
            failures.append(f"live figure note {i + 1} has no Colab link")
    faces = page.locator(".adamlib-face")
    if not faces.count():
        failures.append("no static face (interactive figure) on the chapter page")
    for f in range(faces.count()):
        face = faces.nth(f)
        for k in range(face.locator("input[type=range]").count()):
            move_input(page, face, k, f"{name}.face-{f + 1}-input-{k + 1}",
                       f"face {f + 1}, input {k + 1}", failures)


def check_phone(context, base: str, page_path: str, failures: list[str]) -> None:
    """At 390 px: nothing overflows the page sideways; every input and readout is on screen."""
    page = context.new_page()
    try:
        page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
        page.goto(base + page_path + ".html", wait_until="load")
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        if overflow > PHONE_WIDTH:
            failures.append(f"at {PHONE_WIDTH} px the page is {overflow} px wide (scrolls sideways)")
        face = page.locator(".adamlib-face").first
        if face.count():
            scroll_to(page, face)
            top = face.evaluate("e => e.getBoundingClientRect().top")
            if not 0 <= top < 844:
                failures.append(f"at {PHONE_WIDTH} px the first face, scrolled to, is at {top:.0f} px, off the screen")
            page.screenshot(path=SCREENSHOTS / f"{_shot_name(page_path)}.phone.png")
            boxes = page.evaluate("""() => Array.from(document.querySelectorAll(
                '.adamlib-face input[type=range], .adamlib-face output, .adamlib-face img:not([hidden])'))
                .map(e => { const r = e.getBoundingClientRect(); return [e.tagName, r.left, r.right]; })""")
            failures += [f"at {PHONE_WIDTH} px a face's {tag.lower()} spans {left:.0f}-{right:.0f} px"
                         for tag, left, right in boxes if left < 0 or right > PHONE_WIDTH + 0.5]
    finally:
        page.close()


def page_weight(page) -> int:
    """Bytes of the page and everything it has loaded (decoded sizes: uncompressed)."""
    return page.evaluate("""() => performance.getEntriesByType('navigation')
        .concat(performance.getEntriesByType('resource'))
        .reduce((sum, e) => sum + (e.decodedBodySize || e.transferSize || 0), 0)""")


STYLE_BYTES = """() => performance.getEntriesByType('resource')
    .filter(e => e.initiatorType === 'link' && /\\.css(\\?|$)/.test(e.name))
    .reduce((sum, e) => sum + (e.decodedBodySize || e.transferSize || 0), 0)"""


def check_math_font(page) -> list[str]:
    """A page with MathML draws it in the book's subset of STIX Two Math, loaded (not a
    fallback font, and not the whole 403 kB font)."""
    state = page.evaluate("""async () => {
        if (!document.querySelector('math')) return null;
        await document.fonts.ready;
        const faces = Array.from(document.fonts).filter(f => f.family.replace(/"/g, '') === 'STIX Two Math');
        return {status: faces.map(f => f.status),
                fonts: performance.getEntriesByType('resource').map(e => e.name).filter(n => /\\.woff2?$/.test(n)),
                family: getComputedStyle(document.querySelector('math')).fontFamily};
    }""")
    if state is None:
        return []
    failures = []
    if "loaded" not in state["status"]:
        failures.append(f"the math font did not load: {state}")
    if not any(name.endswith(MATH_FONT) for name in state["fonts"]):
        failures.append(f"the page did not load {MATH_FONT}: {state['fonts']}")
    if not state["family"].startswith('"STIX Two Math"'):
        failures.append(f"math is drawn in {state['family']}")
    return failures


LAUNCH_LINKS = """() => Array.from(document.querySelectorAll('.dropdown-launch-buttons a'))
    .map(a => [a.textContent.trim(), a.href])"""


def check_launch_buttons(page, page_path: str, shot: str, failures: list[str]) -> None:
    """The launch menu opens this chapter's notebook; Thebe, repository and download are there."""
    notebook = ROOT / f"{page_path}.ipynb"
    if not notebook.is_file():
        failures.append(f"launch links would point at {page_path}.ipynb, which is not in the repository")
    links = dict(page.evaluate(LAUNCH_LINKS))
    for label, url in expected_launch_links(page_path).items():
        if links.get(label) != url:
            failures.append(f"launch link {label!r} is {links.get(label)!r}, expected {url!r}")
    if page.locator(".dropdown-launch-buttons .btn-launch-thebe").count() != 1:
        failures.append("no 'Live Code' (Thebe) button in the launch menu")
    # Thebe starts its kernel on Binder from the same repository and branch.
    thebe = " ".join(page.eval_on_selector_all(
        'script[type="text/x-thebe-config"]', "els => els.map(e => e.textContent)"))
    repo = CONFIG["repository"]
    owner_name = repo["url"].rstrip("/").removeprefix("https://github.com/")
    for key, value in (("repo", owner_name), ("ref", repo.get("branch", "main"))):
        if not re.search(rf'\b{key}:\s*"{re.escape(value)}"', thebe):
            failures.append(f"Thebe's binderOptions lack {key}: {value!r}")
    repo_links = page.eval_on_selector_all(
        ".btn-source-repository-button", "els => els.map(e => e.getAttribute('href'))")
    if repo_links != [CONFIG["repository"]["url"]]:
        failures.append(f"repository button points at {repo_links}, expected {CONFIG['repository']['url']!r}")
    downloads = page.eval_on_selector_all(".btn-download-source-button", "els => els.map(e => e.href)")
    if len(downloads) != 1 or not downloads[0].endswith(f"{page_path}.ipynb"):
        failures.append(f"download button: {downloads}, expected one link to {page_path}.ipynb")
    else:
        response = page.request.get(downloads[0])
        if response.status != 200 or "cells" not in json.loads(response.body()):
            failures.append(f"the .ipynb download does not serve a notebook (HTTP {response.status})")
    # Open the menu as a reader would, and keep a picture of it.
    page.evaluate("window.scrollTo(0, 0)")
    page.locator(".dropdown-launch-buttons button.dropdown-toggle").click()
    if wait_until(page, "() => !!document.querySelector('.dropdown-launch-buttons .dropdown-menu.show')",
                  failures, "the launch menu did not open on click", timeout_ms=5_000):
        page.screenshot(path=SCREENSHOTS / f"{shot}.launch-menu.png",
                        clip={"x": 0, "y": 0, "width": 1280, "height": 420})
    page.keyboard.press("Escape")


EXERCISES = """() => ({
    exercises: document.querySelectorAll('article .exercise').length,
    solutions: document.querySelectorAll('article .solution').length,
    // sphinx-togglebutton folds a dropdown by adding `toggle-hidden` (its CSS then clips
    // the body to the title's height) when the page loads.
    unfolded: Array.from(document.querySelectorAll('article .solution'))
        .filter(s => !s.classList.contains('toggle-hidden'))
        .map(s => (s.querySelector('.admonition-title') || s).textContent.trim().slice(0, 60)),
})"""


MISSING_ALT = r"""() => Array.from(document.querySelectorAll('article img'))
    .filter(i => !(i.getAttribute('alt') || '').trim() || /\.(png|jpe?g|svg|gif)$/i.test(i.getAttribute('alt')))
    .map(i => (i.getAttribute('src') || '').slice(-60))"""


# ---------------------------------------------------------------------------------------
# The tests.

def test_toc_pages_were_built(built_book: Path):
    missing = [p for p in TOC_PAGES if not (built_book / f"{p}.html").is_file()]
    assert not missing, f"pages in _toc.yml missing from {built_book}: {missing}"


MATHML = re.compile(r"<math\b.*?</math>", re.S)


# MathML Core's italic mapping for what is not a Latin or Greek letter by name (h's italic is
# PLANCK CONSTANT; epsilon, theta, phi, rho, pi, kappa symbols; nabla; partial; dotless i, j).
MATH_ITALIC_SYMBOLS = dict(zip("hıȷϴ∇∂ϵϑϰϕϱϖ", "ℎ𝚤𝚥𝛳𝛻𝜕𝜖𝜗𝜘𝜙𝜚𝜛"))


def _mathml_characters(mathml: str) -> set[str]:
    """What a <math> element draws: its text (not the TeX in its annotation), and for a
    one-letter <mi> the math italic letter the browser shows instead (MathML Core's
    math-auto: x is drawn as U+1D465)."""
    import html as html_lib
    import unicodedata

    mathml = re.sub(r"<annotation\b.*?</annotation>", "", mathml, flags=re.S)
    chars = set(html_lib.unescape(re.sub(r"<[^>]*>", "", mathml)))
    for letter in re.findall(r"<mi>([^<])</mi>", mathml):  # no mathvariant="normal"
        name = unicodedata.name(letter, "")
        match = re.fullmatch(r"(LATIN|GREEK) (CAPITAL|SMALL) LETTER (\w+)", name)
        if letter in MATH_ITALIC_SYMBOLS:
            chars.add(MATH_ITALIC_SYMBOLS[letter])
        elif match:
            try:
                chars.add(unicodedata.lookup(f"MATHEMATICAL ITALIC {match[2]} {match[3]}"))
            except KeyError:
                pass
    if "<msqrt" in mathml or "<mroot" in mathml:
        chars.add("\u221a")
    return chars


def test_math_font_draws_every_character_of_every_formula(built_book: Path):
    """The subset of STIX Two Math the build writes (book_ext/page_weight.py) has a glyph for
    every character the pages' MathML shows wherever the full font has one, and its MATH table."""
    from fontTools.ttLib import TTFont

    subset = TTFont(built_book / MATH_FONT)
    full = TTFont(ROOT / "book_static" / "vendor" / "stix-two-math" / "STIXTwoMath-Regular.woff2").getBestCmap()
    cmap = subset.getBestCmap()
    assert "MATH" in subset, "the subset lost its MATH table"
    missing: dict[str, set[str]] = {}
    formulas = 0
    for page in sorted(built_book.rglob("*.html")):
        for element in MATHML.findall(page.read_text(encoding="utf-8")):
            formulas += 1
            lacking = {c for c in _mathml_characters(element) if ord(c) in full and ord(c) not in cmap}
            if lacking:
                missing.setdefault(str(page.relative_to(built_book)), set()).update(lacking)
    assert formulas > 100, f"only {formulas} MathML formulas in the book"
    assert not missing, "the math font lacks " + "; ".join(
        f"{p}: {''.join(sorted(c))}" for p, c in missing.items())


@pytest.mark.parametrize("page_path", TOC_PAGES + GENERATED_PAGES)
def test_page_works_offline(page_path, server, browser_context):
    """One page of the book: loads cleanly offline, math typeset, images loaded; for a
    chapter also figures present, no widget, every static face working, weight, phones."""
    page, problems = open_page(browser_context, server, page_path)
    name = _shot_name(page_path)
    chapter = page_path in CHAPTERS
    failures: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        wait_for_mathjax(page, failures)
        if chapter:
            # What a reader who opens the page and reads its first screen loads: before this test
            # fetches every figure (below) and moves any slider. Offscreen figures and frames not
            # shown load lazily.
            page.wait_for_timeout(500)
            weight = page_weight(page)
            if weight > PAGE_BUDGET_BYTES:
                failures.append(f"the page loads {weight / 1e6:.2f} MB, over the "
                                f"{PAGE_BUDGET_BYTES / 1e6:.1f} MB budget")
            styles = page.evaluate(STYLE_BYTES)
            if styles > STYLE_BUDGET_BYTES:
                failures.append(f"the page's style sheets weigh {styles / 1e3:.0f} kB, over the "
                                f"{STYLE_BUDGET_BYTES / 1e3:.0f} kB budget")
            failures += check_math_font(page)
        math = math_report(page)
        images = wait_for_images(page, failures)
        if chapter:
            check_faces(page, name, failures)
            images = wait_for_images(page, failures)
            if not images:
                failures.append("no figure (img) on the page")
        failures += [f"figure without alt text (or a file name as alt): ...{src}"
                     for src in page.evaluate(MISSING_ALT)]
        if chapter:  # exercises, with their solutions folded until the reader opens them
            exercises = page.evaluate(EXERCISES)
            if not exercises["exercises"]:
                failures.append("no exercise on the chapter page")
            if exercises["solutions"] < exercises["exercises"]:
                failures.append(f"{exercises['exercises']} exercises but {exercises['solutions']} solutions")
            failures += [f"solution shown unfolded: {t!r}" for t in exercises["unfolded"]]
        page.wait_for_timeout(300)  # let late console errors arrive
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        if chapter:
            check_launch_buttons(page, page_path, name, failures)
    finally:
        page.close()
    if chapter:
        check_phone(browser_context, server, page_path, failures)

    if math["math"] and not math["containers"]:
        failures.append(f"{math['math']} math elements but MathJax rendered none")
    failures += [f"math not typeset: {t!r}" for t in math["untypeset"][:10]]
    failures += [f"MathJax error: {t!r}" for t in math["errors"]]
    failures += [f"raw TeX left in the text: ...{t}..." for t in math["raw"]]
    failures += [f"image did not load: {i['src'][:120]}" for i in images if not i["width"]]
    failures = problems.report() + failures
    if failures:
        pytest.fail(f"{page_path}.html:\n  " + "\n  ".join(failures), pytrace=False)


def test_whole_book_archive(server, browser_context):
    """The front page links the whole book as one archive, which unpacks to a complete book."""
    page, problems = open_page(browser_context, server, TOC_PAGES[0])
    try:
        links = page.eval_on_selector_all(
            f'article a[href$="{ARCHIVE}"]',
            "els => els.map(e => ({href: e.href, visible: e.checkVisibility()}))")
        assert links and all(link["visible"] for link in links), \
            f"the front page ({TOC_PAGES[0]}) has no visible link to {ARCHIVE}"
        response = page.request.get(links[0]["href"])
        assert response.status == 200, f"{links[0]['href']}: HTTP {response.status}"
        body = response.body()
    finally:
        page.close()
    assert not problems.report(), problems.report()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None, "the archive is corrupt"
        names = set(archive.namelist())
    top = ARCHIVE.removesuffix(".zip")
    wanted = [f"{top}/index.html", f"{top}/_static/vendor/mathjax/tex-chtml-full.js",
              f"{top}/_static/vendor/stix-two-math/STIXTwoMath-book.woff2", f"{top}/_static/css/book.css"]
    wanted += [f"{top}/{p}.html" for p in TOC_PAGES]
    wanted += [f"{top}/_sources/{p}.ipynb" for p in CHAPTERS]
    missing = [n for n in wanted if n not in names]
    assert not missing, f"{ARCHIVE} lacks: {missing}"
    assert f"{top}/{ARCHIVE}" not in names, "the archive contains itself"
