"""A pixel diffusion model in DeepFloyd IF stage-I layout, loaded through :mod:`speakimg.loading`.

The SDS baseline's image side and the colorization of Images that Sound use DeepFloyd IF stage I
(``DeepFloyd/IF-I-M-v1.0``; gated on the hub: accept its licence, then download it): a UNet on RGB
pixels in [-1, 1] that predicts the noise and a variance (6 output channels), prompted by a T5
encoder, with its own DDPM noise schedule (cosine betas). Only ``unet/``, ``text_encoder/``,
``tokenizer/`` and ``scheduler/`` are read (never the safety checker or watermarker files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from speakimg.conditioning import T5PromptEncoder
from speakimg.errors import ModelNotFoundError

__all__ = ["DEFAULT_PIXEL_MODEL", "PixelModel", "load_pixel_model"]

DEFAULT_PIXEL_MODEL = "DeepFloyd/IF-I-M-v1.0"
"""DeepFloyd IF stage I, medium (the model of Images that Sound's SDS and colorization)."""

PROMPT_TOKENS = 77
"""IF encodes prompts as 77 T5 tokens."""


@dataclass
class PixelModel:
    """What speakimg takes from an IF stage-I folder: the pixel UNet, its T5 prompt encoder, its schedule."""

    unet: nn.Module
    prompt_encoder: T5PromptEncoder
    scheduler_config: dict[str, Any]
    source: str

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> PixelModel:
        """Move (and cast) the UNet and the prompt encoder; returns ``self``."""
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        if kwargs:
            self.unet.to(**kwargs)
            self.prompt_encoder.to(**kwargs)
        return self

    def scheduler(self) -> Any:
        """A fresh DDPM scheduler of the model's own config (IF's learned-range variance, thresholding)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)


def load_pixel_model(
    name_or_path: str | os.PathLike = DEFAULT_PIXEL_MODEL,
    torch_dtype: torch.dtype | None = None,
    device: Any = None,
) -> PixelModel:
    """Load an IF stage-I folder / hub id (or ``tiny:deepfloyd-if``): frozen UNet and T5 encoder, eval mode."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, T5EncoderModel

    from speakimg.loading import load_component, resolve_model, variant_for

    source = str(name_or_path)
    variant = variant_for(torch_dtype)
    root = resolve_model(name_or_path, ("unet", "text_encoder", "tokenizer", "scheduler"), variant)
    missing = [sub for sub in ("unet", "text_encoder", "tokenizer", "scheduler") if not (root / sub).is_dir()]
    if missing:
        raise ModelNotFoundError(
            f"'{source}' ({root}) is not a DeepFloyd IF stage-I folder: no {', '.join(m + '/' for m in missing)} "
            f"(an IFPipeline folder such as {DEFAULT_PIXEL_MODEL} has unet/, text_encoder/, tokenizer/, scheduler/)"
        )
    unet = load_component(root, "unet", UNet2DConditionModel, torch_dtype=torch_dtype, variant=variant, source=source)
    if unet.config.in_channels != 3:
        raise ModelNotFoundError(
            f"'{source}': its UNet takes {unet.config.in_channels} channels; an IF stage-I pixel model takes 3 (RGB)"
        )
    encoder = load_component(
        root, "text_encoder", T5EncoderModel, torch_dtype=torch_dtype, variant=variant, source=source
    )
    tokenizer = AutoTokenizer.from_pretrained(root, subfolder="tokenizer")
    tokenizer.model_max_length = PROMPT_TOKENS
    config = dict(DDPMScheduler.load_config(root, subfolder="scheduler"))
    model = PixelModel(
        unet.eval().requires_grad_(False),
        T5PromptEncoder(tokenizer, encoder.eval().requires_grad_(False)),
        config,
        source,
    )
    return model.to(device)
