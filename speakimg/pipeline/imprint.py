"""The imprint baseline of Images that Sound (docs/sampling.md).

Each model samples on its own (the image model: ``imprint_image_steps`` 50, CFG 7.5; the audio model:
``steps`` 100, CFG 7.5: ``SamplerSettings(method="imprint")``); the picture, made grayscale ``g``,
then darkens the spectrogram ``s``:

    result = s * (1 - rho * (1 - g))          (rho = 0.5)

so dark parts of the picture attenuate the sound by up to ``rho``. It is the baseline the
combined sampler is compared against.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from speakimg.errors import ConfigError
from speakimg.pipeline.output import ImagesThatSpeakOutput, OutputType, Prompts
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
from speakimg.sampling.settings import SamplerSettings

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
    pipe: Any,
    image_prompt: Prompts,
    audio_prompt: Prompts,
    settings: SamplerSettings | None = None,
    *,
    num_images_per_prompt: int = 1,
    generator: torch.Generator | list[torch.Generator] | None = None,
    output_type: OutputType = "np",
    **changes: Any,
) -> ImagesThatSpeakOutput:
    """Sample the imprint baseline with the models of ``pipe`` (an ``ImagesThatSpeakPipeline``).

    Args:
        settings: the sampler settings (default ``SamplerSettings(method="imprint")``: the paper's); the
            picture takes ``imprint_image_steps`` steps, the spectrogram ``steps``, the strength is
            ``imprint_rho``; guidance scales default to the imprint method's (7.5).
        changes: fields of :class:`SamplerSettings` to change (``steps=3, crop_padding=False``).
        num_images_per_prompt, generator, output_type: as for the pipeline's ``__call__``.

    The picture's noise is drawn from ``generator`` first, then the spectrogram's. Returns an
    :class:`~speakimg.pipeline.output.ImagesThatSpeakOutput` whose ``images`` are the grayscale
    picture ``g`` (as 3 channels; ``1 - g`` with ``imprint_inverse_image``, Images that Sound's default), ``spectrograms`` the imprinted result (what is heard), and
    ``latents`` ``None``. ``output_type="latent"`` is not available (the result is not a latent).
    """
    if output_type not in ("np", "pt"):
        raise ConfigError(f"the imprint baseline has no latent: output_type must be 'np' or 'pt', got {output_type!r}")
    try:
        settings = replace(settings or SamplerSettings(), method="imprint", **changes).resolved()
    except TypeError as error:  # a keyword that is not a field
        raise ConfigError(f"imprint: {error}; the settings are the fields of SamplerSettings") from None
    height, width, crop_padding = settings.height, settings.width, settings.crop_padding
    pipe.check_size(height, width, output_type, crop_padding)
    negative_image_prompt, negative_audio_prompt = settings.negative_image_prompt, settings.negative_audio_prompt
    images_p, audio_p, neg_images, neg_audio = pipe.batch_prompts(
        image_prompt, audio_prompt, negative_image_prompt, negative_audio_prompt, num_images_per_prompt
    )
    batch = len(images_p)
    runs = (
        (pipe.image_unet, pipe.image_prompt_encoder, images_p, neg_images, settings.imprint_image_steps,
         settings.image_guidance_scale),
        (pipe.audio_unet, pipe.audio_prompt_encoder, audio_p, neg_audio, settings.steps, settings.audio_guidance_scale),
    )  # fmt: skip
    finals = []
    for unet, encoder, prompts, negatives, steps, scale in runs:
        z_t = pipe.prepare_latents(batch, height, width, generator)
        denoiser = GuidedDenoiser(unet, pipe.encode(encoder, unet, prompts, negatives), scale)
        pipe.scheduler.set_timesteps(steps, device=pipe.device)
        with pipe.progress_bar(total=steps, desc="imprint") as bar:
            finals.append(
                combined_denoise(
                    [denoiser], pipe.scheduler, z_t, torch.ones(steps, 1), callback=lambda *_: bar.update()
                )
            )
    gray = pipe.decode_images(finals[0]).mean(dim=1)
    spectrograms = imprint(gray, pipe.decode_spectrograms(finals[1]), settings.imprint_rho)
    picture = 1.0 - gray if settings.imprint_inverse_image else gray  # what Images that Sound saves and scores
    return pipe.finish(picture.unsqueeze(1).expand(-1, 3, -1, -1), spectrograms, None, output_type, crop_padding)
