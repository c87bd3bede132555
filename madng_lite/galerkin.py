"""Neural Galerkin time integration, dense and randomized sparse (book: Chapters 3-4).

The only place where a network and a PDE meet. At each stage, with ``theta`` the flat
parameters and ``x`` the sample points, ``theta_dot[S] = argmin ||J[:, S] eta - f||`` where
``J = du/dtheta`` and ``f = pde.rhs(x, derivatives of u)`` (Dirac-Frenkel); the other entries of
``theta_dot`` are zero. ``S`` is drawn once per time step (:mod:`madng_lite.sparse`) and shared
by all stages of that step; dense NG is ``S = everything``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import points as pts
from .decoder import Decoder
from .derivatives import FastMLP
from .engine import DEFAULT_POINTS, GenericPath, check_memory
from .solve import DivergenceError, NonFiniteError, check_finite, lstsq_solve, ridge_cholesky
from .sparse import draw_indices

INTEGRATORS = ("euler", "rk4", "rk45")
@dataclass
class NGResult:
    """Output of :meth:`NeuralGalerkin.evolve`: ``thetas[i]`` is theta at ``times[i]``."""

    times: Tensor
    thetas: Tensor
    n_steps: int
    timings: dict[str, float] = field(default_factory=dict)
    # the relative residual ||J theta_dot - f|| / ||f|| of the first stage of every step, and its time:
    # how well the network's tangent space holds the PDE's right-hand side (needs no truth)
    residual_times: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    residuals: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))

    @property
    def seconds_per_step(self) -> float:
        return self.timings.get("total", float("nan")) / max(self.n_steps, 1)


class NeuralGalerkin:
    """Evolve the parameters of ``decoder`` (latent ``z`` frozen) under ``pde``.

    Parameters
    ----------
    decoder, pde : the network and the PDE (``pde.requires``, ``pde.rhs(x, d)``, ``pde.dim``).
    z : the frozen latent (``None`` for a decoder without one).
    n_points : number of sample points, per dimension on a grid when ``resample`` is False
        (default: 1000 in 1D, 50 per axis in 2D). A set of points whose Jacobian would not fit in
        half of this machine's memory is refused up front, with its size.
    resample : draw fresh uniform points every time step instead of a fixed grid.
    sparse : number ``s`` of parameters updated per step (``None``: dense NG).
    sampler : ``"uniform"`` or ``"colnorm"`` (see :func:`madng_lite.sparse.draw_indices`).
    solver, ridge, rcond : least-squares choice (see :func:`madng_lite.solve.lstsq_solve`).
    path : ``"fast"`` (layer-wise derivatives; fixed activations) or ``"generic"`` (torch.func).
    seed : seed of every draw (indices, points).
    blowup : raise :class:`~madng_lite.solve.DivergenceError` as soon as ``max |u|`` at the sample
        points exceeds ``blowup`` times its value at the start of :meth:`evolve` (``None``: no guard).
        A diverging run (e.g. dense KdV at too small a ridge) reached ``|u| ~ 3e7`` long before
        any NaN. Allen-Cahn grows small data towards +-1 (a factor 1/max|u0|): keep ``blowup`` above it.
    """

    def __init__(self, decoder: Decoder, pde, z: Tensor | None = None, n_points: int | None = None,
                 resample: bool = False, sparse: int | None = None, sampler: str = "uniform",
                 solver: str = "ridge", ridge: float = 1e-8, rcond: float = 1e-6, path: str = "fast",
                 seed: int = 0, blowup: float | None = 1e4) -> None:
        if blowup is not None and not blowup > 1:
            raise ValueError(f"blowup must be > 1 (or None), got {blowup}")
        if decoder.dim != pde.dim:
            raise ValueError(f"decoder is {decoder.dim}-D but the PDE {pde.name!r} is {pde.dim}-D")
        if path not in ("fast", "generic"):
            raise ValueError(f"unknown path {path!r}; known: fast, generic")
        self.dec, self.pde, self.sampler = decoder, pde, sampler
        p = next(decoder.parameters())
        self.dtype, self.device = p.dtype, p.device
        self.z = None if z is None else torch.as_tensor(z, dtype=self.dtype, device=self.device).detach()
        if n_points is None:
            n_points = DEFAULT_POINTS.get(decoder.dim, 50)
        if int(n_points) < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if sparse is not None and not 1 <= int(sparse) <= decoder.n_params:
            raise ValueError(f"sparse must be between 1 and the number of parameters p = {decoder.n_params} "
                             f"(None: dense), got {sparse}")
        self.n_points, self.resample = int(n_points), resample
        self.sparse, self.solver, self.ridge, self.rcond = sparse, solver, ridge, rcond
        n_total = self.n_points if resample else self.n_points ** decoder.dim
        check_memory(n_total, decoder, sparse, self.dtype)
        self.engine = FastMLP(decoder) if path == "fast" else GenericPath(decoder)
        self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.x = pts.grid(decoder.box, self.n_points, self.dtype, self.device)
        self._residuals: list[tuple[float, float]] = []
        self.timings = {"derivatives": 0.0, "jacobian": 0.0, "solve": 0.0}
        self.blowup, self._u_limit = blowup, math.inf

    @property
    def p(self) -> int:
        return self.dec.n_params

    # ----- one stage -----------------------------------------------------------------------
    def _tick(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def rhs_state(self, theta: Tensor, t: float) -> tuple[Tensor, dict]:
        """``f = pde.rhs`` at the sample points, and the state the Jacobian columns need."""
        t0 = self._tick()
        d, state = self.engine.forward(theta, self.x, self.z, self.pde.requires, need_jac=True)
        f = self.pde.rhs(self.x, d)
        check_finite("the PDE right-hand side f", f, t)
        if "u" in d and math.isfinite(self._u_limit):
            umax = float(d["u"].abs().max())
            if umax > self._u_limit:
                raise DivergenceError(f"the solution blew up at t = {t:.6g}: max |u| = {umax:.3g} is more than "
                                      f"{self.blowup:g} times its initial value (raise the ridge or lower dt)")
        self.timings["derivatives"] += self._tick() - t0
        return f, state

    def solve(self, f: Tensor, state: dict, cols: Tensor, t: float, record: bool = False) -> Tensor:
        """``theta_dot`` restricted to ``cols`` (shape ``(len(cols),)``); ``record``: keep the relative
        residual ``||J[:, cols] theta_dot - f|| / ||f||`` (see ``NGResult.residuals``)."""
        t0 = self._tick()
        if self._dual_dense(cols):
            return self._solve_dual(f, state, t, record, t0)
        A = self.engine.jac(state, cols)
        check_finite("the Jacobian J", A, t)
        t1 = self._tick()
        eta = lstsq_solve(A, f, self.solver, self.ridge, self.rcond)
        check_finite("theta_dot", eta, t)
        if record:
            fn = float(f.norm())
            self._residuals.append((t, float((A @ eta - f).norm()) / fn if fn > 0 else 0.0))
        t2 = self._tick()
        self.timings["jacobian"] += t1 - t0
        self.timings["solve"] += t2 - t1
        return eta

    def _dual_dense(self, cols: Tensor) -> bool:
        """Dense ridge steps with more parameters than points take the dual form without forming ``J``
        (the fused engine's :meth:`~madng_lite.derivatives.FastMLP.dual_gram`; book: Chapter 5)."""
        return (self.solver == "ridge" and cols.numel() == self.p and self.x.shape[0] < self.p
                and getattr(self.engine, "fused", False))

    def _solve_dual(self, f: Tensor, state: dict, t: float, record: bool, t0: float) -> Tensor:
        """``theta_dot = J^T (J J^T + lam I)^{-1} f`` with ``J J^T`` from the layers' factors: the same
        solution as :func:`~madng_lite.solve.lstsq_solve` (``s = p > n``) up to rounding."""
        M = self.engine.dual_gram(state)
        check_finite("the Gram matrix J J^T", M, t)
        t1 = self._tick()
        y, lam = ridge_cholesky(M, f, self.ridge, self.p)
        eta = self.engine.jac_t(state, y)
        check_finite("theta_dot", eta, t)
        if record:  # J eta = J J^T y = (M - lam I) y
            fn = float(f.norm())
            self._residuals.append((t, float((M @ y - lam * y - f).norm()) / fn if fn > 0 else 0.0))
        t2 = self._tick()
        self.timings["jacobian"] += t1 - t0
        self.timings["solve"] += t2 - t1
        return eta

    def theta_dot(self, theta: Tensor, t: float = 0.0, cols: Tensor | None = None) -> Tensor:
        """The full-length ``theta_dot`` (zeros outside ``cols``) at ``(theta, t)``."""
        cols = torch.arange(self.p) if cols is None else cols
        f, st = self.rhs_state(theta, t)
        out = torch.zeros_like(theta)
        out[cols.to(self.device)] = self.solve(f, st, cols, t)
        return out

    def _begin_step(self, theta: Tensor, t: float) -> tuple[Tensor, Tensor, dict]:
        if self.resample:
            self.x = pts.uniform(self.dec.box, self.n_points, self.gen, self.dtype, self.device)
        f, st = self.rhs_state(theta, t)
        norms = self.engine.col_norms2(st) if (self.sampler == "colnorm" and self.sparse and self.sparse < self.p) else None
        cols = draw_indices(self.p, self.sparse, self.gen, self.sampler, norms)
        return cols, f, st

    # ----- steppers ------------------------------------------------------------------------
    def _advance(self, theta: Tensor, cols: Tensor, ks: list[Tensor], coefs: list[float], dt: float) -> Tensor:
        inc = sum(c * k for c, k in zip(coefs, ks) if c != 0.0)
        out = theta.clone()
        out[cols.to(self.device)] += dt * inc
        return out

    def step_fixed(self, theta: Tensor, t: float, dt: float, method: str = "rk4") -> Tensor:
        """One Euler or RK4 step with one index draw for all stages."""
        cols, f, st = self._begin_step(theta, t)
        k1 = self.solve(f, st, cols, t, record=True)
        if method == "euler":
            return self._advance(theta, cols, [k1], [1.0], dt)
        k = [k1]
        for c, a in ((0.5, [0.5]), (0.5, [0.0, 0.5]), (1.0, [0.0, 0.0, 1.0])):
            th = self._advance(theta, cols, k, a, dt)
            f, st = self.rhs_state(th, t + c * dt)
            k.append(self.solve(f, st, cols, t + c * dt))
        return self._advance(theta, cols, k, [1 / 6, 1 / 3, 1 / 3, 1 / 6], dt)

    # Dormand-Prince 5(4)
    _A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
          [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
          [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
          [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
    _C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]
    _E = [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]

    def step_rk45(self, theta: Tensor, t: float, dt: float, rtol: float, atol: float) -> tuple[Tensor, float]:
        """One Dormand-Prince attempt: the 5th-order state and the scaled error norm."""
        cols, f, st = self._begin_step(theta, t)
        k = [self.solve(f, st, cols, t, record=True)]
        for i in range(1, 7):
            th = self._advance(theta, cols, k, self._A[i], dt)
            f, st = self.rhs_state(th, t + self._C[i] * dt)
            k.append(self.solve(f, st, cols, t + self._C[i] * dt))
        new = th  # stage 7 is evaluated at the 5th-order solution
        err = dt * sum(e * kk for e, kk in zip(self._E, k) if e != 0.0)
        c = cols.to(self.device)
        scale = atol + rtol * torch.maximum(theta[c].abs(), new[c].abs())
        return new, float(torch.sqrt(torch.mean((err / scale) ** 2)))

    # ----- the loop ------------------------------------------------------------------------
    def _check_u(self, theta: Tensor, t: float) -> None:
        """The blow-up guard on the state itself (after the last step no stage looks at u)."""
        if math.isfinite(self._u_limit):
            with torch.no_grad():
                umax = float(self.engine.forward(theta, self.x, self.z, ("u",))[0]["u"].abs().max())
            if not umax <= self._u_limit:
                raise DivergenceError(f"the solution blew up at t = {t:.6g}: max |u| = {umax:.3g} is more than "
                                      f"{self.blowup:g} times its initial value (raise the ridge or lower dt)")

    def run_key(self, theta0: Tensor, T: float, dt: float, t_eval: Tensor, integrator: str, rtol: float,
                atol: float, max_step: float | None) -> dict:
        """Everything that decides the trajectory: an evolution checkpoint made under another key is refused."""
        from .io import decoder_kwargs, digest

        pde = {k: v for k, v in sorted(vars(self.pde).items()) if isinstance(v, (int, float, str, bool))}
        return {"theta0": digest(theta0.detach().cpu()), "z": None if self.z is None else digest(self.z.cpu()),
                "decoder": decoder_kwargs(self.dec), "pde": [self.pde.name, pde], "T": float(T), "dt": float(dt),
                "t_eval": [float(v) for v in t_eval], "integrator": integrator, "rtol": rtol, "atol": atol,
                "max_step": max_step, "n_points": self.n_points, "resample": self.resample, "sparse": self.sparse,
                "sampler": self.sampler, "solver": self.solver, "ridge": self.ridge, "rcond": self.rcond,
                "seed": self.seed, "blowup": self.blowup, "engine": type(self.engine).__name__,
                "device": self.device.type, "threads": torch.get_num_threads()}

    def evolve(self, theta0: Tensor, T: float, dt: float, t_eval: Tensor | None = None,
               integrator: str = "rk4", rtol: float = 1e-6, atol: float = 1e-8, max_step: float | None = None,
               progress: bool = True, checkpoint: str | os.PathLike | None = None,
               checkpoint_every: int = 100) -> NGResult:
        """Integrate from ``t = 0`` to ``T``; record theta at ``t_eval`` (default: every step).

        Fixed-step integrators need each ``t_eval`` to be a multiple of ``dt``; ``rk45`` uses
        ``dt`` as its first step and lands exactly on each ``t_eval``. With ``checkpoint`` set,
        the state is saved atomically every ``checkpoint_every`` steps (:func:`madng_lite.io.save_state`)
        and a later call with the same file *and the same settings* (:meth:`run_key`) resumes from it;
        a file from another run is refused. A blow-up raises :class:`~madng_lite.solve.NonFiniteError`
        (or its subclass ``DivergenceError``) whose ``result`` attribute holds what was recorded before it.
        """
        if integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {integrator!r}; known: {INTEGRATORS}")
        if not (dt > 0 and T > 0 and math.isfinite(dt) and math.isfinite(T)):
            raise ValueError(f"need finite T > 0 and dt > 0, got T={T}, dt={dt}")
        if int(checkpoint_every) < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        theta = theta0.detach().to(self.dtype).clone()
        check_finite("the initial theta", theta)
        self._u_limit = math.inf
        if self.blowup is not None:
            with torch.no_grad():
                u0 = self.engine.forward(theta, self.x, self.z, ("u",))[0]["u"]
            u0max = float(u0.abs().max())
            self._u_limit = self.blowup * u0max if u0max > 0 else math.inf
        n_steps = int(round(T / dt))
        if integrator != "rk45" and abs(n_steps * dt - T) > 1e-9 * T:
            raise ValueError(f"T = {T} is not a multiple of dt = {dt}")
        if t_eval is None:
            t_eval = torch.linspace(0, T, n_steps + 1, dtype=torch.float64) if integrator != "rk45" else torch.tensor([0.0, T])
        t_eval = torch.as_tensor(t_eval, dtype=torch.float64)
        if (t_eval < 0).any() or (t_eval > T * (1 + 1e-12)).any() or (t_eval.diff() <= 0).any():
            raise ValueError("t_eval must be increasing and inside [0, T]")
        eval_steps = None
        if integrator != "rk45":
            eval_steps = torch.round(t_eval / dt).long()
            if ((eval_steps.double() * dt - t_eval).abs() > 1e-9 * max(T, 1)).any():
                raise ValueError("every t_eval must be a multiple of dt for a fixed-step integrator")
        out: list[Tensor] = []
        t, step, h = 0.0, 0, dt
        self._residuals = []
        self._earlier = 0.0   # seconds spent by the calls this one resumes
        ck = Path(checkpoint) if checkpoint is not None else None
        key = self.run_key(theta0, T, dt, t_eval, integrator, rtol, atol, max_step) if ck is not None else None
        if ck is not None and ck.exists():
            from .io import load_state

            s = load_state(ck, "evolution", key)
            theta, t, step, h = s["theta"].to(self.device, self.dtype), s["t"], s["step"], s["h"]
            out = [o.to(self.device, self.dtype) for o in s["out"]]
            self._residuals = [(float(a), float(b)) for a, b in s["residuals"].tolist()]
            self.gen.set_state(s["gen"])
            self._earlier = float(s.get("seconds", 0.0))
            if self.resample:
                self.x = s["x"].to(self.device, self.dtype)
        for k in self.timings:
            self.timings[k] = 0.0
        t_start = time.perf_counter()
        n_done = 0
        bar = tqdm(total=n_steps if integrator != "rk45" else None, initial=step, disable=not progress,
                   desc=f"NG {self.pde.name} ({'dense' if not self.sparse else f's={self.sparse}'})")
        next_eval = len(out)
        try:
            while True:
                # record every t_eval reached
                while next_eval < len(t_eval) and (
                        (eval_steps is not None and eval_steps[next_eval] == step)
                        or (eval_steps is None and abs(float(t_eval[next_eval]) - t) <= 1e-12 * max(T, 1))):
                    out.append(theta.detach().clone())
                    next_eval += 1
                if next_eval >= len(t_eval) or (eval_steps is not None and step >= n_steps):
                    break
                if integrator == "rk45":
                    h = min(h, max_step or h, float(t_eval[next_eval]) - t)
                    new, err = self.step_rk45(theta, t, h, rtol, atol)
                    if err <= 1.0:
                        theta, t = new, t + h
                        step += 1
                        bar.update(1)
                    else:
                        self._residuals.pop()   # a rejected attempt: its residual is not the trajectory's
                    h = h * min(5.0, max(0.2, 0.9 * (err + 1e-300) ** -0.2))
                    if h < 1e-10 * T:
                        raise NonFiniteError(f"RK45 step size fell to {h:.3g} at t = {t:.6g}: loosen rtol/atol "
                                             "or raise the ridge (theta_dot is too noisy for this tolerance)")
                else:
                    theta = self.step_fixed(theta, t, dt, integrator)
                    step += 1
                    t = step * dt
                    bar.update(1)
                check_finite("theta", theta, t)
                if (step >= n_steps if eval_steps is not None else t >= T * (1 - 1e-12)):
                    self._check_u(theta, t)   # after the last step no stage looks at u any more
                n_done += 1
                if ck is not None and step % int(checkpoint_every) == 0:
                    self._save(ck, key, theta, t, step, h, out, time.perf_counter() - t_start)
        except NonFiniteError as e:
            e.result = self._result(t_eval, out, step, t_start, n_done)
            e.t_fail = float(t)   # the time the failing step started from (or reached, for a blown-up state)
            raise
        finally:
            bar.close()
        return self._result(t_eval, out, step, t_start, n_done)

    def _result(self, t_eval: Tensor, out: list[Tensor], step: int, t_start: float, n_done: int) -> NGResult:
        self.timings["total"] = time.perf_counter() - t_start          # this call (``attempts`` steps)
        self.timings["total_over_resumes"] = self._earlier + self.timings["total"]
        res = torch.tensor(self._residuals, dtype=torch.float64).reshape(-1, 2)
        thetas = torch.stack(out) if out else torch.zeros(0, self.p, dtype=self.dtype, device=self.device)
        return NGResult(t_eval[: len(out)], thetas, step, dict(self.timings, attempts=n_done), res[:, 0], res[:, 1])

    def _save(self, ck: Path, key: dict, theta: Tensor, t: float, step: int, h: float, out: list[Tensor],
              seconds: float) -> None:
        from .io import save_state

        save_state(ck, "evolution", {"theta": theta.cpu(), "t": float(t), "step": int(step), "h": float(h),
                                     "out": [o.cpu() for o in out], "gen": self.gen.get_state(),
                                     "residuals": torch.tensor(self._residuals, dtype=torch.float64).reshape(-1, 2),
                                     "x": self.x.cpu(), "seconds": self._earlier + seconds}, key)
