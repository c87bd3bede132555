"""Statistics over samples, the results file's summary, and the report table (book: Chapter 10).

Errors of diverged samples count as infinite: they raise the mean, the 90th percentile and the
maximum (written as ``null`` in JSON), and move the median only as far as one more bad sample.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["clean", "stats", "arm_summary", "ensemble", "dense_summary", "report", "ReportError"]


class ReportError(ValueError):
    """A results file that the report cannot read; the message names the file and the field."""


def clean(v):
    """JSON-safe copy: floats that are not finite become None, tensors and arrays become lists."""
    if isinstance(v, dict):
        return {str(k): clean(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(w) for w in v]
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return clean(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v).tolist())
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _arr(values) -> np.ndarray:
    return np.array([[np.inf if v is None else v for v in np.atleast_1d(np.asarray(row, dtype=object))]
                     for row in values], dtype=float)


def stats(per_sample) -> dict:
    """Mean, median, 90th percentile and maximum over samples (rows); None (diverged) counts as inf."""
    a = _arr(per_sample)
    with np.errstate(invalid="ignore"):
        out = {"mean": a.mean(axis=0), "median": np.median(a, axis=0), "p90": np.percentile(a, 90, axis=0),
               "max": a.max(axis=0)}
    return {k: (v.tolist() if v.ndim else float(v)) for k, v in out.items()}


def _scalar_stats(values: list) -> dict:
    return {k: v[0] for k, v in stats([[v] for v in values]).items()}


def arm_summary(samples: list[dict], arm: str) -> dict:
    """Fit and evolution statistics of one arm over the samples that ran it."""
    rows = [s["arms"][arm] for s in samples if arm in s["arms"]]
    fits = [r["fit"] for r in rows]
    to_tol = [f["seconds_to_tol"] for f in fits]
    out = {"n": len(rows), "fit": {
        "reached": sum(bool(f["reached"]) for f in fits),
        "mse": _scalar_stats([f["mse"] for f in fits]),
        "seconds": _scalar_stats([f["seconds"] for f in fits]),
        "iters": _scalar_stats([sum(f["iters"].values()) for f in fits]),
        "seconds_to_tol": _scalar_stats(to_tol),       # None (not reached) counts as inf
        "iters_to_tol": _scalar_stats([f["iters_to_tol"] for f in fits])}}
    evs = [r["evolve"] for r in rows if "evolve" in r]
    if evs:
        out["evolve"] = {
            "n_diverged": sum(e["diverged_at"] is not None for e in evs),
            **{k: stats([e[k] for e in evs]) for k in ("mse", "rel_l2", "stepping_mse", "stepping_rel_l2",
                                                      "fitted_start_mse")},
            "space_time_mse": _scalar_stats([e["space_time"]["mse"] for e in evs]),
            "space_time_rel_l2": _scalar_stats([e["space_time"]["rel_l2"] for e in evs]),
            "residual_max": _scalar_stats([e["residual_max"] for e in evs]),
            "ms_per_step": float(np.median([e["ms_per_step"] for e in evs])),
            "p": evs[0]["p"], "sparse": evs[0]["sparse"]}
    return out


def ensemble(preds: np.ndarray, truths: np.ndarray) -> dict:
    """Ensemble mean and variance over samples (axis 0) against the reference ensemble, over time."""
    ok = np.isfinite(preds).all(axis=(1, 2))
    if ok.sum() < 2:
        return {"n": int(ok.sum())}
    P, R = preds[ok], truths[ok]
    rel = lambda a, b: np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    return {"n": int(ok.sum()), "mean_rel_l2": rel(P.mean(axis=0), R.mean(axis=0)),
            "var_rel_l2": rel(P.var(axis=0), R.var(axis=0)), "var_ref_mean": R.var(axis=0).mean(axis=1)}


def dense_summary(samples: list[dict]) -> dict | None:
    """Sparse against dense NG on the samples evolved both ways (same start): MSE at T and time per step."""
    both = [s for s in samples if "dense" in s["arms"]["nearest"]]
    if not both:
        return None
    rows = []
    for s in both:
        sp, de = s["arms"]["nearest"]["evolve"], s["arms"]["nearest"]["dense"]
        rows.append({"index": s["index"], "mse_final_sparse": sp["mse"][-1], "mse_final_dense": de["mse"][-1],
                     "ms_per_step_sparse": sp["ms_per_step"], "ms_per_step_dense": de["ms_per_step"]})
    ok = [r for r in rows if None not in r.values()]
    out: dict = {"n": len(rows), "samples": rows}
    if ok:
        out["mse_ratio_sparse_over_dense"] = float(np.median([r["mse_final_sparse"] / r["mse_final_dense"] for r in ok]))
        out["speedup_per_step"] = float(np.median([r["ms_per_step_dense"] / r["ms_per_step_sparse"] for r in ok]))
    return out


def _get(r: dict, path: str, f: str):
    cur = r
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise ReportError(f"{f}: not a results file of this madng-lite (no field {path!r})")
        cur = cur[key]
    return cur


def _fmt(v) -> str:
    return "diverged" if v is None else f"{v:.2e}"


def report(files: list[str]) -> str:
    """A markdown table of the headline numbers of ``results.json`` files, one row per arm."""
    rows = ["| file | benchmark | split | arm | update | p | fit reached | fit s (median) | MSE(0) median | "
            "MSE(T) median | MSE(T) p90 | MSE(T) max | stepping MSE(T) median | diverged |",
            "|" + "---|" * 14]
    for f in files:
        try:
            r = json.loads(Path(f).read_text())
        except (OSError, ValueError) as e:
            raise ReportError(f"{f}: not a readable results file ({type(e).__name__}: {e})") from None
        for arm, a in _get(r, "arms", f).items():
            n = _get(a, "n", f)
            reached, secs = _get(a, "fit.reached", f), _get(a, "fit.seconds.median", f)
            ev = a.get("evolve")
            if ev is None:
                cells = ["-"] * 6
                upd, p = "fit only", "-"
            else:
                mse = _get(ev, "mse.median", f)
                cells = [_fmt(mse[0]), _fmt(mse[-1]), _fmt(_get(ev, "mse.p90", f)[-1]),
                         _fmt(_get(ev, "mse.max", f)[-1]), _fmt(_get(ev, "stepping_mse.median", f)[-1]),
                         str(_get(ev, "n_diverged", f))]
                s = _get(ev, "sparse", f)
                upd, p = ("dense" if s is None else f"s={s}"), str(_get(ev, "p", f))
            rows.append(f"| {f} | {_get(r, 'benchmark', f)} | {_get(r, 'split', f)} | {arm} | {upd} | {p} | "
                        f"{reached}/{n} | {secs:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
