"""Throughput options: the warm start skips the image UNet, a batch is one UNet call per model, batch size from memory."""

from __future__ import annotations

import pytest
import torch

from speakimg.errors import ConfigError
from speakimg.runtime import batch_size_for_memory, default_batch_size


def _count_unet_calls(pipe, **kwargs) -> dict[str, list[int]]:
    """Batch sizes of every UNet call of one pipeline call (latent output)."""
    calls: dict[str, list[int]] = {"image": [], "audio": []}
    hooks = [
        unet.register_forward_pre_hook(lambda module, args, name=name: calls[name].append(args[0].shape[0]))
        for name, unet in (("image", pipe.image_unet), ("audio", pipe.audio_unet))
    ]
    try:
        # latent output at 64 x 64 pixels: the UNet calls are what is counted, the canvas size does not matter
        pipe(output_type="latent", height=64, width=64, generator=torch.Generator().manual_seed(0), **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def test_the_warm_start_skips_the_image_unet_and_a_batch_is_one_call_per_model(tiny_pipeline):
    assert tiny_pipeline.image_unet is not tiny_pipeline.audio_unet
    pairs = 3
    images, audios = [f"a lighthouse {i}" for i in range(pairs)], [f"waves {i}" for i in range(pairs)]
    calls = _count_unet_calls(tiny_pipeline, image_prompt=images, audio_prompt=audios,
                              num_inference_steps=100, t_image=0.9)  # fmt: skip
    # independently: SD's DDIM schedule visits t = 991, 981, ..., 1; the image model takes part iff t <= 900
    timesteps = [990 - 10 * k + 1 for k in range(100)]
    assert len(calls["image"]) == sum(t <= 900 for t in timesteps) == 90
    assert len(calls["audio"]) == 100
    # every call holds the whole batch: the unconditional and conditional rows of the 3 pairs
    assert set(calls["image"]) == set(calls["audio"]) == {2 * pairs}
    # broken on purpose: without the warm start the image UNet runs at every step
    full = _count_unet_calls(tiny_pipeline, image_prompt=images[0], audio_prompt=audios[0], num_inference_steps=100,
                             t_image=1.0)  # fmt: skip
    assert len(full["image"]) == 100 and set(full["image"]) == {2}


def test_the_batch_size_follows_the_free_memory(monkeypatch):
    gib = 2**30
    assert batch_size_for_memory(40 * gib, 3 * gib) == int(0.9 * 40 // 3) == 12
    assert batch_size_for_memory(1 * gib, 3 * gib) == 1  # never 0: one sample is tried
    assert batch_size_for_memory(10_000 * gib, 3 * gib) == 32  # capped
    assert batch_size_for_memory(40 * gib, 3 * gib, headroom=0.5, maximum=64) == int(20 // 3)
    for bad in ({"per_sample_bytes": 0}, {"headroom": 0.0}, {"maximum": 0}):
        with pytest.raises(ConfigError):
            batch_size_for_memory(**{"free_bytes": gib, "per_sample_bytes": gib, **bad})
    assert default_batch_size("cpu") == 4
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * gib, 141 * gib))
    assert default_batch_size("cuda:0", per_sample_gib=3.0) == 30
    assert default_batch_size("cuda", per_sample_gib=5.0) == 18
