"""Inference without Lightning: the pipeline of images that speak and its building blocks.

- :class:`ImagesThatSpeakPipeline`: one latent denoised by an image model and an audio model at once
  (Images that Sound; with the speech model, images that speak).
- :func:`combined_denoise` / :class:`GuidedDenoiser`: the sampler as a pure function.
- :func:`combination_weights`: which model takes part at which step, with what weight.
- :func:`imprint` / :func:`sample_imprint`: the imprint baseline.

Settings, methods, sample folders and batched generation are :mod:`speakimg.sampling`; the vocoder
cycle check is :func:`speakimg.metrics.vocoder_cycle_error`; videos are :func:`speakimg.media.playhead_video`.
"""

from speakimg.pipeline.combined import CROP_COLUMNS, ImagesThatSpeakPipeline
from speakimg.pipeline.imprint import imprint, sample_imprint
from speakimg.pipeline.loading import DEFAULT_AUDIO_MODEL, DEFAULT_IMAGE_MODEL, SPEECH_MARKER, check_same_schedule
from speakimg.pipeline.output import ImagesThatSpeakOutput
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
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
    "sample_imprint",
    "takes_part",
]
