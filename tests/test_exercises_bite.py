"""Every exercise's check cell bites: a deliberately wrong answer makes it fail.

For each book notebook with exercises, one kernel runs the notebook top to bottom in quick mode.
At each ``# check cell`` (which belongs to the exercise of the last ``{solution-start}`` before
it), the test

1. snapshots the kernel's namespace,
2. runs the wrong answer kept below for that exercise (a plausible mistake: a missing factor, the
   wrong viscosity, an Euler step instead of RK4, swapped results, ...),
3. runs the check cell and requires it to fail with an ``AssertionError``,
4. restores the namespace (the solution cells' results) and runs the check cell again, which
   must pass.

Wrong answers rebind names; they never mutate the solution's objects in place, so the snapshot
restores the state exactly. An exercise whose check cannot be made to bite must be listed in
``CANNOT_BITE`` with the reason, which the test reports as a warning: nothing is skipped
silently, and an exercise with neither entry fails the test.
"""
from __future__ import annotations

import os
import re
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

LABEL = re.compile(r"^:label:\s*(\S+)", re.M)
EXERCISE = re.compile(r"^(`{3,}|:{3,})\{exercise\}.*?\n(.*?)^\1\s*$", re.M | re.S)
START = re.compile(r"\{solution-start\}\s+(\S+)")

