"""The mel front end: Auffusion's log-mel spectrogram of 16 kHz speech, in torch.

This is the single implementation used by the data builder, the vocoder's loss, the sampler's
decode and the vocoder cycle check. It is differentiable and runs on any device.

Auffusion's analysis (docs/method.md section 1): reflect-pad by ``(n_fft - hop) / 2`` on each side,
STFT with ``center=False`` and a periodic Hann window of ``win_length`` zero-padded to ``n_fft``,
magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 256 Slaney mel filters (0-8 kHz), natural log of the mel
clamped at 1e-5. ``frames = samples // hop``.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch
import torch.nn.functional as F

from speakimg.audio.config import MelConfig
from speakimg.errors import AudioError

__all__ = ["MelConfig", "log_mel", "mel_filterbank", "num_frames"]


def num_frames(num_samples: int, config: MelConfig = MelConfig()) -> int:
    """Number of log-mel frames for ``num_samples`` samples: ``num_samples // hop_length``."""
    return num_samples // config.hop_length


@functools.lru_cache(maxsize=16)
def _mel_basis_np(config: MelConfig) -> np.ndarray:
    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm="slaney",
    ).astype(np.float32)


_BASIS_CACHE: dict[tuple, torch.Tensor] = {}
_WINDOW_CACHE: dict[tuple, torch.Tensor] = {}


def mel_filterbank(
    config: MelConfig = MelConfig(),
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``[n_mels, n_fft // 2 + 1]`` Slaney mel filterbank (librosa's), cached per device."""
    key = (config, str(torch.device(device or "cpu")), dtype)
    basis = _BASIS_CACHE.get(key)
    if basis is None:
        basis = torch.from_numpy(_mel_basis_np(config)).to(device=device, dtype=dtype)
        _BASIS_CACHE[key] = basis
    return basis


def _hann(config: MelConfig, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (config.win_length, str(device), dtype)
    window = _WINDOW_CACHE.get(key)
    if window is None:
        window = torch.hann_window(config.win_length, periodic=True, device=device, dtype=dtype)
        _WINDOW_CACHE[key] = window
    return window


def log_mel(wav: torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """Auffusion log-mel of audio in [-1, 1].

    Args:
        wav: ``[T]`` or ``[B, T]`` (a ``[B, 1, T]`` vocoder output is accepted too), float, any device.
        config: analysis settings (Auffusion's by default).

    Returns:
        ``[n_mels, T // hop]`` or ``[B, n_mels, T // hop]`` natural-log mel magnitudes, float32
        (float64 input stays float64). Differentiable with respect to ``wav``.
    """
    if not isinstance(wav, torch.Tensor):
        raise AudioError(f"log_mel expects a torch.Tensor of audio samples, got {type(wav).__name__}")
    if wav.ndim == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]
    if wav.ndim not in (1, 2):
        raise AudioError(f"log_mel expects audio of shape [T] or [B, T], got {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise AudioError(f"log_mel expects floating-point audio in [-1, 1], got dtype {wav.dtype}")
    single = wav.ndim == 1
    x = wav.unsqueeze(0) if single else wav
    if x.dtype != torch.float64:
        x = x.float()
    if x.shape[-1] <= config.padding:
        raise AudioError(
            f"audio of {x.shape[-1]} samples is too short for the mel front end: it needs more than "
            f"{config.padding} samples ({config.padding / config.sample_rate:.3f} s)"
        )
    x = F.pad(x.unsqueeze(1), (config.padding, config.padding), mode="reflect").squeeze(1)
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_hann(config, x.device, x.dtype),
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + config.magnitude_eps)
    mel = torch.matmul(mel_filterbank(config, x.device, x.dtype), magnitude)
    out = torch.log(torch.clamp(mel, min=config.clamp_min))
    return out[0] if single else out
