"""The run-level stages: pretraining the auto-decoder, and the MAD-PINN baseline (book: Chapters 2, 9).

Each reads and writes through the run's folder: pretraining resumes from ``pretrained.pt``
(refused if it was made for other pretraining settings), MAD-PINN records its finished result in
``baselines.json`` and is not redone by a resumed run.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..decoder import Decoder
from ..io import digest
from ..mad import PretrainReport, nearest_latent, pretrain
from .context import Context

__all__ = ["pretrain_stage", "pinn_stage", "PRETRAIN_FIELDS"]

# the fields of the configuration that decide the pretrained decoder (the others do not invalidate it)
PRETRAIN_FIELDS = ("name", "n_train", "n_grid", "width", "depth", "latent_dim", "n_freq", "lam", "adam_iters",
                   "lbfgs_iters", "lr", "sobolev", "fit_stride")


def pretrain_stage(ctx: Context) -> tuple[Decoder, torch.Tensor, PretrainReport]:
    """The pretrained decoder and latents (resumed from, or written to, ``pretrained.pt``)."""
    cfg = ctx.cfg
    dec = Decoder(ctx.fam.box, cfg.latent_dim, cfg.width, cfg.depth, cfg.n_freq, seed=ctx.seed).to(ctx.device)
    U0 = ctx.train.U0[:, ctx.fit_idx].to(ctx.device)
    sob = {k: v.to(ctx.device) for k, v in ctx.train.derivative_targets(cfg.sobolev).items()} \
        if cfg.sobolev else False
    settings = {"config": {k: ctx.settings["config"][k] for k in PRETRAIN_FIELDS}, "seed": ctx.seed,
                "stochastic": ctx.stochastic, "package": ctx.settings["package"],
                "threads": ctx.settings["threads"], "device": ctx.settings["device"], "train_data": digest(U0.cpu())}
    Z, rep = pretrain(dec, ctx.x_fit, U0, lam=cfg.lam, adam_iters=cfg.adam_iters, lbfgs_iters=cfg.lbfgs_iters,
                      lr=cfg.lr, seed=ctx.seed, progress=ctx.progress, sobolev=sob, normalize=True,
                      checkpoint=ctx.rd.file("pretrained.pt"), config=settings, z_init=cfg.z_init)
    return dec, Z, rep


def pinn_stage(ctx: Context) -> dict:
    """MAD-PINN on the first ``n_baseline`` scored samples: pretrain once (the ``pinn_*`` settings),
    then fine-tune per sample from the nearest training latent: ``z`` only, or ``z`` and the weights."""
    from ..pinn import finetune_for, model_for, pretrain_for

    settings = dict(ctx.settings, pinn={k: v for k, v in ctx.cfg.as_dict().items()
                                        if k.startswith("pinn_") or k == "n_baseline"})
    done = ctx.rd.load_json_state("baselines.json", "baselines", settings)
    if done is not None:
        return done
    cfg, dev, x = ctx.cfg, ctx.device, ctx.x
    nb = min(cfg.n_baseline, len(ctx.scored))
    t0 = time.perf_counter()
    st = model_for(cfg, ctx.fam.box, ctx.seed).to(dev)
    U0_train = ctx.train.U0.to(dev)
    Zp, rep = pretrain_for(cfg, st, x, U0_train, ctx.train.pdes, ctx.seed, ctx.progress)
    rows = []
    for k in range(nb):
        u0 = ctx.scored.U0[k].to(dev)
        z0, _ = nearest_latent(U0_train, Zp, u0)
        z, fr = finetune_for(cfg, st, x, u0, ctx.scored.pdes[k], z0, ctx.seed + k, ctx.progress)
        U = fr.model.predict(x, ctx.t_eval, z).cpu().numpy()
        truth = ctx.truths[k]
        rows.append({"index": ctx.splits[ctx.split][k], "finetune_seconds": fr.seconds, "ic_mse": fr.ic_mse,
                     "residual_rms": fr.residual_rms, "lbfgs_iters": fr.lbfgs_iters,
                     "min_causal_weight": fr.min_causal_weight,
                     "mse": np.mean((U - truth) ** 2, axis=1).tolist(),
                     "rel_l2": (np.linalg.norm(U - truth, axis=1) / np.linalg.norm(truth, axis=1)).tolist()})
    out = {"n": nb, "n_params": st.decoder.n_params, "tuned": "z, theta" if cfg.pinn_ft_theta else "z",
           "pretrain": {"seconds": rep.seconds, "ic_mse": rep.ic_mse, "residual_rms": rep.residual_rms,
                        "iters": rep.iters, "lbfgs_iters": rep.lbfgs_iters,
                        "min_causal_weight": rep.min_causal_weight},
           "samples": rows, "seconds": time.perf_counter() - t0}
    ctx.rd.save_json_state("baselines.json", "baselines", out, settings)
    return out
