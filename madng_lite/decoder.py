"""The decoder ``u(x; z, theta)``: periodic embedding, latent concatenated, MLP (book: Chapters 1-2).

``theta`` is every trainable parameter of the network; the latent ``z`` is an *input*, so the
Neural Galerkin integrator can freeze ``z`` and evolve ``theta`` as one flat vector
(:meth:`Decoder.flat_theta`, :meth:`Decoder.unflatten`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .embedding import Box, PeriodicEmbedding


class Rational(nn.Module):
    """Trainable rational activation ``P(a) / (1 + |Q(a)|)`` with degrees (3, 2), as in RSNG.

    Initialised close to tanh on [-3, 3]. Only the generic (``torch.func``) derivative path
    supports it, because its coefficients are part of ``theta``.
    """

    def __init__(self) -> None:
        super().__init__()
        # least-squares fit of tanh on [-3, 3] (max error 3.3e-3; see tests/test_derivatives.py)
        self.p = nn.Parameter(torch.tensor([0.0, 0.9939, 0.0, 0.0489]))
        self.q = nn.Parameter(torch.tensor([0.0, 0.3677]))

    def forward(self, a: Tensor) -> Tensor:
        p, q = self.p.to(a), self.q.to(a)
        num = p[0] + a * (p[1] + a * (p[2] + a * p[3]))
        den = 1.0 + torch.abs(a * (q[0] + a * q[1]))
        return num / den


class Smooth(nn.Module):
    """A fixed smooth activation with closed-form derivatives up to order 3 (for the fast path)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ("tanh", "sin", "softplus"):
            raise ValueError(f"unknown activation {name!r}; known: tanh, sin, softplus, rational")
        self.name = name

    def forward(self, a: Tensor) -> Tensor:
        return {"tanh": torch.tanh, "sin": torch.sin, "softplus": nn.functional.softplus}[self.name](a)

    def derivs(self, a: Tensor, order: int, out: Tensor | None = None) -> list[Tensor]:
        """``[s(a), s'(a), ..., s^(order)(a)]`` for ``order <= 3``; ``s(a)`` is written to ``out`` if given."""
        if order > 3:
            raise ValueError(f"activation derivatives are implemented up to order 3, asked {order}")
        if out is not None:
            if self.name == "softplus":
                out.copy_(nn.functional.softplus(a))
            else:
                (torch.tanh if self.name == "tanh" else torch.sin)(a, out=out)
        if order == 0:
            return [self.forward(a) if out is None else out]
        if self.name == "tanh":
            t = torch.tanh(a) if out is None else out
            s1 = 1 - t * t
            if order == 1:
                return [t, s1]
            s2 = -2 * t * s1
            if order == 2:
                return [t, s1, s2]
            res = [t, s1, s2, s1 * (4 * t * t - 2 * s1)]
        elif self.name == "sin":
            s = torch.sin(a) if out is None else out
            c = torch.cos(a)
            res = [s, c, -s, -c]
        else:
            g = torch.sigmoid(a)
            s2 = g * (1 - g)
            res = [nn.functional.softplus(a) if out is None else out, g, s2, s2 * (1 - 2 * g)]
        return res[: order + 1]


def make_activation(name: str) -> nn.Module:
    """An activation by name: ``tanh`` (default), ``sin``, ``softplus`` or ``rational``."""
    return Rational() if name == "rational" else Smooth(name)


