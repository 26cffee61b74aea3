"""Text-to-speech backends behind one interface: ``get_engine(name).synthesize(text) -> 16 kHz audio``."""

from __future__ import annotations

from collections.abc import Callable

from speakimg.tts.base import TTSEngine, TTSError
from speakimg.tts.espeak import EspeakTTS
from speakimg.tts.festival import FestivalTTS
from speakimg.tts.piper import PiperTTS
from speakimg.tts.tacotron2 import Tacotron2TTS
from speakimg.tts.transformers_tts import TransformersTTS

__all__ = [
    "ENGINES",
    "EspeakTTS",
    "FestivalTTS",
    "PiperTTS",
    "Tacotron2TTS",
    "TTSEngine",
    "TTSError",
    "TransformersTTS",
    "get_engine",
]


ENGINES: dict[str, Callable[..., TTSEngine]] = {
    "festival": FestivalTTS,
    "espeak": EspeakTTS,
    "piper": PiperTTS,
    "tacotron2": Tacotron2TTS,
    "transformers": TransformersTTS,
}
"""Engine name -> factory. Keyword arguments of ``get_engine`` go to the factory.

``festival`` (default; HTS voice, offline), ``espeak`` (offline), ``piper`` (``voice=`` an .onnx file,
voice folder, installed voice package such as ``joe``, or ``real:piper-joe``; offline neural voices),
``tacotron2`` (torchaudio, optional extra; downloads its weights) and ``transformers`` (``model=`` a hub
id or folder, e.g. VITS/MMS).
"""


def get_engine(name: str = "festival", **kwargs) -> TTSEngine:
    """Instantiate a TTS engine by name (``festival`` by default)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown TTS engine {name!r}; choose one of {sorted(ENGINES)}") from None
    return factory(**kwargs)
