"""Audio I/O: read any common format as 16 kHz mono float audio, write 16 kHz wav.

wav, flac, ogg and mp3 are read with libsndfile (soundfile); anything else falls back to librosa
(audioread/ffmpeg). Every problem (unreadable, empty, silent, NaN) is one :class:`AudioError`
naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from speakimg.errors import AudioError
from speakimg.io import atomic_path

__all__ = ["load_audio", "save_audio", "peak_normalize", "check_audio", "resample"]

SAMPLE_RATE = 16000


def _check_rate(sample_rate: object, what: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioError(
            f"{what} must be an integer number of Hz (e.g. 16000), got {sample_rate!r} "
            f"of type {type(sample_rate).__name__}"
        )
    if sample_rate <= 0:
        raise AudioError(f"{what} must be positive, got {sample_rate}")
    return int(sample_rate)


def check_audio(wav: np.ndarray | torch.Tensor, name: str = "audio", allow_silent: bool = False) -> None:
    """Raise :class:`AudioError` naming ``name`` if ``wav`` is empty, non-finite or (by default) silent."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if x.size == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{name}: the audio contains NaN or infinite samples")
    if not allow_silent and float(np.max(np.abs(x))) == 0.0:
        raise AudioError(f"{name}: the audio is silent (all samples are zero)")


def peak_normalize(wav: np.ndarray | torch.Tensor, peak: float = 0.95, name: str = "audio"):
    """Scale so that ``max|x| == peak`` (Auffusion's training normalisation ``x / max|x| * 0.95``)."""
    check_audio(wav, name)
    top = wav.abs().max() if isinstance(wav, torch.Tensor) else np.max(np.abs(wav))
    return wav / top * peak


def resample(wav: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality (soxr) resampling of a float array along its last axis."""
    orig_sr = _check_rate(orig_sr, "orig_sr")
    target_sr = _check_rate(target_sr, "target_sr")
    if orig_sr == target_sr:
        return wav.astype(np.float32, copy=False)
    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    normalize: float | None = None,
) -> torch.Tensor:
    """Read an audio file as mono float32 ``[T]`` at ``sample_rate`` Hz.

    Args:
        path: wav, flac, ogg, mp3 (or anything ffmpeg reads).
        sample_rate: target rate in Hz (an int).
        normalize: if given, peak-normalise to this value (0.95 for training data).

    Raises:
        AudioError: the file is missing or unreadable, empty, silent, or has NaN samples.
    """
    sample_rate = _check_rate(sample_rate)
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        data = data.T  # [channels, T]
    except Exception as sf_error:  # libsndfile cannot read it: try ffmpeg via librosa
        try:
            with warnings.catch_warnings():  # librosa warns that soundfile failed: we know, we say why below
                warnings.simplefilter("ignore")
                data, sr = librosa.load(str(path), sr=None, mono=False)
            data = np.atleast_2d(data)
        except Exception as error:
            raise AudioError(
                f"{path}: cannot read this audio file ({sf_error}; {type(error).__name__}: {error}). "
                "Is it a valid wav/flac/ogg/mp3 file?"
            ) from error
    if data.size == 0:
        raise AudioError(f"{path}: the audio file holds no samples")
    mono = data.mean(axis=0)
    mono = resample(mono, int(sr), sample_rate)
    check_audio(mono, str(path))
    if normalize is not None:
        mono = peak_normalize(mono, normalize, str(path))
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def save_audio(path: str | os.PathLike, wav: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono audio in [-1, 1] as 16-bit PCM wav (clipping out-of-range samples). Returns the path."""
    sample_rate = _check_rate(sample_rate)
    x = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    x = np.squeeze(x)
    if x.ndim != 1:
        raise AudioError(f"save_audio expects mono audio [T], got shape {x.shape}")
    check_audio(x, str(path), allow_silent=True)
    path = Path(path)
    with atomic_path(path) as tmp:  # a unique temporary name that clean_temp_files recognises
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path
