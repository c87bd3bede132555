"""The figure of a run: the first scored sample against its truth, and every sample's error over time."""
from __future__ import annotations

import io

import numpy as np

__all__ = ["figure_png"]

_STYLE = {"nearest": ("C0", "o", "MAD-NG (nearest latent)"), "random": ("C1", "^", "MAD from a random latent"),
          "fresh": ("C3", "s", "NG without meta-learning")}


def figure_png(fam, t_eval: np.ndarray, truth: np.ndarray, pred: np.ndarray, samples: list[dict], name: str,
               baselines: dict | None = None) -> bytes:
    """PNG bytes; drawn with the object-oriented API only (no pyplot state, no backend switch), so a
    notebook that calls the pipeline keeps its inline figures."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12 if fam.dim == 2 else 10, 3.6))
    ax = fig.subplots(1, 3 if fam.dim == 2 else 2)
    if fam.dim == 1:
        xs = fam.x[:, 0].numpy()
        for k, c in zip((0, len(t_eval) // 2, len(t_eval) - 1), ("C0", "C1", "C2")):
            ax[0].plot(xs, truth[k], c, lw=2, alpha=0.5, label=f"truth t={t_eval[k]:.2f}")
            ax[0].plot(xs, pred[k], c + "--", lw=1, label=f"MAD-NG t={t_eval[k]:.2f}")
        ax[0].set_xlabel("x")
        ax[0].set_ylabel("u")
        ax[0].legend(fontsize=7)
        ax[0].set_title(f"{name}: first scored sample")
    else:
        n = fam.n_grid
        ax[0].imshow(truth[-1].reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1))
        ax[0].set_title(f"{name}: truth at t={t_eval[-1]:.2f}")
        err = np.abs(pred[-1] - truth[-1]) if np.isfinite(pred[-1]).all() else np.zeros_like(truth[-1])
        im = ax[1].imshow(err.reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1))
        fig.colorbar(im, ax=ax[1])
        ax[1].set_title("|MAD-NG - truth|")
    for arm, (c, m, label) in _STYLE.items():
        for i, s in enumerate(x for x in samples if "evolve" in x["arms"].get(arm, {})):
            mse = np.array([np.nan if v is None else v for v in s["arms"][arm]["evolve"]["mse"]], dtype=float)
            ax[-1].semilogy(t_eval, np.maximum(mse, 1e-300), c, marker=m, ms=3, alpha=0.6,
                            label=label if i == 0 else None)
    for i, r in enumerate((baselines or {}).get("samples", [])):
        ax[-1].semilogy(t_eval, np.maximum(np.asarray(r["mse"], dtype=float), 1e-300), "C2", ls="--", marker="s",
                        ms=3, label="MAD-PINN" if i == 0 else None)
    ax[-1].set_xlabel("t")
    ax[-1].set_ylabel("MSE on the grid")
    ax[-1].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
