"""A tiny exported speech model (``speakimg_speech.json`` layout) over the tiny Auffusion and PL-BERT.

Its LoRA and adapter weights are random (seeded), not trained: the folder exercises the real export
format and loaders (``SpeechModel.from_pretrained``, ``ImagesThatSpeakPipeline.from_pretrained``)
offline, e.g. in the notebook and tests, where the images that speak are noise.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["write_tiny_speech_model"]


def write_tiny_speech_model(folder: Path, base_model: str, plbert: str, seed: int = 3) -> None:
    """Write a speech model folder whose base model and PL-BERT are the given references."""
    from speakimg.speech import LoRASpec, SpeechConfig, SpeechModel

    config = SpeechConfig(
        base_model=base_model,
        plbert=plbert,
        mode="replace",
        max_phonemes=128,
        lora=LoRASpec(rank=4),
        unfreeze=[r"attn2\.to_k", r"attn2\.to_v"],
    )
    model = SpeechModel.from_base(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # LoRA B starts at 0 (= the base model): give the tiny model weights of its own
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and ("lora_B" in name or "null" in name):
                parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder, extra={"training": {"note": "tiny-model kit: random weights, not trained"}})
