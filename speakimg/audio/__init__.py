"""The audio front end: one log-mel analysis, its image map, Griffin-Lim and audio I/O.

Everything in speakimg that touches a spectrogram goes through this package (docs/method.md 1-2).
Names are imported on first use, so ``from speakimg.audio import CANVAS`` (the geometry) does not
import torch or librosa: command lines that only read settings start fast.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from speakimg.lazy import lazy_exports

_LAZY = {
    "CANVAS": "speakimg.audio.canvas",
    "CanvasSpec": "speakimg.audio.canvas",
    "MelConfig": "speakimg.audio.config",
    "griffin_lim": "speakimg.audio.griffin_lim",
    "mel_to_linear": "speakimg.audio.griffin_lim",
    "CANVAS_FRAMES": "speakimg.audio.image",
    "LOG_MEL_MAX": "speakimg.audio.image",
    "LOG_MEL_MIN": "speakimg.audio.image",
    "denormalize_log_mel": "speakimg.audio.image",
    "fit_canvas": "speakimg.audio.image",
    "from_vae_range": "speakimg.audio.image",
    "image_to_mel": "speakimg.audio.image",
    "mel_to_image": "speakimg.audio.image",
    "normalize_log_mel": "speakimg.audio.image",
    "to_vae_range": "speakimg.audio.image",
    "SAMPLE_RATE": "speakimg.audio.io",
    "check_audio": "speakimg.audio.io",
    "load_audio": "speakimg.audio.io",
    "peak_normalize": "speakimg.audio.io",
    "resample": "speakimg.audio.io",
    "save_audio": "speakimg.audio.io",
    "log_mel": "speakimg.audio.mel",
    "mel_filterbank": "speakimg.audio.mel",
    "num_frames": "speakimg.audio.mel",
    "AudioError": "speakimg.errors",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)


class _Package(types.ModuleType):
    """``speakimg.audio.griffin_lim`` is the function even after its same-named submodule is imported
    (importing a submodule sets it as an attribute of the package)."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name == "griffin_lim" and isinstance(value, types.ModuleType):
            return value.griffin_lim
        return value


sys.modules[__name__].__class__ = _Package
