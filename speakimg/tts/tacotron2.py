"""Tacotron2 (LJSpeech voice) through torchaudio's pipelines: the voice of the original recipe.

An optional extra: ``pip install 'speakimg[tacotron2]'`` installs torchaudio, which must match your
torch build (torchaudio's wheels stop at 2.11; installed next to a newer or CPU-only torch it can break
``import transformers``). The weights (Tacotron2 ~107 MB, WaveRNN ~17 MB) download on first use.
Tacotron2 has no rate control: the canvas fitter time-stretches its speech when asked to.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from speakimg.audio.io import SAMPLE_RATE, resample
from speakimg.errors import MissingDependencyError
from speakimg.tts.base import TTSEngine

__all__ = ["Tacotron2TTS", "DEFAULT_TACOTRON2_BUNDLE"]

DEFAULT_TACOTRON2_BUNDLE = "TACOTRON2_WAVERNN_CHAR_LJSPEECH"
_INSTALL = "pip install 'speakimg[tacotron2]' (torchaudio built for your torch version)"


class Tacotron2TTS(TTSEngine):
    """torchaudio's Tacotron2 + vocoder bundle (default: characters in, WaveRNN out), resampled to 16 kHz.

    Args:
        bundle: a ``torchaudio.pipelines`` Tacotron2 bundle name, e.g. ``TACOTRON2_WAVERNN_CHAR_LJSPEECH``
            or the faster ``TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH``.
        device: torch device (WaveRNN is slow on CPU).
        seed: base seed (Tacotron2 keeps its prenet dropout on at inference); each sentence gets its own.
    """

    name = "tacotron2"
    native_stretch = False

    def __init__(self, bundle: str = DEFAULT_TACOTRON2_BUNDLE, device: str | None = None, seed: int = 0) -> None:
        try:
            import torchaudio
        except (ImportError, OSError) as error:  # OSError: a torchaudio binary built for another torch
            raise MissingDependencyError(
                f"the tacotron2 TTS engine needs torchaudio ({type(error).__name__}: {error}); install it: {_INSTALL}"
            ) from error
        pipelines = getattr(torchaudio, "pipelines", None)
        if pipelines is None or not hasattr(pipelines, bundle):
            raise MissingDependencyError(
                f"torchaudio {getattr(torchaudio, '__version__', '?')} has no pipeline {bundle!r}; "
                f"install a torchaudio with its Tacotron2 pipelines: {_INSTALL}"
            )
        self.bundle = bundle
        self.seed = seed
        self.device = torch.device(device or "cpu")
        spec = getattr(pipelines, bundle)
        self._processor = spec.get_text_processor()
        self._tacotron2 = spec.get_tacotron2().to(self.device).eval()
        self._vocoder = spec.get_vocoder().to(self.device).eval()

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)
            tokens, lengths = self._processor(text)
            spec, spec_lengths, _ = self._tacotron2.infer(tokens.to(self.device), lengths.to(self.device))
            waveforms, wave_lengths = self._vocoder(spec, spec_lengths)
        n = int(wave_lengths[0]) if wave_lengths is not None else waveforms.shape[-1]
        audio = waveforms[0, :n].float().cpu().numpy().astype(np.float32)
        return torch.from_numpy(resample(audio, int(self._vocoder.sample_rate), SAMPLE_RATE))

    def __repr__(self) -> str:
        return f"Tacotron2TTS(bundle={self.bundle!r})"
