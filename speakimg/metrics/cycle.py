"""The vocoder cycle check of Images that Sound: does the audio say what the spectrogram shows?

The vocoder's audio is analysed again with the same mel front end (:func:`speakimg.audio.log_mel`)
and compared with the log-mel it was made from. A perfect vocoder of a *consistent* spectrogram
gives a small error; generated spectrograms are rarely consistent (no audio has exactly that
magnitude), so the error measures how much of the picture survives as sound.
"""

from __future__ import annotations

import numpy as np
import torch

from speakimg.audio import MelConfig, log_mel
from speakimg.errors import AudioError

__all__ = ["vocoder_cycle_error"]


def vocoder_cycle_error(
    log_mels: torch.Tensor | np.ndarray,
    audio: torch.Tensor | np.ndarray,
    config: MelConfig = MelConfig(),
) -> torch.Tensor:
    """Mean absolute error (nats) between ``log_mel(audio)`` and the log-mel the audio was vocoded from.

    Args:
        log_mels: ``[n_mels, T]`` or ``[B, n_mels, T]`` natural-log mel.
        audio: ``[N]`` / ``[B, N]`` / ``[B, 1, N]`` waveforms with ``N // hop`` frames, ``T`` (or one
            less, as some vocoders trim the edge).

    Returns:
        The error per sample, ``[B]`` (a 0-d tensor for unbatched input), float32 on the CPU.
    """
    mel = torch.as_tensor(log_mels).float().cpu()
    wav = torch.as_tensor(audio).float().cpu()
    if wav.ndim == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]
    single = mel.ndim == 2
    if single:
        mel, wav = mel.unsqueeze(0), wav.reshape(1, -1)
    if mel.ndim != 3 or wav.ndim != 2 or mel.shape[0] != wav.shape[0]:
        raise AudioError(
            f"vocoder_cycle_error expects log-mels [B, n_mels, T] and audio [B, N] with the same B, got "
            f"{tuple(torch.as_tensor(log_mels).shape)} and {tuple(torch.as_tensor(audio).shape)}"
        )
    if mel.shape[1] != config.n_mels:
        raise AudioError(f"the log-mels have {mel.shape[1]} mel bins, the mel front end {config.n_mels}")
    again = log_mel(wav, config)
    frames = min(mel.shape[-1], again.shape[-1])
    if abs(mel.shape[-1] - again.shape[-1]) > 1:
        raise AudioError(
            f"{wav.shape[-1]} audio samples give {again.shape[-1]} frames but the log-mel has {mel.shape[-1]}: "
            f"is this audio the vocoding of this log-mel (hop {config.hop_length})?"
        )
    error = (again[..., :frames] - mel[..., :frames]).abs().mean(dim=(1, 2))
    return error[0] if single else error