# label -> code run in the kernel just before the check cell: a wrong answer
WRONG: dict[str, str] = {
    # --- embedding -----------------------------------------------------------------------------
    "ex-embed-deriv": '''
def embed_1d_deriv(x, a, b, K, m):          # forgets the factor (2 pi k / L)^m
    k = torch.arange(1, K + 1, dtype=x.dtype)
    ph = 2 * math.pi * k * (x[:, None] - a) / (b - a)
    s, c = torch.sin(ph), torch.cos(ph)
    ds, dc = [(s, c), (c, -s), (-s, -c), (-c, s)][m % 4]
    return torch.stack((ds, dc), dim=-1).reshape(len(x), -1)
''',
    "ex-embed-shift": "embed_shifted = lambda x, a, b, K: embed_1d(x, a, b + 1.0, K)  # period",
    "ex-embed-many-freq": "errors_K = {1: 0.0, 3: 0.0, 8: 0.0}",
    # --- autodecoder ---------------------------------------------------------------------------
    "ex-ad-gauss-newton": '''
def gauss_newton_latent(dec, x, u0, z0, steps, lam):   # the penalty's gradient is missing
    z = z0.detach().clone()
    nz = z.numel()
    for _ in range(steps):
        with torch.no_grad():
            r = dec(x, z) - u0
        Jz = jacrev(lambda zz: dec(x, zz))(z).detach()
        z = z - torch.linalg.solve(Jz.T @ Jz + lam / nz * torch.eye(nz, dtype=z.dtype), Jz.T @ r)
    return z
''',
    "ex-ad-rank": '''
def latent_jacobian(dec, x, z):             # the weights W_z, not du/dz
    return dec.layers[0].weight[:, -len(z):].detach()
''',
    "ex-ad-randtrain": 'its_random_train = [r["near"] for r in cmp["LM"]]   # the nearest latent',
    # --- galerkin ------------------------------------------------------------------------------
    "ex-ng-filter": '''
def ridge_via_svd(A, f, ridge):             # the plain pseudo-inverse: no filter
    U, s, Vh = torch.linalg.svd(A, full_matrices=False)
    return Vh.T @ ((U.T @ f) / s), torch.ones_like(s)
''',
    "ex-ng-ridge": "ridge_errors = {r: ridge_errors[1e-10] for r in ridge_errors}  # one ridge",
    # --- sparse --------------------------------------------------------------------------------
    "ex-sparse-step": '''
def sparse_rk4_step(ng, theta, t, dt, S):   # an Euler step
    return theta + dt * ng.theta_dot(theta, t, S)
''',
    "ex-sparse-same-set": "fixed_err = fresh_err            # a fresh draw every step after all",
    # --- fast (read only here) -----------------------------------------------------------------
    "ex-fast-third": "uxxx_mine = torch.zeros_like(uxxx_mine)",
    "ex-fast-colnorm": "norms_S = fast.jac(st64, S).abs().sum(0)   # 1-norms, not squared 2-norms",
    "ex-fast-third-fused": ("b3_fn = lambda t, a1, a2, a3: a3 + a1 * ((6 * t**2 - 2) * a1**2 + 6 * t * a2)"
                            "   # a sign off"),
    # --- kdv -----------------------------------------------------------------------------------
    "ex-kdv-speed": '''
def peak_speed(U, x, t):                    # the grid point of the maximum: no sub-grid fit
    pos = np.asarray(x)[np.argmax(np.asarray(U), axis=1)]
    return float(np.polyfit(np.asarray(t), np.unwrap(pos, period=2.0), 1)[0])
''',
    "ex-kdv-mass": '''
kdv_invariants = (lambda f: lambda U, b, length: f(U, b, length) * np.array([1.0, 1.0, -1.0]))(
    kdv_invariants)                         # the energy with the wrong sign
''',
    "ex-kdv-latent-only": "ft_L, mse_L = fts[0], fts[0].mse   # MAD-LM, not MAD-L",
    # --- burgers -------------------------------------------------------------------------------
    "ex-burgers-energy": '''
dissipation = (lambda f: lambda U, nu, length: f(U, 1.0, length))(dissipation)  # forgets nu
''',
    "ex-burgers-new-nu": '''
_, _U_wrong = evolve(fts[hard], test.pdes[hard], cfg.sparse, T_end=T4,
                     t_ev=np.array([0.0, T4]))   # the sample's own viscosity
u_2nu = _U_wrong[-1]
''',
    "ex-burgers-dt": "res2 = runs[hard][0]               # the run with the chapter's step",
    # --- allen_cahn ----------------------------------------------------------------------------
    "ex-ac-width": '''
def interface_width(u, length):             # np.sign: a grid value of exactly 0 counts twice
    u = np.asarray(u, dtype=float)
    n_kinks = int((np.sign(u) != np.sign(np.roll(u, 1))).sum())
    return length * float((1 - u**2).mean()) / (2 * n_kinks)
''',
    "ex-ac-energy": '''
def energy_2d(U, eps, n, r=2.0):            # u_y taken along x as well
    U = np.asarray(U, dtype=float).reshape(-1, n, n)
    k = 2 * np.pi * np.fft.fftfreq(n, 1.0 / n)
    ux = np.fft.ifft2(1j * k[:, None] * np.fft.fft2(U)).real
    return (eps / 2 * 2 * ux**2 + r / 4 * (1 - U**2) ** 2).mean(axis=(1, 2))
''',
    "ex-ac-half-s": '''
ng_half = NeuralGalerkin(fts[0].decoder, test.pdes[0], z=fts[0].z, n_points=cfg.n_points,
                         sparse=cfg.sparse, ridge=cfg.ridge, seed=0)   # all of s
''',
    # --- baselines, reproduce (read only here) -------------------------------------------------
    "ex-baselines-ratio": "pinn_over_ng = 1.0 / pinn_over_ng    # the ratio upside down",
    "ex-baselines-weight": "ic_w01, ic_w1 = ic_w1, ic_w01        # swapped",
    "ex-baselines-scales": '''
def rhs_scales(U0, pdes, box, _f=rhs_scales):  # wave numbers of a 2 pi box, whatever the box
    return _f(U0, pdes, (0.0, 2 * math.pi))
''',
    "ex-reproduce-worst": 'spread_name = "not-a-benchmark"',
    "ex-reproduce-report": 'table = table.replace("| file | benchmark", "| benchmark", 1)',
    "ex-reproduce-stats": '''
def final_stats(values, _f=final_stats):     # diverged samples dropped, not counted as inf
    return _f([v for v in values if v is not None])
''',
    # --- when does meta-learning pay -------------------------------------------------------------
    "ex-pays-soonest": 'soonest = (soonest[1], soonest[0]) if soonest else ("fourier-3", 1e-6)  # order',
    "ex-pays-relative": 'relative = {f["family"]: 1e-8 / f["u_rms"] for f in study}   # no square root',
    # --- explorer ------------------------------------------------------------------------------
    "ex-explorer-nu": "lo_run, hi_run = hi_run, lo_run     # swapped runs",
    "ex-explorer-s": ("s_enough = {25: 50, 50: 100, 100: 200, 200: 400, 400: None, None: 25}"
                      "[s_enough]   # one too far"),
    # --- appendix: the reference solver --------------------------------------------------------
    "ex-ref-etd1": "etd1_solve = lambda pde, u0, box, T, h: spectral_solve(pde, u0, box, T, h)[-1]",
}

