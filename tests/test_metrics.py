"""Error metrics on numpy arrays and torch tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from madng_lite.metrics import mse, rel_l2

U = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0]])    # (time, space)
REF = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 1.0]])


def test_numpy_values():
    assert mse(U, REF) == pytest.approx(5.0 / 6.0)
    assert rel_l2(U, REF) == pytest.approx(np.sqrt(5.0 / 7.0))
    np.testing.assert_allclose(mse(U, REF, axis=1), [4.0 / 3.0, 1.0 / 3.0])
    np.testing.assert_allclose(rel_l2(U, REF, axis=1), [np.sqrt(4.0 / 6.0), 1.0])
    np.testing.assert_allclose(rel_l2(U[..., None], REF[..., None], axis=(1, 2)),
                               rel_l2(U, REF, axis=1))
    assert rel_l2(REF, REF) == 0.0 and isinstance(mse(U, REF), float | np.floating)


def test_torch_and_mixed_inputs():
    u = torch.tensor(U, requires_grad=True)
    out = rel_l2(u, REF, axis=1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), rel_l2(U, REF, axis=1))
    mse(u, torch.tensor(REF)).backward()
    np.testing.assert_allclose(u.grad.numpy(), 2 * (U - REF) / U.size)
    f32 = mse(torch.tensor(REF, dtype=torch.float32), U)
    assert f32.dtype == torch.float32 and float(f32) == pytest.approx(5.0 / 6.0)
    assert mse([1.0, 2.0], [1.0, 0.0]) == pytest.approx(2.0)   # lists work too


@pytest.mark.parametrize("u, ref, match", [
    (U, REF[:, :2], r"shape mismatch: u has shape \(2, 3\), ref has shape \(2, 2\)"),
    (U, REF.T, "shape mismatch"),
    (np.where(U == 3.0, np.nan, U), REF, "u has 1 non-finite"),
    (U, np.full_like(REF, np.inf), "ref has 6 non-finite"),
    (torch.tensor(U), torch.tensor([[np.nan] * 3] * 2), "ref has 6 non-finite"),
])
def test_errors(u, ref, match):
    with pytest.raises(ValueError, match=match):
        mse(u, ref)
    with pytest.raises(ValueError, match=match):
        rel_l2(u, ref)


def test_zero_reference_norm():
    with pytest.raises(ValueError, match="zero norm"):
        rel_l2(U, np.zeros_like(U))
    with pytest.raises(ValueError, match="zero norm"):
        rel_l2(torch.tensor(U), torch.tensor(REF * [[1.0], [0.0]]), axis=1)
