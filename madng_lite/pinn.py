"""MAD-PINN: the space-time auto-decoder baseline (book: Chapter 10, baselines).

Where MAD-NG learns a manifold of *initial conditions* and then evolves the weights in time,
MAD-PINN learns a manifold of whole *space-time solutions* ``u(x, t; z, theta)`` with the
physics-informed loss (METHOD.md section 1, the baseline of the paper). Per training sample ``i``
with PDE ``u_t = f_i(u, u_x, ...)``::

    L_i = mean_x (u(x, 0; z_i) - u0_i(x))^2 / sigma^2 + w_r mean_{(x,t)} (u_t - f_i)^2 / sigma_t^2
          + lam mean(z_i^2)

``sigma^2 = mean(u0^2)`` and ``sigma_t^2 = mean(f_i(u0_i)^2)`` make both terms dimensionless. Time
enters the same decoder as one more input beside the latent, scaled to ``tau = 2 t / T - 1``; the
space derivatives come from the Taylor-mode path of :class:`madng_lite.derivatives.FastMLP` and
``u_t`` from autograd through ``tau``. Pretraining optimises ``theta`` and every ``z_i`` (Adam);
a new sample fine-tunes ``z`` only (MAD-L), from the nearest training latent, on its initial
condition and its own residual. Collocation points are redrawn every iteration from ``seed``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import points as pts
from .decoder import Decoder
from .derivatives import FastMLP

__all__ = ["SpaceTimeAutoDecoder", "PinnReport"]


@dataclass
class PinnReport:
    """Losses and cost of a MAD-PINN pretraining or fine-tuning run."""

    seconds: float
    iters: int
    ic_mse: float                     # mean over samples of mean((u(x,0) - u0)^2)
    residual_rms: float               # sqrt(mean((u_t - f)^2)) at the last collocation draw
    history: list[float] = field(default_factory=list)


class SpaceTimeAutoDecoder:
    """A decoder ``u(x, t; z, theta)``: periodic embedding of ``x``, then ``[z, tau]``, then the MLP.

    Parameters
    ----------
    box, latent_dim, width, depth, n_freq, activation, seed : as :class:`Decoder`; the inner decoder
        takes ``latent_dim + 1`` extra inputs (the last is the scaled time ``tau``).
    T : the time horizon, mapped to ``tau = 1``.
    """

    def __init__(self, box: Sequence[tuple[float, float]], T: float, latent_dim: int = 8, width: int = 30,
                 depth: int = 3, n_freq: int = 1, activation: str = "tanh", seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.T, self.latent_dim = float(T), int(latent_dim)
        self.decoder = Decoder(box, latent_dim=latent_dim + 1, width=width, depth=depth, n_freq=n_freq,
                               activation=activation, seed=seed, dtype=dtype)
        if not self.decoder.has_fast_path:
            raise ValueError(f"MAD-PINN needs an activation with closed-form derivatives, got {activation!r}")
        self.fast = FastMLP(self.decoder)
        self.params = list(self.decoder.parameters())

    @property
    def dim(self) -> int:
        return self.decoder.dim

    def to(self, device: torch.device | str) -> "SpaceTimeAutoDecoder":
        self.decoder.to(device)
        self.fast = FastMLP(self.decoder)
        self.params = list(self.decoder.parameters())
        return self

    def derivs(self, x: Tensor, t: Tensor, Z: Tensor, names: Sequence[str], need_ut: bool = False) -> dict[str, Tensor]:
        """Named x-derivatives (and ``ut``) at points ``x`` (m, d), times ``t`` (m,), latents ``Z`` (m, k)."""
        tau = (2.0 * t / self.T - 1.0).to(x)[:, None]
        if need_ut:
            tau = tau.detach().requires_grad_(True)
        theta = torch.cat([p.reshape(-1) for p in self.params])
        d = self.fast.forward(theta, x, torch.cat([Z.to(x), tau], dim=1), tuple(names))[0]
        if need_ut:
            (g,) = torch.autograd.grad(d["u"].sum(), tau, create_graph=True)
            d["ut"] = g[:, 0] * (2.0 / self.T)
        return d

    @torch.no_grad()
    def predict(self, x: Tensor, t_eval: Sequence[float], z: Tensor) -> Tensor:
        """``u(x, t; z)`` on the grid ``x`` at each time of ``t_eval``: shape ``(len(t_eval), n)``."""
        n = x.shape[0]
        Z = z.reshape(1, -1).expand(n, -1)
        return torch.stack([self.derivs(x, torch.full((n,), float(t), dtype=x.dtype, device=x.device), Z, ("u",))["u"]
                            for t in t_eval])

    # ----- the loss ------------------------------------------------------------------------------
    def _loss(self, x: Tensor, U0: Tensor, Z: Tensor, pdes: Sequence, n_colloc: int, w_res: float, lam: float,
              sig2: float, sig2_t: Tensor, gen: torch.Generator) -> tuple[Tensor, float, float]:
        N, n = U0.shape
        names = tuple(sorted(set().union(*(p.requires for p in pdes)) | {"u"}))
        # initial condition, every sample at once
        d0 = self.derivs(x.repeat(N, 1), torch.zeros(N * n, dtype=x.dtype, device=x.device),
                         Z.repeat_interleave(n, dim=0), ("u",))
        ic = ((d0["u"].reshape(N, n) - U0) ** 2).mean(dim=1)
        # residual at fresh collocation points (the same draw for every sample)
        xc = pts.uniform(self.decoder.box, n_colloc, gen, x.dtype).to(x.device)
        tc = (torch.rand(n_colloc, generator=gen, dtype=torch.float64) * self.T).to(x)
        d = self.derivs(xc.repeat(N, 1), tc.repeat(N), Z.repeat_interleave(n_colloc, dim=0), names, need_ut=True)
        res = []
        for i, pde in enumerate(pdes):
            sl = slice(i * n_colloc, (i + 1) * n_colloc)
            di = {k: v[sl] for k, v in d.items()}
            res.append(((di["ut"] - pde.rhs(xc, di)) ** 2).mean())
        res_t = torch.stack(res)
        loss = (ic / sig2 + w_res * res_t / sig2_t + lam * (Z**2).mean(dim=1)).mean()
        return loss, float(ic.detach().mean()), float(res_t.detach().mean().sqrt())

    def _scales(self, x: Tensor, U0: Tensor, pdes: Sequence) -> tuple[float, Tensor]:
        from .data import spectral_derivative

        sig2 = float((U0**2).mean().clamp_min(1e-300))
        if self.dim != 1:  # 2D: the Laplacian from the FFT along both axes is not needed, scale by u only
            return sig2, torch.full((len(pdes),), sig2, dtype=U0.dtype, device=U0.device)
        orders = {"ux": 1, "uxx": 2, "uxxx": 3}
        out = []
        for i, pde in enumerate(pdes):
            d = {"u": U0[i]}
            d.update({k: spectral_derivative(U0[i:i + 1], self.decoder.box[0], o)[0]
                      for k, o in orders.items() if k in pde.requires})
            out.append((pde.rhs(x, d) ** 2).mean().clamp_min(1e-300))
        return sig2, torch.stack(out)

    def pretrain(self, x: Tensor, U0: Tensor, pdes: Sequence, iters: int = 2000, lr: float = 1e-3,
                 n_colloc: int = 256, w_res: float = 1.0, lam: float = 0.01, seed: int = 0,
                 progress: bool = False) -> tuple[Tensor, PinnReport]:
        """Fit ``theta`` and one latent per row of ``U0`` (N, n) with the physics-informed loss."""
        self._check(x, U0, pdes)
        dtype = self.decoder.dtype
        x, U0 = x.to(dtype), U0.to(dtype)
        gen = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(U0.shape[0], self.latent_dim, generator=gen, dtype=torch.float64).to(x)
        Z = (0.1 * Z).requires_grad_(True)
        return Z, self._adam(self.params + [Z], Z, x, U0, pdes, iters, lr, n_colloc, w_res, lam, gen, progress,
                             "MAD-PINN pretrain")

    def finetune(self, x: Tensor, u0: Tensor, pde, z0: Tensor, iters: int = 1000, lr: float = 1e-2,
                 n_colloc: int = 256, w_res: float = 1.0, lam: float = 0.01, seed: int = 0,
                 progress: bool = False) -> tuple[Tensor, PinnReport]:
        """Fit the latent of a new sample ``u0`` (n,) (MAD-L: the weights stay fixed)."""
        U0 = u0.reshape(1, -1).to(self.decoder.dtype)
        self._check(x, U0, [pde])
        z = z0.detach().clone().reshape(1, -1).to(x).requires_grad_(True)
        gen = torch.Generator().manual_seed(int(seed))
        frozen = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)
        try:
            rep = self._adam([z], z, x.to(U0), U0, [pde], iters, lr, n_colloc, w_res, lam, gen, progress,
                             "MAD-PINN fine-tune")
        finally:
            for p, r in zip(self.params, frozen):
                p.requires_grad_(r)
        return z.detach()[0], rep

    def _adam(self, params, Z, x, U0, pdes, iters, lr, n_colloc, w_res, lam, gen, progress, desc) -> PinnReport:
        if iters < 0 or n_colloc < 1 or not lr > 0:
            raise ValueError(f"need iters >= 0, n_colloc >= 1 and lr > 0; got {iters}, {n_colloc}, {lr}")
        sig2, sig2_t = self._scales(x, U0, pdes)
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iters, 1), eta_min=lr / 100)
        t0, hist, ic, rr = time.perf_counter(), [], float("nan"), float("nan")
        bar = tqdm(range(iters), desc=desc, disable=not progress)
        for i in bar:
            opt.zero_grad()
            loss, ic, rr = self._loss(x, U0, Z, pdes, n_colloc, w_res, lam, sig2, sig2_t, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss became non-finite at iteration {i} (lower lr)")
            loss.backward()
            opt.step()
            sched.step()
            if i % 50 == 0 or i == iters - 1:
                hist.append(float(loss.detach()))
                bar.set_postfix(loss=f"{hist[-1]:.3e}")
        for p in params:
            p.grad = None
        return PinnReport(time.perf_counter() - t0, iters, ic, rr, hist)

    def _check(self, x: Tensor, U0: Tensor, pdes: Sequence) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if U0.ndim != 2 or U0.shape[1] != x.shape[0]:
            raise ValueError(f"U0 must have shape (N, {x.shape[0]}), got {tuple(U0.shape)}")
        if len(pdes) != U0.shape[0]:
            raise ValueError(f"need one PDE per sample: {len(pdes)} PDEs for {U0.shape[0]} samples")
        if not bool(torch.isfinite(U0).all()):
            raise ValueError("U0 has non-finite values")
        for p in pdes:
            if p.dim != self.dim:
                raise ValueError(f"PDE {p.name!r} is {p.dim}-D but the decoder is {self.dim}-D")
