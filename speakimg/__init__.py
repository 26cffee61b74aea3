"""speakimg: images that speak.

Spectrograms that look like a prompted picture and, played through a vocoder, speak a sentence.
Heavy components are imported lazily so ``import speakimg`` stays fast.
"""

from __future__ import annotations

from speakimg.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "ImagesThatSpeakPipeline": "speakimg.pipeline",
    "SpeechModel": "speakimg.speech",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = ["__version__", *_LAZY]
