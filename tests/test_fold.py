"""Folding the frozen latent into the first-layer bias (Decoder.fold_latent): same function, no redundant columns."""
from __future__ import annotations

import pytest
import torch

from madng_lite import points
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP


@pytest.mark.parametrize("box,act", [([(-1.0, 1.0)], "tanh"), ([(0.0, 1.0), (0.0, 1.0)], "sin")])
def test_folding_keeps_the_function_and_drops_exactly_redundant_columns(box, act):
    dec = Decoder(box, latent_dim=4, width=10, depth=3, n_freq=2, activation=act, seed=1)
    with torch.no_grad():
        dec.layers[0].bias.normal_(generator=torch.Generator().manual_seed(3))
    z = torch.tensor([0.3, -1.2, 0.7, 0.05], dtype=torch.float64)
    x = points.grid(box, 40 if len(box) == 1 else 9)
    folded = dec.fold_latent(z)
    assert folded.latent_dim == 0 and folded.n_params == dec.n_params - 10 * 4
    names = ("u", "ux", "uxx") if len(box) == 1 else ("u", "ux", "lap")
    a = FastMLP(dec).forward(dec.flat_theta(), x, z, names)[0]
    b = FastMLP(folded).forward(folded.flat_theta(), x, None, names)[0]
    for k in names:
        assert torch.allclose(a[k], b[k], rtol=1e-13, atol=1e-13), k
    # the columns of W_z[i, j] are z_j times the column of b_1[i]: exactly redundant
    with torch.no_grad():
        f = FastMLP(dec)
        J = f.jac(f.forward(dec.flat_theta(), x, z, ("u",), need_jac=True)[1])
    F = dec.embedding.out_features
    W = J[:, : 10 * (F + 4)].reshape(-1, 10, F + 4)
    bias = J[:, 10 * (F + 4): 10 * (F + 4) + 10]
    for j in range(4):
        assert torch.allclose(W[:, :, F + j], z[j] * bias, rtol=0, atol=1e-14)
    # the folded Jacobian is the unfolded one without those columns
    keep = torch.ones(dec.n_params, dtype=torch.bool)
    keep[: 10 * (F + 4)].view(10, F + 4)[:, F:] = False
    with torch.no_grad():
        g = FastMLP(folded)
        Jf = g.jac(g.forward(folded.flat_theta(), x, None, ("u",), need_jac=True)[1])
    assert torch.allclose(Jf, J[:, keep], rtol=0, atol=1e-14)


def test_fold_errors():
    with pytest.raises(ValueError, match="no latent"):
        Decoder([(-1.0, 1.0)], width=4, depth=1).fold_latent(torch.zeros(1))
    with pytest.raises(ValueError, match="4 entries"):
        Decoder([(-1.0, 1.0)], latent_dim=4, width=4, depth=1).fold_latent(torch.zeros(3))
