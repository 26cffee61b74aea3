"""Text-to-speech backends behind one interface: ``get_engine(name).synthesize(text) -> 16 kHz audio``.

A **voice spec** names an engine and, optionally, its voice: ``festival``, ``espeak:en-gb``,
``piper:joe``, ``transformers:facebook/mms-tts-eng``; several comma-separated specs
(``festival,piper:joe,espeak``) make a multi-voice dataset (:func:`parse_voices`, :func:`get_voice`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from speakimg.errors import ConfigError
from speakimg.lazy import lazy_exports

if TYPE_CHECKING:
    from speakimg.tts.base import TTSEngine

__all__ = [
    "ENGINES",
    "EspeakTTS",
    "FestivalTTS",
    "PiperTTS",
    "Tacotron2TTS",
    "TTSEngine",
    "TTSError",
    "TransformersTTS",
    "VoiceSpec",
    "get_engine",
    "get_voice",
    "parse_voices",
]


_CLASSES = {  # name -> module that defines it (imported on first use: the engines import torch)
    "TTSEngine": "speakimg.tts.base",
    "TTSError": "speakimg.tts.base",
    "FestivalTTS": "speakimg.tts.festival",
    "EspeakTTS": "speakimg.tts.espeak",
    "PiperTTS": "speakimg.tts.piper",
    "Tacotron2TTS": "speakimg.tts.tacotron2",
    "TransformersTTS": "speakimg.tts.transformers_tts",
}

__getattr__, __dir__ = lazy_exports(__name__, _CLASSES, globals())


class _Engines(Mapping):
    """Engine name -> engine class, each class imported when it is first looked up."""

    def __init__(self, classes: dict[str, str]) -> None:
        self._classes = classes

    def __getitem__(self, name: str) -> Callable[..., TTSEngine]:
        return __getattr__(self._classes[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


ENGINES: Mapping[str, Callable[..., TTSEngine]] = _Engines(
    {
        "festival": "FestivalTTS",
        "espeak": "EspeakTTS",
        "piper": "PiperTTS",
        "tacotron2": "Tacotron2TTS",
        "transformers": "TransformersTTS",
    }
)
"""Engine name -> factory. Keyword arguments of ``get_engine`` go to the factory.

``festival`` (default; HTS voice, offline), ``espeak`` (offline), ``piper`` (``voice=`` an .onnx file,
voice folder, installed voice package such as ``joe``, or ``real:piper-joe``; offline neural voices),
``tacotron2`` (torchaudio, optional extra; downloads its weights) and ``transformers`` (``model=`` a hub
id or folder, e.g. VITS/MMS).
"""

VOICE_PARAMETERS: dict[str, str] = {"transformers": "model", "tacotron2": "bundle"}
"""The factory argument that the ``<voice>`` of ``engine:<voice>`` sets (``voice`` for every other engine)."""


def get_engine(name: str = "festival", **kwargs) -> TTSEngine:
    """Instantiate a TTS engine by name (``festival`` by default)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown TTS engine {name!r}; choose one of {sorted(ENGINES)}") from None
    return factory(**kwargs)


@dataclass(frozen=True)
class VoiceSpec:
    """One voice: an engine name and, optionally, the engine's voice (``str()`` gives ``engine[:voice]``)."""

    engine: str
    voice: str | None = None

    def __str__(self) -> str:
        return self.engine if self.voice is None else f"{self.engine}:{self.voice}"

    @classmethod
    def parse(cls, text: str) -> VoiceSpec:
        """``"piper:joe"`` -> ``VoiceSpec("piper", "joe")``; the engine must be one of :data:`ENGINES`."""
        engine, sep, voice = text.strip().partition(":")
        engine, voice = engine.strip(), voice.strip()
        if not engine:
            raise ConfigError(f"voice spec {text!r} names no engine; write ENGINE or ENGINE:VOICE, e.g. festival")
        if engine not in ENGINES:
            raise ConfigError(f"unknown TTS engine {engine!r} in voice spec {text!r}; choose one of {sorted(ENGINES)}")
        if sep and not voice:
            raise ConfigError(f"voice spec {text!r} has an empty voice after ':'; write {engine} or {engine}:VOICE")
        return cls(engine, voice or None)


def parse_voices(spec: str | Iterable[str]) -> list[VoiceSpec]:
    """Voice specs of ``"festival,piper:joe,espeak"`` (or of a list of specs), in order, without duplicates.

    Raises:
        ConfigError: an empty spec, an unknown engine, an empty voice or a voice given twice.
    """
    parts = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    if not any(p.strip() for p in parts):
        raise ConfigError(f"no voice in TTS spec {spec!r}; give e.g. festival or festival,espeak")
    voices = []
    for part in parts:
        if not part.strip():
            raise ConfigError(f"TTS spec {spec!r} has an empty entry between commas")
        voice = VoiceSpec.parse(part)
        if voice in voices:
            raise ConfigError(f"TTS spec {spec!r} names the voice {str(voice)!r} twice")
        voices.append(voice)
    return voices


def get_voice(voice: VoiceSpec | str, **options) -> TTSEngine:
    """The engine of one voice spec.

    The spec's voice sets the engine's voice argument (:data:`VOICE_PARAMETERS`; ``voice`` by default);
    ``options`` (e.g. ``model=``, ``device=``) go to the engines whose factory takes them, the others
    are dropped, so one set of options serves a multi-voice build.
    """
    voice = voice if isinstance(voice, VoiceSpec) else VoiceSpec.parse(voice)
    factory = ENGINES[voice.engine]
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        accepted = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in options.items() if takes_any or k in accepted}
    if voice.voice is not None:
        kwargs[VOICE_PARAMETERS.get(voice.engine, "voice")] = voice.voice
    return factory(**kwargs)
