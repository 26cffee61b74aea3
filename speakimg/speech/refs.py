"""Model references: a hub id, a local folder, or ``tiny:<name>`` for the offline tiny-model kit.

``tiny:auffusion`` and ``tiny:plbert`` resolve to the tiny models of :mod:`speakimg.testing`, built
on first use into ``$SPEAKIMG_TINY_DIR`` (default ``~/.cache/speakimg/tiny``). The kit is
deterministic, so a config or an exported model that names ``tiny:auffusion`` means the same
weights on every machine; the quickstart config uses it so no path is hard-coded.
"""

from __future__ import annotations

import os
from pathlib import Path

from speakimg.errors import ModelNotFoundError
from speakimg.hub import resolve_dir

__all__ = ["TINY_PREFIX", "resolve_model_dir", "describe_ref"]

TINY_PREFIX = "tiny:"


def resolve_model_dir(
    ref: str | os.PathLike, subfolder: str | None = None, allow_patterns: list[str] | None = None
) -> Path:
    """Local folder of ``ref`` (hub id, folder, or ``tiny:<name>``), optionally its ``subfolder``."""
    name = str(ref)
    if name.startswith(TINY_PREFIX):
        from speakimg.testing import BUILDERS

        kit_name = name[len(TINY_PREFIX) :]
        if kit_name not in BUILDERS:
            raise ModelNotFoundError(
                f"{name!r}: the tiny-model kit has no {kit_name!r}; choose one of {sorted(BUILDERS)}"
            )
        root = BUILDERS[kit_name]()
        return resolve_dir(root, subfolder)
    return resolve_dir(name, subfolder, allow_patterns=allow_patterns)


def describe_ref(ref: str | os.PathLike) -> str:
    """How to record ``ref`` in a saved model: tiny and hub references as they are, folders absolute."""
    name = str(ref)
    if name.startswith(TINY_PREFIX):
        return name
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name
