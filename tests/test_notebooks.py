"""The book's notebooks: text/ipynb pairs in sync, no stored outputs, the set-up cell, Colab links."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def text_notebooks() -> list[Path]:
    out = []
    for md in sorted(BOOK.glob("*.md")):
        head = md.read_text(encoding="utf-8")[:400]
        if head.startswith("---") and "jupytext:" in head:
            out.append(md)
    return out


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for ch in part.get("chapters", []):
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def setup_cell() -> str:
    nb = jupytext.read(BOOK / "intro.md")
    return next(c.source for c in nb.cells if c.cell_type == "code")


NOTEBOOKS = text_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.name)
def test_pair_in_sync_and_without_outputs(md: Path):
    nb_path = md.with_suffix(".ipynb")
    assert nb_path.exists(), f"{md.name} has no paired {nb_path.name}: run `make sync`"
    text = jupytext.read(md)
    raw = json.loads(nb_path.read_text(encoding="utf-8"))
    ipynb = jupytext.reads(nb_path.read_text(encoding="utf-8"), fmt="ipynb")
    for c in raw["cells"]:
        if c["cell_type"] == "code":
            assert not c.get("outputs"), f"{nb_path.name} holds outputs: strip them (`make sync` from the .md)"
            assert c.get("execution_count") is None, f"{nb_path.name} holds execution counts"
    a = [(c.cell_type, c.source.strip()) for c in text.cells]
    b = [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    assert a == b, f"{md.name} and {nb_path.name} differ: run `make sync`"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_setup_cell(md: Path):
    nb = jupytext.read(md)
    first = next(c.source for c in nb.cells if c.cell_type == "code")
    assert first == setup_cell(), f"{md.name}: the first code cell must be the shared set-up cell"
    assert "google.colab" in first and "mn.setup(seed=" in first


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_an_assert(md: Path):
    nb = jupytext.read(md)
    assert any("assert " in c.source for c in nb.cells if c.cell_type == "code"), f"{md.name} checks nothing"


def test_every_toc_entry_exists_and_notebooks_are_in_the_toc():
    files = toc_files()
    for f in files:
        assert (ROOT / f"{f}.md").exists(), f"_toc.yml names {f} but {f}.md does not exist"
    for md in NOTEBOOKS:
        assert str(md.relative_to(ROOT).with_suffix("")) in files, f"{md.name} is not in _toc.yml"


def test_colab_links_point_at_existing_notebooks():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = cfg["repository"]["url"].rstrip("/")
    branch = cfg["repository"]["branch"]
    assert branch == "main"
    m = re.match(r"https://github.com/([^/]+/[^/]+)$", url)
    assert m, f"repository url {url} is not a GitHub repository"
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    prefix = f"https://colab.research.google.com/github/{m.group(1)}/blob/{branch}/"
    # the launch button of each notebook page: repository + path_to_book + page + .ipynb
    for md in NOTEBOOKS:
        assert (ROOT / cfg["repository"]["path_to_book"] / md.relative_to(ROOT)).with_suffix(".ipynb").exists()
    # every Colab link written in the notebooks
    for md in NOTEBOOKS:
        for link in re.findall(r"https://colab\.research\.google\.com/github/[^)\s\"]+", md.read_text()):
            assert link.startswith(prefix), f"{md.name}: Colab link {link} does not match _config.yml"
            target = ROOT / link[len(prefix):]
            assert target.exists() and target.suffix == ".ipynb", f"{md.name}: {link} points at a missing file"
    # and the set-up cell installs from the same repository and branch
    assert f"git+{url}@{branch}" in setup_cell()
