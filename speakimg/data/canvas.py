"""Fitting speech to the 10 s canvas: natural speed with silence (``pad``) or slowed down (``stretch``).

The canvas audio is 10.24 s (``CANVAS_SAMPLES`` = 163 840 samples, 1024 mel frames); speech is placed
within its first 10 s (``SPEECH_SAMPLES`` = 160 000), as in Images that Sound, whose last 32 frames are
always silent.

- ``pad`` (default): natural speed; the speech is placed ``left`` (at the start), ``center`` or at a
  ``random`` offset (drawn from a seed, so builds are reproducible) and the rest is silence.
- ``stretch``: the speech is slowed down to fill ``target_fill`` of the 10 s (at most ``max_stretch``
  times longer; never sped up), with the engine's own rate control where it has one (festival, espeak,
  VITS) and a time-stretch (``speakimg.audio.time_stretch``) otherwise. Slower speech fills the image
  but costs intelligibility (``docs/data.md``: with festival's own rate control an offline recogniser's
  WER goes from 41 % at natural speed to 51 % at 1.5x, 72 % at 2x and over 100 % at 2.7x, i.e. filling
  90 % of the canvas); hence the moderate defaults (half the canvas, at most 2x).

Speech longer than 10 s at natural speed is rejected with a :class:`TextError` naming the sentence.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from speakimg.audio.canvas import CANVAS
from speakimg.audio.stretch import STRETCH_METHODS, time_stretch
from speakimg.data.manifest import CANVAS_SAMPLES
from speakimg.errors import TextError

if TYPE_CHECKING:  # torch and the engines load when speech is made, not for `--help`
    import torch

    from speakimg.tts import TTSEngine

__all__ = [
    "FIT_MODES",
    "PLACEMENTS",
    "SPEECH_SAMPLES",
    "CanvasFit",
    "FittedSpeech",
    "place_on_canvas",
    "speak_on_canvas",
    "trim_silence",
]

SPEECH_SAMPLES = CANVAS.speech_samples
"""Samples of the part of the canvas that may hold speech (10 s)."""
FIT_MODES = ("pad", "stretch")
PLACEMENTS = ("left", "center", "random")


@dataclass(frozen=True)
class CanvasFit:
    """How speech is fitted to the canvas (the builder's ``--fit`` options).

    Attributes:
        mode: ``"pad"`` (natural speed) or ``"stretch"`` (slowed down to fill ``target_fill``).
        placement: where the speech goes in the 10 s: ``"left"``, ``"center"`` or ``"random"``.
        target_fill: ``stretch`` only: the fraction of the 10 s the speech should fill.
        max_stretch: ``stretch`` only: the largest duration factor applied.
        stretch_method: ``stretch`` only, for engines without rate control: see ``speakimg.audio.stretch``.
        peak: the speech is peak-normalised to this value (Auffusion's 0.95).
        trim_db: leading and trailing silence quieter than ``peak - trim_db`` dB is trimmed before
            fitting (``None`` keeps the engine's silence); ``trim_margin`` seconds are kept around it.
    """

    mode: str = "pad"
    placement: str = "left"
    target_fill: float = 0.5
    max_stretch: float = 2.0
    stretch_method: str = "atempo"
    peak: float = 0.95
    trim_db: float | None = 50.0
    trim_margin: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in FIT_MODES:
            raise ValueError(f"fit mode must be one of {FIT_MODES}, got {self.mode!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if not 0.0 < self.target_fill <= 1.0:
            raise ValueError(f"target_fill must be in (0, 1], got {self.target_fill}")
        if self.max_stretch < 1.0:
            raise ValueError(f"max_stretch must be >= 1, got {self.max_stretch}")
        if self.stretch_method not in STRETCH_METHODS:
            raise ValueError(f"stretch_method must be one of {STRETCH_METHODS}, got {self.stretch_method!r}")
        if not 0.0 < self.peak <= 1.0:
            raise ValueError(f"peak must be in (0, 1], got {self.peak}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FittedSpeech:
    """Speech on the canvas: ``audio`` float32 ``[CANVAS_SAMPLES]``, speech in ``[start, start + length)``."""

    audio: torch.Tensor
    start: int
    length: int
    stretch: float
    """Duration factor applied (1.0: natural speed)."""
    stretch_method: str
    """``"none"``, ``"native"`` (the engine's rate control) or a time-stretch method."""

    @property
    def seconds(self) -> float:
        return self.length / CANVAS.sample_rate


def trim_silence(wav: torch.Tensor, top_db: float | None = 50.0, margin: float = 0.05) -> torch.Tensor:
    """Drop leading/trailing audio quieter than ``top_db`` below the peak, keeping ``margin`` seconds."""
    if top_db is None:
        return wav
    import librosa

    _, (start, end) = librosa.effects.trim(wav.numpy(), top_db=top_db, frame_length=512, hop_length=128)
    pad = int(margin * CANVAS.sample_rate)
    return wav[max(0, start - pad) : min(wav.shape[0], end + pad)]


def place_on_canvas(speech: torch.Tensor, placement: str = "left", seed: int = 0) -> tuple[torch.Tensor, int]:
    """Put ``speech`` (at most 10 s) on a silent canvas; returns ``(canvas [CANVAS_SAMPLES], start)``.

    ``random`` draws the offset from ``seed`` (uniform over the positions that keep it within 10 s).
    """
    n = speech.shape[0]
    if n > SPEECH_SAMPLES:
        raise ValueError(f"speech of {n} samples does not fit the {SPEECH_SAMPLES}-sample speech region")
    room = SPEECH_SAMPLES - n
    if placement == "left":
        start = 0
    elif placement == "center":
        start = room // 2
    elif placement == "random":
        start = random.Random(seed).randint(0, room)
    else:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    import torch

    canvas = torch.zeros(CANVAS_SAMPLES, dtype=torch.float32)
    canvas[start : start + n] = speech
    return canvas, start


def _too_long(text: str, seconds: float) -> TextError:
    return TextError(
        f"sentence {text!r} is {seconds:.2f} s of speech at natural speed; the canvas holds "
        f"{SPEECH_SAMPLES / CANVAS.sample_rate:.0f} s. Shorten or split it."
    )


def speak_on_canvas(engine: TTSEngine, text: str, fit: CanvasFit = CanvasFit(), seed: int = 0) -> FittedSpeech:
    """Speak ``text`` with ``engine`` and fit it to the canvas as ``fit`` says.

    Raises:
        TextError: the speech is longer than 10 s at natural speed (or the engine fails on the text).
    """

    from speakimg.audio import peak_normalize

    def speak(stretch: float = 1.0) -> torch.Tensor:
        return trim_silence(engine.synthesize(text, stretch=stretch), fit.trim_db, fit.trim_margin)

    speech = speak()
    natural = speech.shape[0]
    if natural > SPEECH_SAMPLES:
        raise _too_long(text, natural / CANVAS.sample_rate)
    method = "none"
    target = min(fit.target_fill * SPEECH_SAMPLES, fit.max_stretch * natural)
    if fit.mode == "stretch" and target > natural * (1 + 1e-3):
        factor = target / natural
        if engine.native_stretch:
            method = "native"
            speech = speak(factor)
            # rate controls are approximate: correct towards the target length (twice at most)
            for _ in range(2):
                if abs(speech.shape[0] - target) <= 0.03 * target and speech.shape[0] <= SPEECH_SAMPLES:
                    break
                factor *= target / speech.shape[0]
                speech = speak(factor)
            if speech.shape[0] > SPEECH_SAMPLES:
                raise TextError(f"{engine.name} could not slow {text!r} down to within 10 s; use --fit pad")
        else:
            method = fit.stretch_method
            speech = time_stretch(speech, factor, method)
    stretch = speech.shape[0] / natural
    speech = peak_normalize(speech, fit.peak, name=f"speech of {text!r}")
    audio, start = place_on_canvas(speech, fit.placement, seed)
    return FittedSpeech(
        audio=audio, start=start, length=speech.shape[0], stretch=round(stretch, 4), stretch_method=method
    )
