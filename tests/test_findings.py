"""The findings sentences (madng_lite.pipeline.findings) follow the numbers, and the README quotes them."""
import importlib.util
import json
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
    assert "Pretraining never pays for itself in fit time" in text and "after no" not in text


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


def _family(name, rows):
    return {"family": name, "n_val": 8, "command": "c",
            "rows": [{"tol": tol, "n_star": n, "n_star_batched": nb,
                      "arms": {"mad_l": {"reached": rl, "seconds_to_tol": math.inf},
                               "mad_lm": {"reached": 8, "seconds_to_tol": tm},
                               "fresh": {"reached": 8, "seconds_to_tol": tf}}}
                     for tol, n, nb, rl, tm, tf in rows]}


def test_payoff_headline_names_where_it_pays_and_where_not():
    fams = [_family("fourier-3", [(1e-6, math.inf, math.inf, 0, 0.2, 0.1)]),
            _family("fourier-10", [(1e-6, 158.2, math.inf, 0, 0.5, 1.3), (1e-8, 0.0, math.inf, 1, 1.0, math.inf)]),
            _family("fourier-30", [(1e-6, math.inf, math.inf, 0, math.inf, math.inf),
                                    (1e-4, 1000.0, math.inf, 0, 0.9, 1.0)])]
    text = F.payoff_headline(fams)
    assert "in 2 of 5 (family, tolerance) cells" in text
    assert "fourier-10 at 1e-06 (N* = 158, 62 % faster)" in text
    assert "In 1 more it was faster by less than 20 %, a tie (N* from 1000 to 1000 queries)" in text
    assert "fourier-10 at 1e-08 (from the first query: fresh does not reach it)" in text
    assert "in 1 cells (fourier-30 at 1e-06)" in text and "reached a tolerance in 1 of 40 fits" in text
    assert "In the remaining 1 cell a fresh network was as fast or faster." in text
    assert text.endswith("batched MAD-L paid nowhere.")
    assert F.payoff_headline([]).startswith("*(no meta-learning study")


def test_load_payoff_mse_restores_infinities(tmp_path):
    arm = {"samples": [], "mse0_median": 1e-9, "mseT_median": "inf", "diverged": 5}
    data = {"meta": {"command": "python benchmarks/meta_pays_mse.py", "git_commit": "abc"},
            "families": [{"family": "solitons-2", "arms": {"mad_l": arm}}]}
    (tmp_path / F.PAYOFF_MSE_FILES[1]).write_text(json.dumps(data))
    fams = F.load_payoff_mse(tmp_path)
    assert len(fams) == 1 and fams[0]["command"].startswith("python benchmarks/meta_pays_mse.py")
    a = fams[0]["arms"]["mad_l"]
    assert a["mseT_median"] == math.inf and a["mse0_median"] == 1e-9
    assert F.load_payoff_mse(tmp_path / "nothing") == []


def test_payoff_mse_text_follows_the_numbers():
    def fam(name, pde, ladder, mad, fresh, blow=(0, 0, 0, 0)):
        vals = {"mad_l": 1e-3, "mad_lm": mad, "random": 1e-9, "fresh": fresh}
        return {"family": name, "pde": pde, "ladder": ladder, "n_evolve": 8,
                "arms": {a: {"mseT_median": vals[a], "diverged": b} for a, b in zip(vals, blow)}}
    ev = [fam("fourier-3", "burgers", "fourier", 1.3e-11, 5.9e-12),
          fam("fourier-10", "burgers", "fourier", 4.2e-11, 2.7e-9, (1, 0, 0, 2)),
          fam("solitons-2", "kdv", "solitons", 2.0e-10, 3.0e-10),
          fam("solitons-3", "kdv", "solitons", 1e-9, math.inf, (5, 0, 1, 6))]
    text = F.payoff_mse_text(ev)
    assert "(Burgers for the Fourier families, KdV for the soliton families; 32 fits per arm)" in text
    assert "ended (median MSE at T, MAD-LM against a fresh network) more accurate on fourier-10 " \
           "(4.2e-11 against 2.7e-09), solitons-3 (1.0e-09 against inf)" in text
    assert "about as accurate on solitons-2 (2.0e-10 against 3.0e-10)" in text
    assert "less accurate on fourier-3 (1.3e-11 against 5.9e-12)" in text
    assert text.endswith("MAD-L 6, MAD-LM 0, random latent 1, fresh network 8 of 32.")
    assert "$" not in text   # plain text: the book shows generated markdown without math
    assert "about as accurate" not in F.payoff_mse_text(ev[:2])   # an empty verdict is left out
    assert F.payoff_mse_text([]) == ""
    assert F.accuracy(None, None) == "about as accurate" and F.accuracy(math.inf, 1.0) == "less accurate"
