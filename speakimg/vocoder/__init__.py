"""Vocoders: log-mel spectrogram -> 16 kHz audio.

``load_vocoder(spec)`` is the one entry point consumers use, so that every part (sampler, callbacks,
evaluation) switches vocoder by configuration: ``"griffin-lim"`` (weight-free), or a HiFi-GAN in
Auffusion's layout (model folder with ``vocoder/``, vocoder folder, hub id, or a training ``.ckpt``).
Every vocoder maps ``[B, 256, T]`` natural-log mel to ``[B, 1, 160 * T]``.

The HiFi-GAN parts (generator, discriminators, losses) are plain PyTorch: no Lightning here.
"""

from __future__ import annotations

import os

from torch import nn

from speakimg.vocoder.discriminators import (
    DiscriminatorP,
    DiscriminatorS,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from speakimg.vocoder.generator import Generator, GeneratorConfig
from speakimg.vocoder.griffin_lim import GriffinLimVocoder
from speakimg.vocoder.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1,
    mel_loss,
)

__all__ = [
    "DiscriminatorP",
    "DiscriminatorS",
    "Generator",
    "GeneratorConfig",
    "GriffinLimVocoder",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "load_vocoder",
    "mel_l1",
    "mel_loss",
]

GRIFFIN_LIM = ("griffin-lim", "griffin_lim", "griffinlim", "gl")


def load_vocoder(
    spec: str | os.PathLike | nn.Module = "griffin-lim", subfolder: str | None = "vocoder", **kwargs
) -> nn.Module:
    """A ready vocoder from a name, folder, hub id or checkpoint.

    - an ``nn.Module``: returned as it is;
    - ``"griffin-lim"``: :class:`GriffinLimVocoder` (``kwargs`` go to its constructor);
    - a model folder with ``vocoder/`` (Auffusion's layout), a folder holding ``config.json`` + ``vocoder.pt``,
      a hub id, or a HiFiGANModule training checkpoint (``.ckpt``): an eval-mode, weight-norm-free
      :class:`Generator` (``kwargs`` go to :meth:`Generator.from_pretrained`, e.g. ``map_location``).
    """
    if isinstance(spec, nn.Module):
        return spec
    if str(spec).lower() in GRIFFIN_LIM:
        return GriffinLimVocoder(**kwargs)
    kwargs.setdefault("remove_weight_norm", True)
    return Generator.from_pretrained(spec, subfolder=subfolder, **kwargs)
