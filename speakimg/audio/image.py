"""The spectrogram image: log-mel <-> 3-channel image in [0, 1], the 1024-frame canvas, VAE range.

Convention of Auffusion / Images that Sound (docs/method.md section 2): the log-mel is clamped to
``[ln(1e-5), ln(200)]`` and scaled to [0, 1]; the frequency axis is flipped so that low frequencies
are at the bottom of the image (row 0 = highest mel bin); the single channel is repeated to RGB.
The canvas is 1024 frames (10.24 s); shorter clips are right-padded with 0 = silence.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from speakimg.audio.canvas import CANVAS

__all__ = [
    "LOG_MEL_MIN",
    "LOG_MEL_MAX",
    "CANVAS_FRAMES",
    "normalize_log_mel",
    "denormalize_log_mel",
    "mel_to_image",
    "image_to_mel",
    "fit_canvas",
    "to_vae_range",
    "from_vae_range",
]

LOG_MEL_MIN: float = math.log(1e-5)
"""Lowest log-mel value of the image range (silence): ln(1e-5) = -11.5129."""
LOG_MEL_MAX: float = math.log(200.0)
"""Highest log-mel value of the image range: ln(200) = 5.2983."""
CANVAS_FRAMES: int = CANVAS.frames
"""Width of the spectrogram canvas in frames (10.24 s at hop 160, 16 kHz): ``CANVAS.frames``."""


def normalize_log_mel(logmel: torch.Tensor, lo: float = LOG_MEL_MIN, hi: float = LOG_MEL_MAX) -> torch.Tensor:
    """Map a log-mel to [0, 1]: ``(clamp(x, lo, hi) - lo) / (hi - lo)``."""
    return (logmel.clamp(lo, hi) - lo) / (hi - lo)


def denormalize_log_mel(x: torch.Tensor, lo: float = LOG_MEL_MIN, hi: float = LOG_MEL_MAX) -> torch.Tensor:
    """Inverse of :func:`normalize_log_mel` for values in [0, 1]."""
    return x * (hi - lo) + lo


def mel_to_image(logmel: torch.Tensor, lo: float = LOG_MEL_MIN, hi: float = LOG_MEL_MAX) -> torch.Tensor:
    """Log-mel ``[n_mels, F]`` or ``[B, n_mels, F]`` -> image ``[3, n_mels, F]`` / ``[B, 3, n_mels, F]``.

    Values in [0, 1], low frequencies at the bottom (the mel axis is flipped).
    """
    if logmel.ndim not in (2, 3):
        raise ValueError(f"mel_to_image expects [n_mels, F] or [B, n_mels, F], got {tuple(logmel.shape)}")
    x = normalize_log_mel(logmel, lo, hi).flip(-2).unsqueeze(-3)
    reps = [1] * x.ndim
    reps[-3] = 3
    return x.repeat(*reps)


def image_to_mel(
    image: torch.Tensor,
    reduce: Literal["mean", "first"] = "mean",
    lo: float = LOG_MEL_MIN,
    hi: float = LOG_MEL_MAX,
) -> torch.Tensor:
    """Image ``[C, n_mels, F]`` or ``[B, C, n_mels, F]`` in [0, 1] -> log-mel ``[(B,) n_mels, F]``.

    ``reduce="mean"`` averages the channels (Images that Sound); ``"first"`` takes channel 0
    (Auffusion). Values are clamped to [0, 1] first.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"image_to_mel expects [C, H, W] or [B, C, H, W], got {tuple(image.shape)}")
    if reduce == "mean":
        x = image.mean(dim=-3)
    elif reduce == "first":
        x = image.select(-3, 0)
    else:
        raise ValueError(f"reduce must be 'mean' or 'first', got {reduce!r}")
    return denormalize_log_mel(x.clamp(0.0, 1.0).flip(-2), lo, hi)


def fit_canvas(x: torch.Tensor, frames: int = CANVAS_FRAMES, value: float = 0.0) -> torch.Tensor:
    """Right-pad (with ``value``) or crop the last axis (time) to exactly ``frames``.

    Use ``value=0`` for images in [0, 1] (silence) and ``value=LOG_MEL_MIN`` for log-mels.
    """
    n = x.shape[-1]
    if n >= frames:
        return x[..., :frames]
    return F.pad(x, (0, frames - n), value=value)


def to_vae_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] image -> the VAE's [-1, 1] input range."""
    return image * 2.0 - 1.0


def from_vae_range(x: torch.Tensor) -> torch.Tensor:
    """A VAE decode in [-1, 1] -> image in [0, 1], clamped."""
    return (x / 2.0 + 0.5).clamp(0.0, 1.0)
