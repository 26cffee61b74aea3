"""A tiny HiFi-GAN vocoder in Auffusion's layout: ``config.json`` + ``vocoder.pt`` ({"generator": ...}).

Same structure as Auffusion's (resblock "1", upsample rates 5-4-4-2 with kernels 11-8-8-4 = hop 160,
three residual kernels, 256 mels, legacy ``weight_g``/``weight_v`` keys), only narrower
(``upsample_initial_channel`` 32): ``Generator.from_pretrained`` / ``load_vocoder`` load it like the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["TINY_VOCODER_CONFIG", "write_tiny_vocoder"]

TINY_VOCODER_CONFIG: dict = {
    "resblock": "1",
    "num_gpus": 0,
    "batch_size": 16,
    "learning_rate": 0.0002,
    "adam_b1": 0.8,
    "adam_b2": 0.99,
    "lr_decay": 0.999,
    "seed": 1234,
    "upsample_rates": [5, 4, 4, 2],
    "upsample_kernel_sizes": [11, 8, 8, 4],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "segment_size": 5120,
    "num_mels": 256,
    "n_fft": 2048,
    "hop_size": 160,
    "win_size": 1024,
    "sampling_rate": 16000,
    "fmin": 0,
    "fmax": 8000,
    "fmax_for_loss": None,
}
"""Auffusion's vocoder config.json fields, with 32 instead of 512 initial channels."""


def write_tiny_vocoder(folder: Path, seed: int = 2) -> None:
    """Write ``folder/config.json`` and ``folder/vocoder.pt`` (legacy weight-norm keys) from ``seed``."""
    from speakimg.vocoder.generator import Generator

    torch.manual_seed(seed)
    generator = Generator(TINY_VOCODER_CONFIG)
    folder.mkdir(parents=True, exist_ok=True)
    state = generator.legacy_state_dict()
    # g != ||v|| (as in any trained checkpoint): a loader that ignored weight_g would give other audio.
    state = {k: (v * 1.5 if k.endswith("weight_g") else v) for k, v in state.items()}
    (folder / "config.json").write_text(json.dumps(TINY_VOCODER_CONFIG, indent=2) + "\n")
    torch.save({"generator": state}, folder / "vocoder.pt")
