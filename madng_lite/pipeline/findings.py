"""What the full-size runs say, written as sentences from their results files.

Chapter "Reproducing the paper" derives each comparison; its introduction and the README print
the same sentences (:func:`headline`), so the text follows the numbers wherever the runs go and
no number is typed by hand. Thresholds: a fit is "faster" when its median time to the tolerance
is below 0.8 of the other arm's; an arm is "more accurate" at ``T`` when its median MSE is below
half the other's; MAD-PINN counts as reproduced when its median relative L2 at ``T`` is below 0.1.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["ORDER", "find_results", "load_runs", "fmt", "compare", "arm_finding", "break_even", "pinn_rel_l2",
           "headline", "accuracy", "load_payoff", "load_payoff_mse", "payoff_cells", "payoff_headline",
           "payoff_mse_text", "readme_block", "README_START", "README_END"]

PAYOFF_FILES = ("meta_pays_study.json", "meta_pays_study_ac2d.json")
PAYOFF_MSE_FILES = ("meta_pays_mse_fourier.json", "meta_pays_mse_solitons.json")

ORDER = ["kdv", "burgers", "ac1d", "ac2d"]
README_START = "<!-- findings: written by scripts/readme_findings.py from results/full; do not edit -->"
README_END = "<!-- end of findings -->"


REPO_URL = "https://github.com/madng-lite/madng-lite"


def find_results(start: str | Path | None = None) -> Path:
    """The repository's ``results/`` folder above ``start`` (default: the working directory).

    In Colab, where a notebook runs without the repository, a shallow clone of it is made first.
    """
    here = Path(start or Path.cwd()).resolve()
    for base in [here, *here.parents]:
        if (base / "results").is_dir() and (base / "madng_lite").is_dir():
            return base / "results"
    if "google.colab" in sys.modules:
        target = Path("/content/madng-lite")
        if not target.exists():
            subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, str(target)], check=True)
        return target / "results"
    raise FileNotFoundError("results/ not found: run this notebook from a clone of the repository")


def load_runs(results: str | Path, kind: str = "full") -> dict[str, dict]:
    """The ``results.json`` of each benchmark under ``results/<kind>/`` that exists, in book order."""
    files = [Path(results) / kind / name / "results.json" for name in ORDER]
    return {f.parent.name: json.loads(f.read_text()) for f in files if f.exists()}


def fmt(v: float | None) -> str:
    """Three digits; ``None`` (a diverged median) as such."""
    return "inf (diverged)" if v is None else f"{v:.2e}"


def accuracy(e_mad: float | None, e_fresh: float | None) -> str:
    """MAD against fresh at ``T``: more accurate below half the fresh error, less above twice it;
    ``None`` or ``inf`` is a blow-up (two blow-ups count as alike)."""
    bad_mad = e_mad is None or not math.isfinite(e_mad)
    bad_fresh = e_fresh is None or not math.isfinite(e_fresh)
    if bad_mad or bad_fresh:
        return "about as accurate" if bad_mad and bad_fresh else "less accurate" if bad_mad else "more accurate"
    return "more accurate" if e_mad < 0.5 * e_fresh else "less accurate" if e_mad > 2 * e_fresh else "about as accurate"


def compare(r: dict) -> dict:
    """MAD-NG (nearest latent) against NG without meta-learning (fresh network) in one run."""
    mad, fresh = r["arms"]["nearest"], r["arms"].get("fresh")
    if fresh is None or "evolve" not in fresh:
        raise KeyError(f"{r['benchmark']}: no evolved fresh-network arm in this run")
    t_mad, t_fr = mad["fit"]["seconds"]["median"], fresh["fit"]["seconds"]["median"]
    e_mad, e_fr = mad["evolve"]["mse"]["median"][-1], fresh["evolve"]["mse"]["median"][-1]
    fit = ("faster than" if t_mad < 0.8 * t_fr
           else "slower than" if t_mad > 1.25 * t_fr else "about as fast as")
    acc = accuracy(e_mad, e_fr)
    step = max(mad["evolve"]["stepping_mse"]["median"][-1] or math.inf,
               fresh["evolve"]["stepping_mse"]["median"][-1] or math.inf)
    return {"fit": fit, "acc": acc, "t_mad": t_mad, "t_fresh": t_fr, "e_mad": e_mad, "e_fresh": e_fr,
            "div_mad": mad["evolve"]["n_diverged"], "div_fresh": fresh["evolve"]["n_diverged"],
            "n": mad["n"], "stepping": step,
            "stepping_small": step < 0.1 * min(e_mad or math.inf, e_fr or math.inf)}


def arm_finding(name: str, r: dict) -> str:
    """One markdown bullet: fit time, accuracy at ``T``, divergences and the stepping's share."""
    try:
        c = compare(r)
    except KeyError:
        return f"* **{name}:** no fresh-network arm in this run."
    text = (f"* **{name}:** fitting the start from the nearest latent is {c['fit']} fitting a fresh "
            f"network ({c['t_mad']:.2f} s against {c['t_fresh']:.2f} s, medians), and MAD-NG ends "
            f"{c['acc']} at T (median MSE {fmt(c['e_mad'])} against {fmt(c['e_fresh'])}).")
    if c["div_mad"] or c["div_fresh"]:
        text += (f" Diverged: MAD-NG {c['div_mad']} of {c['n']} test samples, NG without "
                 f"meta-learning {c['div_fresh']} of {c['n']}.")
    if c["stepping_small"]:
        text += (" For both, the time stepping adds little (median MSE against the solution of "
                 f"their own start at most {fmt(c['stepping'])}): the error at T is the fit's.")
    return text


