"""u, its x-derivatives, and the Jacobian ``J = du/dtheta`` (book: Chapters 4 and 6).

Two paths compute the same numbers:

* the **generic path** (:func:`derivs_generic`, :func:`jacobian_generic`) uses ``torch.func``
  (``jacfwd``/``jacrev``/``vmap``) on any network: clear and general, used for teaching and as
  the reference in tests;
* the **fast path** (:class:`FastMLP`) is specific to :class:`~madng_lite.decoder.Decoder` with a
  fixed activation: x-derivatives are pushed forward layer by layer (Taylor mode), and ``J`` is
  built from one batched backward pass as outer products ``du/dW_l[i, j] = g_l[:, i] h_{l-1}[:, j]``,
  so any subset of its columns costs two gathers and one product.

Derivative names: 1D ``"u", "ux", "uxx", "uxxx"``; 2D ``"u", "ux", "uy", "uxx", "uyy", "lap"``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch.func import functional_call, jacfwd, jacrev, vmap

from .decoder import Decoder

NAMES_1D = ("u", "ux", "uxx", "uxxx")
NAMES_2D = ("u", "ux", "uy", "uxx", "uyy", "lap")


def max_order(requires: Iterable[str], dim: int) -> int:
    """Highest pure x-derivative order needed for the derivative names ``requires``."""
    known = NAMES_1D if dim == 1 else NAMES_2D
    order = 0
    for r in requires:
        if r not in known:
            raise ValueError(f"unknown derivative {r!r} for dim {dim}; known: {known}")
        order = max(order, {"u": 0, "ux": 1, "uy": 1, "uxx": 2, "uyy": 2, "lap": 2, "uxxx": 3}[r])
    if dim > 1 and order > 2:
        raise ValueError("third derivatives are implemented in 1D only")
    return order


def _name_derivs(d0: Tensor, dk: list[Tensor], requires: Iterable[str], dim: int) -> dict[str, Tensor]:
    """Map ``d0`` (n,) and pure derivatives ``dk[m-1]`` (n, d) of order m to their names."""
    out: dict[str, Tensor] = {}
    for r in requires:
        if r == "u":
            out[r] = d0
        elif dim == 1:
            out[r] = dk[len(r) - 2][:, 0]
        elif r == "lap":
            out[r] = dk[1].sum(1)
        else:
            out[r] = dk[len(r) - 2][:, 0 if r[1] == "x" else 1]
    return out


def _check_x(dec: Decoder, x: Tensor) -> None:
    if x.ndim != 2 or x.shape[1] != dec.dim:
        raise ValueError(f"x must have shape (n, {dec.dim}), got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------
# generic path: torch.func
# ---------------------------------------------------------------------------------------------
def _scalar_fn(dec: Decoder, z: Tensor | None):
    def u(theta: Tensor, xi: Tensor) -> Tensor:
        zi = None if z is None else z.reshape(1, -1)
        return functional_call(dec, dec.unflatten(theta), (xi.reshape(1, -1), zi)).reshape(())
    return u


def derivs_generic(dec: Decoder, theta: Tensor, x: Tensor, z: Tensor | None,
                   requires: Iterable[str]) -> dict[str, Tensor]:
    """Named x-derivatives of u by nested ``torch.func.jacfwd`` (any network)."""
    _check_x(dec, x)
    requires = tuple(requires)
    order = max_order(requires, dec.dim)
    u = _scalar_fn(dec, z)
    fns = [lambda xi: u(theta, xi)]
    for _ in range(order):
        prev = fns[-1]
        fns.append(jacfwd(prev))
    d0 = vmap(fns[0])(x)
    dk = []
    for m in range(1, order + 1):
        full = vmap(fns[m])(x)  # (n, d, d, ..., d) with m axes
        idx = torch.arange(dec.dim)
        dk.append(full[(slice(None),) + (idx,) * m])  # pure derivatives along each axis
    return _name_derivs(d0, dk, requires, dec.dim)


def jacobian_generic(dec: Decoder, theta: Tensor, x: Tensor, z: Tensor | None,
                     cols: Tensor | None = None) -> Tensor:
    """``J[k, j] = du(x_k)/dtheta_j`` by ``vmap(jacrev)``; ``cols`` selects columns afterwards."""
    _check_x(dec, x)
    J = vmap(jacrev(_scalar_fn(dec, z)), in_dims=(None, 0))(theta, x)
    return J if cols is None else J[:, cols]


# ---------------------------------------------------------------------------------------------
# fast path: Taylor-mode forward, batched backward, outer-product Jacobian
# ---------------------------------------------------------------------------------------------
class FastMLP:
    """Fast derivatives and Jacobian columns for a :class:`Decoder` with a fixed activation.

    Usage: ``st = fast.forward(theta, x, z, requires, need_jac=True)`` runs the forward pass once
    and keeps what the Jacobian needs; ``fast.jac(st, cols)`` then builds any set of columns.
    """

    def __init__(self, dec: Decoder) -> None:
        if not dec.has_fast_path:
            raise ValueError(f"the fast path needs a fixed activation (tanh, sin, softplus), not {dec.activation_name!r}")
        self.dec = dec
        # global column maps: theta index c -> (row in stacked g, row in stacked [h, 1])
        gi, hj = [], []
        g_off = h_off = 0
        for lin in dec.layers:
            o, i = lin.weight.shape
            rows = torch.arange(o).repeat_interleave(i)
            colsw = torch.arange(i).repeat(o)
            gi += [g_off + rows, g_off + torch.arange(o)]
            hj += [h_off + colsw, torch.full((o,), h_off + i)]
            g_off += o
            h_off += i + 1
        self.g_index = torch.cat(gi)
        self.h_index = torch.cat(hj)
        # row offsets of each layer's block in G^T and H^T
        outs = [lin.out_features for lin in dec.layers]
        ins = [lin.in_features + 1 for lin in dec.layers]
        self.g_off = [sum(outs[:i]) for i in range(len(outs) + 1)]
        self.h_off = [sum(ins[:i]) for i in range(len(ins) + 1)] + [sum(ins) + 1]
        self.g_rows, self.h_rows = self.g_off[-1], self.h_off[-2]
        self.h_ones = torch.tensor([o - 1 for o in self.h_off[1:-1]])
        assert self.g_index.numel() == dec.n_params

    def forward(self, theta: Tensor, x: Tensor, z: Tensor | None, requires: Iterable[str] = ("u",),
                need_jac: bool = False) -> tuple[dict[str, Tensor], dict]:
        """Named derivatives of u at ``x`` and, if ``need_jac``, the state for :meth:`jac`."""
        dec = self.dec
        _check_x(dec, x)
        requires = tuple(requires)
        order = max_order(requires, dec.dim)
        n, d = x.shape
        # everything is kept transposed, (units, n): the layer maps are W @ h, and the rows of
        # G^T and H^T that the Jacobian gathers are contiguous
        phis = dec.embedding.directional(x, order)
        W = dec.weights(theta)
        state: dict = {}
        # in-place kernels save allocations but cannot be differentiated: use them only when no
        # gradient flows (time stepping); training (the Sobolev fit) takes the functional branch
        inplace = not (torch.is_grad_enabled() and (theta.requires_grad or x.requires_grad
                                                      or (z is not None and torch.is_tensor(z) and z.requires_grad)))
        if need_jac and not inplace:
            raise ValueError("the Jacobian state is built without autograd: call under torch.no_grad()")
        if need_jac:
            # H^T = [h_0; 1; h_1; 1; ...] and G^T = [g_1; ...; g_L], written in place as we go
            HT = torch.empty(self.h_rows, n, dtype=x.dtype, device=x.device)
            HT[self.h_ones] = 1.0
            h = HT[: self.h_off[1] - 1]
            h.copy_(dec.features(x, z).T)
        else:
            h = dec.features(x, z).T
        # tangents: (order, d, units, n), the pure derivatives of order 1..order along each axis
        tang = None
        if order:
            tang = torch.nn.functional.pad(torch.stack(phis[1:]).permute(0, 2, 3, 1), (0, 0, 0, dec.latent_dim))
        hs, s1s = [h], []
        for li, ((w, b), act) in enumerate(zip(W[:-1], dec.acts)):
            a = torch.addmm(b[:, None], w, h)
            out_h = HT[self.h_off[li + 1]: self.h_off[li + 2] - 1] if need_jac else None
            s = act.derivs(a, max(order, 1) if (order or need_jac) else 0, out=out_h)
            h = s[0]
            if order and not inplace:
                at = torch.matmul(w, tang)
                new = [s[1] * at[0]]
                if order >= 2:
                    new.append(s[2] * at[0] ** 2 + s[1] * at[1])
                if order >= 3:
                    new.append(s[3] * at[0] ** 3 + 3 * s[2] * at[0] * at[1] + s[1] * at[2])
                tang = torch.stack(new)
            elif order:
                at = torch.matmul(w, tang)  # (order, d, out, n)
                new = torch.empty_like(at)
                torch.mul(s[1], at[0], out=new[0])
                if order >= 2:
                    torch.mul(at[0].square_() if order == 2 else at[0].square(), s[2], out=new[1])
                    new[1].addcmul_(s[1], at[1])
                if order >= 3:
                    t3 = (at[0] ** 3).mul_(s[3])
                    t3.addcmul_(at[0] * at[1], s[2], value=3.0).addcmul_(s[1], at[2])
                    new[2] = t3
                tang = new
            hs.append(h)
            if need_jac:
                s1s.append(s[1])
        wl, bl = W[-1]
        u = torch.addmm(bl[:, None], wl, h)[0]
        dk = [] if tang is None else list(torch.matmul(wl, tang)[:, :, 0, :].transpose(1, 2))  # each (n, d)
        out = _name_derivs(u, dk, requires, dec.dim)
        if need_jac:
            # backward: g_L = 1, g_l = (W_{l+1}^T g_{l+1}) * s'(a_l), each (units, n)
            GT = torch.empty(self.g_rows, n, dtype=x.dtype, device=x.device)
            GT[-1] = 1.0
            for l in range(len(W) - 2, -1, -1):
                g_next = GT[self.g_off[l + 1]: self.g_off[l + 2]]
                torch.mul(W[l + 1][0].T @ g_next, s1s[l], out=GT[self.g_off[l]: self.g_off[l + 1]])
            state["GT"], state["HT"] = GT, HT
        return out, state

    def jac(self, state: dict, cols: Tensor | None = None) -> Tensor:
        """Columns ``cols`` of ``J`` (all of them when ``None``), shape ``(n, len(cols))``."""
        gi, hj = self.g_index, self.h_index
        if cols is not None:
            gi, hj = gi[cols], hj[cols]
        GT, HT = state["GT"], state["HT"]
        return (GT.index_select(0, gi.to(GT.device)) * HT.index_select(0, hj.to(HT.device))).T

    def col_norms2(self, state: dict) -> Tensor:
        """Squared column norms ``||J[:, c]||^2`` for all c, in ``O(n width^2)`` without forming J."""
        # sum_k G[k, i]^2 H[k, j]^2 for the (i, j) pairs of each column
        full = state["GT"] ** 2 @ (state["HT"] ** 2).T  # (sum out, sum in+1)
        return full[self.g_index.to(full.device), self.h_index.to(full.device)]


def derivs(dec: Decoder, theta: Tensor, x: Tensor, z: Tensor | None, requires: Iterable[str]) -> dict[str, Tensor]:
    """Named derivatives by the fast path when available, else the generic one."""
    if dec.has_fast_path:
        return FastMLP(dec).forward(theta, x, z, requires)[0]
    return derivs_generic(dec, theta, x, z, requires)


def jacobian(dec: Decoder, theta: Tensor, x: Tensor, z: Tensor | None, cols: Tensor | None = None) -> Tensor:
    """``J`` (or chosen columns) by the fast path when available, else the generic one."""
    if dec.has_fast_path:
        f = FastMLP(dec)
        return f.jac(f.forward(theta, x, z, ("u",), need_jac=True)[1], cols)
    return jacobian_generic(dec, theta, x, z, cols)
