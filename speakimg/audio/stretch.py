"""Time-stretching speech (slower, same pitch) for TTS engines without their own rate control.

Three methods, measured in ``docs/data.md`` (an offline recogniser's word error rate on 20 festival
sentences; natural speed 41 %):

- ``"atempo"`` (default): ffmpeg's ``atempo`` filter, a time-domain overlap-add (WSOLA-like) method;
  the best at mild slow-downs (45 % WER at 1.25x, 53 % at 1.5x).
- ``"rubberband"``: the Rubber Band library through ffmpeg's ``rubberband`` filter, a phase vocoder with
  transient detection and phase locking (53 % at 1.25x, 64 % at 1.5x); better than atempo at 2x
  (83 % vs 104 %).
- ``"phase-vocoder"``: librosa's plain phase vocoder (``librosa.effects.time_stretch``), for comparison
  only: 98 % WER already at 1.25x (smeared transients, "phasey" speech).

Engines with native rate control (festival's HTS ``-r``, espeak's words per minute, VITS'
``speaking_rate``) should be slowed down natively: a synthesiser that speaks slower keeps the
speech natural, a signal-level stretch always adds artefacts.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import TYPE_CHECKING

import numpy as np

from speakimg.audio.canvas import CANVAS
from speakimg.errors import AudioError, MissingDependencyError

if TYPE_CHECKING:
    import torch

__all__ = ["STRETCH_METHODS", "time_stretch"]

STRETCH_METHODS = ("atempo", "rubberband", "phase-vocoder")


def _ffmpeg_filter(method: str, factor: float) -> str:
    tempo = 1.0 / factor  # ffmpeg's tempo: > 1 faster, < 1 slower
    if method == "rubberband":
        return f"rubberband=tempo={tempo:.8f}"
    # atempo accepts tempos in [0.5, 100] per instance: chain equal steps for stronger slow-downs
    steps = max(1, math.ceil(math.log(1.0 / tempo) / math.log(2.0) - 1e-9)) if tempo < 0.5 else 1
    return ",".join([f"atempo={tempo ** (1.0 / steps):.8f}"] * steps)


def _ffmpeg(audio: np.ndarray, audio_filter: str, sample_rate: int) -> np.ndarray:
    program = shutil.which("ffmpeg")
    if program is None:
        raise MissingDependencyError("time-stretching needs ffmpeg, which is not installed: apt-get install ffmpeg")
    raw = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1"]
    cmd = [program, "-hide_banner", "-loglevel", "error", "-nostdin", *raw, "-i", "pipe:0", "-af", audio_filter]
    cmd += [*raw, "pipe:1"]
    proc = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), capture_output=True, timeout=300)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        hint = (
            " (this ffmpeg has no Rubber Band support: use method='atempo')" if "rubberband" in detail.lower() else ""
        )
        raise AudioError(f"ffmpeg filter {audio_filter!r} failed: {detail}{hint}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def time_stretch(
    wav: torch.Tensor, factor: float, method: str = "atempo", sample_rate: int = CANVAS.sample_rate
) -> torch.Tensor:
    """Make mono audio ``[T]`` ``factor`` times longer (``factor > 1`` = slower) at the same pitch.

    The output has ``round(T * factor)`` samples (the method's own length, trimmed or zero-padded by a
    few samples).

    Raises:
        ValueError: an unknown method or a non-positive factor.
        MissingDependencyError: ffmpeg is missing (rubberband, atempo).
    """
    if method not in STRETCH_METHODS:
        raise ValueError(f"unknown time-stretch method {method!r}; choose one of {STRETCH_METHODS}")
    if not factor > 0:
        raise ValueError(f"the stretch factor must be positive, got {factor}")
    import torch

    from speakimg.audio.io import check_audio

    check_audio(wav, "time_stretch input")
    audio = wav.detach().float().cpu().numpy().reshape(-1)
    length = round(audio.shape[0] * factor)
    if factor == 1.0:
        out = audio
    elif method == "phase-vocoder":
        import librosa

        out = librosa.effects.time_stretch(audio, rate=1.0 / factor)
    else:
        out = _ffmpeg(audio, _ffmpeg_filter(method, factor), sample_rate)
    out = out[:length] if out.shape[0] >= length else np.pad(out, (0, length - out.shape[0]))
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
