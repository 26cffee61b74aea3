"""One code path from "a hub id or a local folder" to local files.

Every loader in speakimg calls :func:`resolve_dir` or :func:`resolve_file`: a local folder is used
as it is; ``<prefix>:<name>`` is expanded by the resolver registered for that prefix (the tiny-model
kit registers ``tiny:``, built on first use in ``$SPEAKIMG_TINY_DIR``; packages of real offline models
register ``real:``); anything else is treated as a Hugging Face hub id and fetched (or found in the
local hub cache when offline). Failures become a :class:`~speakimg.errors.ModelNotFoundError` that
says what was looked for and how to fix it.

Resolvers are registered with :func:`register_resolver` or, so that a reference works before the
package that serves it is imported, as an entry point in the ``speakimg.resolvers`` group (name: the
prefix without the colon; value: a callable taking the whole reference and returning a local path).
This module imports nothing above it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from speakimg.errors import ModelNotFoundError

__all__ = [
    "ENTRY_POINT_GROUP",
    "expand_reference",
    "is_hub_id",
    "is_local",
    "is_registered_reference",
    "register_resolver",
    "registered_prefixes",
    "resolve_dir",
    "resolve_file",
]

ENTRY_POINT_GROUP = "speakimg.resolvers"
"""Entry-point group of reference resolvers (``tiny = "speakimg.testing:resolve_tiny"``)."""

Resolver = Callable[[str], "str | os.PathLike"]
_RESOLVERS: dict[str, Resolver] = {}
_ENTRY_POINTS_LOADED = False
_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(?!//)(.+)$")


def register_resolver(prefix: str, resolver: Resolver) -> None:
    """Serve references ``<prefix>:<name>`` with ``resolver(reference) -> local path``."""
    prefix = prefix.rstrip(":")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", prefix):
        raise ValueError(f"a resolver prefix is a lower-case word, got {prefix!r}")
    _RESOLVERS[prefix] = resolver


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _RESOLVERS.setdefault(entry.name, lambda ref, entry=entry: entry.load()(ref))


def registered_prefixes() -> list[str]:
    """The prefixes that have a resolver (``["real", "tiny"]`` with the kits installed)."""
    _load_entry_points()
    return sorted(_RESOLVERS)


def _split(name: str) -> tuple[str, str] | None:
    match = _PREFIX.match(name)
    if match is None or Path(name).expanduser().exists():
        return None
    _load_entry_points()
    return (match.group(1), match.group(2)) if match.group(1) in _RESOLVERS else None


def is_registered_reference(name_or_path: str | os.PathLike) -> bool:
    """True for ``<prefix>:<name>`` with a registered prefix (recorded as it is in saved models)."""
    return _split(str(name_or_path)) is not None


def expand_reference(name_or_path: str | os.PathLike) -> str:
    """A registered ``<prefix>:<name>`` reference -> its local path (as a string); anything else unchanged."""
    name = str(name_or_path)
    split = _split(name)
    if split is None:
        return name
    try:
        return str(_RESOLVERS[split[0]](name))
    except ModelNotFoundError:
        raise
    except Exception as error:  # a resolver's own failure (a missing package, a failed build)
        raise ModelNotFoundError(
            f"{name!r}: the {split[0]}: resolver failed ({type(error).__name__}: {error})"
        ) from error


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True if ``name_or_path`` is an existing local folder or file."""
    return Path(name_or_path).expanduser().exists()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(name: str) -> bool:
    """A name that cannot be a hub id ("name" or "org/name") is a local path that does not exist."""
    return not _HUB_ID.match(name) or name.endswith((".pt", ".ckpt", ".json", ".safetensors", ".t7"))


def is_hub_id(name_or_path: str | os.PathLike) -> bool:
    """True for a name shaped like a hub id (``name`` or ``org/name``) that is no local path or registered reference."""
    name = str(name_or_path)
    return not is_local(name) and not is_registered_reference(name) and not _looks_like_path(name)


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
    name = expand_reference(name_or_path)
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
    name = expand_reference(name_or_path)
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
