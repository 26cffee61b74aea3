"""The ControlNet zero-shot baseline: Images that Speak's first attempt (docs/sampling.md).

The audio prompt is spoken by a TTS voice, its spectrogram image's contours (Canny edges) steer the
image model through a ControlNet (diffusers ``ControlNetModel``, e.g. ``lllyasviel/sd-controlnet-canny``)
while the image prompt says what to draw; the picture is then read back as a spectrogram (its grey
level) and vocoded. The audio model is not used. The report says this loses the fine structure of
speech; it is kept as the baseline to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from speakimg.errors import ConfigError, MissingDependencyError
from speakimg.pipeline.output import ImagesThatSpeakOutput, OutputType, Prompts
from speakimg.pipeline.sampler import combined_denoise
from speakimg.sampling.settings import SamplerSettings

__all__ = ["ControlNetDenoiser", "canny_edges", "load_controlnet", "sample_controlnet"]


def canny_edges(images: torch.Tensor, low: int = 100, high: int = 200) -> torch.Tensor:
    """Canny edge maps (OpenCV) of grey images ``[B, H, W]`` in [0, 1] -> ``[B, 3, H, W]`` in {0, 1}.

    The images are rounded to 0-255 first; ``low`` / ``high`` are the hysteresis thresholds on that
    scale (diffusers' ControlNet examples use 100 / 200).
    """
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError(
            "the controlnet method needs OpenCV for its Canny edges: pip install opencv-python-headless"
        ) from None
    if images.ndim != 3:
        raise ConfigError(f"canny_edges expects grey images [B, H, W], got {tuple(images.shape)}")
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    edges = [torch.from_numpy(cv2.Canny(p, int(low), int(high))) for p in pixels]
    return (torch.stack(edges).float() / 255.0).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


@dataclass
class ControlNetDenoiser:
    """A :class:`~speakimg.pipeline.GuidedDenoiser` whose UNet takes a ControlNet's residuals.

    Attributes:
        unet, embeddings, guidance_scale: as for ``GuidedDenoiser`` (``embeddings`` ``[2B, L, D]``,
            unconditional rows first).
        controlnet: a diffusers ``ControlNetModel``.
        condition: ``[B, 3, H, W]`` in [0, 1], the control image (the same for both guidance halves).
        conditioning_scale: the residuals' scale (0: the UNet alone).
    """

    unet: nn.Module
    embeddings: torch.Tensor
    guidance_scale: float
    controlnet: nn.Module
    condition: torch.Tensor
    conditioning_scale: float = 1.0

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Guided noise estimate in float32; one ControlNet call and one UNet call on ``[z, z]``."""
        dtype = self.embeddings.dtype
        model_input = torch.cat([latents, latents]).to(dtype)
        condition = torch.cat([self.condition, self.condition]).to(model_input.device, dtype)
        down, mid = self.controlnet(
            model_input,
            timestep,
            encoder_hidden_states=self.embeddings,
            controlnet_cond=condition,
            conditioning_scale=float(self.conditioning_scale),
            return_dict=False,
        )
        noise = self.unet(
            model_input,
            timestep,
            encoder_hidden_states=self.embeddings,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        uncond, cond = noise.float().chunk(2)
        return uncond + self.guidance_scale * (cond - uncond)


def load_controlnet(name_or_path: str, torch_dtype: torch.dtype | None = None) -> nn.Module:
    """A ``ControlNetModel`` from a folder, hub id or ``tiny:`` reference, through :mod:`speakimg.loading`."""
    from diffusers import ControlNetModel

    from speakimg.loading import load_component, resolve_model

    root = resolve_model(name_or_path, ("",))
    return load_component(root, "", ControlNetModel, torch_dtype=torch_dtype, source=str(name_or_path)).eval()


def _controlnet_of(pipe: Any, name: str) -> nn.Module:
    """The pipeline's ControlNet ``name``, loaded once and kept beside its models (on its device, dtype)."""
    cache = pipe.__dict__.setdefault("extra_models", {})
    key = ("controlnet", name)
    if key not in cache:
        cache.clear()
        cache[key] = load_controlnet(name, pipe.dtype).to(pipe.device).requires_grad_(False)
        pipe.sources["controlnet"] = name
    return cache[key]


@torch.no_grad()
def sample_controlnet(
    pipe: Any,
    image_prompt: Prompts,
    audio_prompt: Prompts,
    settings: SamplerSettings | None = None,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    output_type: OutputType = "np",
    controlnet: nn.Module | None = None,
) -> ImagesThatSpeakOutput:
    """The ControlNet baseline with the image model of ``pipe`` (an ``ImagesThatSpeakPipeline``).

    Args:
        settings: ``SamplerSettings`` (``steps``, ``image_guidance_scale``, ``tts``, ``controlnet_model``,
            ``controlnet_scale``, ``canny_low`` / ``canny_high``, sizes, ``crop_padding``).
        controlnet: a ``ControlNetModel`` to use instead of loading ``settings.controlnet_model``.

    Returns the picture as ``images``, its grey level (channel mean) as ``spectrograms`` and what that
    sounds like; ``latents`` is z_0 of the image model.
    """
    from speakimg.audio import fit_canvas
    from speakimg.pipeline.reference import spoken_spectrograms

    settings = replace(settings or SamplerSettings(), method="controlnet").resolved()
    height, width, crop_padding = settings.height, settings.width, settings.crop_padding
    pipe.check_size(height, width, output_type, crop_padding)
    images_p, audio_p, neg_images, _ = pipe.batch_prompts(image_prompt, audio_prompt, settings.negative_image_prompt)
    controlnet = controlnet if controlnet is not None else _controlnet_of(pipe, settings.controlnet_model)
    spoken = fit_canvas(spoken_spectrograms(audio_p, settings.tts), width, 0.0)
    condition = canny_edges(spoken, settings.canny_low, settings.canny_high).to(pipe.device)
    z_t = pipe.prepare_latents(len(images_p), height, width, generator)
    denoiser = ControlNetDenoiser(
        pipe.image_unet,
        pipe.encode(pipe.image_prompt_encoder, pipe.image_unet, images_p, neg_images),
        settings.image_guidance_scale,
        controlnet,
        condition,
        settings.controlnet_scale,
    )
    pipe.scheduler.set_timesteps(settings.steps, device=pipe.device)
    with pipe.progress_bar(total=settings.steps, desc="controlnet") as bar:
        z_0 = combined_denoise(
            [denoiser], pipe.scheduler, z_t, torch.ones(settings.steps, 1), callback=lambda *_: bar.update()
        )
    if output_type == "latent":
        return ImagesThatSpeakOutput(latents=z_0, sample_rate=pipe.mel_config.sample_rate)
    images = pipe.decode_images(z_0)
    return pipe.finish(images, images.mean(dim=1), z_0, output_type, crop_padding)
