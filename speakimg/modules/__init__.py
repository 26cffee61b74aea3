"""LightningModules: thin training wrappers over the model code (speech fine-tune, HiFi-GAN), the
learning-rate schedule they default to, and the callback that keeps the last finite checkpoint.

Imported lazily (``speakimg.modules.SpeechLoRAModule``, ``speakimg.modules.HiFiGANModule``) so that ``import speakimg.modules`` stays light.
"""

from __future__ import annotations

from speakimg.lazy import lazy_exports

_LAZY = {
    "SpeechLoRAModule": "speakimg.modules.speech_lora",
    "HiFiGANModule": "speakimg.modules.hifigan",
    "WarmupCosine": "speakimg.modules.optim",
    "FiniteCheckpoints": "speakimg.modules.checkpoints",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = list(_LAZY)
