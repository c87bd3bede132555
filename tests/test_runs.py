"""Safe runs: fault injection on the run pipeline (kill -9 and resume, damaged and foreign files, bad
arguments, two runs at once, a diverged sample, provenance). Each test fails on the behaviour it guards
against (book: Chapter 10)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from madng_lite.cli import main
from madng_lite.io import atomic_write, save_state
from madng_lite.pipeline import RunDir, run_benchmark
from runhelpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]
QUICK_RUN = ["run", "burgers", "--quick", "--set", "n_test=2"]


def comparable(r):
    """A results dict without what legitimately differs between runs (times, the command, the machine)."""
    if isinstance(r, dict):
        return {k: comparable(v) for k, v in r.items()
                if not any(w in k for w in ("seconds", "timings", "ms_per_step", "speedup"))
                and k not in ("runs", "command", "environment", "resumed")}
    if isinstance(r, list):
        return [comparable(v) for v in r]
    return r


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted quick run (in a subprocess, as the killed ones)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run([sys.executable, "-m", "madng_lite", *QUICK_RUN, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "results.json").read_text())


# ----- kill -9 and resume ---------------------------------------------------------------------------
def test_kill_9_at_random_points_then_resume_gives_identical_results(tmp_path, reference):
    ref_out, ref = reference
    wall = ref["timings"]["wall"]
    out = tmp_path / "killed"
    rng = random.Random(2026)
    cmd = [sys.executable, "-m", "madng_lite", *QUICK_RUN, "--out", str(out)]
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5 + rng.uniform(0, wall))   # python and torch start in about 1.5 s
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=600)
        if (out / "results.json").exists():
            break
    assert kills >= 2, "the machine finished before the kills: nothing was tested"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got = json.loads((out / "results.json").read_text())
    assert comparable(got) == comparable(ref)
    assert got["runs"] >= 2 and got["timings"]["wall"] > 0
    assert not list(out.glob(".*.tmp")) and not list(out.glob("evolve_*.pt"))


# ----- damaged, foreign and malicious files -----------------------------------------------------------
def _run(out: Path) -> list[str]:
    return [*QUICK_RUN, "--out", str(out)]


def test_a_flipped_bit_in_the_pretrained_decoder_is_refused(tmp_path, capsys, reference):
    out = tmp_path / "run"
    out.mkdir()
    data = bytearray((reference[0] / "pretrained.pt").read_bytes())
    from madng_lite.io import read_checkpoint
    W = read_checkpoint(reference[0] / "pretrained.pt")["state_dict"]["layers.1.weight"]
    at = bytes(data).find(W.numpy().tobytes())
    assert at > 0
    data[at + 8] ^= 0x01                     # one bit of one weight
    (out / "pretrained.pt").write_bytes(bytes(data))
    assert main(_run(out)) == 2
    one_line_error(capsys, "pretrained.pt", "damaged")
    assert not (out / "results.json").exists()


def test_foreign_and_malicious_checkpoints_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"state_dict": {}}, out / "pretrained.pt")
    assert main(_run(out)) == 2
    one_line_error(capsys, "foreign")

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"magic": "madng-lite-checkpoint", "payload": Evil()}, out / "pretrained.pt")
    assert main(_run(out)) == 2
    one_line_error(capsys, "not loadable as plain data")
    assert not (tmp_path / "pwned").exists()


def test_partial_samples_with_fewer_predictions_are_refused(tmp_path, capsys, reference, monkeypatch):
    """A partial-samples file whose predictions do not match its samples must not shrink the ensemble."""
    from madng_lite.pipeline import run as run_mod

    out = tmp_path / "run"
    real = run_mod._save_partial
    calls = []

    def crash_after_first(ctx, samples, preds):
        real(ctx, samples, preds)
        calls.append(ctx.settings)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "_save_partial", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark("burgers", quick=True, out=out, n_test=2)
    monkeypatch.setattr(run_mod, "_save_partial", real)
    saved = torch.load(out / "samples.pt", weights_only=True)["payload"]
    samples = json.loads(saved["samples"])
    # a well-formed file (valid digests, same settings) that holds two samples and one prediction
    save_state(out / "samples.pt", "samples",
               {"samples": json.dumps(samples + samples), "preds": saved["preds"]}, calls[0])
    assert main(_run(out)) == 2
    one_line_error(capsys, "holds 2 samples and 1 predictions")


# ----- bad arguments: one line, exit 2, before any work ------------------------------------------------
@pytest.mark.parametrize("args,fragment", [
    (["--set", "n_train=0"], "n_train: must be >= 1"),
    (["--set", "ridge=-1"], "ridge: must be >= 0"),
    (["--set", "dt=-1"], "dt: must be >= 0"),
    (["--set", "dt=0.03"], "not a multiple of dt"),
    (["--set", "n_eval=1"], "n_eval: need at least 2"),
    (["--set", "report_times=0.0333"], "report_times"),
    (["--set", "ft_tol=nan"], "ft_tol: must be finite"),
    (["--set", "fold=maybe"], "expected bool"),
    (["--set", "warp=9"], "unknown configuration field 'warp'"),
    (["--set", "n_train"], "FIELD=VALUE"),
    (["--sparse", "100000"], "sparse: must be between 1 and the evolved parameters p = "),
    (["--set", "sparse=100000"], "sparse: must be between 1"),
    (["--ridge", "-1"], "ridge: must be"),
    (["--set", "arms=nearest,oracle"], "arms"),
    (["--set", "z_init=encoder"], "z_init: must be 'random' or 'pca'"),
    (["--set", "n_points=100000000"], "n_points"),
    (["--device", "warp-drive"], "unknown device"),
])
def test_bad_values_are_refused_before_any_work(tmp_path, capsys, args, fragment):
    out = tmp_path / "run"
    assert main(["run", "burgers", "--quick", "--out", str(out), *args]) == 2
    one_line_error(capsys, fragment)
    assert not out.exists()        # nothing was created, nothing was computed


def test_argparse_mistakes_exit_2(capsys):
    for argv in (["run", "navier"], ["run", "kdv", "--sparse", "-2"], ["run", "kdv", "--seed", "-1"], ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main([]) == 0 and "run" in capsys.readouterr().out


def test_an_output_folder_that_is_a_file_or_not_writable(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "burgers", "--quick", "--out", str(f)]) == 2
    one_line_error(capsys, "exists and is not a folder")
    assert main(["run", "burgers", "--quick", "--out", str(f / "sub")]) == 2
    one_line_error(capsys, "not a writable folder")
    if os.geteuid() != 0:   # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert main(["run", "burgers", "--quick", "--out", str(ro)]) == 2
        one_line_error(capsys, "not a writable folder")


# ----- two runs at once -------------------------------------------------------------------------------
def test_a_second_run_on_a_locked_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDir(out):
        assert main(_run(out)) == 2
        one_line_error(capsys, "another run", f"pid {os.getpid()}")
    assert not (out / "pretrained.pt").exists()


def test_writes_use_unique_temporary_names_and_fsync(tmp_path, monkeypatch):
    """Two writers of one file never collide on a temporary name; every write is fsynced before its rename."""
    path = tmp_path / "f.json"
    errors = []

    def writer(tag: bytes):
        try:
            for _ in range(100):
                atomic_write(path, lambda fh: fh.write(tag * 1000))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and path.read_bytes() in (b"a" * 1000, b"b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    atomic_write(path, lambda fh: fh.write(b"x"))
    assert len(synced) >= 2          # the file, then its folder


def test_orphaned_temporary_files_are_removed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    orphan = out / ".results.json.k3j2h.tmp"
    orphan.write_text("{")
    with RunDir(out):
        assert not orphan.exists()


# ----- resume keys: settings, threads ------------------------------------------------------------------
def test_a_resume_with_other_settings_or_threads_is_refused(tmp_path, capsys, monkeypatch):
    from madng_lite.pipeline import run as run_mod

    out = tmp_path / "run"
    monkeypatch.setattr(run_mod, "run_sample", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run_benchmark("burgers", quick=True, out=out, n_test=2)
    monkeypatch.undo()
    assert main([*_run(out), "--ridge", "1e-6"]) == 2
    one_line_error(capsys, "other settings", "config")
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert main(_run(out)) == 2
        one_line_error(capsys, "other settings", "threads")
    finally:
        torch.set_num_threads(threads)
    assert main(_run(out)) == 0


# ----- a diverged sample is a result --------------------------------------------------------------------
def test_a_diverged_sample_is_recorded_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    from madng_lite.pipeline import samples as samples_mod
    from madng_lite.solve import DivergenceError

    real = samples_mod.NeuralGalerkin
    made = []

    class Diverging(real):
        def evolve(self, theta0, T, dt, t_eval=None, **kw):
            made.append(1)
            res = super().evolve(theta0, T, dt, t_eval=t_eval, **kw)
            if len(made) == 3:       # the nearest arm of the second test sample
                e = DivergenceError("the solution blew up at t = 0.06: (injected)")
                e.result = type(res)(res.times[:3], res.thetas[:3], 30, res.timings, res.residual_times,
                                     res.residuals)
                e.t_fail = 0.06
                raise e
            return res

    monkeypatch.setattr(samples_mod, "NeuralGalerkin", Diverging)
    out = tmp_path / "run"
    assert main(_run(out)) == 0
    assert "1 diverged" in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    ev = r["samples"][1]["arms"]["nearest"]["evolve"]
    assert ev["diverged_at"] == 0.06 and ev["mse"][3:] == [None] * (len(r["t_eval"]) - 3)
    assert ev["last_finite_mse"] == ev["mse"][2] is not None and ev["space_time"]["mse"] is None
    assert r["n_diverged"] == 1 and r["arms"]["nearest"]["evolve"]["n_diverged"] == 1
    assert r["arms"]["nearest"]["evolve"]["mse"]["max"][-1] is None       # inf: worse than any number
    assert main(["report", str(out / "results.json")]) == 0
    assert "| diverged | 1 |" in capsys.readouterr().out


# ----- reports and provenance ---------------------------------------------------------------------------
def test_a_results_file_missing_a_field_is_named(tmp_path, capsys, reference):
    r = json.loads((reference[0] / "results.json").read_text())
    del r["arms"]["nearest"]["evolve"]["stepping_mse"]
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(r))
    assert main(["report", str(bad)]) == 2
    one_line_error(capsys, "no field 'stepping_mse.median'")
    assert main(["report", str(tmp_path / "nothing.json")]) == 2
    one_line_error(capsys, "not a readable results file")


def test_full_size_runs_are_refused_from_uncommitted_code(tmp_path, capsys, monkeypatch):
    from madng_lite.pipeline import run as run_mod

    monkeypatch.setattr(run_mod, "git_commit", lambda: "0123abc+dirty")
    monkeypatch.setenv("MADNG_QUICK", "0")      # a full-size run (refused before any work)
    out = tmp_path / "run"
    assert main(["run", "kdv", "--out", str(out)]) == 2
    one_line_error(capsys, "uncommitted changes")
    assert not out.exists()


def test_a_finished_run_keeps_its_samples_and_a_later_run_adds_a_stage(tmp_path, monkeypatch):
    """Running the command of a finished run again reuses every sample (nothing is recomputed), and
    adding --baselines then runs only MAD-PINN."""
    from madng_lite.pipeline import run as run_mod

    out = tmp_path / "run"
    first = run_benchmark("burgers", quick=True, out=out, n_test=2)
    monkeypatch.setattr(run_mod, "run_sample", lambda *a, **k: pytest.fail("a finished sample was recomputed"))
    again = run_benchmark("burgers", quick=True, out=out, n_test=2, baselines=True)
    assert comparable(again["samples"]) == comparable(first["samples"]) and again["runs"] == 2
    assert again["baselines"]["n"] == 1 and first["baselines"] is None
