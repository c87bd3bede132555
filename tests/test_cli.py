"""The command line and the run pipeline: quick end-to-end runs, one-line errors (book: Chapter 10)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from madng_lite import __version__
from madng_lite.cli import main
from madng_lite.io import load_checkpoint
from madng_lite.pipeline import FULL, QUICK, bench_config, run_benchmark
from runhelpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]


def strict_json(path: Path) -> dict:
    def no_constants(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=no_constants)


def test_version_is_unchanged():
    out = subprocess.run([sys.executable, "-m", "madng_lite", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == f"madng-lite {__version__}\n" == "madng-lite 0.1.0\n"


def test_quick_configs_only_shrink_sizes(monkeypatch):
    for name in FULL:
        q, f = QUICK[name], FULL[name]
        assert (q.ft_mode, q.lam, q.n_freq, q.sobolev, q.fold, q.arms) == (f.ft_mode, f.lam, f.n_freq, f.sobolev,
                                                                          f.fold, f.arms)
        assert q.n_train <= f.n_train and q.T <= f.T and q.adam_iters <= f.adam_iters and q.ft_iters <= f.ft_iters
    assert FULL["kdv"].sparse is None and FULL["ac2d"].sparse == 1500 and FULL["kdv"].n_train == 50
    assert all(FULL[n].n_test >= 10 and FULL[n].n_val >= 5 for n in FULL)
    assert (FULL["ac2d"].n_train, FULL["ac2d"].width, FULL["ac2d"].depth, FULL["ac2d"].latent_dim) == (180, 30, 8, 60)
    monkeypatch.setenv("MADNG_QUICK", "1")
    assert bench_config("kdv") is QUICK["kdv"]
    monkeypatch.setenv("MADNG_QUICK", "0")
    assert bench_config("kdv") is FULL["kdv"] and bench_config("kdv", quick=True) is QUICK["kdv"]
    with pytest.raises(ValueError, match="known: kdv, burgers, ac1d, ac2d"):
        bench_config("heat")


def check_run(out: Path, name: str, capsys) -> dict:
    r = strict_json(out / "results.json")
    cfg = QUICK[name]
    assert r["benchmark"] == name and r["quick"] is True and r["split"] == "test"
    assert r["t_eval"][0] == 0 and r["t_eval"][-1] == pytest.approx(cfg.T)
    assert all(any(abs(t - s) < 1e-12 for s in r["t_eval"]) for t in cfg.report_times)
    n_test = r["config"]["n_test"]
    assert len(r["samples"]) == n_test and r["splits"]["test"] == [s["index"] for s in r["samples"]]
    assert set(r["splits"]["train"]).isdisjoint(r["splits"]["val"] + r["splits"]["test"])
    assert set(r["splits"]["val"]).isdisjoint(r["splits"]["test"]) and len(r["splits"]["val"]) == cfg.n_val
    for arm in cfg.arms:
        a = r["arms"][arm]
        assert a["n"] == n_test and a["fit"]["reached"] <= n_test
        if arm in cfg.evolve_arms:
            ev = a["evolve"]
            assert len(ev["mse"]["median"]) == len(r["t_eval"]) and ev["n_diverged"] == 0
            assert all(v is not None and math.isfinite(v) for v in ev["mse"]["max"] + ev["stepping_mse"]["max"])
            assert ev["p"] == r["n_params_evolved"] < r["n_params"]       # the latent is folded in
    assert r["environment"]["madng_lite"] == __version__ and r["runs"] == 1
    m = r["manifold"]
    assert m["n_samples"] == cfg.n_train and m["moved"] > 0 and -1 <= m["rank_corr"] <= 1
    assert set(r["timings"]) >= {"data", "truth", "pretrain", "samples", "report", "wall"}
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG" and (out / "samples.pt").exists()
    assert not list(out.glob("evolve_*.pt")) and not list(out.glob(".*.tmp"))
    dec, Z, ck = load_checkpoint(out / "pretrained.pt")
    assert dec.n_params == r["n_params"] and Z.shape == (cfg.n_train, cfg.latent_dim)
    assert ck["config"]["name"] == name
    assert main(["report", str(out / "results.json")]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| file | benchmark") and f"| {name} | test | nearest |" in table
    return r


def test_quick_run_burgers_end_to_end(tmp_path, capsys):
    out = tmp_path / "burgers"
    assert main(["run", "burgers", "--quick", "--out", str(out), "--seed", "1", "--baselines", "--stochastic",
                 "--set", "n_test=3"]) == 0
    assert "MSE(T=0.1)" in capsys.readouterr().out
    r = check_run(out, "burgers", capsys)
    assert r["seed"] == 1 and r["config"]["sparse"] == QUICK["burgers"].sparse and len(r["samples"]) == 3
    for s in r["samples"]:
        for arm in ("nearest", "fresh"):
            ev = s["arms"][arm]["evolve"]
            # the error of the time stepping alone (against the spectral solution of the fitted start) is
            # far below the error against the truth, which the fit at t = 0 sets
            assert ev["stepping_mse"][-1] < 1e-2 * ev["mse"][-1]
            assert abs(ev["fitted_start_mse"][0] - ev["mse"][0]) < 1e-9 * ev["mse"][0]
            assert 0 < ev["residual_max"] < 1 and len(ev["residual"]) == len(ev["residual_t"])
        fits = {arm: s["arms"][arm]["fit"] for arm in QUICK["burgers"].arms}
        assert all(set(f["iters"]) == {"adam", "lbfgs", "lm"} for f in fits.values())
    b = r["baselines"]
    assert b["n"] == 1 and len(b["samples"]) == 1 and all(math.isfinite(v) for v in b["samples"][0]["mse"])
    # a second run in another folder reuses nothing and gives the same numbers (determinism)
    again = run_benchmark("burgers", quick=True, out=tmp_path / "again", seed=1, baselines=True, stochastic=True,
                          n_test=3)
    assert [s["arms"]["nearest"]["evolve"]["mse"] for s in again["samples"]] == \
        [s["arms"]["nearest"]["evolve"]["mse"] for s in r["samples"]]


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [("kdv", []), ("ac1d", ["--stochastic"]), ("ac2d", [])])
def test_quick_run_other_benchmarks(tmp_path, capsys, name, extra):
    out = tmp_path / name
    assert main(["run", name, "--quick", "--out", str(out), *extra]) == 0
    assert f"{name} (test): MSE(T=" in capsys.readouterr().out
    r = check_run(out, name, capsys)
    assert r["config"]["sparse"] == QUICK[name].sparse
    for s in r["samples"]:
        ev = s["arms"]["nearest"]["evolve"]
        assert ev["mse"][-1] < 20 * ev["mse"][0] + 1e-6, (name, ev["mse"])
    if name == "ac2d":   # the fit sub-grid and the dense comparison
        dc = r["dense_compare"]
        assert QUICK["ac2d"].fit_stride == 2 and dc["n"] == 1 and dc["samples"][0]["index"] == r["splits"]["test"][0]
        assert dc["mse_ratio_sparse_over_dense"] > 0 and "dense" in r["samples"][0]["arms"]["nearest"]


def test_validation_split_scores_other_samples(tmp_path, capsys):
    r = run_benchmark("burgers", quick=True, out=tmp_path / "val", split="val", overrides={"n_val": 2})
    assert r["split"] == "val" and [s["index"] for s in r["samples"]] == r["splits"]["val"]
    assert main(["run", "burgers", "--quick", "--out", str(tmp_path / "x"), "--split", "val",
                 "--set", "n_val=0"]) == 2
    one_line_error(capsys, "no val samples")


def test_the_figure_leaves_pyplot_alone(monkeypatch):
    """The figure of a run is drawn without pyplot: a notebook that calls the pipeline keeps its inline
    backend (a ``matplotlib.use("Agg")`` here once emptied every later figure of the baselines chapter)."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from madng_lite.data import make_family
    from madng_lite.pipeline.figure import figure_png

    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("the figure writer switched the backend"))
    fam = make_family("burgers", 1, seed=0, n_grid=16)
    t = np.linspace(0, 1, 3)
    truth = np.zeros((3, 16))
    before = plt.get_fignums()
    sample = {"arms": {"nearest": {"evolve": {"mse": [1e-6, None, 1e-5]}}}}
    png = figure_png(fam, t, truth, truth + 1e-3, [sample], "burgers")
    assert png[:4] == b"\x89PNG" and plt.get_fignums() == before


def test_a_run_can_start_its_latents_at_the_principal_coordinates(tmp_path, capsys):
    """``--set z_init=pca``: pretraining starts from the data's principal coordinates, the run
    records it, and the manifold diagnostics measure the movement from that start."""
    out = tmp_path / "pca"
    assert main(["run", "kdv", "--quick", "--out", str(out), "--set", "z_init=pca",
                 "--set", "n_test=1"]) == 0
    assert "kdv (test): MSE(T=" in capsys.readouterr().out
    r = check_run(out, "kdv", capsys)
    assert r["config"]["z_init"] == "pca"
    assert r["manifold"]["rank_corr_initial"] > 0.99 and r["manifold"]["rank_corr"] > 0.9