class Decoder(nn.Module):
    """``u(x; z, theta) = W_L s(... s(W_1 [phi(x), z] + b_1) ...) + b_L``.

    Parameters
    ----------
    box : periodic box, one ``(a, b)`` per dimension.
    latent_dim : size ``n`` of the latent ``z`` (0 for a plain network).
    width, depth : hidden width and number of hidden layers.
    n_freq : frequencies of the periodic embedding per dimension.
    activation : ``tanh``, ``sin``, ``softplus`` or ``rational``.
    seed : seed of the weight initialisation (Xavier-normal weights, zero biases).
    dtype : parameter dtype (float64 by default: the time integrator needs it).
    """

    def __init__(self, box: Box, latent_dim: int = 0, width: int = 30, depth: int = 2, n_freq: int = 1,
                 activation: str = "tanh", seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if width < 1 or depth < 1 or latent_dim < 0:
            raise ValueError(f"need width >= 1, depth >= 1, latent_dim >= 0; got {width}, {depth}, {latent_dim}")
        self.embedding = PeriodicEmbedding(box, n_freq)
        self.latent_dim, self.width, self.depth = int(latent_dim), int(width), int(depth)
        self.activation_name = activation
        sizes = [self.embedding.out_features + self.latent_dim] + [width] * depth + [1]
        self.layers = nn.ModuleList(nn.Linear(i, o, dtype=dtype) for i, o in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(make_activation(activation) for _ in range(depth))
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for lin in self.layers:
                std = math.sqrt(2.0 / (lin.in_features + lin.out_features))
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) * std)
                lin.bias.zero_()
        self.to(dtype)

    @property
    def dim(self) -> int:
        return self.embedding.dim

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return self.embedding.box

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].weight.dtype

    def features(self, x: Tensor, z: Tensor | None) -> Tensor:
        """The first layer's input ``[phi(x), z]``, shape ``(n, F + latent_dim)``."""
        phi = self.embedding(x)
        if self.latent_dim == 0:
            return phi
        if z is None:
            raise ValueError(f"this decoder needs a latent z of size {self.latent_dim}")
        z = torch.as_tensor(z, dtype=phi.dtype, device=phi.device)
        if z.shape[-1] != self.latent_dim or z.ndim > 2:
            raise ValueError(f"z must have shape ({self.latent_dim},) or (n, {self.latent_dim}), got {tuple(z.shape)}")
        return torch.cat((phi, z.expand(phi.shape[0], -1)), dim=1)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """``u`` at points ``x`` (shape ``(n, d)``), returned with shape ``(n,)``."""
        h = self.features(x, z)
        for lin, act in zip(self.layers[:-1], self.acts):
            h = act(lin(h))
        return self.layers[-1](h).squeeze(-1)

    # ----- flat view of theta --------------------------------------------------------------
    def flat_theta(self) -> Tensor:
        """All parameters as one detached 1-D tensor (order of ``named_parameters``)."""
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of a flat ``theta`` shaped as the named parameters (for ``torch.func.functional_call``)."""
        if theta.ndim != 1 or theta.numel() != self.n_params:
            raise ValueError(f"theta must be 1-D with {self.n_params} entries, got shape {tuple(theta.shape)}")
        out, i = {}, 0
        for name, p in self.named_parameters():
            out[name] = theta[i:i + p.numel()].view_as(p)
            i += p.numel()
        return out

    @torch.no_grad()
    def load_flat(self, theta: Tensor) -> None:
        """Copy a flat ``theta`` into the parameters."""
        for name, v in self.unflatten(theta).items():
            self.get_parameter(name).copy_(v)

    def weights(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(W_l, b_l)]`` views of a flat theta (fast path; fixed activations only)."""
        d = self.unflatten(theta)
        return [(d[f"layers.{i}.weight"], d[f"layers.{i}.bias"]) for i in range(len(self.layers))]

    @torch.no_grad()
    def fold_latent(self, z: Tensor) -> "Decoder":
        """The same function of ``x`` with ``z`` frozen, as a decoder without latent input.

        The first layer sees ``[phi(x), z]``, so ``W_1 [phi; z] + b_1 = W_phi phi + (b_1 + W_z z)``:
        with ``z`` fixed, the weights ``W_z`` only shift the bias. Their Jacobian columns are
        ``z_j`` times the bias columns (exactly redundant), so Neural Galerkin evolves the folded
        network, whose parameters are the others (book: Chapter 3, Neural Galerkin).
        """
        if self.latent_dim == 0:
            raise ValueError("this decoder has no latent to fold")
        z = torch.as_tensor(z, dtype=self.dtype, device=self.layers[0].weight.device).reshape(-1)
        if z.shape[0] != self.latent_dim:
            raise ValueError(f"z must have {self.latent_dim} entries, got {z.shape[0]}")
        out = Decoder(self.box, 0, self.width, self.depth, self.embedding.n_freq, self.activation_name,
                      dtype=self.dtype).to(self.layers[0].weight.device)
        out.load_state_dict({k: v for k, v in self.state_dict().items() if not k.startswith("layers.0.")},
                            strict=False)
        F = self.embedding.out_features
        out.layers[0].weight.copy_(self.layers[0].weight[:, :F])
        out.layers[0].bias.copy_(self.layers[0].bias + self.layers[0].weight[:, F:] @ z)
        return out

    @property
    def has_fast_path(self) -> bool:
        """True when every activation is a fixed :class:`Smooth` one (no parameters)."""
        return all(isinstance(a, Smooth) for a in self.acts)
