"""speakimg: images that speak.

Spectrograms that look like a prompted picture and, played through a vocoder, speak a sentence.
Heavy components are imported lazily so ``import speakimg`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ImagesThatSpeakPipeline": "speakimg.pipeline",
    "SpeechModel": "speakimg.speech",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakimg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