# label -> why its check cannot be made to fail on a wrong answer (reported, never silent)
CANNOT_BITE: dict[str, str] = {}

SNAPSHOT = "__bite_saved = dict(globals())"
RESTORE = """
for __k in [k for k in globals() if k not in __bite_saved and not k.startswith('_')]:
    del globals()[__k]
globals().update(__bite_saved)
"""


def exercises(nb) -> tuple[list[str], dict[int, str]]:
    """The exercise labels of a notebook, and its check cells: cell index -> label."""
    labels, checks, current = [], {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for m in EXERCISE.finditer(cell.source):
                labels += LABEL.findall(m.group(2))
            starts = START.findall(cell.source)
            if starts:
                current = starts[-1]
        elif cell.cell_type == "code" and cell.source.lstrip().startswith("# check cell"):
            assert current is not None, f"cell {i}: a check cell before any solution"
            checks[i] = current
    return labels, checks


NOTEBOOKS = [p for p in sorted(BOOK.glob("*.ipynb"))
             if exercises(nbformat.read(p, as_version=4))[0]]


def test_every_exercise_has_a_wrong_answer():
    found = {}
    for p in NOTEBOOKS:
        labels, checks = exercises(nbformat.read(p, as_version=4))
        for label in labels:
            assert label not in found, f"{label} in {found.get(label)} and {p.name}"
            found[label] = p.name
        assert sorted(checks.values()) == sorted(labels), \
            f"{p.name}: every exercise needs exactly one check cell after its solution"
    missing = sorted(set(found) - set(WRONG) - set(CANNOT_BITE))
    assert not missing, f"exercises without a wrong answer in this test: {missing}"
    stale = sorted((set(WRONG) | set(CANNOT_BITE)) - set(found))
    assert not stale, f"wrong answers for exercises that no longer exist: {stale}"
    for label, why in CANNOT_BITE.items():
        warnings.warn(f"{label} ({found[label]}): its check cannot bite: {why}")


def kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MADNG_QUICK", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "")
                                                        .split(os.pathsep) if p])
    return env


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_bite(path: Path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    _, checks = exercises(nb)
    client = NotebookClient(nb, kernel_name="python3", timeout=900, allow_errors=False,
                            resources={"metadata": {"path": str(BOOK)}})
    problems, report = [], []
    t0 = time.perf_counter()

    def run(source: str, index: int) -> None:
        client.execute_cell(nbformat.v4.new_code_cell(source), index)

    with client.setup_kernel(env=kernel_env()):
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if i not in checks or checks[i] in CANNOT_BITE:
                client.execute_cell(cell, i)
                continue
            label = checks[i]
            run(SNAPSHOT, i)
            run(WRONG[label], i)
            try:
                run(cell.source, i)
                problems.append(f"{label}: the check passed a wrong answer")
            except CellExecutionError as e:
                if e.ename != "AssertionError":
                    problems.append(f"{label}: the wrong answer failed with {e.ename}: "
                                    f"{e.evalue}, not with the check's assert")
                why = e.evalue.splitlines()[0][:70] if e.evalue else "assert"
                report.append(f"{label}: wrong answer rejected ({why})")
            run(RESTORE, i)
            try:
                client.execute_cell(cell, i)       # the right answer passes again
            except CellExecutionError as e:
                problems.append(f"{label}: after restoring the solution the check fails: "
                                f"{e.ename}: {e.evalue}")
    print(f"{path.name}: {len(checks)} check cells in {time.perf_counter() - t0:.0f} s",
          *report, sep="\n  ", file=sys.stderr)
    assert not problems, "\n".join(problems)
