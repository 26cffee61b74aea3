"""What the pipeline and its methods return, and the prompt types they take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from diffusers.utils import BaseOutput

__all__ = ["ImagesThatSpeakOutput", "OutputType", "Prompts"]

OutputType = Literal["np", "pt", "latent"]
Prompts = str | Sequence[str]


@dataclass
class ImagesThatSpeakOutput(BaseOutput):
    """What the pipeline returns (``None`` fields are absent with ``output_type="latent"``).

    Attributes:
        images: the picture (image model's VAE), in [0, 1]: ``[B, H, W, 3]`` (np) / ``[B, 3, H, W]`` (pt).
        spectrograms: the spectrogram image (audio model's VAE, channel mean) in [0, 1], ``[B, H, W]``;
            low frequencies at the bottom.
        log_mels: natural-log mel ``[B, n_mels, W]`` read from the spectrograms (``speakimg.audio.image_to_mel``).
        audios: the vocoder's waveforms ``[B, hop * W]`` at ``sample_rate``.
        latents: z_0 ``[B, 4, H/8, W/8]`` (float32, never cropped).
        colors: with ``colorize``: the spectrograms coloured by the pixel model, shaped like ``images``; their
            channel mean is the spectrogram.
        sample_rate: audio sample rate in Hz (16000).
    """

    images: np.ndarray | torch.Tensor | None = None
    spectrograms: np.ndarray | torch.Tensor | None = None
    log_mels: np.ndarray | torch.Tensor | None = None
    audios: np.ndarray | torch.Tensor | None = None
    latents: torch.Tensor | None = None
    sample_rate: int = 16000
    colors: np.ndarray | torch.Tensor | None = None
