"""Inference without Lightning: the combined sampler, the imprint baseline, the cycle check, videos.

- :class:`ImagesThatSpeakPipeline`: one latent denoised by an image model and an audio model at once
  (Images that Sound; with the speech model, images that speak).
- :func:`combined_denoise` / :class:`GuidedDenoiser`: the sampler as a pure function.
- :func:`combination_weights`: which model takes part at which step, with what weight.
- :func:`imprint` / :func:`sample_imprint`: the imprint baseline.
- :func:`vocoder_cycle_error`: re-analyse the vocoder's audio and compare with the generated log-mel.
- :func:`playhead_video`: the spectrogram with a playhead, audio muxed (ffmpeg).
"""

from speakimg.pipeline.combined import CROP_COLUMNS, ImagesThatSpeakOutput, ImagesThatSpeakPipeline
from speakimg.pipeline.cycle import vocoder_cycle_error
from speakimg.pipeline.imprint import imprint, sample_imprint
from speakimg.pipeline.loading import DEFAULT_AUDIO_MODEL, DEFAULT_IMAGE_MODEL, SPEECH_MARKER, check_same_schedule
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
from speakimg.pipeline.video import playhead_video, probe_duration
from speakimg.pipeline.weights import combination_weights, takes_part

__all__ = [
    "CROP_COLUMNS",
    "DEFAULT_AUDIO_MODEL",
    "DEFAULT_IMAGE_MODEL",
    "SPEECH_MARKER",
    "GuidedDenoiser",
    "ImagesThatSpeakOutput",
    "ImagesThatSpeakPipeline",
    "check_same_schedule",
    "combination_weights",
    "combined_denoise",
    "imprint",
    "playhead_video",
    "probe_duration",
    "sample_imprint",
    "takes_part",
    "vocoder_cycle_error",
]
