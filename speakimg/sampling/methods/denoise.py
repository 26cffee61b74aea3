"""``denoise``: one latent denoised by the image model and the audio model at once (Images that Sound)."""

from __future__ import annotations

from typing import Any

from speakimg.sampling.methods import register_method


@register_method("denoise", guidance_scale=10.0, summary="combined denoising of one latent by both models")
def denoise(pipe: Any, settings: Any, image_prompts: list[str], audio_prompts: list[str], generators: Any, *,
            output_type: str = "pt") -> Any:  # fmt: skip
    """:meth:`ImagesThatSpeakPipeline.__call__` with ``settings`` (``steps`` is its ``num_inference_steps``)."""
    return pipe(
        image_prompts,
        audio_prompts,
        num_inference_steps=settings.steps,
        image_guidance_scale=settings.image_guidance_scale,
        audio_guidance_scale=settings.audio_guidance_scale,
        t_image=settings.t_image,
        t_audio=settings.t_audio,
        audio_weight=settings.audio_weight,
        height=settings.height,
        width=settings.width,
        negative_image_prompt=settings.negative_image_prompt,
        negative_audio_prompt=settings.negative_audio_prompt,
        generator=generators,
        output_type=output_type,
        crop_padding=settings.crop_padding,
    )
