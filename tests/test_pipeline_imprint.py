"""The imprint baseline: the formula on given tensors, and an end-to-end run against diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speakimg.errors import ConfigError
from speakimg.pipeline import imprint


def test_imprint_formula_on_given_values():
    spec = torch.tensor([[0.8, 0.8, 0.8, 0.4]])
    gray = torch.tensor([[0.0, 0.5, 1.0, 0.25]])
    # black halves the sound (rho 0.5), white keeps it, mid-grey keeps 3/4
    assert torch.allclose(imprint(gray, spec), torch.tensor([[0.4, 0.6, 0.8, 0.4 * 0.625]]))
    assert torch.allclose(imprint(gray, spec, rho=1.0), spec * gray)
    assert torch.equal(imprint(gray, spec, rho=0.0), spec)


def test_imprint_makes_rgb_grayscale_by_the_channel_mean():
    rng = np.random.default_rng(0)
    rgb = rng.random((2, 3, 4, 5)).astype(np.float32)
    spec = rng.random((2, 4, 5)).astype(np.float32)
    expected = np.empty_like(spec)
    for b, y, x in np.ndindex(spec.shape):
        g = (rgb[b, 0, y, x] + rgb[b, 1, y, x] + rgb[b, 2, y, x]) / 3
        expected[b, y, x] = spec[b, y, x] * (1 - 0.3 * (1 - g))
    got = imprint(torch.from_numpy(rgb), torch.from_numpy(spec), rho=0.3)
    assert np.allclose(got.numpy(), expected, atol=1e-6)


def test_imprint_errors():
    with pytest.raises(ConfigError, match="rho"):
        imprint(torch.zeros(2, 2), torch.zeros(2, 2), rho=1.5)
    with pytest.raises(ConfigError, match="same size"):
        imprint(torch.zeros(3, 2, 2), torch.zeros(2, 3))


def test_sample_imprint_matches_each_model_run_alone_with_diffusers(tiny_pipeline, tiny_sd, tiny_auffusion):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    def alone(folder, prompt, latents, steps):
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        out = pipe(prompt, height=256, width=1024, num_inference_steps=steps, guidance_scale=7.5, latents=latents,
                   output_type="pt")  # fmt: skip
        return out.images  # [1, 3, H, W] in [0, 1]

    generator = torch.Generator().manual_seed(4)
    z_image = torch.randn(1, 4, 32, 128, generator=generator)  # the picture's noise is drawn first,
    z_spec = torch.randn(1, 4, 32, 128, generator=generator)  # then the spectrogram's
    gray = alone(tiny_sd, "a castle", z_image, 2).mean(dim=1)
    spec = alone(tiny_auffusion, "bells", z_spec, 3).mean(dim=1)

    out = tiny_pipeline.imprint(
        "a castle", "bells", imprint_image_steps=2, steps=3, generator=torch.Generator().manual_seed(4),
        output_type="pt", crop_padding=False,
    )  # fmt: skip
    assert out.latents is None
    assert out.images.shape == (1, 3, 256, 1024) and torch.allclose(out.images[:, 0], gray, atol=1e-4)
    expected = spec * (1 - 0.5 * (1 - gray))
    assert torch.allclose(out.spectrograms, expected, atol=1e-4)
    assert out.log_mels.shape == (1, 256, 1024) and out.audios.shape == (1, 163840)


def test_sample_imprint_refuses_latent_output(tiny_pipeline):
    with pytest.raises(ConfigError, match="no latent"):
        tiny_pipeline.imprint("a", "b", output_type="latent")
