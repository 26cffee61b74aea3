"""One code path from "a hub id or a local folder" to local files.

Every loader in speakimg calls :func:`resolve_dir` or :func:`resolve_file`: a local folder is used
as it is; ``tiny:<name>`` is a model of the offline tiny-model kit (:mod:`speakimg.testing`, built on
first use in ``$SPEAKIMG_TINY_DIR``; deterministic, so the reference means the same weights on every
machine); anything else is treated as a Hugging Face hub id and fetched (or found in the local hub
cache when offline). Failures become a :class:`~speakimg.errors.ModelNotFoundError` that says what
was looked for and how to fix it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from speakimg.errors import ModelNotFoundError

__all__ = ["TINY_PREFIX", "resolve_dir", "resolve_file", "is_local", "tiny_path"]

TINY_PREFIX = "tiny:"


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True if ``name_or_path`` is an existing local folder or file."""
    return Path(name_or_path).expanduser().exists()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(name: str) -> bool:
    """A name that cannot be a hub id ("name" or "org/name") is a local path that does not exist."""
    return not _HUB_ID.match(name) or name.endswith((".pt", ".ckpt", ".json", ".safetensors", ".t7"))


def tiny_path(name: str) -> Path:
    """Local path of the tiny-kit model ``tiny:<name>`` (built on first use)."""
    from speakimg.testing import BUILDERS

    kit_name = name[len(TINY_PREFIX) :]
    if kit_name not in BUILDERS:
        raise ModelNotFoundError(f"{name!r}: the tiny-model kit has no {kit_name!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[kit_name]()


def _hint(name: str) -> str:
    return (
        f"'{name}' is neither a local folder nor a reachable Hugging Face hub id. Pass the path of a "
        "downloaded model folder, or a hub id with network access (or already in the hub cache; "
        "set HF_HUB_OFFLINE=1 to use the cache only). For offline tests and demos, "
        "`python -m speakimg.testing --out DIR` writes tiny models in the real layouts."
    )


def resolve_dir(
    name_or_path: str | os.PathLike, subfolder: str | None = None, allow_patterns: list[str] | None = None
) -> Path:
    """Local folder for ``name_or_path`` (optionally its ``subfolder``), downloading a hub id if needed."""
    name = str(name_or_path)
    if name.startswith(TINY_PREFIX):
        return resolve_dir(tiny_path(name), subfolder)
    local = Path(name).expanduser()
    if local.exists():
        folder = local / subfolder if subfolder else local
        if not folder.is_dir():
            raise ModelNotFoundError(f"{folder}: no such model folder (looked for '{subfolder}' inside {local})")
        return folder
    if _looks_like_path(name):
        raise ModelNotFoundError(f"{local}: no such model folder. {_hint(name)}")
    try:
        from huggingface_hub import snapshot_download

        patterns = allow_patterns
        if subfolder and patterns is None:
            patterns = [f"{subfolder}/*"]
        root = Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as error:  # network, auth, missing repo, offline cache miss
        raise ModelNotFoundError(f"{_hint(name)} ({type(error).__name__}: {error})") from error
    folder = root / subfolder if subfolder else root
    if not folder.is_dir():
        raise ModelNotFoundError(f"hub model '{name}' has no folder '{subfolder}'")
    return folder


def resolve_file(name_or_path: str | os.PathLike, filename: str, subfolder: str | None = None) -> Path:
    """Local path of ``filename`` in a model folder or hub repo (optionally under ``subfolder``).

    ``name_or_path`` may also be the file itself.
    """
    name = str(name_or_path)
    if name.startswith(TINY_PREFIX):
        return resolve_file(tiny_path(name), filename, subfolder)
    local = Path(name).expanduser()
    if local.is_file():
        return local
    if local.exists():
        path = local / subfolder / filename if subfolder else local / filename
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: no such file in the model folder {local}")
        return path
    if _looks_like_path(name):
        raise ModelNotFoundError(f"{local}: no such model folder or file. {_hint(name)}")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name, filename, subfolder=subfolder))
    except Exception as error:
        raise ModelNotFoundError(
            f"{_hint(name)} (wanted '{(subfolder + '/') if subfolder else ''}{filename}'; "
            f"{type(error).__name__}: {error})"
        ) from error
