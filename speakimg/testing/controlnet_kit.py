"""A tiny ``ControlNetModel`` in the layout of ``lllyasviel/sd-controlnet-canny`` (config.json and
diffusion_pytorch_model.safetensors at the root), made for the tiny Stable Diffusion's UNet."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["write_tiny_controlnet"]


def write_tiny_controlnet(folder: Path, seed: int = 3) -> None:
    """Write a random-weight ControlNet of the tiny SD UNet's shape (its condition: a 3-channel edge map)."""
    from diffusers import ControlNetModel

    from speakimg.testing.diffusion import _tiny_unet

    torch.manual_seed(seed)
    # from_unet copies the UNet's config; the conditioning embedding downsamples 8x as SD's (3 stride-2 convs)
    controlnet = ControlNetModel.from_unet(_tiny_unet(), conditioning_embedding_out_channels=(8, 16, 16, 32))
    with torch.no_grad():  # ControlNet's zero convolutions start at 0: random ones make the residuals count
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            conv.weight.normal_(0.0, 0.02)
    controlnet.save_pretrained(folder, safe_serialization=True)
