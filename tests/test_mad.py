"""Auto-decoder pretraining, nearest latent and fine-tuning of madng_lite.mad (book: Chapter 3)."""
from __future__ import annotations

import statistics

import pytest
import torch

from madng_lite.data import make_family
from madng_lite.decoder import Decoder
from madng_lite.io import load_checkpoint, read_checkpoint
from madng_lite.mad import finetune, nearest_latent, nearest_latents, pretrain, reconstruct


def _decoder(box, seed=0) -> Decoder:
    return Decoder(box, latent_dim=5, width=20, depth=1, n_freq=4, seed=seed)


@pytest.fixture(scope="module")
def kdv_model():
    """A tiny KdV auto-decoder: 12 training and 4 held-out two-solitons on 64 points."""
    fam = make_family("kdv", 16, seed=0, n_grid=64)
    train, test = fam.subset(range(12)), fam.subset(range(12, 16))
    dec = _decoder(fam.box)
    Z, rep = pretrain(dec, fam.x, train.U0, adam_iters=150, lbfgs_iters=100, lr=1e-2, seed=0, progress=False)
    return fam, train, test, dec, Z, rep


def test_pretraining_reduces_the_reconstruction_error(kdv_model):
    fam, train, _, dec, Z, rep = kdv_model
    fresh = _decoder(fam.box)
    z0 = torch.randn(12, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    before = ((reconstruct(fresh, fam.x, z0) - train.U0).norm(dim=1) / train.U0.norm(dim=1)).mean()
    after = (reconstruct(dec, fam.x, Z) - train.U0).norm(dim=1) / train.U0.norm(dim=1)
    assert float(before) > 0.9  # an untrained decoder knows nothing
    # measured: mean 0.029, max 0.046 (150 Adam + 100 L-BFGS iterations)
    assert rep.mean_rel < 0.06 and rep.max_rel < 0.1
    assert torch.allclose(after, torch.tensor(rep.rel_errors, dtype=after.dtype), rtol=1e-10)
    assert rep.lbfgs_iters > 0 and rep.seconds > 0 and Z.shape == (12, 5) and not Z.requires_grad


def test_sobolev_terms_fit_the_derivative():
    fam = make_family("burgers", 4, seed=1, n_grid=32)
    runs = {}
    for sob in (False, ["ux"]):
        dec = Decoder(fam.box, latent_dim=3, width=16, depth=2, seed=0)
        Z, rep = pretrain(dec, fam.x, fam.U0, adam_iters=100, lbfgs_iters=50, lr=1e-2, progress=False, sobolev=sob)
        runs[bool(sob)] = rep
    assert runs[True].deriv_rel_errors["ux"] < 0.05 and runs[False].deriv_rel_errors == {}
    assert runs[True].mean_rel < 0.05


def test_nearest_latent_and_errors(kdv_model):
    fam, train, test, dec, Z, _ = kdv_model
    z, i = nearest_latent(train.U0, Z, train.U0[7] + 1e-9)
    assert i == 7 and torch.equal(z, Z[7])
    with pytest.raises(ValueError, match="u0_new has 10 values"):
        nearest_latent(train.U0, Z, torch.zeros(10))
    u = test.U0[0]
    Zk, idx = nearest_latents(train.U0, Z, u, 4)
    dist = ((train.U0 - u) ** 2).sum(dim=1)
    assert idx[0] == nearest_latent(train.U0, Z, u)[1] and len(set(idx)) == 4
    assert all(dist[a] <= dist[b] for a, b in zip(idx, idx[1:]))
    assert all(dist[j] >= dist[idx[-1]] for j in range(len(dist)) if j not in idx)
    assert torch.equal(Zk, Z[idx])
    with pytest.raises(ValueError, match="k must be an integer"):
        nearest_latents(train.U0, Z, u, len(Z) + 1)
    with pytest.raises(ValueError, match="u0_new has 10 values"):
        nearest_latents(train.U0, Z, torch.zeros(10), 2)
    with pytest.raises(ValueError, match="same N"):
        nearest_latent(train.U0, Z[:3], test.U0[0])
    with pytest.raises(ValueError, match="latent_dim=4"):
        pretrain(_decoder(fam.box), fam.x, train.U0, latent_dim=4, adam_iters=1, lbfgs_iters=0, progress=False)
    with pytest.raises(ValueError, match="U0 must have shape"):
        pretrain(_decoder(fam.box), fam.x, train.U0[:, :10], adam_iters=1, lbfgs_iters=0, progress=False)
    with pytest.raises(ValueError, match="latent_dim >= 1"):
        pretrain(Decoder(fam.box), fam.x, train.U0, adam_iters=1, progress=False)
    with pytest.raises(ValueError, match="unknown fine-tuning mode"):
        finetune(dec, fam.x, test.U0[0], Z[0], mode="Z")
    with pytest.raises(ValueError, match="z0 must have 5 entries"):
        finetune(dec, fam.x, test.U0[0], torch.zeros(3))


def test_finetune_modes_never_touch_the_pretrained_decoder(kdv_model):
    fam, train, test, dec, Z, _ = kdv_model
    theta = dec.flat_theta().clone()
    z0, _ = nearest_latent(train.U0, Z, test.U0[0])
    lat = finetune(dec, fam.x, test.U0[0], z0, "L", max_iters=100, tol=1e-12)
    both = finetune(dec, fam.x, test.U0[0], z0, "LM", max_iters=100, tol=1e-12)
    assert torch.equal(dec.flat_theta(), theta) and all(p.grad is None for p in dec.parameters())
    assert lat.decoder is dec and both.decoder is not dec
    assert not torch.equal(both.decoder.flat_theta(), theta)
    assert lat.iters == both.iters == 100 and not lat.converged
    assert both.mse < lat.mse  # weights add freedom the latent alone lacks (measured 2.8e-3 vs 1.8e-5)
    done = finetune(dec, fam.x, test.U0[0], z0, "L", max_iters=100, tol=1e3)
    assert done.iters == 0 and done.converged and torch.equal(done.z, z0)


def test_nearest_latent_start_needs_fewer_iterations_than_random(kdv_model):
    fam, train, test, dec, Z, _ = kdv_model
    nearest, random_med = [], []
    for i in range(4):
        u0 = test.U0[i]
        tol = 1e-2 * float((u0**2).mean())  # 10 % relative L2
        z0, _ = nearest_latent(train.U0, Z, u0)
        nearest.append(finetune(dec, fam.x, u0, z0, "L", lr=1e-2, max_iters=500, tol=tol).iters)
        random_med.append(statistics.median(
            finetune(dec, fam.x, u0, None, "L", lr=1e-2, max_iters=500, tol=tol, seed=s).iters for s in range(3)))
    # measured: nearest [81, 20, 0, 0] vs random (seeds 0-2) [500, 491, 146], [164, 31, 178], [174, 21, 172],
    # [153, 0, 131] iterations: medians [491, 164, 172, 131]
    assert sum(nearest) < 0.5 * sum(random_med)
    assert sum(n <= r for n, r in zip(nearest, random_med)) >= 3


def test_checkpoint_resume_is_exact(tmp_path):
    fam = make_family("burgers", 3, seed=2, n_grid=16)
    kw = dict(adam_iters=30, lbfgs_iters=0, lr=1e-2, seed=1, progress=False, checkpoint_every=10, normalize=True)
    ref_dec = Decoder(fam.box, latent_dim=2, width=8, depth=1, seed=0)
    Z_ref, _ = pretrain(ref_dec, fam.x, fam.U0, checkpoint=tmp_path / "ref.pt", **kw)

    def stop(i, loss):
        if i == 14:
            raise KeyboardInterrupt

    dec = Decoder(fam.box, latent_dim=2, width=8, depth=1, seed=0)
    with pytest.raises(KeyboardInterrupt):
        pretrain(dec, fam.x, fam.U0, checkpoint=tmp_path / "ck.pt", callback=stop, **kw)
    assert read_checkpoint(tmp_path / "ck.pt")["extra"]["adam_done"] == 10
    dec2 = Decoder(fam.box, latent_dim=2, width=8, depth=1, seed=5)  # weights come from the checkpoint
    Z, rep = pretrain(dec2, fam.x, fam.U0, checkpoint=tmp_path / "ck.pt", **kw)
    assert torch.allclose(Z, Z_ref, atol=1e-12, rtol=0)
    assert torch.allclose(dec2.flat_theta(), ref_dec.flat_theta(), atol=1e-12, rtol=0)
    loaded, Zl, cfg = load_checkpoint(tmp_path / "ck.pt")
    assert torch.equal(Zl, Z) and cfg["adam_iters"] == 30
    # a finished checkpoint is returned as is
    dec3 = Decoder(fam.box, latent_dim=2, width=8, depth=1, seed=9)
    Z3, rep3 = pretrain(dec3, fam.x, fam.U0, checkpoint=tmp_path / "ck.pt", **kw)
    assert torch.equal(Z3, Z) and torch.equal(dec3.flat_theta(), dec2.flat_theta())  # not rescaled twice
    assert rep3.mean_rel == pytest.approx(rep.mean_rel, rel=1e-12)


def test_normalised_pretraining_fits_small_amplitude_data():
    """AC2D data are tiny (rms 0.03): fitting U0 / rms and folding rms into the output layer helps."""
    fam = make_family("ac2d", 8, seed=0, n_grid=10)
    rel = {}
    for norm in (False, True):
        dec = Decoder(fam.box, latent_dim=18, width=16, depth=2, seed=0)
        Z, rep = pretrain(dec, fam.x, fam.U0, lam=0.05, adam_iters=150, lbfgs_iters=100, lr=1e-2, progress=False,
                          normalize=norm)
        direct = (reconstruct(dec, fam.x, Z) - fam.U0).norm(dim=1) / fam.U0.norm(dim=1)
        assert float(direct.mean()) == pytest.approx(rep.mean_rel, rel=1e-10)  # errors are on the data's scale
        rel[norm] = rep.mean_rel
        if norm:
            assert rep.data_scale == pytest.approx(float((fam.U0**2).mean()))
    # measured: 0.24 plain, 0.047 normalised
    assert rel[True] < 0.1 and rel[True] < 0.4 * rel[False]


def test_finetune_returns_the_best_iterate_not_the_last(kdv_model):
    """Adam is not monotone (full-size AC1D: a run reached MSE 1e-6, then ended at 4e-4): the lowest-MSE
    iterate is what comes back, and its reported MSE is the one recomputed from the returned (z, theta)."""
    fam, train, test, dec, Z, _ = kdv_model
    z0, _ = nearest_latent(train.U0, Z, test.U0[0])
    for mode in ("L", "LM"):
        res = finetune(dec, fam.x, test.U0[0], z0, mode, lr=0.3, max_iters=200, tol=1e-12)
        u = reconstruct(res.decoder, fam.x, res.z[None])[0]
        assert abs(float(((u - test.U0[0]) ** 2).mean()) - res.mse) <= 1e-12 * res.mse
        assert res.mse <= min(res.history) and 0 <= res.best_iter <= res.iters
        if mode == "L":  # measured: best at iteration 49 (1.5325e-3), last (200) 1.5357e-3
            assert res.best_iter < res.iters and res.history[-1] > res.mse
        last = finetune(dec, fam.x, test.U0[0], z0, mode, lr=0.3, max_iters=res.best_iter, tol=1e-12)
        assert last.best_iter == res.best_iter and abs(last.mse - res.mse) <= 1e-12 * res.mse


def test_levenberg_marquardt_polish_of_mad_lm(kdv_model):
    fam, train, test, dec, Z, _ = kdv_model
    z0, _ = nearest_latent(train.U0, Z, test.U0[1])
    adam = finetune(dec, fam.x, test.U0[1], z0, "LM", lr=1e-3, max_iters=100, tol=1e-12)
    both = finetune(dec, fam.x, test.U0[1], z0, "LM", lr=1e-3, max_iters=100, tol=1e-12, lm_iters=30)
    u = reconstruct(both.decoder, fam.x, both.z[None])[0]
    assert abs(float(((u - test.U0[1]) ** 2).mean()) - both.mse) <= 1e-10 * both.mse
    # measured: 3.8e-5 after 100 Adam steps, 1.0e-8 after 30 more Levenberg-Marquardt steps on (z, theta)
    assert both.mse < 1e-2 * adam.mse and both.lm_iters == 30 and not torch.equal(both.z, adam.z)
    # MAD-L: Levenberg-Marquardt on the latent alone (a Gauss-Newton step in latent space) leaves theta as is
    lat = finetune(dec, fam.x, test.U0[1], z0, "L", lr=1e-2, max_iters=100, tol=1e-12)
    lat_lm = finetune(dec, fam.x, test.U0[1], z0, "L", lr=1e-2, max_iters=100, tol=1e-12, lm_iters=30)
    assert lat_lm.mse < lat.mse and lat_lm.decoder is dec and lat_lm.lm_iters > 0


def test_pretraining_time_adds_up_over_resumes(tmp_path):
    fam = make_family("kdv", 4, seed=0, n_grid=32)
    ck = tmp_path / "ck.pt"
    kw = dict(adam_iters=40, lbfgs_iters=5, lr=1e-2, progress=False, checkpoint=ck, checkpoint_every=20)
    stop = {"at": 25}

    def interrupt(i, loss):
        if i == stop["at"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(_decoder(fam.box), fam.x, fam.U0, callback=interrupt, **kw)
    first = read_checkpoint(ck)["extra"]["seconds"]
    _, rep = pretrain(_decoder(fam.box), fam.x, fam.U0, **kw)
    assert rep.resumed and rep.seconds > first > 0 and rep.seconds == pytest.approx(first + rep.seconds_this_run)
    before = ck.read_bytes()
    _, again = pretrain(_decoder(fam.box), fam.x, fam.U0, **kw)   # finished: loaded, not re-saved
    assert again.seconds == rep.seconds and again.seconds_this_run < rep.seconds and ck.read_bytes() == before


def test_a_checkpoint_without_its_stage_is_refused_not_taken_as_finished(tmp_path):
    """A checkpoint whose ``stage`` field is missing must not be read as a finished pretraining."""
    from madng_lite.io import CheckpointError, save_checkpoint

    fam = make_family("kdv", 4, seed=0, n_grid=32)
    ck = tmp_path / "ck.pt"
    kw = dict(adam_iters=20, lbfgs_iters=0, lr=1e-2, progress=False, checkpoint=ck, checkpoint_every=10)
    dec = _decoder(fam.box)
    pretrain(dec, fam.x, fam.U0, **kw)
    saved = read_checkpoint(ck)
    extra = {k: v for k, v in saved["extra"].items() if k != "stage"}
    save_checkpoint(ck, dec, saved["latents"], saved["config"], extra)   # a valid file, no stage
    with pytest.raises(CheckpointError, match="records no pretraining stage"):
        pretrain(_decoder(fam.box), fam.x, fam.U0, **kw)
    # and other settings are refused, naming the field
    with pytest.raises(CheckpointError, match=r"differ in \['lam'\]"):
        pretrain(_decoder(fam.box), fam.x, fam.U0, lam=0.5, **kw)


def test_pca_initial_latents_start_from_the_encoder_and_key_the_checkpoint(tmp_path):
    """``z_init="pca"``: pretraining starts from the data's principal coordinates; a checkpoint
    made with random latents is not resumed by a PCA run (and the unknown option is named)."""
    from madng_lite.io import CheckpointError
    from madng_lite.manifold import PCAEncoder

    fam = make_family("kdv", 6, seed=0, n_grid=32)
    Z, _ = pretrain(_decoder(fam.box), fam.x, fam.U0, adam_iters=0, lbfgs_iters=0, progress=False, z_init="pca")
    assert torch.equal(Z, PCAEncoder.fit(fam.U0, 5).encode(fam.U0))
    ck = tmp_path / "ck.pt"
    kw = dict(adam_iters=10, lbfgs_iters=0, lr=1e-2, progress=False, checkpoint=ck)
    pretrain(_decoder(fam.box), fam.x, fam.U0, **kw)
    with pytest.raises(CheckpointError, match="z_init"):
        pretrain(_decoder(fam.box), fam.x, fam.U0, z_init="pca", **kw)
    with pytest.raises(ValueError, match="unknown z_init 'encoder'"):
        pretrain(_decoder(fam.box), fam.x, fam.U0, z_init="encoder", **kw)


def test_refinement_lowers_the_training_error_and_keys_the_checkpoint(tmp_path):
    """``refine_rounds``: latents by LM, then L-BFGS on both, a few rounds after L-BFGS. The rounds lower
    the training error of a small AC2D family below where Adam and L-BFGS left it, reproducibly; a
    checkpoint made without them is not taken for a refined one. (Whether they beat the same time
    spent in more L-BFGS is a question for the full-size family: benchmarks/latent_ntrain_study.py.)"""
    from madng_lite.io import CheckpointError

    fam = make_family("ac2d", 10, seed=0, n_grid=10)
    kw = dict(lam=0.05, adam_iters=150, lbfgs_iters=50, lr=1e-2, progress=False, normalize=True, z_init="pca")
    rel = {}
    for rounds in (0, 3, 3):
        dec = Decoder(fam.box, latent_dim=9, width=16, depth=2, seed=0)
        Z, rep = pretrain(dec, fam.x, fam.U0, refine_rounds=rounds, refine_lm=10, refine_lbfgs=20, **kw)
        direct = (reconstruct(dec, fam.x, Z) - fam.U0).norm(dim=1) / fam.U0.norm(dim=1)
        assert float(direct.mean()) == pytest.approx(rep.mean_rel, rel=1e-10)   # the returned Z is the fitted one
        assert rep.refine_rounds == rounds and rep.summary()["refine_rounds"] == rounds
        if rounds in rel:
            assert rep.mean_rel == rel[rounds]          # deterministic
        rel[rounds] = rep.mean_rel
    assert rel[3] < 0.85 * rel[0], rel   # measured: 0.068 without, 0.050 with three rounds
    ck = tmp_path / "ck.pt"
    pretrain(Decoder(fam.box, latent_dim=9, width=16, depth=2, seed=0), fam.x, fam.U0, checkpoint=ck,
             **dict(kw, adam_iters=10, lbfgs_iters=0))
    with pytest.raises(CheckpointError, match="refine_rounds"):
        pretrain(Decoder(fam.box, latent_dim=9, width=16, depth=2, seed=0), fam.x, fam.U0, checkpoint=ck,
                 refine_rounds=1, **dict(kw, adam_iters=10, lbfgs_iters=0))
    with pytest.raises(ValueError, match="refine_rounds, refine_lm, refine_lbfgs >= 0"):
        pretrain(Decoder(fam.box, latent_dim=9, width=16, depth=2, seed=0), fam.x, fam.U0, refine_lm=-1, **kw)
