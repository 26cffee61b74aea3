"""The audio front end: one log-mel analysis, its image map, Griffin-Lim and audio I/O.

Everything in speakimg that touches a spectrogram goes through this package (METHOD.md 1-2).
"""

from speakimg.audio.canvas import CANVAS, CanvasSpec
from speakimg.audio.griffin_lim import griffin_lim, mel_to_linear
from speakimg.audio.image import (
    CANVAS_FRAMES,
    LOG_MEL_MAX,
    LOG_MEL_MIN,
    denormalize_log_mel,
    fit_canvas,
    from_vae_range,
    image_to_mel,
    mel_to_image,
    normalize_log_mel,
    to_vae_range,
)
from speakimg.audio.io import SAMPLE_RATE, check_audio, load_audio, peak_normalize, resample, save_audio
from speakimg.audio.mel import MelConfig, log_mel, mel_filterbank, num_frames
from speakimg.errors import AudioError

__all__ = [
    "AudioError",
    "CANVAS",
    "CANVAS_FRAMES",
    "CanvasSpec",
    "LOG_MEL_MAX",
    "LOG_MEL_MIN",
    "MelConfig",
    "SAMPLE_RATE",
    "check_audio",
    "denormalize_log_mel",
    "fit_canvas",
    "from_vae_range",
    "griffin_lim",
    "image_to_mel",
    "load_audio",
    "log_mel",
    "mel_filterbank",
    "mel_to_image",
    "mel_to_linear",
    "normalize_log_mel",
    "num_frames",
    "peak_normalize",
    "resample",
    "save_audio",
    "to_vae_range",
]