def break_even(r: dict) -> tuple[float, float | None, float | None, float | None]:
    """``(t_pretrain, t_mad, t_fresh, N*)``, ``N* = t_pretrain / (t_fresh - t_mad)``.

    ``N*`` is ``inf`` when MAD is not faster (it never pays), ``None`` when MAD never reaches the
    tolerance, ``0`` when only MAD reaches it.
    """
    t_mad = r["arms"]["nearest"]["fit"]["seconds_to_tol"]["median"]
    t_fresh = r["arms"]["fresh"]["fit"]["seconds_to_tol"]["median"]
    pre = r["pretrain"]["seconds"]
    if t_mad is None:
        return pre, t_mad, t_fresh, None
    if t_fresh is None:
        return pre, t_mad, t_fresh, 0.0
    gain = t_fresh - t_mad
    return pre, t_mad, t_fresh, (pre / gain if gain > 0 else math.inf)


def pinn_rel_l2(r: dict) -> float | None:
    """Median relative L2 at ``T`` of MAD-PINN in this run, or ``None`` when it was not run."""
    b = r.get("baselines")
    if not b or not b.get("samples"):
        return None
    return float(np.median([s["rel_l2"][-1] for s in b["samples"]]))


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _count(names: list[str], total: int) -> str:
    return (f"none of the {total} benchmarks" if not names
            else f"{len(names)} of {total} benchmarks ({_names(names)})")


def headline(runs: dict[str, dict]) -> str:
    """The finding of the full-size test runs in a few markdown bullets (intro, README)."""
    if not runs:
        return "*(no full-size test run yet)*"
    comp = {}
    for name, r in runs.items():
        try:
            comp[name] = compare(r)
        except KeyError:
            continue
    n = {name: r["arms"]["nearest"]["n"] for name, r in runs.items()}
    lines = [f"Full-size test runs of {_names(list(runs))} ({', '.join(f'{k}: {v}' for k, v in n.items())} "
             "test samples), every arm fitted by the same optimiser to the same tolerance:", ""]
    by = lambda key, val: [k for k, c in comp.items() if c[key] == val]  # noqa: E731
    times = "; ".join(f"{k} {c['t_mad']:.2f} s against {c['t_fresh']:.2f} s" for k, c in comp.items())
    lines.append(f"* **Fit of a new sample.** From the nearest training latent it was faster than a "
                 f"fresh network on {_count(by('fit', 'faster than'), len(comp))}, about as fast on "
                 f"{_names(by('fit', 'about as fast as'))}, slower on {_names(by('fit', 'slower than'))} "
                 f"(median seconds per fit, MAD against fresh: {times}).")
    pays = {k: break_even(runs[k])[3] for k in comp}
    paying = [k for k, v in pays.items() if v is not None and math.isfinite(v)]
    if paying:
        lines.append("* **Break-even.** Pretraining pays for itself in fit time after "
                     + "; ".join(f"{k}: {pays[k]:.0f} queries" for k in paying)
                     + (f" (never on {_names([k for k in comp if k not in paying])})" if len(paying) < len(comp)
                        else "") + ".")
    else:
        lines.append("* **Break-even.** Pretraining never pays for itself in fit time: on none of them is the "
                     "median fit from the pretrained decoder faster than a fresh network's.")
    errs = "; ".join(f"{k} {fmt(c['e_mad'])} against {fmt(c['e_fresh'])}" for k, c in comp.items())
    lines.append(f"* **Accuracy at T.** MAD-NG was more accurate than Neural Galerkin without "
                 f"meta-learning on {_names(by('acc', 'more accurate'))}, about as accurate on "
                 f"{_names(by('acc', 'about as accurate'))}, less accurate on "
                 f"{_names(by('acc', 'less accurate'))} (median MSE, MAD-NG against fresh: {errs}).")
    div = [f"{k}: MAD-NG {c['div_mad']} of {c['n']}, fresh {c['div_fresh']} of {c['n']}"
           for k, c in comp.items() if c["div_mad"] or c["div_fresh"]]
    lines.append("* **Robustness.** Diverged runs: " + ("; ".join(div) if div else "none") + ".")
    man = {k: r["manifold"] for k, r in runs.items() if r.get("manifold")}
    if man:
        corr = "; ".join(f"{k} {m['rank_corr']:.2f} (random draw {m['rank_corr_initial']:.2f})"
                         for k, m in man.items())
        lines.append("* **Did the decoders learn their families?** Rank correlation of latent "
                     f"distances with data distances: {corr}; a latent space that mirrors its "
                     "family would score near 1.")
    pinn = {k: pinn_rel_l2(r) for k, r in runs.items()}
    pinn = {k: v for k, v in pinn.items() if v is not None}
    if pinn:
        lines.append("* **MAD-PINN** (relative L2 at T, median): "
                     + "; ".join(f"{k} {v:.3f}" + ("" if v < 0.1 else " (not reproduced)")
                                 for k, v in pinn.items()) + ".")
    better = by("acc", "more accurate")
    steadier = [k for k, c in comp.items() if c["div_mad"] < c["div_fresh"]]
    if not paying and not better:
        lines += ["", "**In short:** with the same optimiser for every arm, meta-learning did not pay on "
                  "the benchmarks' families: a fresh network fits a new initial condition as fast or faster, "
                  "and MAD-NG is not more accurate at T."
                  + (f" It diverged less often than a fresh network on {_names(steadier)}." if steadier else "")]
    elif paying or better:
        lines += ["", f"**In short:** meta-learning paid in fit time on {_names(paying)} and in "
                  f"accuracy at T on {_names(better)}."]
    return "\n".join(lines)


