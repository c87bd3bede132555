"""MAD-PINN: the space-time auto-decoder baseline (book: Chapter 9, baselines).

Where MAD-NG learns a manifold of *initial conditions* and then evolves the weights in time,
MAD-PINN learns a manifold of whole *space-time solutions* ``u(x, t; z, theta)`` with the
physics-informed loss (METHOD.md section 1, the baseline of the paper). Per sample ``i`` with PDE
``u_t = f_i(u, u_x, ...)``, the time axis ``[0, T]`` cut into ``M`` chunks::

    L_i = mean_x (u(x, 0; z_i) - u0_i(x))^2 / sigma^2
          + w_r (1/M) sum_k w_ik R_ik + lam mean(z_i^2),
    R_ik = mean_{(x, t) in chunk k} (u_t - f_i)^2 / sigma_ti^2,
    w_ik = exp(-eps sum_{j < k} R_ij)       (no gradient through w; w_i1 = 1)

``sigma^2 = mean(u0^2)`` (the data scale) and ``sigma_ti^2 = mean(f_i(u0_i)^2)`` (the scale of the
PDE right-hand side, at t = 0) make both terms dimensionless; ``w_ik`` is the causal weight of
Wang, Sankaran and Perdikaris (2022): a chunk's residual counts only once the chunks before it are
resolved (``M = 1`` or ``eps = 0``: the plain PINN loss). Time enters the decoder as one more input
beside the latent, scaled to ``tau = 2 t / T - 1``; the x-derivatives come from the Taylor-mode
path of :class:`madng_lite.derivatives.FastMLP` and ``u_t`` from autograd through ``tau``.

Training is Adam (collocation points redrawn every iteration, stratified over the chunks, all
from ``seed``), then optionally L-BFGS on one fixed draw (a deterministic loss) with the causal
weights frozen over blocks of ``lbfgs_block`` iterations. Pretraining optimises ``theta`` and every
``z_i``; a new sample fine-tunes ``z`` (MAD-L), or ``z`` and ``theta`` on a copy (MAD-LM), from the
nearest training latent, on its initial condition and its own residual.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import points as pts
from .decoder import Decoder
from .derivatives import FastMLP
from .fit import run_lbfgs

__all__ = ["SpaceTimeAutoDecoder", "PinnReport", "causal_weights", "model_for", "pretrain_for", "finetune_for"]


def causal_weights(chunk_res: Tensor, eps: float) -> Tensor:
    """``w_k = exp(-eps * sum_{j<k} R_j)`` along the last axis of ``chunk_res`` (no gradient)."""
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    before = torch.nn.functional.pad(torch.cumsum(chunk_res.detach(), dim=-1)[..., :-1], (1, 0))
    return torch.exp(-eps * before)


@dataclass
class PinnReport:
    """Losses and cost of a MAD-PINN pretraining or fine-tuning run.

    ``model`` is the decoder the returned latents belong to: the trained one itself, or the tuned
    copy when the weights were fine-tuned too.
    """

    seconds: float
    iters: int
    ic_mse: float                     # mean over samples of mean((u(x,0) - u0)^2)
    residual_rms: float               # sqrt(mean((u_t - f)^2)) at the last collocation draw
    history: list[float] = field(default_factory=list)
    lbfgs_iters: int = 0
    min_causal_weight: float = 1.0    # smallest w_ik at the end (1: every chunk counted in full)
    model: SpaceTimeAutoDecoder | None = None


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
        self._refresh()

    def _refresh(self) -> None:
        self.fast = FastMLP(self.decoder)
        self.params = list(self.decoder.parameters())

    @property
    def dim(self) -> int:
        return self.decoder.dim

    def to(self, device: torch.device | str) -> SpaceTimeAutoDecoder:
        self.decoder.to(device)
        self._refresh()
        return self

    def copy(self) -> SpaceTimeAutoDecoder:
        """An independent copy (its weights share no storage with this one)."""
        new = copy.copy(self)
        new.decoder = copy.deepcopy(self.decoder)
        new._refresh()
        return new

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
    def collocation(self, n_colloc: int, chunks: int, gen: torch.Generator, like: Tensor) -> tuple[Tensor, Tensor]:
        """``n_colloc`` points ``(x, t)``: ``x`` uniform in the box, ``t`` uniform in each of ``chunks``
        equal chunks of ``[0, T]`` in turn (``chunks = 1``: uniform in ``[0, T]``)."""
        xc = pts.uniform(self.decoder.box, n_colloc, gen, like.dtype).to(like.device)
        r = torch.rand(n_colloc, generator=gen, dtype=torch.float64)
        k = torch.arange(n_colloc) % chunks
        return xc, ((k + r) * (self.T / chunks)).to(like)

    def terms(self, x: Tensor, U0: Tensor, Z: Tensor, pdes: Sequence, xc: Tensor, tc: Tensor,
              chunks: int) -> tuple[Tensor, Tensor]:
        """Per sample: the initial-condition MSE (N,), and the residual MSE per time chunk (N, chunks)."""
        N, n = U0.shape
        names = tuple(sorted(set().union(*(p.requires for p in pdes)) | {"u"}))
        d0 = self.derivs(x.repeat(N, 1), torch.zeros(N * n, dtype=x.dtype, device=x.device),
                         Z.repeat_interleave(n, dim=0), ("u",))
        ic = ((d0["u"].reshape(N, n) - U0) ** 2).mean(dim=1)
        m = xc.shape[0]
        d = self.derivs(xc.repeat(N, 1), tc.repeat(N), Z.repeat_interleave(m, dim=0), names, need_ut=True)
        k = torch.clamp((tc * (chunks / self.T)).long(), 0, chunks - 1)
        count = torch.bincount(k, minlength=chunks).clamp_min(1).to(x)
        res = []
        for i, pde in enumerate(pdes):
            di = {key: v[i * m:(i + 1) * m] for key, v in d.items()}
            r2 = (di["ut"] - pde.rhs(xc, di)) ** 2
            res.append(torch.zeros(chunks, dtype=x.dtype, device=x.device).index_add(0, k, r2) / count)
        return ic, torch.stack(res)

    def loss(self, x: Tensor, U0: Tensor, Z: Tensor, pdes: Sequence, xc: Tensor, tc: Tensor, chunks: int = 1,
             eps: float = 0.0, w_res: float = 1.0, lam: float = 0.01, scales: tuple[float, Tensor] | None = None,
             w: Tensor | None = None, state: dict | None = None) -> Tensor:
        """The loss of the module docstring, averaged over the samples, at the points ``(xc, tc)``.

        ``scales``: ``(sigma^2, sigma_t^2)`` (default :meth:`scales` of ``U0``); ``w``: causal weights
        to use instead of those of the current residual; ``state`` receives the current weights and
        the terms' sizes."""
        sig2, sig2_t = self.scales(x, U0, pdes) if scales is None else scales
        ic, res = self.terms(x, U0, Z, pdes, xc, tc, chunks)
        r = res / sig2_t[:, None]
        now = causal_weights(r, eps)
        if state is not None:
            state.update(ic=float(ic.detach().mean()), rr=float(res.detach().mean().sqrt()),
                         wmin=float(now.min()), w=now)
        w = now if w is None else w
        return (ic / sig2 + w_res * (w * r).mean(dim=1) + lam * (Z**2).mean(dim=1)).mean()

    def scales(self, x: Tensor, U0: Tensor, pdes: Sequence) -> tuple[float, Tensor]:
        """``sigma^2 = mean(U0^2)`` over every sample, and ``sigma_ti^2 = mean(f_i(u0_i)^2)`` per sample
        (x-derivatives of ``u0`` by the FFT; in 2D the residual is scaled by ``sigma^2`` instead)."""
        from .data import spectral_derivative

        sig2 = float((U0**2).mean().clamp_min(1e-300))
        if self.dim != 1:
            return sig2, torch.full((len(pdes),), sig2, dtype=U0.dtype, device=U0.device)
        orders = {"ux": 1, "uxx": 2, "uxxx": 3}
        out = []
        for i, pde in enumerate(pdes):
            d = {"u": U0[i]}
            d.update({k: spectral_derivative(U0[i:i + 1], self.decoder.box[0], o)[0]
                      for k, o in orders.items() if k in pde.requires})
            out.append((pde.rhs(x, d) ** 2).mean().clamp_min(1e-300))
        return sig2, torch.stack(out)

    # ----- training ------------------------------------------------------------------------------
    def pretrain(self, x: Tensor, U0: Tensor, pdes: Sequence, iters: int = 2000, lr: float = 1e-3,
                 n_colloc: int = 256, w_res: float = 1.0, lam: float = 0.01, seed: int = 0,
                 progress: bool = False, lbfgs_iters: int = 0, chunks: int = 1, eps: float = 0.0,
                 lbfgs_block: int = 100, batch: int | None = None) -> tuple[Tensor, PinnReport]:
        """Fit ``theta`` and one latent per row of ``U0`` (N, n) with the physics-informed loss; each
        Adam step sees ``batch`` samples drawn from ``seed`` (``None``: all), L-BFGS sees all."""
        self._check(x, U0, pdes)
        dtype = self.decoder.dtype
        x, U0 = x.to(dtype), U0.to(dtype)
        gen = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(U0.shape[0], self.latent_dim, generator=gen, dtype=torch.float64).to(x)
        Z = (0.1 * Z).requires_grad_(True)
        rep = self._train(self.params + [Z], Z, x, U0, pdes, iters, lr, n_colloc, w_res, lam, gen, progress,
                          "MAD-PINN pretrain", lbfgs_iters, chunks, eps, lbfgs_block, batch)
        return Z, rep

    def finetune(self, x: Tensor, u0: Tensor, pde, z0: Tensor, iters: int = 1000, lr: float = 1e-2,
                 n_colloc: int = 256, w_res: float = 1.0, lam: float = 0.01, seed: int = 0,
                 progress: bool = False, lbfgs_iters: int = 0, chunks: int = 1, eps: float = 0.0,
                 lbfgs_block: int = 100, tune_theta: bool = False,
                 theta_lr: float | None = None) -> tuple[Tensor, PinnReport]:
        """Fit the latent of a new sample ``u0`` (n,) from ``z0``: MAD-L (the weights stay fixed) or,
        with ``tune_theta``, MAD-LM on a copy (Adam step ``theta_lr`` for the weights, default ``lr``);
        the decoder to predict with is ``report.model``. This model is never changed."""
        U0 = u0.reshape(1, -1).to(self.decoder.dtype)
        self._check(x, U0, [pde])
        if theta_lr is not None and not theta_lr > 0:
            raise ValueError(f"theta_lr must be > 0, got {theta_lr}")
        z = z0.detach().clone().reshape(1, -1).to(x).requires_grad_(True)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z0 must have {self.latent_dim} entries, got {z.shape[1]}")
        gen = torch.Generator().manual_seed(int(seed))
        model = self.copy() if tune_theta else self
        frozen = [p.requires_grad for p in model.params]
        for p in model.params:
            p.requires_grad_(tune_theta)
        groups = [{"params": [z]}]
        if tune_theta:
            groups.append({"params": model.params, "lr": lr if theta_lr is None else theta_lr})
        try:
            rep = model._train(groups, z, x.to(U0), U0, [pde], iters, lr, n_colloc, w_res, lam, gen, progress,
                               "MAD-PINN fine-tune", lbfgs_iters, chunks, eps, lbfgs_block)
        finally:
            for p, r in zip(model.params, frozen):
                p.requires_grad_(r)
        return z.detach()[0], rep

    def _train(self, params, Z, x, U0, pdes, iters, lr, n_colloc, w_res, lam, gen, progress, desc,
               lbfgs_iters, chunks, eps, lbfgs_block, batch=None) -> PinnReport:
        if iters < 0 or lbfgs_iters < 0 or n_colloc < 1 or not lr > 0 or w_res < 0 or lbfgs_block < 1:
            raise ValueError(f"need iters, lbfgs_iters, w_res >= 0, n_colloc, lbfgs_block >= 1 and lr > 0; got "
                             f"{iters}, {lbfgs_iters}, {w_res}, {n_colloc}, {lbfgs_block}, {lr}")
        if not 1 <= chunks <= n_colloc:
            raise ValueError(f"chunks must be between 1 and n_colloc = {n_colloc}, got {chunks}")
        N = U0.shape[0]
        batch = N if batch is None else int(batch)
        if not 1 <= batch <= N:
            raise ValueError(f"batch must be between 1 and the {N} samples, got {batch}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be finite and >= 0, got {eps}")
        sig2, sig2_t = self.scales(x, U0, pdes)
        state = {"ic": float("nan"), "rr": float("nan"), "wmin": 1.0}

        def loss_fn(xc: Tensor, tc: Tensor, w: Tensor | None = None, idx: Tensor | None = None) -> Tensor:
            if idx is None:
                return self.loss(x, U0, Z, pdes, xc, tc, chunks, eps, w_res, lam, (sig2, sig2_t), w, state)
            return self.loss(x, U0[idx], Z[idx], [pdes[i] for i in idx.tolist()], xc, tc, chunks, eps, w_res,
                             lam, (sig2, sig2_t[idx]), w, state)

        t0, hist = time.perf_counter(), []
        if iters > 0:
            opt = torch.optim.Adam(params, lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters, eta_min=lr / 100)
            bar = tqdm(range(iters), desc=desc, disable=not progress)
            for i in bar:
                opt.zero_grad()
                idx = None if batch == N else torch.randperm(N, generator=gen)[:batch].sort().values
                loss = loss_fn(*self.collocation(n_colloc, chunks, gen, x), idx=idx)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: the loss became non-finite at iteration {i} (lower lr)")
                loss.backward()
                opt.step()
                sched.step()
                if i % 50 == 0 or i == iters - 1:
                    hist.append(float(loss.detach()))
                    bar.set_postfix(loss=f"{hist[-1]:.3e}", w_min=f"{state['wmin']:.2f}")
        flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
        done = budget = 0
        if lbfgs_iters > 0:
            xc, tc = self.collocation(n_colloc, chunks, gen, x)   # one fixed draw: a deterministic loss
            hist.append(float(loss_fn(xc, tc).detach()))
            while budget < lbfgs_iters:
                block = min(lbfgs_block, lbfgs_iters - budget)
                w = state["w"]            # the causal weights at the current parameters, frozen over the block
                k = run_lbfgs(flat, lambda: loss_fn(xc, tc, w), block)
                done, budget = done + k, budget + block
                hist.append(float(loss_fn(xc, tc, w).detach()))
                if not math.isfinite(hist[-1]):
                    raise FloatingPointError(f"{desc}: L-BFGS reached a non-finite loss")
                if k < block and state["wmin"] > 0.99:
                    break                                        # converged, every chunk counted in full
        for p in flat:
            p.grad = None
        return PinnReport(time.perf_counter() - t0, iters, state["ic"], state["rr"], hist, done,
                          state["wmin"], self)

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


