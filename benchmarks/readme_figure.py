"""Make the README figure: RSNG Allen-Cahn by randomized sparse Neural Galerkin vs the spectral reference.

    python benchmarks/readme_figure.py      # writes book/_static/readme_figure.svg (about 3 min)
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from madng_lite.anchors import fit_anchor, get_anchor, predict  # noqa: E402
from madng_lite.galerkin import NeuralGalerkin  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    a = get_anchor("rsng_ac")
    dec, fit = fit_anchor(a, seed=0)
    ng = NeuralGalerkin(dec, a.pde, n_points=a.n_points, sparse=a.sparse, ridge=a.ridge, seed=0)
    t = torch.tensor(a.t_eval())
    res = ng.evolve(dec.flat_theta(), a.T, a.dt, t, progress=True)
    x = a.eval_grid()
    u = predict(dec, res.thetas, x)
    ref = a.reference()
    err = np.linalg.norm(u - ref, axis=1) / np.linalg.norm(ref, axis=1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, c in zip((0, 10, 20, 40), ("C0", "C1", "C2", "C3")):
        ax1.plot(x[:, 0], ref[i], color=c, lw=3, alpha=0.35)
        ax1.plot(x[:, 0], u[i], "--", color=c, lw=1.2, label=f"t = {t[i]:.0f}")
    ax1.set_xlabel("x"); ax1.set_ylabel("u(x, t)"); ax1.legend(fontsize=8, ncol=2)
    ax1.set_title("network (dashed) vs spectral reference", fontsize=9)
    ax2.semilogy(t, err)
    ax2.set_xlabel("t"); ax2.set_ylabel("relative L2 error")
    ax2.set_title(f"s = {a.sparse} of p = {dec.n_params} weights per step, "
                  f"{1e3 * res.seconds_per_step:.0f} ms/step", fontsize=9)
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "book" / "_static" / "readme_figure.svg"
    fig.savefig(out, metadata={"Date": None})
    print(f"wrote {out}; space-time rel. L2 {np.linalg.norm(u - ref) / np.linalg.norm(ref):.2e}")


if __name__ == "__main__":
    main()
