"""The built book in a real browser: headless Chromium renders every chapter page of _toc.yml.

Needs a Chromium (chromium, chromium-browser or google-chrome on PATH) and a built book in
MADNG_BOOK_HTML (``make test`` builds one and sets it); skipped otherwise. With
MADNG_SCREENSHOTS=DIR, screenshots of two chapters are written there.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import pytest

from test_notebooks import toc_files

HTML = os.environ.get("MADNG_BOOK_HTML")
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = [
    pytest.mark.skipif(not BROWSER, reason="no chromium / chromium-browser / google-chrome on PATH"),
    pytest.mark.skipif(not HTML or not Path(HTML).is_dir(), reason="set MADNG_BOOK_HTML to a built book (make test does)"),
]
PAGES = toc_files()
SCREENSHOT_PAGES = ["book/intro", "book/sparse"]
# MyST that was not parsed shows up as text: a directive or role name in braces, or a fence
RAW_MYST = re.compile(
    r"\{(?:exercise|solution|solution-start|solution-end|code-cell|cite(?::[pt])?|bibliography|glue(?::\w+)?"
    r"|numref|ref|eq|doc|figure|math|admonition|note|warning|dropdown|tab-set)\}|```\{|:::\{")
# in code (<pre>, <code>) `{ref}` may be an f-string: only what cannot be Python counts there
RAW_MYST_IN_CODE = re.compile(r"\{(?:exercise|solution-start|solution-end|code-cell)\}|```\{|:::\{")
# badges in the chapters' text (Colab, Binder) are the only images allowed to live elsewhere
REMOTE_IMAGE_HOSTS = {"colab.research.google.com", "mybinder.org", "img.shields.io"}
TIMEOUT_S = 120


def page_path(f: str) -> Path:
    return Path(HTML) / f"{f}.html"


def chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="madng-chromium-") as profile:
        cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", "--disable-dev-shm-usage", "--disable-quic", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               # let the page's scripts (MathJax) finish before the DOM / picture is taken
               "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)


@functools.lru_cache(maxsize=None)
def rendered(f: str) -> "Page":
    path = page_path(f)
    if not path.exists():
        pytest.skip(f"{f}.html is not in this build (test_book_html checks that every page exists)")
    r = chromium("--dump-dom", path.resolve().as_uri())
    assert r.returncode == 0 and "<html" in r.stdout, f"chromium failed on {f}.html: {r.stderr[-2000:]}"
    p = Page(path.resolve().as_uri())
    p.feed(r.stdout)
    p.close()
    return p


class Page(HTMLParser):
    """What the checks need from a rendered DOM: visible text, images, math and MathJax elements."""

    HIDDEN = {"script", "style", "noscript", "template"}

    def __init__(self, url: str):
        super().__init__(convert_charrefs=True)
        self.url = url
        self.text: list[str] = []  # visible prose
        self.code: list[str] = []  # visible text inside <pre> / <code>
        self.imgs: list[str] = []
        self.scripts: list[str] = []
        self.n_math = 0  # Sphinx math nodes: <span class="math ..."> / <div class="math ...">
        self.n_mjx = 0  # MathJax output: <mjx-container>
        self.errors: list[str] = []  # MathJax TeX errors
        self._hidden = 0
        self._in_code = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("pre", "code"):
            self._in_code += 1
        if tag in self.HIDDEN:
            self._hidden += 1
            if tag == "script" and a.get("src"):
                self.scripts.append(a["src"])
        elif tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag in ("span", "div") and "math" in classes:
            self.n_math += 1
        elif tag == "mjx-container":
            self.n_mjx += 1
        elif tag == "mjx-merror":
            self.errors.append(a.get("data-mjx-error", "?"))

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1
        if tag in ("pre", "code") and self._in_code:
            self._in_code -= 1

    def handle_data(self, data):
        if not self._hidden:
            (self.code if self._in_code else self.text).append(data)


@pytest.mark.parametrize("f", PAGES)
def test_no_raw_myst_in_the_visible_text(f: str):
    page = rendered(f)
    for text, pattern in (("".join(page.text), RAW_MYST), ("\n".join(page.code), RAW_MYST_IN_CODE)):
        found = sorted({m.group(0) for m in pattern.finditer(text)})
        if found:
            m = pattern.search(text)
            context = " ".join(text[max(0, m.start() - 80): m.end() + 80].split())
            pytest.fail(f"{f}.html shows unparsed MyST {found}, e.g. ...{context}...")


@pytest.mark.parametrize("f", PAGES)
def test_every_image_resolves(f: str):
    page = rendered(f)
    bad = []
    for src in page.imgs:
        if not src:
            bad.append("(empty src)")
            continue
        if src.startswith("data:"):
            continue
        url = urlsplit(urljoin(page.url, src))
        if url.scheme in ("http", "https"):
            if url.hostname not in REMOTE_IMAGE_HOSTS:
                bad.append(f"{src} (a remote image: put it in the book)")
        elif url.scheme != "file" or not Path(url2pathname(unquote(url.path))).is_file():
            bad.append(src)
    assert not bad, f"{f}.html: images that do not resolve: {bad}"


@pytest.mark.parametrize("f", PAGES)
def test_math_is_typeset(f: str):
    page = rendered(f)
    if page.n_math == 0:
        return
    mathjax = [s for s in page.scripts if "mathjax" in s.lower() or "tex-" in s.lower()]
    assert page.n_mjx > 0, (
        f"{f}.html has {page.n_math} math elements but MathJax typeset none (MathJax scripts: {mathjax}); "
        "a CDN copy does not load without a network: `make mathjax` fetches a local copy into _mathjax/mathjax3/")
    assert page.n_mjx >= page.n_math, f"{f}.html: {page.n_math} math elements, only {page.n_mjx} typeset"
    assert not page.errors, f"{f}.html: MathJax errors in the TeX: {page.errors}"


@pytest.mark.skipif(not os.environ.get("MADNG_SCREENSHOTS"), reason="set MADNG_SCREENSHOTS=DIR for screenshots")
@pytest.mark.parametrize("f", SCREENSHOT_PAGES)
def test_screenshot(f: str):
    path = page_path(f)
    if not path.exists():
        pytest.skip(f"{f}.html is not in this build")
    out_dir = Path(os.environ["MADNG_SCREENSHOTS"])
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = (out_dir / f"{Path(f).name}.png").resolve()
    shot.unlink(missing_ok=True)
    r = chromium(f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", path.resolve().as_uri())
    assert r.returncode == 0 and shot.is_file(), f"no screenshot of {f}: {r.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, f"{shot} is not a picture"
