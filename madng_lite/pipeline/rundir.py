"""The output folder of a run: its lock, its resume state and its atomic writes (book: Chapter 10).

A :class:`RunDir` is opened before any work: the folder is created and tested writable, an
exclusive lock (``fcntl.flock`` on ``.lock``) is taken so that a second run on the same folder is
refused at once, and temporary files left by a killed run are removed. Every file is written
atomically (:func:`madng_lite.io.atomic_write`: unique temp name, fsync, rename), and every state
file carries the digest of the settings that made it, so a resume with other settings is refused.
The lock dies with its process, so a killed run can be resumed by running the same command again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the run goes on unlocked
    fcntl = None

from ..io import CheckpointError, atomic_write, load_json_state, load_state, save_json_state, save_state

__all__ = ["RunDirError", "RunLockedError", "RunDir"]


class RunDirError(ValueError):
    """The output folder cannot be used (not a folder, not writable)."""


class RunLockedError(RunDirError):
    """Another run holds the folder's lock."""


class RunDir:
    """An output folder owned by one run at a time (use as a context manager)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ----- opening -----------------------------------------------------------------------------
    def __enter__(self) -> "RunDir":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create and test the folder, take its lock, remove orphaned temporary files."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunDirError(f"--out {str(p)!r} exists and is not a folder")
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            raise RunDirError(f"--out {str(p)!r} is not a writable folder ({e.strerror or e})") from None
        self._lock_fd = os.open(p / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(self._lock_fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(self._lock_fd)
                self._lock_fd = None
                raise RunLockedError(f"another run (pid {holder}) is using --out {str(p)!r}; wait for it to "
                                     "finish or use another folder") from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, str(os.getpid()).encode(), 0)
        for tmp in p.glob(".*.tmp"):   # left by a run killed while writing: we hold the lock, so none is live
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock_fd is not None:
            if fcntl is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----- files -------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        """A plain JSON file (results), written atomically; non-finite floats are refused."""
        text = json.dumps(obj, indent=1, allow_nan=False).encode()
        return atomic_write(self.file(name), lambda fh: fh.write(text))

    def write_bytes(self, name: str, data: bytes) -> Path:
        return atomic_write(self.file(name), lambda fh: fh.write(data))

    def save(self, name: str, kind: str, payload: dict, settings: dict) -> Path:
        """A tensor state file (:func:`madng_lite.io.save_state`)."""
        return save_state(self.file(name), kind, payload, settings)

    def load(self, name: str, kind: str, settings: dict) -> dict | None:
        """The payload of a state file made with ``settings``; None if there is none; an error if foreign."""
        return load_state(self.file(name), kind, settings) if self.file(name).exists() else None

    def save_json_state(self, name: str, kind: str, payload: dict, settings: dict) -> Path:
        return save_json_state(self.file(name), kind, payload, settings)

    def load_json_state(self, name: str, kind: str, settings: dict) -> dict | None:
        return load_json_state(self.file(name), kind, settings) if self.file(name).exists() else None

    def remove(self, name: str) -> None:
        self.file(name).unlink(missing_ok=True)


__all__ += ["CheckpointError"]
