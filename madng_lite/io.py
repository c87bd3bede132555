"""Checkpoints of a pretrained decoder and its latents: save, load, versioned, atomic (book: Chapter 3).

A checkpoint is one ``torch.save`` file holding a plain dict: the format version, the package
version that wrote it, the decoder's constructor arguments, its ``state_dict``, the latents
``Z`` (N, latent_dim), a JSON-like ``config`` and an optional ``extra`` (e.g. the optimiser
state for resuming). Writes go to a temporary file in the same folder, then ``os.replace``,
so a crash never leaves a half-written checkpoint under the final name.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .decoder import Decoder

__all__ = ["FORMAT_VERSION", "CheckpointError", "save_checkpoint", "read_checkpoint", "load_checkpoint",
           "decoder_kwargs"]

FORMAT_VERSION = 1
_MAGIC = "madng-lite-checkpoint"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class CheckpointError(ValueError):
    """A file that is missing, unreadable, truncated, not a checkpoint, or of another format version."""


def decoder_kwargs(dec: Decoder) -> dict[str, Any]:
    """The constructor arguments that rebuild ``dec``'s architecture (weights come from the state dict)."""
    return {"box": [list(b) for b in dec.box], "latent_dim": dec.latent_dim, "width": dec.width,
            "depth": dec.depth, "n_freq": dec.embedding.n_freq, "activation": dec.activation_name,
            "dtype": str(dec.dtype).removeprefix("torch.")}


def _check_plain(value: Any, where: str) -> None:
    """Only what ``torch.load(weights_only=True)`` reads back: containers, numbers, strings, tensors."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str, torch.Tensor))):
        raise ValueError(f"{where} holds a {type(value).__name__}; a checkpoint stores only dicts, lists, "
                         "numbers, strings and tensors (convert paths and objects to strings)")


def save_checkpoint(path: str | os.PathLike, decoder: Decoder, latents: Tensor | None, config: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write ``decoder``, ``latents`` and ``config`` atomically to ``path``; return the path."""
    from . import __version__

    _check_plain(config or {}, "config")
    _check_plain(extra, "extra")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "magic": _MAGIC,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "decoder_kwargs": decoder_kwargs(decoder),
        "state_dict": {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()},
        "latents": None if latents is None else latents.detach().cpu().clone(),
        "config": dict(config or {}),
        "extra": extra,
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The validated raw dict of a checkpoint (see the module docstring).

    Raises
    ------
    CheckpointError
        Missing file, corrupt or truncated file, a file that is not a madng-lite checkpoint, or
        a format version this package cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, IndexError, KeyError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from e
    if not isinstance(obj, dict) or obj.get("magic") != _MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a madng-lite checkpoint")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {obj.get('format_version')!r}; "
                              f"this madng-lite ({obj.get('package_version', '?')} wrote it) reads version "
                              f"{FORMAT_VERSION}")
    return obj


def load_checkpoint(path: str | os.PathLike) -> tuple[Decoder, Tensor | None, dict]:
    """Rebuild ``(decoder, latents, config)`` from a checkpoint written by :func:`save_checkpoint`."""
    obj = read_checkpoint(path)
    kw = dict(obj["decoder_kwargs"])
    dtype = _DTYPES.get(kw.pop("dtype"))
    if dtype is None:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unknown dtype {obj['decoder_kwargs']['dtype']!r}")
    dec = Decoder([tuple(b) for b in kw.pop("box")], dtype=dtype, **kw)
    try:
        dec.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit the recorded architecture ({e})") from e
    return dec, obj["latents"], obj["config"]
