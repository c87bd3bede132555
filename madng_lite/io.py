"""Checkpoints and state files: versioned, hashed, atomic (book: Chapter 2, the auto-decoder).

Every file a run leaves behind is a plain dict (containers, numbers, strings, tensors: what
``torch.load(weights_only=True)`` reads back; no pickled objects, so a crafted file cannot run
code on load) wrapped in an envelope::

    {"magic", "format_version", "kind", "package_version",
     "settings", "settings_sha256", "payload", "payload_sha256"}

``kind`` says what the file holds (``"decoder"``, ``"evolution"``, ``"samples"``...), ``settings``
the configuration that made it, and the two SHA-256 digests let :func:`load_state` refuse, with a
one-line :class:`CheckpointError`, a file that is damaged (a flipped bit, a torn write), foreign
(another program's, another kind), or written for other settings. Writes go to a uniquely named
temporary file in the same folder, are flushed and fsynced, then renamed over the final name (and
the folder fsynced), so a crash or a power cut never leaves a half-written file under that name.
Tensor states are ``torch.save`` files; the finished-samples state is JSON (:func:`save_json_state`).
A benchmark's results file (``results/*.json``) is written the same atomic way
(:func:`write_results`), so a study stopped mid-write keeps its last complete file to resume from.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

from .decoder import Decoder

__all__ = ["FORMAT_VERSION", "CheckpointError", "digest", "atomic_write", "save_state", "load_state",
           "save_json_state", "load_json_state", "save_checkpoint", "read_checkpoint", "load_checkpoint",
           "decoder_kwargs", "write_results", "resumable_results"]

FORMAT_VERSION = 2
_MAGIC = "madng-lite-checkpoint"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class CheckpointError(ValueError):
    """A state file that is missing, damaged, foreign, of another format, or from other settings."""


# ---------------------------------------------------------------------------------------------
# digests and atomic writes
# ---------------------------------------------------------------------------------------------
def _feed(h: Any, value: Any, where: str) -> None:
    """Feed a canonical, type-tagged encoding of ``value`` to the hash ``h``."""
    if isinstance(value, dict):
        h.update(b"{%d" % len(value))
        for k in sorted(value, key=str):
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: key {k!r} is not a str or int")
            h.update(repr(k).encode() + b":")
            _feed(h, value[k], f"{where}[{k!r}]")
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[%d" % len(value))
        for i, v in enumerate(value):
            _feed(h, v, f"{where}[{i}]")
        h.update(b"]")
    elif isinstance(value, Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif value is None or isinstance(value, (bool, int, str)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, float):
        h.update(f"float:{value.hex() if math.isfinite(value) else repr(value)};".encode())
    else:
        raise ValueError(f"{where} holds a {type(value).__name__}; a state file stores only dicts, lists, "
                         "numbers, strings and tensors (convert paths and objects to strings)")


def digest(value: Any, where: str = "value") -> str:
    """SHA-256 of a plain structure (dicts, lists, numbers, strings, tensors); raises on anything else."""
    h = hashlib.sha256()
    _feed(h, value, where)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` atomically: unique temp file, fsync, rename, fsync folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


_NONFINITE = {math.inf: "inf", -math.inf: "-inf"}


def _plain(v: Any) -> Any:
    """``v`` with every non-finite float as the string ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if isinstance(v, float) and not math.isfinite(v):
        return _NONFINITE.get(v, "nan")
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def write_results(path: str | os.PathLike, meta: dict, key: str, items: list) -> Path:
    """Write a benchmark's results file ``{"meta": meta, key: items}`` atomically, as indented JSON.

    JSON has no infinities: a non-finite float is written as ``"inf"``, ``"-inf"`` or ``"nan"``
    (the readers in :mod:`madng_lite.pipeline.findings` turn them back)."""
    text = json.dumps(_plain({"meta": meta, key: items}), indent=1, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def resumable_results(path: str | os.PathLike | None, key: str, settings: dict) -> list:
    """The ``key`` list of a results file from :func:`write_results` (what a resumed study keeps);
    empty when there is no such file. A file whose ``meta`` holds other ``settings`` raises a
    ``ValueError`` naming them: resuming would mix rows made two ways, and starting afresh would
    overwrite finished work."""
    if path is None or not Path(path).exists():
        return []
    data = json.loads(Path(path).read_text())
    meta = data.get("meta", {})
    diff = [f"{k}: {meta.get(k)!r} there, {v!r} here" for k, v in settings.items() if meta.get(k) != v]
    if diff:
        raise ValueError(f"{path} was written for other settings ({'; '.join(diff)}); "
                         "choose another output file or the same settings")
    return list(data.get(key, []))


# ---------------------------------------------------------------------------------------------
# the envelope
# ---------------------------------------------------------------------------------------------
def _envelope(kind: str, payload: dict, settings: dict | None) -> dict:
    from . import __version__

    settings = dict(settings or {})
    return {"magic": _MAGIC, "format_version": FORMAT_VERSION, "kind": kind, "package_version": __version__,
            "settings": settings, "settings_sha256": digest(settings, "settings"),
            "payload": payload, "payload_sha256": digest(payload, "payload")}


def _settings_diff(old: dict, new: dict) -> list[str]:
    return sorted(str(k) for k in set(old) | set(new)
                  if k not in old or k not in new or digest(old[k]) != digest(new[k]))


def _verify(obj: Any, path: Path, kind: str, settings: dict | None) -> dict:
    """Check the envelope read from ``path``; return it."""
    name = str(path)
    if not isinstance(obj, dict) or obj.get("magic") != _MAGIC:
        raise CheckpointError(f"{name!r} is not a madng-lite state file (a foreign file)")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name!r} has format version {obj.get('format_version')!r}; this madng-lite reads "
                              f"version {FORMAT_VERSION} (it was written by madng-lite {obj.get('package_version', '?')})")
    if obj.get("kind") != kind:
        raise CheckpointError(f"{name!r} holds a {obj.get('kind')!r} state, not a {kind!r} one")
    try:
        ok = digest(obj["payload"]) == obj["payload_sha256"] and \
            digest(obj["settings"]) == obj["settings_sha256"]
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{name!r} is damaged ({type(e).__name__}: {e})") from None
    if not ok:
        raise CheckpointError(f"{name!r} is damaged: its contents do not match their SHA-256 digest")
    if settings is not None and digest(dict(settings)) != obj["settings_sha256"]:
        diff = _settings_diff(obj["settings"], dict(settings))
        raise CheckpointError(f"{name!r} was written for other settings (they differ in {diff}); "
                              "delete it or use another output folder")
    return obj


