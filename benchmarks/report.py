"""Print the Neural Galerkin benchmark results (``results/ng_bench*.json``, ``results/speed_ng*.json``)
as one markdown table.

    python benchmarks/report.py [FILES...]

Files written before the fused engine have no engine, threads or floor columns: they show ``-``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main(files: list[str]) -> None:
    paths = [Path(f) for f in files] or sorted([*Path("results").glob("ng_bench*.json"),
                                                *Path("results").glob("speed_ng*.json")])
    print("| file | anchor | p | s | sampler | engine | threads | ridge | rel L2 (median) | rel L2 (runs) | ms/step "
          "| spread | derivs | Jacobian | solve | x FLOP floor | fused vs reference |")
    print("|" + "---|" * 17)
    notes = []
    for path in paths:
        data = json.loads(path.read_text())
        threads = data["meta"].get("threads")
        for res in data["results"]:
            for r in res["rows"]:
                runs = ", ".join(f"{v:.1e}" for v in r["rel_l2_all"]) or "-"
                sp = r["split_ms"]
                print(f"| {path.name} | {res['anchor']} | {res['p']} | {r['s']} | {r['sampler']} | "
                      f"{r.get('engine', '-')} | {r.get('threads', threads)} | {res['ridge']:g} | "
                      f"{_fmt(r['rel_l2'], '.2e')} | {runs} | {r['ms_per_step']:.1f} | "
                      f"{_fmt(r.get('spread'), '.0%')} | {sp['derivatives']:.1f} | {sp['jacobian']:.1f} | "
                      f"{sp['solve']:.1f} | {_fmt(r.get('floor_ratio'), '.1f')} | "
                      f"{_fmt(r.get('speedup_vs_reference'), '.2f')} |")
            for st in res.get("dense_stats") or ([res] if "dense_vs_matmul_bound" in res else []):
                notes.append(f"{path.name} {res['anchor']}: dense step {st['dense_gflops']:.1f} GFLOP/s vs plain "
                             f"matmul {st['matmul_gflops']:.1f} GFLOP/s: {st['dense_vs_matmul_bound']:.2f}x the "
                             f"matmul-bound time; engine {st.get('engine', '-')}, threads {st.get('threads', threads)}")
        if "loadavg_start" in data["meta"]:
            notes.append(f"{path.name}: load average {data['meta']['loadavg_start']} at start, "
                         f"{data['meta'].get('loadavg_end')} at end; `{data['meta']['command']}`")
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
