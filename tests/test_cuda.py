"""The engine on a GPU gives the CPU's numbers (skipped without CUDA)."""
import math

import pytest
import torch

from madng_lite.decoder import Decoder
from madng_lite.derivatives import NAMES_1D, FastMLP
from madng_lite.galerkin import NeuralGalerkin
from madng_lite.pdes import make_pde

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_fast_path_and_one_rk4_step_match_the_cpu():
    dec = Decoder([(0.0, 2 * math.pi)], width=16, depth=3, n_freq=2, seed=0)
    x = torch.rand(64, 1, dtype=torch.float64) * 2 * math.pi
    th = dec.flat_theta()
    cpu, st = FastMLP(dec).forward(th, x, None, NAMES_1D, need_jac=True)
    J = FastMLP(dec).jac(st)
    gdec = Decoder([(0.0, 2 * math.pi)], width=16, depth=3, n_freq=2, seed=0).cuda()
    gpu, gst = FastMLP(gdec).forward(th.cuda(), x.cuda(), None, NAMES_1D, need_jac=True)
    for k in NAMES_1D:
        assert torch.allclose(gpu[k].cpu(), cpu[k], rtol=1e-10, atol=1e-12)
    assert torch.allclose(FastMLP(gdec).jac(gst).cpu(), J, rtol=1e-10, atol=1e-12)
    pde = make_pde("allen_cahn", eps=5e-3, r=1.0)
    a = NeuralGalerkin(dec, pde, n_points=200, sparse=50, seed=1).evolve(th, 0.01, 0.01, progress=False)
    b = NeuralGalerkin(gdec, pde, n_points=200, sparse=50, seed=1).evolve(th.cuda(), 0.01, 0.01, progress=False)
    assert torch.allclose(a.thetas, b.thetas.cpu(), rtol=1e-8, atol=1e-10)
