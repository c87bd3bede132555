"""Many queries at once: evolve B samples by Neural Galerkin in one batched integration (book: Chapter 4).

After fine-tuning, each sample has its own weights ``theta_b`` (its latent folded into the bias,
:meth:`madng_lite.decoder.Decoder.fold_latent`) and its own PDE coefficients, but all share one
architecture. So every stage of B time steps can be done as batched tensor operations: the
forward pass with its x-derivatives as ``bmm`` over ``(B, units, n)`` blocks, the Jacobians as one
``(B, n, p)`` tensor (or ``(B, n, s)`` columns, a draw per sample), the Gram matrices, Cholesky
factorisations and solves as batched LAPACK calls. On a CPU the samples go through in groups whose
Jacobians fit in a core's cache (:func:`auto_chunk`), into buffers reused from stage to stage: one
``(B, n, p)`` tensor for all of them spills to memory and runs slower than a loop of single runs.
Each sample draws its indices from its own generator, exactly as
:class:`madng_lite.galerkin.NeuralGalerkin` with the same seed would, so a sample's trajectory is
the one of a single run, up to the rounding of the batched products.
1-D problems, fixed activations, RK4; a sample whose state stops being finite is frozen and
reported (its row of ``diverged_at``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from . import points as pts
from .decoder import Decoder
from .derivatives import FastMLP, max_order
from .sparse import draw_indices

__all__ = ["BatchedMLP", "auto_chunk", "evolve_batch"]


class BatchedMLP:
    """u, its x-derivatives and Jacobian columns for B weight vectors of one latent-free decoder."""

    def __init__(self, dec: Decoder) -> None:
        if dec.latent_dim != 0 or dec.dim != 1 or not dec.has_fast_path:
            raise ValueError("BatchedMLP needs a 1-D decoder without latent (fold it) and a fixed activation")
        self.dec = dec
        ref = FastMLP(dec, fused=False)   # the global column maps of J
        self.g_index, self.h_index = ref.g_index, ref.h_index
        self.g_off, self.h_off, self.h_ones = ref.g_off, ref.h_off, ref.h_ones
        self.g_rows, self.h_rows = ref.g_rows, ref.h_rows
        self.sizes = [(lin.out_features, lin.in_features) for lin in dec.layers]

    def weights(self, Theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(W_l (B, out, in), b_l (B, out))]`` views of the rows of ``Theta`` (B, p)."""
        out, i = [], 0
        for o, n_in in self.sizes:
            W = Theta[:, i:i + o * n_in].reshape(-1, o, n_in)
            i += o * n_in
            out.append((W, Theta[:, i:i + o]))
            i += o
        return out

    def forward(self, Theta: Tensor, x: Tensor, requires: tuple[str, ...], need_jac: bool = False):
        """Named derivatives, each ``(B, n)``, and (``need_jac``) the state for :meth:`jac`."""
        order = max_order(requires, 1)
        B, n = Theta.shape[0], x.shape[0]
        phis = self.dec.embedding.directional(x, order)
        h = phis[0].T.expand(B, -1, -1)                                   # (B, F, n)
        tang = torch.stack(phis[1:])[:, :, 0, :].transpose(1, 2) if order else None   # (order, F, n)
        W = self.weights(Theta)
        HT = GT = None
        s1s = []
        if need_jac:
            HT = torch.empty(B, self.h_rows, n, dtype=x.dtype, device=x.device)
            HT[:, self.h_ones] = 1.0
            HT[:, : self.h_off[1] - 1] = h
        for li, ((w, b), act) in enumerate(zip(W[:-1], self.dec.acts)):
            a = torch.baddbmm(b[:, :, None], w, h)
            s = act.derivs(a, max(order, 1) if (order or need_jac) else 0)
            h = s[0]
            if order:
                at = torch.matmul(w[:, None], tang)                         # (B, order, out, n)
                new = [s[1] * at[:, 0]]
                if order >= 2:
                    new.append(s[2] * at[:, 0] ** 2 + s[1] * at[:, 1])
                if order >= 3:
                    new.append(s[3] * at[:, 0] ** 3 + 3 * s[2] * at[:, 0] * at[:, 1] + s[1] * at[:, 2])
                tang = torch.stack(new, dim=1)
            if need_jac:
                HT[:, self.h_off[li + 1]: self.h_off[li + 2] - 1] = h
                s1s.append(s[1])
        wl, bl = W[-1]
        out = {"u": torch.baddbmm(bl[:, :, None], wl, h)[:, 0]}
        for m, name in zip(range(order), ("ux", "uxx", "uxxx")):
            out[name] = torch.bmm(wl, tang[:, m])[:, 0]
        state = {}
        if need_jac:
            GT = torch.empty(B, self.g_rows, n, dtype=x.dtype, device=x.device)
            GT[:, -1] = 1.0
            for l in range(len(W) - 2, -1, -1):
                g_next = GT[:, self.g_off[l + 1]: self.g_off[l + 2]]
                GT[:, self.g_off[l]: self.g_off[l + 1]] = torch.bmm(W[l + 1][0].transpose(1, 2), g_next) * s1s[l]
            state = {"GT": GT, "HT": HT}
        return {k: v for k, v in out.items() if k in requires}, state

    def jac(self, state: dict, cols: Tensor | None = None) -> Tensor:
        """``J`` per sample, ``(B, n, p)``, or the columns ``cols`` (B, s) of each, ``(B, n, s)``."""
        return self.jac_t(state, cols).transpose(1, 2)

    def jac_t(self, state: dict, cols: Tensor | None = None, out: Tensor | None = None,
              scratch: Tensor | None = None) -> Tensor:
        """``J^T`` per sample, contiguous ``(B, p, n)`` (or ``(B, s, n)`` for ``cols``): each column of
        ``J`` a row, the layout in which the Gram matrix ``J^T J`` is one ``bmm``. ``out`` and
        ``scratch`` (that shape) are reused instead of fresh tensors when given."""
        GT, HT = state["GT"], state["HT"]
        if cols is None:
            gi, hj = self.g_index.to(GT.device), self.h_index.to(HT.device)
            A = torch.index_select(GT, 1, gi, out=out) if out is not None else GT.index_select(1, gi)
            H = torch.index_select(HT, 1, hj, out=scratch) if scratch is not None else HT.index_select(1, hj)
            return A.mul_(H)
        n = GT.shape[2]
        gi = self.g_index.to(GT.device)[cols][:, :, None].expand(-1, -1, n)
        hj = self.h_index.to(HT.device)[cols][:, :, None].expand(-1, -1, n)
        A = torch.gather(GT, 1, gi, out=out) if out is not None else torch.gather(GT, 1, gi)
        H = torch.gather(HT, 1, hj, out=scratch) if scratch is not None else torch.gather(HT, 1, hj)
        return A.mul_(H)


