"""``controlnet``: Images that Speak's zero-shot baseline (SD + a canny ControlNet on a TTS spectrogram)."""

from __future__ import annotations

from typing import Any

from speakimg.sampling.methods import register_method


@register_method(
    "controlnet", guidance_scale=7.5, summary="SD steered by the contours of a TTS spectrogram; the picture is heard"
)
def controlnet(pipe: Any, settings: Any, image_prompts: list[str], audio_prompts: list[str], generators: Any, *,
               output_type: str = "pt") -> Any:  # fmt: skip
    """:func:`speakimg.pipeline.controlnet.sample_controlnet` with ``settings``."""
    from speakimg.pipeline.controlnet import sample_controlnet

    return sample_controlnet(
        pipe, image_prompts, audio_prompts, settings, generator=generators, output_type=output_type
    )
