"""Write the README's findings from the full-size results files (``madng_lite.pipeline.findings``).

The block between the README's findings markers is replaced by the sentences the book's
introduction prints; ``tests/test_findings.py`` fails when the README and the files disagree.

    python scripts/readme_findings.py            # rewrite README.md
    python scripts/readme_findings.py --check    # exit 1 when README.md is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from madng_lite.pipeline.findings import README_END, README_START, readme_block

ROOT = Path(__file__).resolve().parents[1]


def updated(readme: str, results: Path) -> str:
    """The README text with its findings block rewritten from ``results``."""
    if readme.count(README_START) != 1 or readme.count(README_END) != 1:
        raise ValueError("README.md must hold exactly one pair of findings markers")
    head, rest = readme.split(README_START)
    _, tail = rest.split(README_END)
    return head + readme_block(results) + tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when out of date")
    args = ap.parse_args()
    path = ROOT / "README.md"
    text = path.read_text()
    new = updated(text, ROOT / "results")
    if args.check:
        if new != text:
            print("README.md findings are out of date: run python scripts/readme_findings.py")
            return 1
        return 0
    path.write_text(new)
    print("README.md findings rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
