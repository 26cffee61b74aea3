"""Any transformers text-to-speech model by hub id or local folder (VITS/MMS, ...), at 16 kHz.

``TransformersTTS("facebook/mms-tts-eng")`` loads the model with transformers' ``text-to-speech``
pipeline through :func:`speakimg.hub.resolve_dir` (one code path for hub ids and local folders).
VITS models have native rate control (``speaking_rate``); their noise is seeded per sentence, so a
sentence always gives the same audio.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

from speakimg.audio.io import SAMPLE_RATE, resample
from speakimg.errors import MissingDependencyError
from speakimg.tts.base import TTSEngine

__all__ = ["TransformersTTS", "DEFAULT_TRANSFORMERS_TTS"]

DEFAULT_TRANSFORMERS_TTS = "facebook/mms-tts-eng"


class TransformersTTS(TTSEngine):
    """A transformers text-to-speech model (``pipeline("text-to-speech")``), resampled to 16 kHz.

    Args:
        model: hub id (e.g. ``facebook/mms-tts-eng``) or local folder of the model.
        device: torch device for the model (default: CPU).
        seed: base seed of the model's sampling noise (VITS); each sentence gets its own derived seed.
    """

    def __init__(
        self, model: str | os.PathLike = DEFAULT_TRANSFORMERS_TTS, device: str | None = None, seed: int = 0
    ) -> None:
        try:
            from transformers import pipeline
        except ImportError as error:  # pragma: no cover - transformers is a core dependency
            raise MissingDependencyError(f"the transformers TTS engine needs transformers: {error}") from error
        from speakimg.hub import resolve_dir

        self.model = str(model)
        self.name = f"transformers:{self.model}"
        self.seed = seed
        self.device = torch.device(device or "cpu")
        folder = resolve_dir(model)
        self._pipe = pipeline("text-to-speech", model=str(folder), device=self.device)
        self._base_rate = getattr(self._pipe.model, "speaking_rate", None)

    @property
    def native_stretch(self) -> bool:  # type: ignore[override]
        """VITS-family models scale their predicted durations by ``1 / speaking_rate``."""
        return self._base_rate is not None

    def _sentence_seed(self, text: str) -> int:
        digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        model = self._pipe.model
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            if stretch != 1.0:
                model.speaking_rate = self._base_rate / stretch
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self._sentence_seed(text))
                out = self._pipe(text)
        finally:
            if self._base_rate is not None:
                model.speaking_rate = self._base_rate
        audio = np.asarray(out["audio"], dtype=np.float32).reshape(-1)
        return torch.from_numpy(resample(audio, int(out["sampling_rate"]), SAMPLE_RATE))

    def __repr__(self) -> str:
        return f"TransformersTTS(model={self.model!r})"
