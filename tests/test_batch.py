"""Many latents fine-tuned at once (madng_lite.batch.fit_latents) give the numbers of one at a time."""
from __future__ import annotations

import pytest
import torch

from madng_lite.batch import fit_latents, latent_chunk, screen_latents
from madng_lite.data import make_family
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample
from madng_lite.mad import nearest_latent, pretrain


@pytest.fixture(scope="module")
def model():
    fam = make_family("burgers", 14, seed=3, n_grid=32)
    train, test = fam.subset(range(8)), fam.subset(range(8, 14))
    dec = Decoder(fam.box, latent_dim=4, width=12, depth=2, seed=0)
    Z, rep = pretrain(dec, fam.x, train.U0, adam_iters=150, lbfgs_iters=0, lr=1e-2, progress=False, normalize=True)
    return fam, train, test, dec, Z, rep.data_scale


@pytest.mark.parametrize("lam,lm,chunk", [(0.0, 0, None), (0.01, 0, None), (0.01, 15, None), (0.01, 15, 1),
                                          (0.01, 15, 4)])
def test_batched_latents_equal_one_at_a_time(model, lam, lm, chunk):
    fam, train, test, dec, Z, scale = model
    Z0 = torch.stack([nearest_latent(train.U0, Z, u)[0] for u in test.U0])
    # a tolerance that some samples reach in Adam, some in LM and some never
    kw = dict(adam_iters=120, lr=2e-2, lm_iters=lm, tol=1.5e-2, lam=lam, data_scale=scale)
    batched = fit_latents(dec, fam.x, test.U0, Z0, chunk=chunk, **kw)   # chunk 4: two groups of 3
    ones = [fit_sample(dec, fam.x, u, z, train="z", **kw) for u, z in zip(test.U0, Z0)]
    for b, one in enumerate(ones):
        assert torch.allclose(batched["z"][b], one.z, rtol=1e-10, atol=1e-12), b
        assert abs(float(batched["mse"][b]) - one.mse) <= 1e-10 * one.mse, b
        assert bool(batched["reached"][b]) == one.reached
        assert int(batched["adam_iters"][b]) == one.iters["adam"] and int(batched["lm_iters"][b]) == one.iters["lm"]
        assert int(batched["iters_to_tol"][b]) == (-1 if one.iters_to_tol is None else one.iters_to_tol)
    reached = batched["reached"].tolist()
    assert any(reached) and (lm or not all(reached)), reached   # the case mixes stopping points


def test_latent_chunk():
    dec = Decoder(((-1.0, 1.0),), latent_dim=4, width=12, depth=2, seed=0)
    per_sample = 8 * 256 * (dec.layers[0].in_features + 12 + 12 + 1)   # bytes of one sample's forward state
    assert latent_chunk(dec, 100, 256, "cpu", budget=10 * per_sample) == 10
    assert latent_chunk(dec, 100, 256, "cpu", budget=per_sample - 1) == 1      # never below one sample
    assert latent_chunk(dec, 7, 256, "cpu", budget=10 * per_sample) == 7       # never above B
    assert latent_chunk(dec, 100, 256, "cuda") == 100                          # a GPU takes the whole batch


def test_bad_shapes(model):
    fam, train, test, dec, Z, scale = model
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        fit_latents(dec, fam.x, test.U0, Z[: len(test.U0)], chunk=0)
    with pytest.raises(ValueError, match="same B"):
        fit_latents(dec, fam.x, test.U0, Z[:2])
    with pytest.raises(ValueError, match="4 entries"):
        fit_latents(dec, fam.x, test.U0, torch.zeros(len(test.U0), 3))


def test_screened_start_is_the_best_short_fit_of_all_candidates(model):
    fam, train, test, dec, Z, scale = model
    u = test.U0[0]
    z, k, mse = screen_latents(dec, fam.x, u, Z, steps=3, lam=0.01, data_scale=scale)
    ones = [fit_sample(dec, fam.x, u, zc, train="z", adam_iters=0, lm_iters=3, tol=1e-300, lam=0.01,
                       data_scale=scale) for zc in Z]
    best = min(range(len(Z)), key=lambda i: ones[i].mse)
    assert k == best and abs(mse - ones[best].mse) <= 1e-10 * ones[best].mse
    assert torch.allclose(z, ones[best].z, rtol=1e-10, atol=1e-12)
    assert mse <= ones[nearest_latent(train.U0, Z, u)[1]].mse      # never worse than the nearest start
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        screen_latents(dec, fam.x, u, Z, steps=0)
    with pytest.raises(ValueError, match="candidate latents"):
        screen_latents(dec, fam.x, u, Z[0])
