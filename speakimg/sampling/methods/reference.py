"""``reference``: combined denoising anchored to the spoken audio prompt (speakimg's extension)."""

from __future__ import annotations

from typing import Any

from speakimg.sampling.methods import register_method


@register_method(
    "reference", guidance_scale=10.0, summary="combined denoising plus the exact noise estimate of a TTS latent"
)
def reference(pipe: Any, settings: Any, image_prompts: list[str], audio_prompts: list[str], generators: Any, *,
              output_type: str = "pt") -> Any:  # fmt: skip
    """:func:`speakimg.pipeline.reference.sample_reference` with ``settings``."""
    from speakimg.pipeline.reference import sample_reference

    return sample_reference(pipe, image_prompts, audio_prompts, settings, generator=generators, output_type=output_type)
