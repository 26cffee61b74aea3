"""Colorization of a spectrogram (Images that Sound, appendix A.1; Factorized Diffusion, Geng et al. 2024).

A pixel diffusion model (DeepFloyd IF stage I) generates only the **colour** component of an image
whose **greyscale** component is the spectrogram. An RGB image ``x`` factors as ``x = gray(x) + (x -
gray(x))`` with ``gray(x)`` the channel mean (broadcast to three channels): the spectrogram image is
the channel mean too, so the colour image still *is* the spectrogram. Settings of the paper:
prompt "a colorful photo of <image prompt>", 30 DDPM steps of IF's scheduler, guidance 10, starting
at step 7 of 30 from the spectrogram noised to that step. The picture is fed at its full size
(256 x W), as Images that Sound does.

Per step, after IF's update to timestep ``t'`` the greyscale component is replaced by the
spectrogram noised to ``t'`` with the greyscale part of the starting noise (so the noise stays
consistent from step to step): ``x <- x - gray(x) + sqrt(abar_t') g + sqrt(1 - abar_t') gray(eps)``.
After the last step (``abar = 1``) the greyscale is exactly ``g``; the colour is then shrunk where a
channel would leave [-1, 1], which keeps the channel mean. So ``gray(color) == spectrogram`` up to
float rounding (and to one 8-bit level in ``color.png``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from speakimg.errors import ConfigError
from speakimg.pipeline.deepfloyd import PixelModel
from speakimg.sampling.settings import SamplerSettings

__all__ = ["colorize_output", "colorize_spectrograms", "fit_to_range", "gray"]


def gray(x: torch.Tensor) -> torch.Tensor:
    """The greyscale component of ``[B, C, H, W]``: the channel mean, ``[B, 1, H, W]``."""
    return x.mean(dim=1, keepdim=True)


def fit_to_range(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Shrink each pixel's colour ``x - gray(x)`` just enough that every channel lies in [low, high].

    The channel mean is unchanged (it must lie in [low, high] itself): clamping each channel would change it.
    """
    g = gray(x).clamp(low, high)
    c = x - gray(x)
    inf = torch.full_like(c, math.inf)
    room = torch.where(c > 0, (high - g) / c, torch.where(c < 0, (low - g) / c, inf))
    return g + c * room.amin(dim=1, keepdim=True).clamp(0.0, 1.0)


@torch.no_grad()
def colorize_spectrograms(
    pixel: PixelModel,
    spectrograms: torch.Tensor,
    prompts: list[str],
    *,
    steps: int = 30,
    start_step: int = 7,
    guidance_scale: float = 10.0,
    negative_prompt: str = "",
    generator: torch.Generator | list[torch.Generator] | None = None,
    progress: Any = None,
) -> torch.Tensor:
    """Colour spectrogram images ``[B, H, W]`` in [0, 1]: returns ``[B, 3, H, W]`` in [0, 1] whose channel mean
    equals ``spectrograms`` (float rounding).

    ``prompts``: the pixel model's prompts, one per spectrogram; ``progress``: a tqdm bar to update per step.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if spectrograms.ndim != 3:
        raise ConfigError(f"colorize takes spectrogram images [B, H, W], got shape {tuple(spectrograms.shape)}")
    if len(prompts) != spectrograms.shape[0]:
        raise ConfigError(f"colorize got {len(prompts)} prompts for {spectrograms.shape[0]} spectrograms")
    if not 0 <= start_step < steps:
        raise ConfigError(f"colorize start step {start_step} must be in [0, {steps})")
    unet = pixel.unet
    device = next(unet.parameters()).device
    batch, height, width = spectrograms.shape
    g = (2.0 * spectrograms.float().to(device) - 1.0).unsqueeze(1)  # the greyscale component, [-1, 1]
    scheduler = pixel.scheduler()
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps[start_step:]
    abar = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    noise = randn_tensor((batch, 3, height, width), generator=generator, device=device, dtype=torch.float32)
    gray_noise = gray(noise)
    x = scheduler.add_noise(g.expand(-1, 3, -1, -1), noise, timesteps[:1])
    from speakimg.pipeline.combined import ImagesThatSpeakPipeline

    embeddings = ImagesThatSpeakPipeline.encode(pixel.prompt_encoder, unet, prompts, [negative_prompt] * batch)
    for i, t in enumerate(timesteps):
        model_input = torch.cat([x, x]).to(embeddings.dtype)
        out = unet(model_input, t, encoder_hidden_states=embeddings, return_dict=False)[0].float()
        uncond, cond = out.chunk(2)
        eps = uncond[:, :3] + guidance_scale * (cond[:, :3] - uncond[:, :3])
        x = scheduler.step(torch.cat([eps, cond[:, 3:]], dim=1), t, x, generator=generator, return_dict=False)[0]
        a = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0, device=device)
        x = x - gray(x) + a.sqrt() * g + (1.0 - a).sqrt() * gray_noise
        if progress is not None:
            progress.update()
    return ((fit_to_range(x) + 1.0) / 2.0).clamp(0.0, 1.0)


def colorize_output(
    pipe: Any, settings: SamplerSettings, image_prompts: list[str], output: Any, generators: Any = None
) -> Any:
    """Add ``colors`` (the coloured spectrograms, shaped like ``images``) to a method's ``output``."""
    pixel = getattr(pipe, "pixel_model", None)
    if pixel is None:
        raise ConfigError(
            "colorize needs a DeepFloyd IF stage-I pixel model: pass pixel_model (--pixel-model "
            "DeepFloyd/IF-I-M-v1.0, or a downloaded IFPipeline folder)"
        )
    spectrograms = output.spectrograms
    as_numpy = isinstance(spectrograms, np.ndarray)
    spectrograms = torch.as_tensor(spectrograms)
    prompts = [settings.colorize_prompt.replace("{}", p) for p in image_prompts]
    if len(prompts) == 1 and spectrograms.shape[0] > 1:
        prompts = prompts * spectrograms.shape[0]
    steps = settings.colorize_steps - settings.colorize_start_step
    with pipe.progress_bar(total=steps, desc="colorize") as bar:
        colors = colorize_spectrograms(
            pixel, spectrograms, prompts, steps=settings.colorize_steps, start_step=settings.colorize_start_step,
            guidance_scale=settings.colorize_guidance_scale, generator=generators, progress=bar,
        )  # fmt: skip
    output.colors = colors.permute(0, 2, 3, 1).cpu().numpy() if as_numpy else colors
    return output
