"""Lazy package exports (PEP 562): names defined in submodules, imported on first use.

A package's ``__init__`` lists ``name -> module`` and gets its ``__getattr__`` and ``__dir__`` from here, so
``import speakimg.audio`` (or ``--help`` of a command line) does not import torch::

    __getattr__, __dir__ = lazy_exports(__name__, {"log_mel": "speakimg.audio.mel"}, globals())

Written by hand: the standard library has no helper for it (``importlib.util.LazyLoader`` defers whole
modules, not names re-exported from submodules).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports[name]`` is the module defining ``name``; a found
    name is stored in ``namespace`` (the package's ``globals()``) so later lookups skip ``__getattr__``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
