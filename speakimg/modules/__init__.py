"""LightningModules: thin training wrappers over the model code (speech fine-tune, HiFi-GAN), the
learning-rate schedule they default to, and the callback that keeps the last finite checkpoint.

Imported lazily (``speakimg.modules.SpeechLoRAModule``, ``speakimg.modules.HiFiGANModule``) so that ``import speakimg.modules`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SpeechLoRAModule": "speakimg.modules.speech_lora",
    "HiFiGANModule": "speakimg.modules.hifigan",
    "WarmupCosine": "speakimg.modules.optim",
    "FiniteCheckpoints": "speakimg.modules.checkpoints",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakimg.modules' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
