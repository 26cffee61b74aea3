"""``sds``: the SDS baseline of Images that Sound: one implicit image distilled from both models' scores."""

from __future__ import annotations

from typing import Any

from speakimg.sampling.methods import register_method


@register_method(
    "sds",
    guidance_scale=10.0,
    image_guidance_scale=80.0,
    summary="score distillation of an implicit image (image SDS from IF pixels or SD latents, audio SDS)",
)
def sds(pipe: Any, settings: Any, image_prompts: list[str], audio_prompts: list[str], generators: Any, *,
        output_type: str = "pt") -> Any:  # fmt: skip
    """:func:`speakimg.pipeline.sds.sample_sds` with ``settings``."""
    from speakimg.pipeline.sds import sample_sds

    return sample_sds(pipe, image_prompts, audio_prompts, settings, generator=generators, output_type=output_type)
