"""The command line of madng_lite.cli: run / report / --version (book: Chapters 7-9, the benchmarks)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from madng_lite import __version__
from madng_lite.cli import FULL, QUICK, bench_config, main
from madng_lite.io import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _strict_json(path: Path) -> dict:
    def no_constants(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=no_constants)


def test_version_is_unchanged():
    out = subprocess.run([sys.executable, "-m", "madng_lite", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == f"madng-lite {__version__}\n" == "madng-lite 0.1.0\n"


def test_bad_arguments_give_one_line_errors(capsys, tmp_path):
    for argv in (["run", "navier"], ["run", "kdv", "--sparse", "-2"], ["run", "kdv", "--seed", "x"], ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m madng_lite") and "error:" in err[-1]
    for dev, msg in (("cuda:3", "CUDA is not available"), ("warp-drive", "unknown device")):
        # the device is checked before any work starts
        if dev.startswith("cuda") and __import__("torch").cuda.is_available():
            continue
        assert main(["run", "kdv", "--quick", "--device", dev, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0]
    assert main(["run", "kdv", "--quick", "--ridge", "-1", "--out", str(tmp_path)]) == 2
    assert "ridge must be > 0" in capsys.readouterr().err
    assert main(["run", "kdv", "--quick", "--set", "warp=9", "--out", str(tmp_path)]) == 2
    assert "unknown configuration field 'warp'" in capsys.readouterr().err
    assert main(["run", "kdv", "--quick", "--set", "n_train", "--out", str(tmp_path)]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing.json")]) == 2
    assert "not a madng-lite results.json" in capsys.readouterr().err
    assert main([]) == 0 and "run" in capsys.readouterr().out


def test_quick_configs_only_shrink_sizes(monkeypatch):
    for name in FULL:
        q, f = QUICK[name], FULL[name]
        assert (q.ft_mode, q.lam, q.n_freq, q.sobolev) == (f.ft_mode, f.lam, f.n_freq, f.sobolev)
        assert q.n_train <= f.n_train and q.T <= f.T and q.adam_iters <= f.adam_iters
    assert FULL["kdv"].sparse is None and FULL["ac2d"].sparse == 1500
    assert all(FULL[n].sparse == 400 for n in ("burgers", "ac1d")) and FULL["kdv"].n_train == 50
    assert all(FULL[n].n_test >= 10 for n in FULL)
    assert (FULL["ac2d"].n_train, FULL["ac2d"].width, FULL["ac2d"].depth, FULL["ac2d"].latent_dim) == (180, 30, 8, 60)
    monkeypatch.setenv("MADNG_QUICK", "1")
    assert bench_config("kdv") is QUICK["kdv"]
    monkeypatch.setenv("MADNG_QUICK", "0")
    assert bench_config("kdv") is FULL["kdv"] and bench_config("kdv", quick=True) is QUICK["kdv"]
    with pytest.raises(ValueError, match="known: kdv, burgers, ac1d, ac2d"):
        bench_config("heat")


def _check_run(out: Path, name: str, capsys) -> dict:
    r = _strict_json(out / "results.json")
    cfg = QUICK[name]
    assert r["benchmark"] == name and r["quick"] is True and r["config"]["n_eval"] == cfg.n_eval
    assert r["t_eval"][0] == 0 and r["t_eval"][-1] == pytest.approx(cfg.T)
    assert len(r["mse"]) == len(r["rel_l2"]) == cfg.n_eval and len(r["samples"]) == r["config"]["n_test"]
    assert all(v is not None and math.isfinite(v) for v in r["mse"] + r["rel_l2"])
    assert r["environment"]["madng_lite"] == __version__ and "torch" in r["environment"]
    assert set(r["timings"]) >= {"data", "truth", "pretrain", "finetune", "evolve", "figure", "total"}
    assert r["pretrain"]["mean_rel"] < 0.2
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    dec, Z, ck = load_checkpoint(out / "pretrained.pt")
    assert dec.n_params == r["n_params"] and Z.shape == (cfg.n_train, cfg.latent_dim) and ck["benchmark"] == name
    assert main(["report", str(out / "results.json")]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| file | benchmark") and f"| {name} |" in table
    return r


def test_quick_run_burgers_end_to_end(tmp_path, capsys):
    out = tmp_path / "burgers"
    assert main(["run", "burgers", "--quick", "--out", str(out), "--seed", "1", "--baselines", "--stochastic",
                 "--set", "n_test=3", "--set", "ft_iters=250"]) == 0
    assert "MSE(T=0.1)" in capsys.readouterr().out
    r = _check_run(out, "burgers", capsys)
    assert r["seed"] == 1 and r["config"]["sparse"] == 400 and r["config"]["ridge"] == 1e-10
    assert r["config"]["ft_iters"] == 250 and len(r["samples"]) == 3 and r["n_diverged"] == 0
    # the error of MAD-NG is dominated by the fine-tuned initial fit; NG adds little
    assert r["mse_final"] < 3 * max(s["finetune_mse"] for s in r["samples"]) + 1e-5
    assert min(r["mse_median"]) >= 0 and r["mse_final_median"] <= r["mse_final_p90"]
    nus = [s["params"]["nu"] for s in r["samples"]]
    assert len(set(nus)) == 3 and all(0.005 <= v <= 0.02 for v in nus)  # stochastic viscosity
    ens = r["ensemble"]
    assert ens["n"] == 3 and len(ens["mean_rel_l2"]) == len(r["t_eval"]) and max(ens["mean_rel_l2"]) < 1
    for s in r["samples"]:  # the nearest latent and a random one, both recorded
        assert s["random_start"]["iters"] >= 1 and set(s["finetune_first_below"]) == {"0.001", "0.0001", "1e-05",
                                                                                        "1e-06", "1e-07"}
    b = r["baselines"]
    assert b["n"] == 1 and len(b["ng"]["samples"]) == len(b["mad_pinn"]["samples"]) == 1
    assert all(math.isfinite(v) for v in b["ng"]["samples"][0]["mse"] + b["mad_pinn"]["samples"][0]["mse"])
    assert {"baseline_ng", "baseline_mad_pinn"} <= set(r["timings"])
    # a second run reuses the pretrained decoder (same configuration) ...
    assert main(["run", "burgers", "--quick", "--out", str(out), "--seed", "1", "--stochastic",
                 "--set", "n_test=1", "--set", "ft_iters=50"]) == 0
    r2 = _strict_json(out / "results.json")
    assert r2["pretrain"]["mean_rel"] == r["pretrain"]["mean_rel"] and r2["pretrain"]["resumed"]
    # ... and refuses one written for another configuration
    assert main(["run", "burgers", "--quick", "--out", str(out), "--set", "width=12"]) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [("kdv", []), ("ac1d", ["--stochastic"]), ("ac2d", ["--sparse", "dense"])])
def test_quick_run_other_benchmarks(tmp_path, capsys, name, extra):
    out = tmp_path / name
    assert main(["run", name, "--quick", "--out", str(out), *extra]) == 0
    assert "MSE(T=" in capsys.readouterr().out
    r = _check_run(out, name, capsys)
    assert r["config"]["sparse"] == (None if name == "kdv" or "dense" in extra else QUICK[name].sparse)
    assert r["mse_final"] < 3 * max(s["finetune_mse"] for s in r["samples"]) + 1e-5


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    """AC2D (quick): the fit sub-grid, the dense comparison, and resuming the test samples after a crash."""
    from madng_lite import experiment

    whole = experiment.run_benchmark("ac2d", quick=True, out=tmp_path / "whole", n_test=2)
    assert QUICK["ac2d"].fit_stride == 2 and QUICK["ac2d"].dense_compare == 1
    dc = whole["dense_compare"]
    assert dc["n"] == 1 and dc["samples"][0]["index"] == QUICK["ac2d"].n_train
    assert dc["speedup_per_step"] > 0 and dc["mse_ratio_sparse_over_dense"] > 0
    assert "dense" in whole["samples"][0] and "dense" not in whole["samples"][1]

    real, calls = experiment._evolve, []

    def crash_on_second_sample(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # sample 1 sparse, sample 1 dense, then sample 2: the machine "dies"
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(experiment, "_evolve", crash_on_second_sample)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_benchmark("ac2d", quick=True, out=out, n_test=2)
    saved = json.loads((out / "samples.partial.json").read_text())
    assert len(saved["samples"]) == 1 and not (out / "results.json").exists()
    monkeypatch.setattr(experiment, "_evolve", real)
    with pytest.raises(ValueError, match="another configuration"):  # never mixes runs
        experiment.run_benchmark("ac2d", quick=True, out=out, n_test=2, ridge=1e-6)
    resumed = experiment.run_benchmark("ac2d", quick=True, out=out, n_test=2)
    assert not (out / "samples.partial.json").exists()
    assert [s["mse"] for s in resumed["samples"]] == [s["mse"] for s in whole["samples"]]
    assert resumed["mse_final_median"] == whole["mse_final_median"]
    assert resumed["samples"][0]["timings"] == saved["samples"][0]["timings"]  # read back, not redone


def test_result_figure_leaves_pyplot_alone(tmp_path, monkeypatch):
    """The figure of a run is drawn without pyplot: a notebook that calls run_benchmark keeps its inline backend
    (a ``matplotlib.use("Agg")`` here once emptied every later figure of the baselines chapter)."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from madng_lite import experiment
    from madng_lite.data import make_family

    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("the figure writer switched the backend"))
    fam = make_family("burgers", 1, seed=0, n_grid=16)
    t = np.linspace(0, 1, 3)
    truth = np.zeros((3, 16))
    before = plt.get_fignums()
    experiment._figure(fam, t, truth, truth + 1e-3, [np.full(3, 1e-6)], tmp_path / "f.png", "burgers")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and plt.get_fignums() == before
