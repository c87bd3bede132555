"""The built book (``make test`` builds it first and passes its folder in MADNG_BOOK_HTML)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_notebooks import NOTEBOOKS, ROOT, toc_files

HTML = os.environ.get("MADNG_BOOK_HTML")
pytestmark = pytest.mark.skipif(not HTML, reason="set MADNG_BOOK_HTML to a built book (make test does)")


def page(f: str) -> Path:
    return Path(HTML) / f"{f}.html"


def test_index_and_every_chapter_page_exist():
    assert (Path(HTML) / "index.html").exists()
    for f in toc_files():
        assert page(f).exists(), f"chapter page {f}.html was not built"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_pages_have_executed_figures(md: Path):
    html = page(str(md.relative_to(ROOT).with_suffix(""))).read_text(encoding="utf-8")
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    local = [s for s in imgs if "_images/" in s]
    n_plots = md.read_text(encoding="utf-8").count("plt.show()")
    assert len(local) >= n_plots, f"{md.name}: {n_plots} figures in the source, {len(local)} in the page"
    for src in local:
        assert (page(str(md.relative_to(ROOT).with_suffix(""))).parent / src).resolve().exists(), src
    assert "cell_output" in html or n_plots == 0, f"{md.name}: no executed output in the page"
    assert not re.search(r"\{(code-cell|exercise|solution-start|bibliography)\}", html), "raw directive text in page"
