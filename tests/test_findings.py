"""The findings sentences (madng_lite.pipeline.findings) follow the numbers, and the README quotes them."""
import importlib.util
import math
from pathlib import Path

import pytest

from madng_lite.pipeline import findings as F

ROOT = Path(__file__).resolve().parents[1]


def run(name, t_mad, t_fresh, e_mad, e_fresh, div_mad=0, div_fresh=0, pre=100.0, step=1e-14):
    def arm(t, e, d):
        return {"n": 10,
                "fit": {"seconds": {"median": t}, "seconds_to_tol": {"median": t}},
                "evolve": {"mse": {"median": [1e-9, e]}, "n_diverged": d,
                           "stepping_mse": {"median": [0.0, step]}}}
    return {"benchmark": name, "pretrain": {"seconds": pre},
            "arms": {"nearest": arm(t_mad, e_mad, div_mad), "fresh": arm(t_fresh, e_fresh, div_fresh)},
            "manifold": {"rank_corr": 0.9, "rank_corr_initial": 0.01}}


def test_mad_that_pays_is_said_to_pay():
    r = run("a", 0.1, 1.0, 1e-8, 1e-6)
    c = F.compare(r)
    assert c["fit"] == "faster than" and c["acc"] == "more accurate" and c["stepping_small"]
    assert F.break_even(r)[3] == pytest.approx(100.0 / 0.9)
    text = F.headline({"a": r})
    assert "paid in fit time on a" in text and "111 queries" in text and "did not pay" not in text


def test_mad_that_does_not_pay_is_said_not_to():
    r = run("b", 1.0, 0.1, 1e-6, 1e-8, div_fresh=2)
    c = F.compare(r)
    assert c["fit"] == "slower than" and c["acc"] == "less accurate"
    assert F.break_even(r)[3] == math.inf
    text = F.headline({"b": r})
    assert "did not pay" in text and "diverged less often than a fresh network on b" in text
    assert "fresh 2 of 10" in text


def test_close_numbers_are_called_close_and_diverged_medians_named():
    c = F.compare(run("c", 1.0, 1.1, 1e-7, 1.5e-7))
    assert c["fit"] == "about as fast as" and c["acc"] == "about as accurate"
    c = F.compare(run("d", 1.0, 1.0, None, 1e-7))
    assert c["acc"] == "less accurate" and F.fmt(None) == "inf (diverged)"
    r = run("e", 1.0, 1.0, 1e-7, 1e-7, step=1e-7)
    assert "adds little" not in F.arm_finding("e", r)


def test_no_runs_and_no_fresh_arm():
    assert "no full-size test run" in F.headline({})
    r = run("f", 1.0, 1.0, 1e-7, 1e-7)
    del r["arms"]["fresh"]
    assert "no fresh-network arm" in F.arm_finding("f", r)


def test_readme_quotes_the_results_files():
    spec = importlib.util.spec_from_file_location("readme_findings", ROOT / "scripts" / "readme_findings.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (ROOT / "README.md").read_text()
    assert mod.updated(text, ROOT / "results") == text, "run python scripts/readme_findings.py"


def test_find_results_from_inside_the_repository():
    assert F.find_results(ROOT / "book") == ROOT / "results"
