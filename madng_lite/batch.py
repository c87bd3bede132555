"""Many queries at once: fine-tune B latents in one optimisation (book: Chapter 2, the auto-decoder).

MAD-L moves only the latent, and the weights theta are shared by every sample, so B new samples
are B independent problems that one forward pass can serve: the grid is repeated B times and
each copy gets its sample's latent as a per-point input (as in pretraining). Adam updates each
entry of ``Z`` from its own gradient, and each sample's loss depends on its own row only, so a
row of the batched run follows exactly the trajectory of a run on that sample alone, up to the
rounding of the larger matrix products. Each sample stops at the tolerance on its own (its row is
frozen from then on); the Levenberg-Marquardt phase solves the B small ``latent x latent``
Gauss-Newton systems as one batched Cholesky. :func:`fit_latents` returns what
:func:`madng_lite.fitting.fit_sample` (``train="z"``) returns, row by row.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from .decoder import Decoder
from .derivatives import FastMLP

__all__ = ["fit_latents", "latent_chunk", "screen_latents"]


def _forward(fast: FastMLP, theta: Tensor, x: Tensor, Z: Tensor, need_jac: bool = False):
    B, n = Z.shape[0], x.shape[0]
    d, st = fast.forward(theta, x.repeat(B, 1), Z.repeat_interleave(n, dim=0), ("u",), need_jac=need_jac)
    return d["u"].reshape(B, n), st


def latent_chunk(decoder: Decoder, B: int, n: int, device: torch.device | str, budget: int = 6 << 20) -> int:
    """Samples per batched call of :func:`fit_latents`: all ``B`` on a GPU; on a CPU as many as keep
    one chunk's forward state (``n`` points per sample, the network's input and every layer's
    output, float64) within ``budget`` bytes. A state that spills out of the cache costs more per
    sample than the batching saves: 20 LM steps on B = 100 samples of Burgers, AC1D and AC2D ran at
    2.9x, 3.0x and 1.4x the loop's throughput in such groups, 2.2x, 2.3x and 0.8x in one pass
    (``benchmarks/batch_bench.py --lm 20``, ``results/batch_bench_lm.json``; one pass: that file at
    commit 38e1d0c)."""
    if torch.device(device).type != "cpu":
        return B
    width = decoder.layers[0].in_features + sum(lin.out_features for lin in decoder.layers)
    return max(1, min(B, budget // max(1, 8 * n * width)))


def fit_latents(decoder: Decoder, x: Tensor, U0: Tensor, Z0: Tensor, adam_iters: int = 1000, lr: float = 1e-2,
                lm_iters: int = 0, tol: float = 1e-8, lam: float = 0.0, data_scale: float = 1.0,
                chunk: int | None = None) -> dict:
    """MAD-L for the rows of ``U0`` (B, n) from the latents ``Z0`` (B, latent), all at once.

    The rows are independent problems, so they go through in groups of ``chunk`` samples
    (``None``: :func:`latent_chunk`, all of them on a GPU); the grouping changes only rounding.
    Returns a dict of per-sample tensors: ``z`` (B, latent), ``mse`` (B,), ``reached`` (B,),
    ``adam_iters``, ``lm_iters`` and ``iters_to_tol`` (B,; -1 where never reached), and ``seconds``.
    """
    if U0.ndim != 2 or Z0.ndim != 2 or U0.shape[0] != Z0.shape[0] or U0.shape[1] != x.shape[0]:
        raise ValueError(f"need U0 (B, {x.shape[0]}) and Z0 (B, {decoder.latent_dim}) with the same B, got "
                         f"{tuple(U0.shape)} and {tuple(Z0.shape)}")
    if Z0.shape[1] != decoder.latent_dim:
        raise ValueError(f"latents must have {decoder.latent_dim} entries, got {Z0.shape[1]}")
    if min(adam_iters, lm_iters) < 0 or not tol > 0 or not data_scale > 0 or lam < 0:
        raise ValueError("need iterations >= 0, tol > 0, data_scale > 0 and lam >= 0")
    if not bool(torch.isfinite(U0).all()):
        raise ValueError("U0 has non-finite values")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer (or None), got {chunk!r}")
    t0 = time.perf_counter()
    B = Z0.shape[0]
    c = latent_chunk(decoder, B, x.shape[0], x.device) if chunk is None else min(chunk, B)
    c = -(-B // -(-B // c))   # as many groups as chunks of c need, of equal size (100 by 90: two of 50)
    parts = [_fit_chunk(decoder, x, U0[s:s + c], Z0[s:s + c], adam_iters, lr, lm_iters, tol, lam, data_scale)
             for s in range(0, B, c)]
    out = {k: torch.cat([q[k] for q in parts]) for k in parts[0]}
    out["seconds"] = time.perf_counter() - t0
    return out


def _fit_chunk(decoder: Decoder, x: Tensor, U0: Tensor, Z0: Tensor, adam_iters: int, lr: float, lm_iters: int,
               tol: float, lam: float, data_scale: float) -> dict:
    """:func:`fit_latents` for one group of samples, all in one batched optimisation."""
    dtype = decoder.dtype
    x, U0 = x.to(dtype), U0.to(x.device, dtype)
    B, nz = Z0.shape
    fast, theta = FastMLP(decoder), decoder.flat_theta()
    Z = Z0.detach().clone().to(x.device, dtype)
    it = torch.zeros(B, dtype=torch.long)
    to_tol = torch.full((B,), -1, dtype=torch.long)
    with torch.no_grad():
        mse = ((_forward(fast, theta, x, Z)[0] - U0) ** 2).mean(dim=1)
    best, best_mse = Z.clone(), mse.clone()
    active = mse >= tol
    to_tol[~active] = 0
    adam_done = torch.zeros(B, dtype=torch.long)
    if adam_iters and bool(active.any()):
        Zp = Z.clone().requires_grad_(True)
        opt = torch.optim.Adam([Zp], lr=lr)
        for _ in range(adam_iters):
            opt.zero_grad()
            u = _forward(fast, theta, x, Zp)[0]
            loss = ((u - U0) ** 2).sum(dim=1) / data_scale + (lam * (Zp**2).mean(dim=1) if lam > 0 else 0.0)
            loss.sum().backward()
            frozen = Zp.detach()[~active].clone()
            opt.step()
            with torch.no_grad():
                Zp[~active] = frozen
                adam_done += active
                it += active
                mse = ((_forward(fast, theta, x, Zp)[0] - U0) ** 2).mean(dim=1)
                better = active & (mse < best_mse)
                best[better], best_mse[better] = Zp[better], mse[better]
                hit = active & (mse < tol)
                to_tol[hit & (to_tol < 0)] = it[hit & (to_tol < 0)]
                active &= ~hit & torch.isfinite(mse)
            if not bool(active.any()):
                break
    Z = best.clone()
    lm_done = torch.zeros(B, dtype=torch.long)
    todo = best_mse >= tol
    if lm_iters and bool(todo.any()):
        _lm(fast, theta, x, U0, Z, best_mse, todo, lm_iters, lam, data_scale, it, to_tol, lm_done, tol)
    return {"z": Z, "mse": best_mse, "reached": best_mse < tol, "adam_iters": adam_done, "lm_iters": lm_done,
            "iters_to_tol": to_tol}


@torch.no_grad()
def _lm(fast: FastMLP, theta: Tensor, x: Tensor, U0: Tensor, Z: Tensor, mse: Tensor, todo: Tensor, iters: int,
        lam: float, data_scale: float, it: Tensor, to_tol: Tensor, steps: Tensor, tol: float) -> None:
    """Levenberg-Marquardt on the latents of the ``todo`` rows, in place (the steps of
    :func:`madng_lite.fitting.fit_sample` for ``train="z"``, one batched Cholesky per step)."""
    B, nz = Z.shape
    n = x.shape[0]
    w2 = lam / nz if lam > 0 else 0.0
    W1 = fast.dec.weights(theta)[0][0]
    eye = torch.eye(nz, dtype=Z.dtype, device=Z.device)

    def system(Zs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u, st = _forward(fast, theta, x, Zs, need_jac=True)
        r = (u - U0) / math.sqrt(data_scale)                                   # (B, n)
        J = (W1[:, W1.shape[1] - nz:].T @ st["GT"][: W1.shape[0]]).T.reshape(B, n, nz) / math.sqrt(data_scale)
        loss = (r**2).sum(dim=1) + w2 * (Zs**2).sum(dim=1)
        return r, J, loss

    Zc, cur = Z.clone(), mse.clone()   # the current iterate; Z and mse keep the best (lowest MSE) one
    r, J, loss = system(Zc)
    mu = torch.full((B,), 1e-3, dtype=Z.dtype, device=Z.device)
    active = todo.clone()
    for _ in range(iters):
        M = J.transpose(1, 2) @ J + w2 * eye
        rhs = (J.transpose(1, 2) @ r[:, :, None])[:, :, 0] + w2 * Zc
        lam_b = mu * torch.diagonal(M, dim1=1, dim2=2).sum(dim=1) / nz
        L, info = torch.linalg.cholesky_ex(M + lam_b[:, None, None] * eye)
        ok = active & (info == 0)
        mu[active & (info != 0)] = mu[active & (info != 0)] * 10
        d = torch.cholesky_solve(rhs[:, :, None], L)[:, :, 0]
        d[~ok] = 0.0
        steps += ok
        it += ok
        r_new, J_new, new = system(Zc - d)
        acc = ok & (new < loss)
        Zc[acc] -= d[acc]
        r[acc], J[acc], loss[acc] = r_new[acc], J_new[acc], new[acc]
        cur[acc] = ((r_new[acc] ** 2).mean(dim=1)) * data_scale
        mu[acc] = torch.clamp(mu[acc] / 3, min=1e-12)
        rej = ok & ~acc
        mu[rej] = torch.clamp(mu[rej] * 4, max=1e6)
        better = ok & (cur < mse)
        Z[better], mse[better] = Zc[better], cur[better]
        hit = ok & (cur < tol)
        to_tol[hit & (to_tol < 0)] = it[hit & (to_tol < 0)]
        active &= ~hit
        if not bool(active.any()):
            break


def screen_latents(decoder: Decoder, x: Tensor, u0: Tensor, Z: Tensor, steps: int = 20, lam: float = 0.0,
                   data_scale: float = 1.0) -> tuple[Tensor, int, float]:
    """The best start for MAD-L on ``u0`` among the candidate latents ``Z`` (K, latent), e.g. every
    training latent: ``steps`` Levenberg-Marquardt steps from each, all K at once
    (:func:`fit_latents`), and the fitted latent with the lowest MSE, its row and that MSE
    (book: Chapter 2, the auto-decoder).

    The training sample nearest to ``u0`` need not have the latent from which a fit of ``z`` alone
    goes furthest: the fit is not convex, and its nearest start can stall in a poor minimum. The
    default of 20 steps is the screen of ``benchmarks/latent_ntrain_study.py``, where 5 steps
    still picked starts that stall.
    """
    if Z.ndim != 2 or Z.shape[0] < 1:
        raise ValueError(f"need candidate latents Z (K, {decoder.latent_dim}) with K >= 1, got {tuple(Z.shape)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    u0 = u0.reshape(1, -1)
    r = fit_latents(decoder, x, u0.expand(Z.shape[0], -1), Z, adam_iters=0, lm_iters=steps, tol=1e-300,
                    lam=lam, data_scale=data_scale)
    k = int(torch.argmin(r["mse"]))
    return r["z"][k].clone(), k, float(r["mse"][k])