def _ridge(At: Tensor, f: Tensor, ridge: float, gram: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The ridge solve of :func:`madng_lite.solve.lstsq_solve` for each of B systems ``J = At^T``
    (``At`` (B, s, n)); and which failed. ``gram`` ((B, s, s) or (B, n, n)) is reused when given."""
    B, s, n = At.shape
    if s <= n:
        M, rhs = torch.bmm(At, At.transpose(1, 2), out=gram), torch.bmm(At, f[:, :, None])[:, :, 0]
    else:
        M, rhs = torch.bmm(At.transpose(1, 2), At, out=gram), f
    lam = ridge * torch.diagonal(M, dim1=1, dim2=2).sum(dim=1) / s
    M.diagonal(dim1=1, dim2=2).add_(lam[:, None])
    L, info = torch.linalg.cholesky_ex(M)
    y = torch.cholesky_solve(rhs[:, :, None], L)[:, :, 0]
    return (y if s <= n else torch.bmm(At, y[:, :, None])[:, :, 0]), info != 0


def auto_chunk(B: int, cols: int, n: int, device: torch.device | str, budget: int = 4 << 20) -> int:
    """Samples per batched call: all ``B`` on a GPU; on a CPU as many as keep one chunk's ``J``
    (``cols x n`` float64 values per sample) within ``budget`` bytes, the size of a core's cache: a
    ``J`` that spills out of it costs more time per sample than the loop it replaces
    (``benchmarks/batch_bench.py --evolve-steps``; book: Chapter 5)."""
    if torch.device(device).type != "cpu":
        return B
    return max(1, min(B, budget // max(1, 8 * cols * n)))


@torch.no_grad()
def evolve_batch(dec: Decoder, Theta0: Tensor, pdes: list, T: float, dt: float, t_eval: Tensor,
                 n_points: int = 1000, sparse: int | None = None, ridge: float = 1e-8,
                 seeds: list[int] | None = None, blowup: float = 1e4, chunk: int | None = None) -> dict:
    """RK4 Neural Galerkin for the B rows of ``Theta0`` (B, p) of the latent-free ``dec``, each with its
    own PDE; the settings mean what they mean in :class:`~madng_lite.galerkin.NeuralGalerkin`.

    ``chunk``: samples per batched call (default :func:`auto_chunk`: all of them on a GPU, a
    cache-sized group on a CPU); it changes the speed, not the arithmetic of a sample (at most
    the rounding of its batched products).
    Returns ``thetas`` (B, len(t_eval), p) and ``diverged_at`` (B,; NaN where the run finished).
    """
    B, p = Theta0.shape
    if len(pdes) != B or (seeds is not None and len(seeds) != B):
        raise ValueError(f"need one PDE (and seed) per row of Theta0: {B} rows, {len(pdes)} PDEs")
    if sparse is not None and not 1 <= sparse <= p:
        raise ValueError(f"sparse must be between 1 and p = {p}, got {sparse}")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    n_steps = int(round(T / dt))
    if abs(n_steps * dt - T) > 1e-9 * T:
        raise ValueError(f"T = {T} is not a multiple of dt = {dt}")
    eval_steps = torch.round(torch.as_tensor(t_eval, dtype=torch.float64) / dt).long().tolist()
    eng = BatchedMLP(dec)
    dtype, dev = Theta0.dtype, Theta0.device
    x = pts.grid(dec.box, n_points, dtype, dev)
    gens = [torch.Generator().manual_seed(int(s)) for s in (seeds or [0] * B)]
    requires = tuple(sorted(set().union(*(q.requires for q in pdes)), key=("u", "ux", "uxx", "uxxx").index))
    theta = Theta0.clone()
    alive = torch.ones(B, dtype=torch.bool)
    diverged = torch.full((B,), math.nan, dtype=torch.float64)
    out = torch.full((B, len(eval_steps), p), math.nan, dtype=dtype, device=dev)

    u_limit = blowup * eng.forward(theta, x, ("u",))[0]["u"].abs().amax(dim=1).cpu()

    n_cols = p if sparse is None else sparse
    c = chunk or auto_chunk(B, n_cols, n_points, dev)
    bufs: dict[int, tuple[Tensor, Tensor, Tensor]] = {}   # per chunk size: J^T, its scratch, the Gram

    def part(th: Tensor, cols: Tensor | None, qs: list, lim: Tensor) -> tuple[Tensor, Tensor]:
        d, st = eng.forward(th, x, requires, need_jac=True)
        f = torch.stack([q.rhs(x, {k: v[b] for k, v in d.items()}) for b, q in enumerate(qs)])
        m = th.shape[0]
        if m not in bufs:
            g = min(n_cols, n_points)
            bufs[m] = (torch.empty(m, n_cols, n_points, dtype=dtype, device=dev),
                       torch.empty(m, n_cols, n_points, dtype=dtype, device=dev),
                       torch.empty(m, g, g, dtype=dtype, device=dev))
        At, scratch, gram = bufs[m]
        eta, failed = _ridge(eng.jac_t(st, cols, out=At, scratch=scratch), f, ridge, gram)
        bad = (failed | ~torch.isfinite(eta).all(dim=1).cpu() | ~torch.isfinite(f).all(dim=1).cpu()
               | ~(d["u"].abs().amax(dim=1).cpu() <= lim))
        return eta, bad

    def stage(th: Tensor, cols: Tensor | None) -> tuple[Tensor, Tensor]:
        etas, bads = [], []
        for a in range(0, B, c):
            part_cols = None if cols is None else cols[a:a + c]
            eta, bad = part(th[a:a + c], part_cols, pdes[a:a + c], u_limit[a:a + c])
            etas.append(eta)
            bads.append(bad)
        eta, bad = torch.cat(etas), torch.cat(bads)
        return torch.where(bad.to(dev)[:, None], torch.zeros_like(eta), eta), bad

    for step in range(n_steps + 1):
        for k, s in enumerate(eval_steps):
            if s == step:
                out[alive, k] = theta[alive]
        if step == n_steps:
            break
        cols = None if sparse is None else torch.stack([draw_indices(p, sparse, g) for g in gens]).to(dev)
        k1, b1 = stage(theta, cols)
        k2, b2 = stage(_advance(theta, cols, 0.5 * dt * k1), cols)
        k3, b3 = stage(_advance(theta, cols, 0.5 * dt * k2), cols)
        k4, b4 = stage(_advance(theta, cols, dt * k3), cols)
        # the weights and the order of the sum as in NeuralGalerkin.step_fixed (same rounding)
        new = _advance(theta, cols, dt * (0 + (1 / 6) * k1 + (1 / 3) * k2 + (1 / 3) * k3 + (1 / 6) * k4))
        bad = (b1 | b2 | b3 | b4 | ~torch.isfinite(new).all(dim=1).cpu()) & alive
        diverged[bad] = step * dt
        alive &= ~bad
        theta = torch.where(alive.to(dev)[:, None], new, theta)
    return {"thetas": out, "diverged_at": diverged, "x": x}


def _advance(theta: Tensor, cols: Tensor | None, inc: Tensor) -> Tensor:
    if cols is None:
        return theta + inc
    return theta.scatter_add(1, cols, inc)
