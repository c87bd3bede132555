"""Run time of every chapter of the book, in quick mode and at full size (issue: the book).

Each chapter of ``_toc.yml`` that is a notebook (``book/NAME.ipynb``) is executed top to bottom in
a fresh kernel with ``nbclient``, once per mode (``MADNG_QUICK=1`` and ``0``), and its wall-clock
time is recorded, start-up of the kernel included. A chapter that fails is reported as failed with
its error, and the script exits with status 1. The chapters' targets: under 60 s in quick mode and
under 5 min at full size on a CPU.

    python benchmarks/chapter_times.py --modes quick full --out results/chapter_times.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"quick": 60.0, "full": 300.0}


def chapters() -> list[str]:
    """The notebook chapters in the order of ``_toc.yml`` (names without folder or suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    return [Path(f).name for f in files if (ROOT / f).with_suffix(".ipynb").exists()]


def run_chapter(name: str, quick: bool, timeout: int) -> dict:
    """Execute ``book/NAME.ipynb`` in a new kernel; return its time and whether it passed."""
    os.environ["MADNG_QUICK"] = "1" if quick else "0"
    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "book")}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1][:300]
    except TimeoutError as e:  # nbclient raises a subclass of TimeoutError for a cell over its limit
        error = f"timeout: {e}"[:300]
    return {"chapter": name, "mode": "quick" if quick else "full", "seconds": time.perf_counter() - t0,
            "ok": error is None, "error": error}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=("quick", "full"), default=["quick", "full"])
    ap.add_argument("--chapters", nargs="+", default=None, help="names, e.g. kdv sparse (default: all)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    names = args.chapters or chapters()
    unknown = sorted(set(names) - set(chapters()))
    if unknown:
        ap.error(f"unknown chapters {unknown}; known: {', '.join(chapters())}")
    rows = []
    print("| chapter | mode | seconds | target | within | status |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes:
        for name in names:
            r = run_chapter(name, mode == "quick", args.timeout)
            rows.append(r)
            within = r["ok"] and r["seconds"] <= TARGET_S[mode]
            print(f"| {name} | {mode} | {r['seconds']:.1f} | {TARGET_S[mode]:.0f} | {'yes' if within else 'no'} | "
                  f"{'ok' if r['ok'] else 'FAILED: ' + r['error']} |", flush=True)
    if args.out:
        meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "command": "python benchmarks/chapter_times.py " + " ".join(sys.argv[1:])}
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
