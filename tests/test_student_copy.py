"""scripts/student_copy.py: student copies of the notebooks, solutions replaced by stubs (no execution)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "student_copy.py"
IPYNBS = sorted((ROOT / "book").glob("*.ipynb"))

MARKER = re.compile(r"^ {0,3}(?P<f>`{3,}|:{3,})\{solution-(?P<kind>start|end)\}(?P<arg>.*)$", re.M)
MARKER_BLOCK = re.compile(r"^ {0,3}(?P<f>`{3,}|:{3,})\{solution-(start|end)\}.*\n(?:.*\n)*?(?P=f)[ \t]*$", re.M)
STUB = re.compile(r'raise NotImplementedError\("Exercise (?P<label>[^":]+): write your solution here"\)')


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def solution_blocks(nb) -> tuple[list[tuple[str, list[int]]], int]:
    """The gated solutions of a book notebook (label, code-cell indices) and its non-solution cell count.

    A simple reading that is enough for the book: markers are separate fenced directives in
    markdown cells; a cell that holds only markers is not a "non-solution" cell.
    """
    blocks, current, kept = [], None, 0
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            marks = list(MARKER.finditer(c.source))
            rest = MARKER_BLOCK.sub("", c.source).strip()
            # text before the first marker or after the last one is outside any block
            if rest and (current is None or (marks and marks[-1]["kind"] == "end")):
                kept += 1
            for m in marks:
                if m["kind"] == "start":
                    assert current is None, f"unbalanced markers in cell {i}"
                    current = (m["arg"].split()[0], [])
                else:
                    assert current is not None, f"unbalanced markers in cell {i}"
                    blocks.append(current)
                    current = None
        elif current is not None:
            if c.cell_type == "code":
                current[1].append(i)
        else:
            kept += 1
    assert current is None, "a solution-start without a solution-end"
    return blocks, kept


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    r = run("--out", str(out), *map(str, IPYNBS))
    assert r.returncode == 0, r.stderr
    return out


def test_there_are_notebooks_with_exercises():
    assert IPYNBS
    assert sum(len(solution_blocks(nbformat.read(p, as_version=4))[0]) for p in IPYNBS) >= 2


@pytest.mark.parametrize("src", IPYNBS, ids=lambda p: p.name)
def test_student_copy(src: Path, student: Path):
    orig = nbformat.read(src, as_version=4)
    out_path = student / src.name
    assert out_path.exists(), f"no student copy of {src.name}"
    new = nbformat.read(out_path, as_version=4)
    nbformat.validate(new)

    blocks, kept = solution_blocks(orig)
    with_code = [(label, cells) for label, cells in blocks if cells]
    stubs = [c for c in new.cells if c.cell_type == "code" and "NotImplementedError" in c.source]
    labels = [m["label"] for c in stubs for m in STUB.finditer(c.source)]
    assert sorted(labels) == sorted(label for label, _ in with_code), "one stub per exercise solution"
    assert len(stubs) == len(with_code)
    assert len(new.cells) - len(stubs) == kept, "the non-solution cells must all be kept"

    # no solution code survives: neither a whole solution cell nor any of its own lines
    solution_ids = {i for _, cells in blocks for i in cells}
    elsewhere = {ln.strip() for i, c in enumerate(orig.cells) if i not in solution_ids for ln in c.source.splitlines()}
    text = "\n".join(c.source for c in new.cells)
    lines = {ln.strip() for c in new.cells for ln in c.source.splitlines()}
    for i in solution_ids:
        sol = orig.cells[i].source.strip()
        assert sol not in text, f"{src.name}: solution cell {i} survives"
        for ln in sol.splitlines():
            s = ln.strip()
            if s and not s.startswith("#") and s not in elsewhere:
                assert s not in lines, f"{src.name}: solution line {s!r} survives"
    assert not MARKER.search(text), "solution-start/end markers left in the copy"

    # the set-up cell stays the first code cell; the rest keeps its order and content
    first = lambda nb: next((c.source for c in nb.cells if c.cell_type == "code"), None)  # noqa: E731
    assert first(new) == first(orig)
    if "mn.setup(" in (first(orig) or ""):
        assert "mn.setup(" in first(new)
    assert new.cells[0].source == orig.cells[0].source
    kept_code = [c.source for i, c in enumerate(orig.cells) if c.cell_type == "code" and i not in solution_ids]
    assert [c.source for c in new.cells if c.cell_type == "code" and c not in stubs] == kept_code
    assert all(not c.get("outputs") for c in new.cells if c.cell_type == "code")
    assert "formats" not in new.metadata.get("jupytext", {}), "the copy must not be paired with a text file"


def _write(path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, path)
    return path


def md(s):
    return nbformat.v4.new_markdown_cell(s)


def code(s):
    return nbformat.v4.new_code_cell(s)


START = "````{solution-start} ex-a\n:class: dropdown\n````"
END = "````{solution-end}\n````"


@pytest.mark.parametrize("cells,what", [
    ([md("intro"), md(START), code("x = 1")], "no solution-end"),
    ([md("intro"), code("x = 1"), md(END)], "solution-end without a start"),
    ([md(START), code("x = 1"), md(START.replace("ex-a", "ex-b")), code("y = 2"), md(END)], "nested start"),
    ([md("````{solution-start} ex-a\n:class: dropdown\n"), code("x = 1"), md(END)], "unclosed fence"),
])
def test_malformed_notebook_exits_2_naming_the_file(tmp_path: Path, cells, what):
    bad = _write(tmp_path / "broken_chapter.ipynb", cells)
    r = run("--out", str(tmp_path / "out"), str(bad))
    assert r.returncode == 2, (what, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "broken_chapter.ipynb" in err and "solution" in err, err
    assert "Traceback" not in r.stderr


def test_missing_file_exits_2(tmp_path: Path):
    r = run("--out", str(tmp_path), str(tmp_path / "nope.ipynb"))
    assert r.returncode == 2 and "nope.ipynb" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_tricky_markdown(tmp_path: Path):
    """Markers sharing cells with text, markers quoted in a code block, colon fences, a solution in words."""
    cells = [
        code("import math"),
        md("````{exercise}\n:label: ex-a\n\nStore `answer`.\n````\n\n" + START),
        code("# hint: use math\nhelper = 2\nanswer = math.pi * helper"),
        md(END + "\n\nThe syntax, for authors:\n\n```md\n" + START + "\n```"),
        code("assert abs(answer - 2 * math.pi) < 1e-12"),
        md(":::{solution-start} ex-b\n:::\nIn words: because.\n:::{solution-end}\n:::\n\nAfter."),
    ]
    src = _write(tmp_path / "tricky.ipynb", cells)
    r = run("--out", str(tmp_path / "out"), str(src))
    assert r.returncode == 0, r.stderr
    new = nbformat.read(tmp_path / "out" / "tricky.ipynb", as_version=4)
    nbformat.validate(new)
    srcs = [c.source for c in new.cells]
    assert srcs[1].endswith("Store `answer`.\n````"), srcs[1]
    stub = srcs[2]
    assert stub.startswith("# hint: use math") and "answer = ..." in stub and "helper" not in stub
    assert 'raise NotImplementedError("Exercise ex-a: write your solution here")' in stub
    assert "math.pi * helper" not in "\n".join(srcs)
    assert srcs[3].startswith("The syntax, for authors:") and START in srcs[3], "quoted markers are kept"
    assert srcs[4] == cells[4].source
    assert "because" not in srcs[5] and "ex-b" in srcs[5] and srcs[5].endswith("After."), srcs[5]
    assert len(srcs) == 6
