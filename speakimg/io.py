"""Atomic writes: the one way speakimg writes a file or a folder that someone may read at the same time.

A file is written under a unique hidden temporary name in its own folder (``.<name>.tmp-<pid>-<hex>``,
with the target's suffix kept so libraries that pick a format from it still do), then renamed over
the target with :func:`os.replace`. A reader sees the old file or the new one, never half of one; a
killed writer leaves only a temporary file that :func:`clean_temp_files` recognises and removes; two
writers never share a temporary name.

>>> with atomic_path("out/img.png") as tmp:      # for libraries that write to a path
...     image.save(tmp)
>>> write_json("out/sample.json", record)          # text, JSON, bytes and .npy helpers
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_write",
    "clean_temp_files",
    "is_temp_file",
    "load_safetensors",
    "load_torch",
    "safetensors_error",
    "save_npy",
    "temp_name",
    "torch_load_error",
    "write_bytes",
    "write_json",
    "write_text",
]

_TEMP = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]{8}(\.[A-Za-z0-9]+)?$")


def temp_name(path: str | os.PathLike) -> Path:
    """A unique hidden temporary path beside ``path`` that keeps its suffix: ``.<name>.tmp-<pid>-<hex><suffix>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def is_temp_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is named like a temporary file or folder of :func:`temp_name`."""
    return bool(_TEMP.match(Path(path).name))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing (``mode`` "w" or "wb"); it replaces ``path`` on a clean exit.

    The data is flushed and fsynced before the rename, so a crash right after leaves the old file or
    the complete new one.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces the folder ``path`` (old contents removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = temp_name(path)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON (non-JSON values via ``str``), newline-terminated, atomically."""
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def save_npy(path: str | os.PathLike, array: Any) -> Path:
    """``np.save`` to ``path`` atomically (the path is used as given: no ``.npy`` is appended)."""
    import numpy as np

    with atomic_write(path, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
    return Path(path)


def torch_load_error(path: str | os.PathLike, error: BaseException, what: str = "checkpoint") -> Exception:
    """The :class:`CheckpointError` for a failed ``torch.load(path, weights_only=True)``, naming the file.

    A refused pickle (objects other than tensors and plain containers) and a truncated or foreign file get
    their own one-line messages. For loaders that call ``torch.load`` inside a library (Whisper, diffusers).
    """
    import pickle

    from speakimg.errors import CheckpointError

    if isinstance(error, pickle.UnpicklingError):
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
        found = [line.removeprefix("WeightsUnpickler error: ") for line in lines if "GLOBAL" in line]  # what
        reason = (found or [line for line in lines if line] or [type(error).__name__])[0].split(". ")[0]
        return CheckpointError(
            f"{path}: refused to load this {what} with torch.load(weights_only=True): it holds Python objects "
            f"other than tensors and plain containers ({reason[:200]}). speakimg never unpickles arbitrary "
            "objects (they can run code); re-save the file with tensors only (a state dict), or use safetensors."
        )
    return CheckpointError(
        f"{path}: cannot read this {what} ({type(error).__name__}: {str(error).split('. ')[0][:200]}); the file is "
        "truncated or not a PyTorch file: copy or download it again."
    )


def load_torch(path: str | os.PathLike, *, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear :class:`CheckpointError` naming the file.

    A file holding arbitrary Python objects (a pickle that could run code) is refused; a truncated or
    foreign file is reported as such. ``what`` names the file's role in messages ("vocoder", ...).
    """
    import torch

    from speakimg.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a refused pickle, a truncated zip, not a torch file, a wrong map_location
        raise torch_load_error(path, error, what) from None


def safetensors_error(path: str | os.PathLike, error: BaseException, what: str = "weights") -> Exception:
    """The :class:`CheckpointError` for a safetensors file that cannot be read (truncated, not safetensors)."""
    from speakimg.errors import CheckpointError

    return CheckpointError(
        f"{path}: cannot read this {what} ({str(error)[:200]}); the file is truncated or not a safetensors "
        "file: copy, export or download it again."
    )


def load_safetensors(path: str | os.PathLike, *, what: str = "weights", device: str = "cpu") -> dict:
    """``safetensors.torch.load_file(path)`` with one clear :class:`CheckpointError` naming the file."""
    from safetensors.torch import load_file

    from speakimg.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    try:
        return load_file(path, device=device)
    except Exception as error:  # SafetensorError: truncated header or data, not a safetensors file
        raise safetensors_error(path, error, what) from None


def clean_temp_files(folder: str | os.PathLike, *, older_than_s: float = 0.0, recursive: bool = True) -> list[Path]:
    """Remove temporary files and folders left by killed writers under ``folder``; returns what was removed.

    ``older_than_s`` spares temporaries younger than that (a writer may still be at work).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    removed: list[Path] = []
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    for path in sorted(candidates):
        if not is_temp_file(path) or not path.exists():
            continue
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if age >= older_than_s:
            _remove(path)
            removed.append(path)
    return removed
