"""The imprint baseline of Images that Sound (METHOD.md section 5).

Each model samples on its own (the image model: 50 steps, CFG 7.5; the audio model: 100 steps,
CFG 7.5); the picture, made grayscale ``g``, then darkens the spectrogram ``s``:

    result = s * (1 - rho * (1 - g))          (rho = 0.5)

so dark parts of the picture attenuate the sound by up to ``rho``. It is the baseline the
combined sampler is compared against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from speakimg.errors import ConfigError
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise

if TYPE_CHECKING:
    from speakimg.pipeline.combined import ImagesThatSpeakOutput, ImagesThatSpeakPipeline, OutputType, Prompts

__all__ = ["imprint", "sample_imprint"]


def imprint(image: torch.Tensor, spectrogram: torch.Tensor, rho: float = 0.5) -> torch.Tensor:
    """``s * (1 - rho * (1 - g))``.

    Args:
        image: the picture in [0, 1]: ``[B, 3, H, W]`` / ``[3, H, W]`` (made grayscale by the channel
            mean) or already grayscale ``[B, H, W]`` / ``[H, W]``.
        spectrogram: the spectrogram image in [0, 1], ``[(B,) H, W]``.
        rho: how much the darkest picture parts attenuate the spectrogram, in [0, 1].

    Returns:
        The imprinted spectrogram image, shaped like ``spectrogram``.
    """
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 <= rho <= 1.0:
        raise ConfigError(f"imprint strength rho must be a number in [0, 1], got {rho!r}")
    gray = image.mean(dim=-3) if image.ndim == spectrogram.ndim + 1 else image
    if gray.shape != spectrogram.shape:
        raise ConfigError(
            f"imprint needs a picture and a spectrogram of the same size, got {tuple(image.shape)} and "
            f"{tuple(spectrogram.shape)}"
        )
    return spectrogram * (1.0 - rho * (1.0 - gray))


@torch.no_grad()
def sample_imprint(
    pipe: ImagesThatSpeakPipeline,
    image_prompt: Prompts,
    audio_prompt: Prompts,
    *,
    image_steps: int = 50,
    audio_steps: int = 100,
    image_guidance_scale: float = 7.5,
    audio_guidance_scale: float = 7.5,
    rho: float = 0.5,
    height: int = 256,
    width: int = 1024,
    negative_image_prompt: Prompts = "",
    negative_audio_prompt: Prompts = "",
    num_images_per_prompt: int = 1,
    generator: torch.Generator | list[torch.Generator] | None = None,
    output_type: OutputType = "np",
    crop_padding: bool = True,
) -> ImagesThatSpeakOutput:
    """Sample the imprint baseline with ``pipe``'s models.

    The picture's noise is drawn from ``generator`` first, then the spectrogram's. Returns an
    :class:`~speakimg.pipeline.combined.ImagesThatSpeakOutput` whose ``images`` are the grayscale
    picture ``g`` (as 3 channels), ``spectrograms`` the imprinted result (what is heard), and
    ``latents`` ``None``. ``output_type="latent"`` is not available (the result is not a latent).
    """
    if output_type not in ("np", "pt"):
        raise ConfigError(f"the imprint baseline has no latent: output_type must be 'np' or 'pt', got {output_type!r}")
    pipe.check_size(height, width, output_type, crop_padding)
    images_p, audio_p, neg_images, neg_audio = pipe.batch_prompts(
        image_prompt, audio_prompt, negative_image_prompt, negative_audio_prompt, num_images_per_prompt
    )
    batch = len(images_p)
    runs = (
        (pipe.image_unet, pipe.image_prompt_encoder, images_p, neg_images, image_steps, image_guidance_scale),
        (pipe.audio_unet, pipe.audio_prompt_encoder, audio_p, neg_audio, audio_steps, audio_guidance_scale),
    )
    finals = []
    for unet, encoder, prompts, negatives, steps, scale in runs:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"imprint steps must be a positive int, got {steps!r}")
        z_t = pipe.prepare_latents(batch, height, width, generator)
        denoiser = GuidedDenoiser(unet, pipe.encode(encoder, unet, prompts, negatives), float(scale))
        pipe.scheduler.set_timesteps(steps, device=pipe.device)
        with pipe.progress_bar(total=steps, desc="imprint") as bar:
            finals.append(
                combined_denoise(
                    [denoiser], pipe.scheduler, z_t, torch.ones(steps, 1), callback=lambda *_: bar.update()
                )
            )
    gray = pipe.decode_images(finals[0]).mean(dim=1)
    spectrograms = imprint(gray, pipe.decode_spectrograms(finals[1]), rho)
    return pipe.finish(gray.unsqueeze(1).expand(-1, 3, -1, -1), spectrograms, None, output_type, crop_padding)
