"""u, its x-derivatives, and the Jacobian ``J = du/dtheta`` (book: Chapters 3 and 5).

Two paths compute the same numbers:

* the **generic path** (:func:`derivs_generic`, :func:`jacobian_generic`) uses ``torch.func``
  (``jacfwd``/``jacrev``/``vmap``) on any network: clear and general, used for teaching and as
  the reference in tests;
* the **fast path** (:class:`FastMLP`) is specific to :class:`~madng_lite.decoder.Decoder` with a
  fixed activation: x-derivatives are pushed forward layer by layer (Taylor mode), and ``J`` is
  built from one batched backward pass as outer products ``du/dW_l[i, j] = g_l[:, i] h_{l-1}[:, j]``,
  so any subset of its columns costs two gathers and one product. Its default **fused pass**
  (:meth:`FastMLP.forward_fused`, book: Chapter 5, Making it fast) does each layer in a few large
  operations on preallocated buffers; ``FastMLP(dec, fused=False)`` keeps the earlier reference
  pass (:meth:`FastMLP.forward_reference`), which also serves training (autograd).

Derivative names: 1D ``"u", "ux", "uxx", "uxxx"``; 2D ``"u", "ux", "uy", "uxx", "uyy", "lap"``.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.func import functional_call, jacfwd, jacrev, vmap

from .decoder import Decoder
from .embedding import PeriodicEmbedding

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
_tanh_backward = torch.ops.aten.tanh_backward  # v * (1 - t^2) in one kernel


def _embedding_rows(emb: PeriodicEmbedding, order: int) -> tuple[Tensor, Tensor]:
    """Row of ``[sin; cos](phases^T)`` and scale for every (feature, stream) of the fused pass.

    Stream 0 is the value, stream ``1 + (m - 1) d + j`` the pure derivative of order ``m`` along
    ``x_j``: ``d^m/dx_j^m (sin, cos)(w x_j) = w^m sin(w x_j + (c + m) pi / 2)`` with ``c = 0, 1``
    for (sin, cos), zero for the features of the other axes (book: Chapter 5, Making it fast).
    """
    d, K = emb.dim, emb.n_freq
    rows, scale = [], []
    for i in range(d):
        for k in range(K):
            for c in (0, 1):
                for st in range(1 + order * d):
                    m, j = (0, i) if st == 0 else (1 + (st - 1) // d, (st - 1) % d)
                    r = (c + m) % 4  # sin, cos, -sin, -cos
                    rows.append((r % 2) * d * K + i * K + k)
                    w = float(emb.omega[i, k])
                    scale.append(0.0 if j != i else (-1.0 if r >= 2 else 1.0) * w**m)
    return torch.tensor(rows), torch.tensor(scale, dtype=torch.float64)[:, None]


def _push_streams(s: list[Tensor], D: Tensor, H: Tensor) -> None:
    """Faa di Bruno on all derivative streams at once (book: Chapter 5, Making it fast).

    ``D`` holds ``a^(m)`` with shape ``(units, order, d, n)``, ``s = [s, s', s'', s''']`` of the
    layer's pre-activation; ``H`` (same shape) receives ``h^(m)``:
    ``h' = s' a'``, ``h'' = s' a'' + s'' a'^2``, ``h''' = s' a''' + a' (s''' a'^2 + 3 s'' a'')``.
    """
    order = D.shape[1]
    torch.mul(D, s[1][:, None, None], out=H)  # s' a^(m), every order and axis in one product
    if order >= 2:
        q = D[:, 0] * D[:, 0]
        H[:, 1].addcmul_(q, s[2][:, None])
    if order >= 3:
        r = torch.mul(q, s[3][:, None]).addcmul_(D[:, 1], s[2][:, None], value=3.0)
        H[:, 2].addcmul_(r, D[:, 0])


def _push_tanh(t: Tensor, D: Tensor, H: Tensor, q: Tensor) -> None:
    """:func:`_push_streams` for tanh, ``s' = 1 - t^2`` never formed (book: Chapter 5).

    From ``s'' = -2 t s'`` and ``s''' = (6 t^2 - 2) s'``: ``h^(m) = s' b_m`` with ``b_1 = a'``,
    ``b_2 = a'' - 2 t a'^2``, ``b_3 = a''' + a' ((6 t^2 - 2) a'^2 - 6 t a'')``. The ``b_m`` are
    formed in place in ``D`` (``q``: scratch for ``a'^2``), then one ``tanh_backward``
    (``v (1 - t^2)``) writes every ``h^(m)``.
    """
    order, tb = D.shape[1], t[:, None]
    if order >= 2:
        torch.mul(D[:, 0], D[:, 0], out=q)
    if order >= 3:
        r = torch.mul(t * t, 6.0).sub_(2.0)[:, None].mul(q).addcmul_(tb, D[:, 1], value=-6.0)
        D[:, 2].addcmul_(r, D[:, 0])
    if order >= 2:
        D[:, 1].addcmul_(tb, q, value=-2.0)
    _tanh_backward(D, t[:, None, None], grad_input=H)


class _State(dict):
    """Jacobian state of the fused pass; its ``GT`` and ``HT`` live in a reused workspace and
    stay valid as long as this dict is alive (a weak reference tells the workspace when it is free)."""


class _Workspace:
    """Buffers and views of the fused pass for one ``(n, order)``, cut once and reused.

    ``HT`` holds the values of every layer input (rows) at the ``n`` points (columns), with a row
    of ones per layer for the bias; the derivative streams of a layer input sit side by side in
    one ``(units, order d n)`` block, two blocks used in turn (the embedding's has its own);
    ``a``, ``ad`` receive the products of a layer; ``GT`` the backward pass (book: Chapter 5).
    """

    def __init__(self, fast: FastMLP, n: int, order: int, like: Tensor) -> None:
        dec, ho, go = fast.dec, fast.h_off, fast.g_off
        d, F = dec.dim, dec.embedding.out_features
        m = order * d  # derivative streams: d^k u / dx_j^k for k = 1..order, j = 1..d
        self.HT = like.new_empty(fast.h_rows, n)
        self.HT[fast.h_ones] = 1.0
        self.emb, self.latent = self.HT[:F], self.HT[F: F + dec.latent_dim]
        self.GT = like.new_empty(fast.g_rows, n)
        self.GT[-1] = 1.0
        self.wb = like.new_empty(fast.wb_index.numel())
        self.W = [w.view(s) for w, s in zip(self.wb.split([o * i for o, i in fast.wb_shapes]), fast.wb_shapes)]
        widths = [F] + [lin.out_features for lin in dec.layers[:-1]]  # inputs that carry derivatives
        self.Wd = [w[:, :k] for w, k in zip(self.W, widths)]  # no bias, no latent on the streams
        self.inp = [self.HT[ho[l]: ho[l + 1]] for l in range(len(dec.layers))]
        turns = [like.new_empty(max(widths), m * n) for _ in range(2)]
        self.Dz = [like.new_empty(F, m * n)] + [turns[l % 2][:k] for l, k in enumerate(widths[1:])]
        self.emb_d = self.Dz[0].view(F * m, n)
        self.a, self.ad, self.D, self.h, self.H, self.q, self.g = [], [], [], [], [], [], []
        shared: dict[int, tuple] = {}  # layers of one width share their product buffers
        for l, o in enumerate(widths[1:]):
            a, ad, q = shared.setdefault(o, (like.new_empty(o, n), like.new_empty(o, m * n), like.new_empty(o, d, n)))
            self.a.append(a)
            self.ad.append(ad)
            self.D.append(ad.view(o, order, d, n))
            self.h.append(self.HT[ho[l + 1]: ho[l + 2] - 1])
            self.H.append(self.Dz[l + 1].view(o, order, d, n))
            self.q.append(q)
            self.g.append(self.GT[go[l]: go[l + 1]])
        self.g.append(self.GT[go[-2]:])
        self.x = self.z = self.versions = None  # the x, z behind the embedding rows
        self.state: weakref.ref | None = None  # the last _State handed out

    def free(self) -> bool:
        return self.state is None or self.state() is None

    def embed(self, dec: Decoder, x: Tensor, z: Tensor | None, rows: Tensor, rows_d: Tensor, scale_d: Tensor) -> None:
        """Write the embedding, its derivatives and the latent (skipped when x and z are unchanged)."""
        versions = (x._version, z._version if torch.is_tensor(z) else None)
        if x is self.x and z is self.z and versions == self.versions and (z is None or torch.is_tensor(z)):
            return
        ph = dec.embedding.phases(x).reshape(x.shape[0], -1).T  # (d K, n)
        base = torch.cat((ph.sin(), ph.cos()))
        torch.index_select(base, 0, rows, out=self.emb)
        torch.index_select(base, 0, rows_d, out=self.emb_d).mul_(scale_d)
        if dec.latent_dim:
            self.latent.copy_(dec.features(x, z)[:, -dec.latent_dim:].T)
        self.x, self.z, self.versions = x, z, versions


class FastMLP:
    """Fast derivatives and Jacobian columns for a :class:`Decoder` with a fixed activation.

    Usage: ``st = fast.forward(theta, x, z, requires, need_jac=True)`` runs the forward pass once
    and keeps what the Jacobian needs; ``fast.jac(st, cols)`` then builds any set of columns.

    ``fused=True`` (default) runs :meth:`forward_fused` whenever no gradient flows (time
    stepping, prediction); ``fused=False`` keeps the reference pass :meth:`forward_reference`,
    which is also what runs under autograd (training). Both give the same numbers.
    """

    def __init__(self, dec: Decoder, fused: bool = True) -> None:
        if not dec.has_fast_path:
            raise ValueError(f"the fast path needs a fixed activation (tanh, sin, softplus), not {dec.activation_name!r}")
        self.dec, self.fused = dec, bool(fused)
        # global column maps: theta index c -> (row in stacked g, row in stacked [h, 1])
        gi, hj, wb = [], [], []
        g_off = h_off = t_off = 0
        for lin in dec.layers:
            o, i = lin.weight.shape
            rows = torch.arange(o).repeat_interleave(i)
            colsw = torch.arange(i).repeat(o)
            gi += [g_off + rows, g_off + torch.arange(o)]
            hj += [h_off + colsw, torch.full((o,), h_off + i)]
            # fused pass: theta -> the block [W_l | b_l] of each layer, all layers in one gather
            wb.append(torch.cat((t_off + torch.arange(o * i).view(o, i), t_off + o * i + torch.arange(o)[:, None]), 1))
            g_off += o
            h_off += i + 1
            t_off += o * (i + 1)
        self.g_index = torch.cat(gi)
        self.h_index = torch.cat(hj)
        self.wb_index = torch.cat([w.reshape(-1) for w in wb])
        self.wb_shapes = [tuple(w.shape) for w in wb]
        # row offsets of each layer's block in G^T and H^T
        outs = [lin.out_features for lin in dec.layers]
        ins = [lin.in_features + 1 for lin in dec.layers]
        self.g_off = [sum(outs[:i]) for i in range(len(outs) + 1)]
        self.h_off = [sum(ins[:i]) for i in range(len(ins) + 1)] + [sum(ins) + 1]
        self.g_rows, self.h_rows = self.g_off[-1], self.h_off[-2]
        self.h_ones = torch.tensor([o - 1 for o in self.h_off[1:-1]])
        self._consts: dict = {}
        self._ws_key: tuple = ()
        self._ws: list[_Workspace] = []
        self._scratch = torch.empty(0)
        assert self.g_index.numel() == dec.n_params

    def _on(self, x: Tensor, order: int) -> tuple[Tensor, ...]:
        """Index of ``[W_l | b_l]`` in theta, rows of the embedding, rows and scales of its
        derivative streams, on ``x``'s device (cached)."""
        key = (x.device, x.dtype, order)
        if key not in self._consts:
            rows, scale = _embedding_rows(self.dec.embedding, order)
            ns = 1 + order * self.dec.dim
            rows, scale = rows.view(-1, ns), scale.view(-1, ns)
            c = (self.wb_index, rows[:, 0], rows[:, 1:].reshape(-1), scale[:, 1:].reshape(-1, 1))
            self._consts[key] = tuple(t.to(x.device) for t in c[:3]) + (c[3].to(x),)
        return self._consts[key]

    def _workspace(self, x: Tensor, order: int) -> _Workspace:
        """A free workspace for ``x``'s size (two are kept for the last size: one per live state)."""
        key = (x.shape[0], order, x.dtype, x.device)
        if key != self._ws_key:
            self._ws_key, self._ws = key, []
        for ws in self._ws:
            if ws.free():
                return ws
        ws = _Workspace(self, x.shape[0], order, x)
        if len(self._ws) < 2:
            self._ws.append(ws)
        return ws

    def forward(self, theta: Tensor, x: Tensor, z: Tensor | None, requires: Iterable[str] = ("u",),
                need_jac: bool = False) -> tuple[dict[str, Tensor], dict]:
        """Named derivatives of u at ``x`` and, if ``need_jac``, the state for :meth:`jac`."""
        grad = torch.is_grad_enabled() and any(torch.is_tensor(v) and v.requires_grad for v in (theta, x, z))
        if self.fused and not grad:
            return self.forward_fused(theta, x, z, requires, need_jac)
        return self.forward_reference(theta, x, z, requires, need_jac)

    @torch.no_grad()
    def forward_fused(self, theta: Tensor, x: Tensor, z: Tensor | None, requires: Iterable[str] = ("u",),
                      need_jac: bool = False) -> tuple[dict[str, Tensor], dict]:
        """:meth:`forward` by the fused pass (book: Chapter 5, Making it fast); no autograd.

        Every derivative stream of a layer input (all orders, all axes) sits side by side in one
        matrix ``[h_x | h_xx | ...]``: a layer costs two products, ``[W | b] @ [h; 1]`` for the
        values and ``W @ [h_x | h_xx | ...]`` for all streams, one activation call (its
        derivatives follow from ``t = tanh(a)``) and two or three in-place products, written
        into buffers allocated once (:class:`_Workspace`). The values of all layers are ``H^T``.
        The state's tensors live in those buffers: they stay valid while the state dict is alive.
        """
        dec = self.dec
        _check_x(dec, x)
        requires = tuple(requires)
        order = max_order(requires, dec.dim)
        n, d = x.shape
        consts = self._on(x, order)
        ws = self._workspace(x, order)
        torch.index_select(theta, 0, consts[0], out=ws.wb)
        ws.embed(dec, x, z, *consts[1:])
        tanh = dec.activation_name == "tanh"
        s1 = []  # s'(a_l) of each hidden layer for the backward pass (tanh: t = tanh(a_l) instead)
        for l, act in enumerate(dec.acts):
            torch.mm(ws.W[l], ws.inp[l], out=ws.a[l])
            if order:
                torch.mm(ws.Wd[l], ws.Dz[l], out=ws.ad[l])
            if tanh:
                torch.tanh(ws.a[l], out=ws.h[l])
                if order:
                    _push_tanh(ws.h[l], ws.D[l], ws.H[l], ws.q[l])
                continue
            s = act.derivs(ws.a[l], max(order, int(need_jac)), out=ws.h[l])
            if order:
                _push_streams(s, ws.D[l], ws.H[l])
            s1.append(s[-1] if len(s) == 1 else s[1])
        # fresh outputs: they never alias the workspace
        u = torch.mm(ws.W[-1], ws.inp[-1])[0]
        dk = list(torch.mm(ws.Wd[-1], ws.Dz[-1]).view(order, d, n).transpose(1, 2)) if order else []
        out = _name_derivs(u, dk, requires, d)
        if not need_jac:
            return out, {}
        # backward: g_L = 1, g_l = (W_{l+1}^T g_{l+1}) * s'(a_l), each (units, n); the output
        # layer's W^T g_L is its weight row itself, broadcast over the points
        top = len(dec.acts) - 1
        for l in range(top, -1, -1):
            wT = ws.W[l + 1][:, :-1].T
            v = wT if l == top else torch.mm(wT, ws.g[l + 1], out=ws.g[l])
            if tanh:
                _tanh_backward(v, ws.h[l], grad_input=ws.g[l])
            else:
                torch.mul(v, s1[l], out=ws.g[l])
        state = _State(GT=ws.GT, HT=ws.HT)
        ws.state = weakref.ref(state)
        return out, state

    def forward_reference(self, theta: Tensor, x: Tensor, z: Tensor | None, requires: Iterable[str] = ("u",),
                          need_jac: bool = False) -> tuple[dict[str, Tensor], dict]:
        """:meth:`forward` by the reference pass: one stacked tensor of tangents per layer, updated
        by separate products (``fused=False``; also the autograd branch of the fused engine)."""
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
        gi, hj = gi.to(GT.device), hj.to(HT.device)
        if not self.fused:  # the reference, as before the fused engine
            return (GT.index_select(0, gi) * HT.index_select(0, hj)).T
        A = GT.index_select(0, gi)
        # the H rows go to a scratch buffer kept between calls: a fresh megabyte-sized temporary
        # costs a page fault per 4 KiB touched (glibc returns freed large blocks to the system)
        if self._scratch.shape != A.shape or self._scratch.dtype != A.dtype or self._scratch.device != A.device:
            self._scratch = torch.empty_like(A)
        return A.mul_(torch.index_select(HT, 0, hj, out=self._scratch)).T

    def col_norms2(self, state: dict) -> Tensor:
        """Squared column norms ``||J[:, c]||^2`` for all c, in ``O(n width^2)`` without forming J."""
        # sum_k G[k, i]^2 H[k, j]^2 for the (i, j) pairs of each column
        full = state["GT"] ** 2 @ (state["HT"] ** 2).T  # (sum out, sum in+1)
        return full[self.g_index.to(full.device), self.h_index.to(full.device)]


    def _blocks(self, state: dict):
        """``(G_l, H_l)`` of each layer: its backward signals ``(out, n)`` and inputs with a row of ones
        ``(in + 1, n)``; layer ``l``'s Jacobian columns are the products ``g_i * h_j`` (book: Chapter 5)."""
        GT, HT = state["GT"], state["HT"]
        return [(GT[self.g_off[l]: self.g_off[l + 1]], HT[self.h_off[l]: self.h_off[l + 1]])
                for l in range(len(self.dec.layers))]

    def dual_gram(self, state: dict) -> Tensor:
        """``J J^T`` (``n x n``) without forming ``J``: ``sum_l (G_l^T G_l) * (H_l^T H_l)`` (book: Chapter 5).

        A column of layer ``l`` is ``g_i * h_j``, so ``sum_{i, j} g_i(x) h_j(x) g_i(y) h_j(y)`` factors
        into ``(sum_i g_i(x) g_i(y)) (sum_j h_j(x) h_j(y))``: ``2 n^2 (out + in + 1)`` flops per layer
        instead of ``2 n^2 out (in + 1)``.
        """
        blocks = self._blocks(state)
        G, H = blocks[-1]   # the output layer: G is a row of ones, so its term is H^T H itself
        M = torch.mm(H.T, H) if G.shape[0] == 1 and bool((G == 1).all()) else torch.mm(G.T, G).mul_(torch.mm(H.T, H))
        a, b = torch.empty_like(M), torch.empty_like(M)
        for G, H in blocks[:-1]:
            M.addcmul_(torch.mm(G.T, G, out=a), torch.mm(H.T, H, out=b))
        return M

    def jac_t(self, state: dict, y: Tensor) -> Tensor:
        """``J^T y`` (``p``, theta's order) without forming ``J``: per layer ``(G_l diag(y)) H_l^T``."""
        parts = []
        for G, H in self._blocks(state):
            P = torch.mm(G * y, H.T)  # (out, in + 1): the weights' entries, then the bias column
            parts += [P[:, :-1].reshape(-1), P[:, -1]]
        return torch.cat(parts)


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