def _inf(v):
    """A number of a study file: :func:`madng_lite.io.write_results` writes non-finite ones as strings."""
    return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v, v) if isinstance(v, str) else v


def load_payoff(results: str | Path) -> list[dict]:
    """The families of the meta-learning study (``benchmarks/meta_pays_study.py``), infinities restored."""
    fams = []
    for name in PAYOFF_FILES:
        path = Path(results) / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for f in data["families"]:
            f["command"] = data["meta"]["command"]
            for row in f["rows"]:
                row["n_star"], row["n_star_batched"] = _inf(row["n_star"]), _inf(row["n_star_batched"])
                for a in row["arms"].values():
                    a["seconds_to_tol"] = _inf(a["seconds_to_tol"])
            fams.append(f)
    return fams


def load_payoff_mse(results: str | Path) -> list[dict]:
    """The families of the study's MSE(T) measurement (``benchmarks/meta_pays_mse.py``), infinities restored."""
    fams = []
    for name in PAYOFF_MSE_FILES:
        path = Path(results) / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for f in data["families"]:
            f["command"], f["git_commit"] = data["meta"]["command"], data["meta"]["git_commit"]
            for a in f["arms"].values():
                a["mse0_median"], a["mseT_median"] = _inf(a["mse0_median"]), _inf(a["mseT_median"])
            fams.append(f)
    return fams


CLEAR_SAVING = 0.2   # a saving below 20 % of the fresh fit's time counts as a tie (the "faster" rule above)


def _cells_text(cells: list[tuple[str, float, float, float]]) -> str:
    """``(family, tol, N*, saving)`` cells; the saving is ``1 - t_MAD / t_fresh`` (0 < saving <= 1)."""
    return "; ".join(f"{f} at {t:g} (N* = {n:.0f}, {100 * sv:.0f} % faster)" if n > 0
                     else f"{f} at {t:g} (from the first query: fresh does not reach it)" for f, t, n, sv in cells)


def _saving(row: dict, arm: str) -> float:
    t_mad, t_fresh = row["arms"][arm]["seconds_to_tol"], row["arms"]["fresh"]["seconds_to_tol"]
    return 1.0 if math.isinf(t_fresh) else 1.0 - t_mad / t_fresh


def payoff_cells(fams: list[dict], arm: str = "mad_lm") -> tuple[list, list]:
    """The (family, tol, N*, saving) cells where ``arm`` repays its pretraining: clearly (a saving of at
    least :data:`CLEAR_SAVING`, or fresh does not get there) and narrowly (a finite ``N*``, a smaller saving)."""
    key = "n_star" if arm == "mad_lm" else "n_star_batched"
    cells = [(f["family"], row["tol"], row[key], _saving(row, arm)) for f in fams for row in f["rows"]
             if math.isfinite(row[key])]
    return [c for c in cells if c[3] >= CLEAR_SAVING], [c for c in cells if c[3] < CLEAR_SAVING]


