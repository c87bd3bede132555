"""Fit one network to an initial condition, with derivative (Sobolev) terms (book: Chapter 3).

Neural Galerkin reads ``u_x, u_xx, ...`` of the network from ``t = 0`` on, so an initial fit of
``u`` alone is not enough: its derivatives can be percents off. The loss here is a sum of
relative mean-square errors of ``u`` and of the chosen derivatives; Adam first, then L-BFGS.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .decoder import Decoder
from .derivatives import FastMLP, derivs_generic, max_order


def callable_derivatives(fn: Callable[[Tensor], Tensor], x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
    """Derivatives of a closed-form ``fn(x) -> (n,)`` by autograd (1D names or 2D names)."""
    names = tuple(names)
    dim = x.shape[1]
    max_order(names, dim)
    x = x.detach().clone().requires_grad_(True)
    u = fn(x)
    out: dict[str, Tensor] = {"u": u}
    # pure derivatives along each axis, order by order
    cur = [u] * dim
    for m in range(1, 4):
        wanted = [nm for nm in names if nm != "u" and (len(nm) - 1 == m or (nm == "lap" and m == 2))]
        if not wanted:
            if m >= max(1, max(len(nm) - 1 if nm != "lap" else 2 for nm in names)):
                break
        cur = [torch.autograd.grad(c.sum(), x, create_graph=True)[0][:, j] for j, c in enumerate(cur)]
        for nm in wanted:
            if nm == "lap":
                out[nm] = sum(cur)
            else:
                out[nm] = cur[0 if dim == 1 or nm[1] == "x" else 1]
    return {k: v.detach() for k, v in out.items() if k in names}


@dataclass
class FitReport:
    """Relative L2 error per fitted quantity, wall time and iterations of each optimiser."""

    rel_errors: dict[str, float]
    seconds: float
    adam_iters: int
    lbfgs_iters: int
    lm_iters: int = 0


def _rel_errors(pred: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
    return {k: float(torch.linalg.norm(pred[k] - v) / torch.linalg.norm(v)) for k, v in targets.items()}


def fit_initial_condition(dec: Decoder, x: Tensor, targets: Mapping[str, Tensor], z: Tensor | None = None,
                          adam_iters: int = 2000, lbfgs_iters: int = 2000, lr: float = 1e-3,
                          weights: Mapping[str, float] | None = None, lm_iters: int = 0,
                          progress: bool = True) -> FitReport:
    """Fit ``dec`` (in place) so that its named derivatives at ``x`` match ``targets``.

    The loss is ``sum_k w_k mean((D_k u - target_k)^2) / mean(target_k^2)``; ``targets`` maps
    derivative names (``"u"``, ``"ux"``, ...) to values at ``x``.
    """
    for k, v in targets.items():
        if v.shape != (x.shape[0],):
            raise ValueError(f"target {k!r} must have shape ({x.shape[0]},), got {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"target {k!r} has non-finite values")
    names = tuple(targets)
    w = {k: 1.0 for k in names} if weights is None else dict(weights)
    scale = {k: float((v**2).mean()) or 1.0 for k, v in targets.items()}
    fast = FastMLP(dec) if dec.has_fast_path else None
    params = list(dec.parameters())

    def predict() -> dict[str, Tensor]:
        theta = torch.cat([p.reshape(-1) for p in params])
        if fast is not None:
            return fast.forward(theta, x, z, names)[0]
        return derivs_generic(dec, theta, x, z, names)

    def loss_fn() -> Tensor:
        pred = predict()
        return sum(w[k] * ((pred[k] - targets[k]) ** 2).mean() / scale[k] for k in names)

    t0 = time.perf_counter()
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(adam_iters, 1), eta_min=lr / 100)
    bar = tqdm(range(adam_iters), desc="fit (Adam)", disable=not progress)
    for i in bar:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        if i % 200 == 0:
            bar.set_postfix(loss=f"{loss.item():.2e}")
    done = run_lbfgs(params, loss_fn, lbfgs_iters) if lbfgs_iters > 0 else 0
    if lm_iters > 0:
        if fast is None:
            raise ValueError("Levenberg-Marquardt refinement needs the fast path (a fixed activation)")
        levenberg_marquardt(dec, x, targets["u"], z, lm_iters, progress=progress)
    with torch.no_grad():
        rel = _rel_errors(predict(), targets)
    return FitReport(rel, time.perf_counter() - t0, adam_iters, int(done), lm_iters)


def run_lbfgs(params: list[Tensor], loss_fn: Callable[[], Tensor], max_iter: int, tolerance_grad: float = 1e-15,
              tolerance_change: float = 1e-18) -> int:
    """Minimise ``loss_fn`` over ``params`` with strong-Wolfe L-BFGS; return the iterations done."""
    lb = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=50, tolerance_grad=tolerance_grad,
                           tolerance_change=tolerance_change, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        lb.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    lb.step(closure)
    return int(lb.state[lb._params[0]].get("n_iter", 0))


def levenberg_marquardt(dec: Decoder, x: Tensor, u_target: Tensor, z: Tensor | None = None, iters: int = 100,
                        mu: float = 1e-3, progress: bool = True, tol: float | None = None) -> float:
    """Minimise ``||u(x; z, theta) - u_target||^2`` over theta by Levenberg-Marquardt, in place.

    Each step solves ``(J^T J + lam I) d = J^T r`` with ``lam = mu * mean diag(J^T J)`` (primal or
    dual form, :func:`madng_lite.solve.lstsq_solve`); ``mu`` shrinks after a step that lowers the
    loss and grows after one that does not. Stops early once the mean squared error is below
    ``tol`` (if given). Returns the final relative L2 error. (The same steps as the last phase of
    :func:`madng_lite.fitting.fit_sample`, which can also move the latent.)
    """
    from .fitting import _lm_steps, _Tracker

    fast = FastMLP(dec)
    target = u_target.reshape(-1).to(x)
    track = _Tracker(tol if tol is not None else 0.0, ())
    with torch.no_grad():
        track.see(float(((fast.forward(dec.flat_theta(), x, z, ("u",))[0]["u"] - target) ** 2).mean()), [])
        _lm_steps(dec, fast, x, target, None if z is None else z.detach().to(x), False, True, iters, track, list,
                  mu=mu, progress=progress)
        u = fast.forward(dec.flat_theta(), x, z, ("u",))[0]["u"]
    return float(torch.linalg.norm(u - target) / torch.linalg.norm(target))
