#!/usr/bin/env python3
"""Write student copies of the book's notebooks, with the exercise solutions taken out.

    python scripts/student_copy.py [--out DIR] [NOTEBOOKS...]

Reads ``book/*.ipynb`` (or the notebooks given) and writes notebooks of the same names to DIR
(default ``student/`` in the repository). In each notebook, every gated solution

    ````{solution-start} LABEL          (a markdown cell, or the end of one)
    :class: dropdown
    ````
    <one or more code cells>
    ````{solution-end}                  (a markdown cell, or the start of one)
    ````

becomes ONE code cell that keeps the leading comment lines of the solution and, as comments, the
names the solution defines that the student needs (those the exercise text or a later cell uses),
and raises ``NotImplementedError("Exercise LABEL: write your solution here")``. The marker
directives are removed (a markdown cell that held only a marker goes away; exercise text that
shares a cell with a marker stays), markdown inside a solution block goes with the solution, and
a plain ``{solution}`` directive has its body replaced by a note. Everything else is kept: the
``# check cell`` after an exercise then fails with a NotImplementedError / NameError until the
student has solved it. Code outputs and execution counts are cleared and the jupytext pairing is
dropped, so the copies stand alone. Nothing is executed.

Exit status 0 on success, 2 when an input is missing or unreadable or its solution markers are
unbalanced (one line on stderr per bad file; the good files are still written).
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PROG = "student_copy.py"

# an opening or closing fence: ``` / ~~~ (CommonMark) or ::: (MyST colon_fence)
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*)$")
# directives whose body is literal text: markers inside them are examples, not markers
LITERAL_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell", "literalinclude", "raw", "math"}
MARKERS = {"solution-start", "solution-end"}


class MarkerError(Exception):
    """Unbalanced or malformed solution-start / solution-end markers."""


@dataclass
class _Fence:
    char: str
    length: int
    kind: str  # "literal", "directive" or "solution"
    start: int = 0  # index into the text buffer where a {solution} block starts


def _closes(line: str, fence: _Fence) -> bool:
    m = FENCE.match(line)
    return bool(m and m["fence"][0] == fence.char and len(m["fence"]) >= fence.length and not m["info"].strip())


def scan_markdown(text: str) -> list[tuple]:
    """Split one markdown cell into ("text", str), ("start", label) and ("end",) tokens, in order.

    Markers inside literal code blocks are left alone; the body of a plain ``{solution}``
    directive is replaced by a note.
    """
    lines = text.split("\n")
    tokens: list[tuple] = []
    buf: list[str] = []
    stack: list[_Fence] = []

    def flush():
        chunk = "\n".join(buf).strip("\n")
        if chunk.strip():
            tokens.append(("text", chunk.rstrip()))
        buf.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if stack and _closes(line, stack[-1]):
            top = stack.pop()
            buf.append(line)
            if top.kind == "solution":
                buf[top.start:] = ["*(The solution is removed in the student copy.)*"]
            i += 1
            continue
        m = FENCE.match(line)
        in_literal = bool(stack) and stack[-1].kind == "literal"
        if m and not in_literal and not (m["fence"][0] == "`" and "`" in m["info"]):
            info = m["info"].strip()
            d = DIRECTIVE.match(info)
            name = d["name"] if d else None
            if name in MARKERS:
                fence = _Fence(m["fence"][0], len(m["fence"]), "marker")
                j = i + 1
                while j < len(lines) and not _closes(lines[j], fence):
                    j += 1
                if j == len(lines):
                    raise MarkerError(f"the {{{name}}} fence opened by {line.strip()!r} is never closed")
                flush()
                if name == "solution-start":
                    label = d["arg"].split()[0] if d["arg"].split() else ""
                    if not label:
                        raise MarkerError("a {solution-start} has no exercise label")
                    tokens.append(("start", label))
                else:
                    tokens.append(("end",))
                i = j + 1
                continue
            if name is None or name in LITERAL_DIRECTIVES:
                kind = "literal"
            elif name == "solution":
                kind = "solution"
            else:
                kind = "directive"
            stack.append(_Fence(m["fence"][0], len(m["fence"]), kind, len(buf)))
        buf.append(line)
        i += 1
    flush()
    return tokens


# ---------------------------------------------------------------- the stub cell


def _parseable(src: str) -> str:
    """The source with IPython magics / shell escapes replaced by ``pass``, for ast."""
    out = []
    for line in src.split("\n"):
        s = line.lstrip()
        out.append(line[: len(line) - len(s)] + "pass" if s.startswith(("%", "!")) else line)
    return "\n".join(out)


def _defined(src: str) -> list[tuple[str, str]]:
    """(name, how the stub shows it) for what the solution defines at top level, in order."""
    try:
        tree = ast.parse(_parseable(src))
    except SyntaxError:
        return []
    found: dict[str, str] = {}

    def targets(t):
        if isinstance(t, ast.Name):
            yield t.id
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                yield from targets(e)
        elif isinstance(t, ast.Starred):
            yield from targets(t.value)

    def visit(body):
        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(st.name, f"def {st.name}({ast.unparse(st.args)}): ...")
            elif isinstance(st, ast.ClassDef):
                found.setdefault(st.name, f"class {st.name}: ...")
            elif isinstance(st, ast.Assign):
                for t in st.targets:
                    for n in targets(t):
                        found.setdefault(n, f"{n} = ...")
            elif isinstance(st, (ast.AugAssign, ast.AnnAssign)):
                for n in targets(st.target):
                    found.setdefault(n, f"{n} = ...")
            elif isinstance(st, (ast.With, ast.AsyncWith, ast.If, ast.For, ast.AsyncFor, ast.While)):
                visit(st.body)
                visit(getattr(st, "orelse", []))
            elif isinstance(st, ast.Try):
                visit(st.body)
                visit(st.orelse)
                visit(st.finalbody)
    visit(tree.body)
    return list(found.items())


def stub_source(label: str, solution: list[str], context: str, later: str) -> str:
    """The code of the stub: leading comments, what to define, and the NotImplementedError."""
    lead = []
    for line in solution[0].split("\n") if solution else []:
        if line.strip().startswith("#"):
            lead.append(line.rstrip())
        elif line.strip():
            break
    defined = _defined("\n\n".join(solution))
    mentioned = set(re.findall(r"`([A-Za-z_]\w*)", context))
    used_later = {n for n, _ in defined if re.search(rf"(?<![\w.]){re.escape(n)}\b", later)}
    wanted = [(n, shown) for n, shown in defined if n in mentioned or n in used_later]
    lines = lead[:]
    if wanted:
        lines.append(f"# Exercise {label}: your code here. It should define:")
        lines += [f"#     {shown}" for _, shown in wanted]
    else:
        lines.append(f"# Exercise {label}: your code here.")
    lines.append(f'raise NotImplementedError("Exercise {label}: write your solution here")')
    return "\n".join(lines)


# ---------------------------------------------------------------- one notebook


@dataclass
class _Block:
    label: str
    origin: int
    context: str
    code: list[int] = field(default_factory=list)


def strip_solutions(nb) -> tuple[object, int]:
    """A student copy of ``nb`` (nbformat v4 node) and the number of stubs; MarkerError if malformed."""
    events: list[tuple[tuple, int]] = []
    for idx, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            try:
                events += [(tok, idx) for tok in scan_markdown(cell.source)]
            except MarkerError as e:
                raise MarkerError(f"cell {idx}: {e}") from None
        else:
            events.append((("cell",), idx))

    out: list[tuple] = []  # ("md", text, origin) | ("cell", idx) | ("stub", source, idx)
    block: _Block | None = None
    last_text = ""
    n_stubs = 0
    for k, (tok, idx) in enumerate(events):
        kind = tok[0]
        if block is None:
            if kind == "text":
                out.append(("md", tok[1], idx))
                last_text = tok[1]
            elif kind == "cell":
                out.append(("cell", idx))
            elif kind == "start":
                block = _Block(tok[1], idx, last_text)
            else:
                raise MarkerError(f"cell {idx}: a {{solution-end}} without a {{solution-start}} before it")
        else:
            if kind == "start":
                raise MarkerError(
                    f"cell {idx}: {{solution-start}} {tok[1]} inside the solution of {block.label} "
                    f"(cell {block.origin}): a {{solution-end}} is missing")
            if kind == "end":
                if block.code:
                    later = "\n".join(nb.cells[i].source for t, i in events[k + 1:]
                                      if t[0] == "cell" and nb.cells[i].cell_type == "code")
                    src = stub_source(block.label, [nb.cells[i].source for i in block.code],
                                      block.context, later)
                    out.append(("stub", src, block.code[0]))
                    n_stubs += 1
                else:  # a solution in words: leave a note in the markdown
                    out.append(("md", f"**Exercise {block.label}:** write your answer here.", block.origin))
                block = None
            elif kind == "cell" and nb.cells[idx].cell_type == "code":
                block.code.append(idx)
            # markdown text and raw cells inside a solution belong to the solution: dropped
    if block is not None:
        raise MarkerError(f"cell {block.origin}: {{solution-start}} {block.label} has no {{solution-end}}")

    # merge markdown pieces of one original cell that ended up next to each other
    merged: list[tuple] = []
    for item in out:
        if item[0] == "md" and merged and merged[-1][0] == "md" and merged[-1][2] == item[2]:
            merged[-1] = ("md", merged[-1][1] + "\n\n" + item[1], item[2])
        else:
            merged.append(item)

    cells, used_ids = [], set()

    def with_id(cell, base):
        # the original cell's id (a second piece of a split cell gets a suffix); every cell has one
        base = base or f"cell-{len(cells)}"
        cid, k = base, 1
        while cid in used_ids:
            k += 1
            cid = base[: 64 - len(f"-{k}")] + f"-{k}"
        cell["id"] = cid
        used_ids.add(cid)
        return cell

    for item in merged:
        if item[0] == "cell":
            cell = nbformat.from_dict(dict(nb.cells[item[1]]))
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            cells.append(with_id(cell, nb.cells[item[1]].get("id")))
        elif item[0] == "md":
            orig = nb.cells[item[2]]
            cell = nbformat.v4.new_markdown_cell(item[1], metadata=dict(orig.metadata))
            cells.append(with_id(cell, orig.get("id")))
        else:
            cells.append(with_id(nbformat.v4.new_code_cell(item[1]), nb.cells[item[2]].get("id")))

    new = nbformat.from_dict(dict(nb))
    new.cells = cells
    new.nbformat, new.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 5))  # cell ids: 4.5
    meta = dict(new.metadata)
    if isinstance(meta.get("jupytext"), dict):  # no pairing: the copy is not the book's notebook
        meta["jupytext"] = {k: v for k, v in meta["jupytext"].items() if k != "formats"}
        if not meta["jupytext"]:
            del meta["jupytext"]
    new.metadata = nbformat.from_dict(meta)
    return new, n_stubs


def convert(src: Path, out_dir: Path) -> tuple[Path, int]:
    """Write the student copy of ``src`` into ``out_dir``; its path and the number of stubs."""
    try:
        with warnings.catch_warnings():  # a missing cell id is fixed in the copy
            warnings.simplefilter("ignore")
            nb = nbformat.read(src, as_version=4)
    except Exception as e:  # not JSON, not a notebook, unreadable
        raise OSError(f"not a readable notebook: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    new, n = strip_solutions(nb)
    nbformat.validate(new)
    dest = out_dir / src.name
    nbformat.write(new, dest)
    return dest, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "student", help="output folder (default: student/)")
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: book/*.ipynb)")
    args = ap.parse_args(argv)
    sources = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    if not sources:
        print(f"{PROG}: error: no notebooks given and none in {ROOT / 'book'}", file=sys.stderr)
        return 2
    out_dir = args.out
    status = 0
    for src in sources:
        if not src.is_file():
            print(f"{PROG}: error: {src}: no such notebook", file=sys.stderr)
            status = 2
            continue
        if out_dir.resolve() == src.resolve().parent:
            print(f"{PROG}: error: {src}: the output folder is the notebook's own folder", file=sys.stderr)
            status = 2
            continue
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            dest, n = convert(src, out_dir)
        except MarkerError as e:
            print(f"{PROG}: error: {src}: unbalanced solution-start/solution-end: {e}", file=sys.stderr)
            status = 2
        except OSError as e:
            print(f"{PROG}: error: {src}: {e}", file=sys.stderr)
            status = 2
        else:
            print(f"{dest}: {n} solution(s) replaced by stubs")
    return status


if __name__ == "__main__":
    sys.exit(main())
