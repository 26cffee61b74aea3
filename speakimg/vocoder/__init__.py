"""Vocoders: log-mel spectrogram -> 16 kHz audio.

``load_vocoder(spec)`` is the one entry point consumers use, so that every part (sampler, callbacks,
evaluation) switches vocoder by configuration: ``"griffin-lim"`` (weight-free), or a HiFi-GAN folder /
hub id in Auffusion's layout. Every vocoder maps ``[B, 256, T]`` natural-log mel to ``[B, 1, 160 * T]``.
"""

from __future__ import annotations

from torch import nn

from speakimg.vocoder.griffin_lim import GriffinLimVocoder

__all__ = ["GriffinLimVocoder", "load_vocoder"]

GRIFFIN_LIM = ("griffin-lim", "griffin_lim", "griffinlim", "gl")


def load_vocoder(spec: str | nn.Module = "griffin-lim", subfolder: str | None = "vocoder", **kwargs) -> nn.Module:
    """A vocoder from a name, folder or hub id (``"griffin-lim"`` for the weight-free one).

    An ``nn.Module`` is returned as it is. Keyword arguments go to the vocoder's constructor/loader.
    """
    if isinstance(spec, nn.Module):
        return spec
    if str(spec).lower() in GRIFFIN_LIM:
        return GriffinLimVocoder(**kwargs)
    raise NotImplementedError("HiFi-GAN loading arrives with speakimg.vocoder.Generator")
