"""Text-to-speech backends behind one interface: ``get_engine(name).synthesize(text) -> 16 kHz audio``."""

from __future__ import annotations

from collections.abc import Callable

from speakimg.tts.base import TTSEngine, TTSError
from speakimg.tts.espeak import EspeakTTS
from speakimg.tts.festival import FestivalTTS

__all__ = ["ENGINES", "EspeakTTS", "FestivalTTS", "TTSEngine", "TTSError", "get_engine"]

ENGINES: dict[str, Callable[..., TTSEngine]] = {
    "festival": FestivalTTS,
    "espeak": EspeakTTS,
}
"""Engine name -> factory. Keyword arguments of ``get_engine`` go to the factory."""


def get_engine(name: str = "festival", **kwargs) -> TTSEngine:
    """Instantiate a TTS engine by name (``festival`` by default)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown TTS engine {name!r}; choose one of {sorted(ENGINES)}") from None
    return factory(**kwargs)