def payoff_mse_text(evolved: list[dict]) -> str:
    """What the study's fits became at ``T`` (``benchmarks/meta_pays_mse.py``), as one markdown sentence."""
    if not evolved:
        return ""
    by: dict[str, list[str]] = {"more accurate": [], "about as accurate": [], "less accurate": []}
    for f in evolved:
        e_mad, e_fresh = f["arms"]["mad_lm"]["mseT_median"], f["arms"]["fresh"]["mseT_median"]
        by[accuracy(e_mad, e_fresh)].append(f"{f['family']} ({e_mad:.1e} against {e_fresh:.1e})")
    blow = {a: sum(f["arms"][a]["diverged"] for f in evolved) for a in ("mad_l", "mad_lm", "random", "fresh")}
    n = sum(f["n_evolve"] for f in evolved)
    said = {"burgers": "Burgers", "kdv": "KdV", "fourier": "Fourier", "solitons": "soliton"}
    pdes = ", ".join(sorted({f"{said.get(f['pde'], f['pde'])} for the {said.get(f['ladder'], f['ladder'])} families"
                             for f in evolved}))
    verdicts = "; ".join(f"{verdict} on {_names(names)}" for verdict, names in by.items() if names)
    return (f"Evolved to T by Neural Galerkin ({pdes}; {n} fits per arm), the fits of MAD-LM ended (median MSE "
            f"at T, MAD-LM against a fresh network) {verdicts}. Runs that blew up: MAD-L {blow['mad_l']}, MAD-LM {blow['mad_lm']}, random latent {blow['random']}, "
            f"fresh network {blow['fresh']} of {n}.")


def payoff_headline(fams: list[dict], evolved: list[dict] | None = None) -> str:
    """Where meta-learning pays on the study's families, as one markdown paragraph (intro, README, its chapter);
    with ``evolved`` (:func:`load_payoff_mse`), also what the fits became at ``T``."""
    if not fams:
        return "*(no meta-learning study yet)*"
    cells = [(f, row) for f in fams for row in f["rows"]]
    tols = sorted({row["tol"] for _, row in cells}, reverse=True)
    clear, narrow = payoff_cells(fams)
    clear_b, narrow_b = payoff_cells(fams, "mad_l_batched")
    neither = [f"{f['family']} at {row['tol']:g}" for f, row in cells
               if math.isinf(row["arms"]["mad_lm"]["seconds_to_tol"]) and math.isinf(row["arms"]["fresh"]["seconds_to_tol"])]
    rest = len(cells) - len(clear) - len(narrow) - len(neither)
    fits = sum(f["n_val"] for f, _ in cells)
    mad_l = sum(row["arms"]["mad_l"]["reached"] for _, row in cells)
    text = (f"**When does meta-learning pay?** On {len(fams)} families of growing complexity "
            f"({', '.join(f['family'] for f in fams)}), new samples fitted to MSE tolerances "
            f"{', '.join(f'{t:g}' for t in tols)} by the same Levenberg-Marquardt fit for every arm: MAD-LM from "
            f"the nearest latent clearly repaid its pretraining (at least {100 * CLEAR_SAVING:.0f} % faster than a "
            f"fresh network, or reaching the tolerance in most fits where the fresh network did not) in {len(clear)} "
            f"of {len(cells)} (family, tolerance) cells" + (f": {_cells_text(clear)}" if clear else "") + ". "
            + (f"In {len(narrow)} more it was faster by less than {100 * CLEAR_SAVING:.0f} %, a tie "
               f"(N* from {min(c[2] for c in narrow):.0f} to {max(c[2] for c in narrow):.0f} queries). " if narrow else "")
            + (f"Neither MAD-LM nor a fresh network reached the tolerance in most fits in {len(neither)} cells "
               f"({', '.join(neither)}). " if neither else "")
            + (f"In the remaining {rest} cell{'s' if rest != 1 else ''} a fresh network was as fast or faster. " if rest else "")
            + f"The latent alone (MAD-L) reached a tolerance in {mad_l} of {fits} fits, so batched MAD-L "
            + (f"paid in {len(clear_b) + len(narrow_b)} cells: {_cells_text(clear_b + narrow_b)}."
               if clear_b or narrow_b else "paid nowhere."))
    return text + (" " + payoff_mse_text(evolved) if evolved else "")


def readme_block(results: str | Path) -> str:
    """The README's findings section body, between its markers."""
    return "\n".join([README_START, payoff_headline(load_payoff(results), load_payoff_mse(results)), "",
                      headline(load_runs(results, "full")), README_END])
