"""Evaluation metrics: Whisper word error rate and CLAP score of the audio, windowed CLIP score of the image,
and the vocoder cycle error (does the audio say what the spectrogram shows?)."""

from speakimg.metrics.clap import CLAPScore
from speakimg.metrics.clip import WindowedCLIPScore, image_windows, load_clip_for_torchmetrics
from speakimg.metrics.cycle import vocoder_cycle_error
from speakimg.metrics.wer import WhisperWER, load_whisper, match_error_rate, normalize_transcript, word_error_rate

__all__ = [
    "CLAPScore",
    "WhisperWER",
    "WindowedCLIPScore",
    "image_windows",
    "load_clip_for_torchmetrics",
    "load_whisper",
    "match_error_rate",
    "normalize_transcript",
    "vocoder_cycle_error",
    "word_error_rate",
]