# ----- from a run configuration (the ``pinn_*`` fields of madng_lite.pipeline.config.RunConfig) ----
def model_for(cfg, box: Sequence[tuple[float, float]], seed: int) -> SpaceTimeAutoDecoder:
    """The space-time decoder of a run: ``pinn_width/depth/n_freq``, 0 meaning the MAD decoder's."""
    return SpaceTimeAutoDecoder(box, cfg.T, latent_dim=cfg.latent_dim, width=cfg.pinn_width or cfg.width,
                                depth=cfg.pinn_depth or cfg.depth, n_freq=cfg.pinn_n_freq or cfg.n_freq, seed=seed)


def pretrain_for(cfg, st: SpaceTimeAutoDecoder, x: Tensor, U0: Tensor, pdes: Sequence, seed: int,
                 progress: bool = False) -> tuple[Tensor, PinnReport]:
    """:meth:`SpaceTimeAutoDecoder.pretrain` with a run's settings."""
    return st.pretrain(x, U0, pdes, iters=cfg.pinn_iters, lr=cfg.pinn_lr, n_colloc=cfg.pinn_colloc,
                       w_res=cfg.pinn_w_res, lam=cfg.lam, seed=seed, progress=progress,
                       lbfgs_iters=cfg.pinn_lbfgs_iters, chunks=cfg.pinn_chunks, eps=cfg.pinn_eps,
                       batch=min(cfg.pinn_batch, U0.shape[0]) or None)


def finetune_for(cfg, st: SpaceTimeAutoDecoder, x: Tensor, u0: Tensor, pde, z0: Tensor, seed: int,
                 progress: bool = False) -> tuple[Tensor, PinnReport]:
    """:meth:`SpaceTimeAutoDecoder.finetune` with a run's settings (predict with ``report.model``)."""
    return st.finetune(x, u0, pde, z0, iters=cfg.pinn_ft_iters, lr=cfg.pinn_ft_lr,
                       n_colloc=cfg.pinn_ft_colloc or cfg.pinn_colloc, w_res=cfg.pinn_w_res, lam=cfg.lam,
                       seed=seed, progress=progress, lbfgs_iters=cfg.pinn_ft_lbfgs_iters, chunks=cfg.pinn_chunks,
                       eps=cfg.pinn_eps, tune_theta=cfg.pinn_ft_theta, theta_lr=cfg.pinn_ft_theta_lr)
