"""Vocoders: log-mel spectrogram -> 16 kHz audio.

``load_vocoder(spec)`` is the one entry point consumers use, so that every part (sampler, callbacks,
evaluation) switches vocoder by configuration: ``"griffin-lim"`` (weight-free), or a HiFi-GAN in
Auffusion's layout (model folder with ``vocoder/``, vocoder folder, hub id, or a training ``.ckpt``).
Every vocoder maps ``[B, 256, T]`` natural-log mel to ``[B, 1, 160 * T]``.

The HiFi-GAN parts (generator, discriminators, losses) are plain PyTorch: no Lightning here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from speakimg.lazy import lazy_exports

if TYPE_CHECKING:
    from torch import nn

_LAZY = {  # imported on first use: `python -m speakimg.vocoder.export --help` does not import torch
    "DiscriminatorP": "speakimg.vocoder.discriminators",
    "DiscriminatorS": "speakimg.vocoder.discriminators",
    "MultiPeriodDiscriminator": "speakimg.vocoder.discriminators",
    "MultiScaleDiscriminator": "speakimg.vocoder.discriminators",
    "Generator": "speakimg.vocoder.generator",
    "GeneratorConfig": "speakimg.vocoder.generator",
    "GriffinLimVocoder": "speakimg.vocoder.griffin_lim",
    "discriminator_loss": "speakimg.vocoder.losses",
    "feature_matching_loss": "speakimg.vocoder.losses",
    "generator_adversarial_loss": "speakimg.vocoder.losses",
    "mel_l1": "speakimg.vocoder.losses",
    "mel_loss": "speakimg.vocoder.losses",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = sorted([*_LAZY, "load_vocoder"])


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
    from torch import nn

    from speakimg.vocoder.generator import Generator
    from speakimg.vocoder.griffin_lim import GriffinLimVocoder

    if isinstance(spec, nn.Module):
        return spec
    if str(spec).lower() in GRIFFIN_LIM:
        return GriffinLimVocoder(**kwargs)
    kwargs.setdefault("remove_weight_norm", True)
    return Generator.from_pretrained(spec, subfolder=subfolder, **kwargs)
