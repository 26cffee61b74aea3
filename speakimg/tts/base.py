"""The text-to-speech interface: a sentence in, 16 kHz mono float audio out."""

from __future__ import annotations

import abc
import shutil

import torch

from speakimg.errors import MissingDependencyError, TextError

__all__ = ["TTSEngine", "TTSError", "require_program"]


class TTSError(TextError):
    """The engine failed on a sentence (the message names the sentence and the engine)."""


def require_program(program: str, install_hint: str) -> str:
    """Full path of ``program`` or a :class:`MissingDependencyError` saying how to install it."""
    path = shutil.which(program)
    if path is None:
        raise MissingDependencyError(f"the TTS engine needs '{program}', which is not installed: {install_hint}")
    return path


class TTSEngine(abc.ABC):
    """A speech synthesiser. Subclasses implement :meth:`_synthesize`.

    ``stretch`` is a duration factor (1.5 = 1.5x longer, slower speech) that engines with their own
    rate control apply natively; ``native_stretch`` says whether an engine has one.
    """

    name: str = "tts"
    sample_rate: int = 16000
    native_stretch: bool = False

    def synthesize(self, text: str, stretch: float = 1.0) -> torch.Tensor:
        """Speak ``text``; returns float32 audio ``[T]`` at 16 kHz in [-1, 1]."""
        if not isinstance(text, str) or not text.strip():
            raise TextError(f"{self.name}: cannot speak an empty text ({text!r})")
        if stretch <= 0:
            raise ValueError(f"stretch must be positive, got {stretch}")
        if stretch != 1.0 and not self.native_stretch:
            raise ValueError(f"the {self.name} engine has no rate control; use stretch=1.0")
        try:
            wav = self._synthesize(text.strip(), stretch)
        except (MissingDependencyError, TTSError):
            raise
        except Exception as error:
            raise TTSError(f"{self.name} failed to speak {text!r}: {type(error).__name__}: {error}") from error
        if wav.numel() == 0 or float(wav.abs().max()) == 0.0:
            raise TTSError(f"{self.name} produced no audio for {text!r}")
        return wav.float().clamp(-1.0, 1.0)

    @property
    def settings(self) -> dict:
        """What decides this engine's audio, as JSON values (a dataset build records it with the data).

        Engines with settings beyond their constructor's explicit arguments (fixed noise scales, a
        resolved voice file) extend it.
        """
        return {"engine": self.name}

    @abc.abstractmethod
    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        """Engine-specific synthesis at 16 kHz."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