def save_state(path: str | os.PathLike, kind: str, payload: dict, settings: dict | None = None) -> Path:
    """Write ``payload`` (a plain dict) and the ``settings`` that made it as a ``torch.save`` state file."""
    env = _envelope(kind, payload, settings)
    return atomic_write(path, lambda fh: torch.save(env, fh))


def load_state(path: str | os.PathLike, kind: str, settings: dict | None = None) -> dict:
    """The payload of a state file of ``kind``; with ``settings``, also refuse one made for other settings."""
    return _read_envelope(path, kind, settings)["payload"]


def _read_envelope(path: str | os.PathLike, kind: str, settings: dict | None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"state file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, IndexError, KeyError, TypeError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0][:120] if str(e) else ""
        raise CheckpointError(f"{str(path)!r} is damaged, truncated or not loadable as plain data "
                              f"({type(e).__name__}: {first})") from None
    return _verify(obj, path, kind, settings)


def save_json_state(path: str | os.PathLike, kind: str, payload: dict, settings: dict | None = None) -> Path:
    """As :func:`save_state`, as JSON text (no tensors; non-finite floats are refused)."""
    env = _envelope(kind, payload, settings)
    text = json.dumps(env, allow_nan=False).encode()
    return atomic_write(path, lambda fh: fh.write(text))


def load_json_state(path: str | os.PathLike, kind: str, settings: dict | None = None) -> dict:
    """As :func:`load_state`, for a file written by :func:`save_json_state`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"state file {str(path)!r} does not exist")
    try:
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r} is damaged or truncated ({type(e).__name__}: {e})") from None
    return _verify(obj, path, kind, None if settings is None else json.loads(json.dumps(settings)))["payload"]


# ---------------------------------------------------------------------------------------------
# decoders
# ---------------------------------------------------------------------------------------------
def decoder_kwargs(dec: Decoder) -> dict[str, Any]:
    """The constructor arguments that rebuild ``dec``'s architecture (weights come from the state dict)."""
    return {"box": [list(b) for b in dec.box], "latent_dim": dec.latent_dim, "width": dec.width,
            "depth": dec.depth, "n_freq": dec.embedding.n_freq, "activation": dec.activation_name,
            "dtype": str(dec.dtype).removeprefix("torch.")}


def save_checkpoint(path: str | os.PathLike, decoder: Decoder, latents: Tensor | None, config: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write ``decoder``, ``latents``, ``extra`` and the ``config`` that made them (the settings) atomically."""
    payload = {"decoder_kwargs": decoder_kwargs(decoder),
               "state_dict": {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()},
               "latents": None if latents is None else latents.detach().cpu().clone(), "extra": extra}
    return save_state(path, "decoder", payload, config)


def read_checkpoint(path: str | os.PathLike, config: dict | None = None) -> dict[str, Any]:
    """The verified contents of a decoder checkpoint: ``decoder_kwargs, state_dict, latents, config, extra``.

    With ``config``, a checkpoint written for another configuration is refused.

    Raises
    ------
    CheckpointError
        Missing, damaged, truncated or foreign file, another format version, or other settings.
    """
    env = _read_envelope(path, "decoder", config)
    return dict(env["payload"], config=env["settings"], format_version=env["format_version"],
                package_version=env["package_version"])


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
