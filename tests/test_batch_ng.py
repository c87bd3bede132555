"""B samples evolved at once (madng_lite.batch_ng) follow the single runs of NeuralGalerkin."""
from __future__ import annotations

import pytest
import torch

from madng_lite.batch_ng import BatchedMLP, evolve_batch
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP
from madng_lite.galerkin import NeuralGalerkin
from madng_lite.pdes import KdV, Burgers
from madng_lite import points

BOX = [(-1.0, 1.0)]


def _thetas(dec: Decoder, B: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    base = dec.flat_theta()
    return torch.stack([base + 0.05 * torch.randn(base.shape, generator=g, dtype=base.dtype) for _ in range(B)])


def test_batched_derivatives_and_jacobian_equal_the_fast_path():
    dec = Decoder(BOX, width=10, depth=3, n_freq=2, seed=0)
    Th = _thetas(dec, 4)
    x = points.grid(BOX, 37)
    eng, fast = BatchedMLP(dec), FastMLP(dec)
    names = ("u", "ux", "uxx", "uxxx")
    with torch.no_grad():
        d, st = eng.forward(Th, x, names, need_jac=True)
        cols = torch.stack([torch.randperm(dec.n_params, generator=torch.Generator().manual_seed(b))[:17]
                            for b in range(4)])
        Jc = eng.jac(st, cols)
        for b in range(4):
            ref, rst = fast.forward(Th[b], x, None, names, need_jac=True)
            for k in names:
                assert torch.allclose(d[k][b], ref[k], rtol=1e-12, atol=1e-12), k
            assert torch.allclose(eng.jac(st)[b], fast.jac(rst), rtol=1e-12, atol=1e-13)
            assert torch.allclose(Jc[b], fast.jac(rst, cols[b]), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("pdes,sparse", [([KdV(a=1.0, b=0.0025), KdV(a=1.0, b=0.002), KdV(a=1.0, b=0.003)], None),
                                         ([Burgers(nu=0.01), Burgers(nu=0.02), Burgers(nu=0.005)], 40)])
@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_batched_evolution_follows_the_single_runs(pdes, sparse, chunk):
    dec = Decoder(BOX, width=12, depth=2, n_freq=2, seed=1)
    Th = _thetas(dec, len(pdes))
    t_eval = torch.tensor([0.0, 0.01, 0.02])
    res = evolve_batch(dec, Th, pdes, T=0.02, dt=1e-3, t_eval=t_eval, n_points=200, sparse=sparse, ridge=1e-8,
                       seeds=[3, 4, 5], chunk=chunk)
    assert torch.isnan(res["diverged_at"]).all()
    for b, pde in enumerate(pdes):
        d = Decoder(BOX, width=12, depth=2, n_freq=2, seed=1)
        ng = NeuralGalerkin(d, pde, n_points=200, sparse=sparse, ridge=1e-8, seed=3 + b)
        one = ng.evolve(Th[b], 0.02, 1e-3, t_eval=t_eval, progress=False).thetas
        # the same single run with the reference derivative pass: same arithmetic, other rounding
        ng_ref = NeuralGalerkin(d, pde, n_points=200, sparse=sparse, ridge=1e-8, seed=3 + b)
        ng_ref.engine = FastMLP(d, fused=False)
        other = ng_ref.evolve(Th[b], 0.02, 1e-3, t_eval=t_eval, progress=False).thetas
        fast = FastMLP(d)
        with torch.no_grad():
            u = [torch.stack([fast.forward(th, ng.x, None)[0]["u"] for th in ths])
                 for ths in (res["thetas"][b], one, other)]
        # theta is not identifiable along the near-null space of J: the ridge solve amplifies rounding
        # there by its condition number, so theta agrees only to ~1e-8 between two single runs that
        # round differently; the function the weights represent agrees to ~1e-10. The batched run
        # must be as close to the single run as the single run is to itself, rounded differently.
        noise = float((u[2] - u[1]).norm() / u[1].norm())
        rel = float((u[0] - u[1]).norm() / u[1].norm())
        assert rel < 1e-9 and rel < 10 * noise + 1e-13, (b, rel, noise)


def test_a_diverging_sample_is_frozen_and_the_others_go_on():
    class Explosive:
        name, dim, requires = "explosive", 1, frozenset({"u"})

        def rhs(self, x, d):
            return 1e6 * d["u"]

    dec = Decoder(BOX, width=8, depth=2, seed=2)
    Th = _thetas(dec, 2)
    res = evolve_batch(dec, Th, [Burgers(nu=0.01), Explosive()], T=0.02, dt=0.01,
                       t_eval=torch.tensor([0.0, 0.01, 0.02]), n_points=64)
    assert torch.isnan(res["diverged_at"][0]) and float(res["diverged_at"][1]) >= 0
    assert torch.isfinite(res["thetas"][0]).all() and torch.isnan(res["thetas"][1, -1]).all()
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        evolve_batch(dec, Th, [Burgers(nu=0.01)] * 2, T=0.02, dt=0.01, t_eval=torch.tensor([0.0]), chunk=0)


def test_auto_chunk_keeps_a_chunk_of_jacobians_in_cache_on_a_cpu():
    from madng_lite.batch_ng import auto_chunk
    assert auto_chunk(64, 201, 1000, "cpu") == 2          # 1.6 MB per sample, 4 MiB budget
    assert auto_chunk(64, 4000, 1000, "cpu") == 1         # never fewer than one
    assert auto_chunk(3, 10, 100, "cpu") == 3             # never more than B
    assert auto_chunk(64, 201, 1000, "meta") == 64        # all at once off the CPU
