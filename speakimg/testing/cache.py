"""Where the tiny models live on disk, and how each is built exactly once (atomically)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["KIT_VERSION", "default_root", "cached_build"]

KIT_VERSION = "1"
"""Bump when a tiny model's architecture or on-disk format changes: cached copies are rebuilt."""


def default_root() -> Path:
    """``$SPEAKIMG_TINY_DIR`` if set, else ``~/.cache/speakimg/tiny``."""
    env = os.environ.get("SPEAKIMG_TINY_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speakimg" / "tiny"


def _stamp(name: str, spec: dict) -> str:
    blob = json.dumps({"kit": KIT_VERSION, "name": name, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_build(
    name: str, build: Callable[[Path], None], root: str | os.PathLike | None = None, spec: dict | None = None
) -> Path:
    """Return ``root/name``, building it with ``build(tmp_dir)`` first if it is missing or stale.

    The folder is written under a temporary name and renamed into place, so a killed build never
    leaves a half-written model and concurrent builders (pytest workers, DDP ranks) do not clash.
    """
    root = Path(root) if root is not None else default_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    stamp = _stamp(name, spec or {})
    marker = target / ".speakimg-tiny"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        build(tmp)
        (tmp / ".speakimg-tiny").write_text(stamp + "\n")
        if target.exists():
            if marker.is_file() and marker.read_text().strip() == stamp:  # another process won
                return target
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its copy in first
            if not (marker.is_file() and marker.read_text().strip() == stamp):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
