"""How a speech model records the models it was built from.

References are hub ids, local folders, or registered references such as ``tiny:<name>`` (the offline
tiny-model kit); all of them
resolve through :func:`speakimg.hub.resolve_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from speakimg.hub import is_registered_reference

__all__ = ["describe_ref"]


def describe_ref(ref: str | os.PathLike) -> str:
    """How to record ``ref`` in a saved model: tiny and hub references as they are, folders absolute."""
    name = str(ref)
    if is_registered_reference(name):
        return name
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name
