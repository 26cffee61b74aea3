"""``imprint``: the baseline of Images that Sound: each model alone, the picture darkens the spectrogram."""

from __future__ import annotations

from typing import Any

from speakimg.sampling.methods import register_method


@register_method("imprint", guidance_scale=7.5, summary="each model alone; the grey picture darkens the spectrogram")
def imprint(pipe: Any, settings: Any, image_prompts: list[str], audio_prompts: list[str], generators: Any, *,
            output_type: str = "pt") -> Any:  # fmt: skip
    """:meth:`ImagesThatSpeakPipeline.imprint` with ``settings``."""
    return pipe.imprint(image_prompts, audio_prompts, settings, generator=generators, output_type=output_type)
