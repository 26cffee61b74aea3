"""Log-mel <-> image map, canvas helpers and VAE range helpers."""

from __future__ import annotations

import math

import pytest
import torch

from speakimg.audio import (
    CANVAS_FRAMES,
    LOG_MEL_MAX,
    LOG_MEL_MIN,
    fit_canvas,
    from_vae_range,
    image_to_mel,
    log_mel,
    mel_to_image,
    to_vae_range,
)


def test_range_constants():
    assert LOG_MEL_MIN == pytest.approx(math.log(1e-5)) == pytest.approx(-11.512925)
    assert LOG_MEL_MAX == pytest.approx(math.log(200)) == pytest.approx(5.298317)
    assert CANVAS_FRAMES == 1024


def test_round_trip_within_range():
    logmel = torch.empty(256, 100).uniform_(LOG_MEL_MIN, LOG_MEL_MAX)
    image = mel_to_image(logmel)
    assert image.shape == (3, 256, 100)
    assert image.min() >= 0 and image.max() <= 1
    for reduce in ("mean", "first"):
        assert torch.allclose(image_to_mel(image, reduce=reduce), logmel, atol=1e-5)


def test_values_outside_the_range_are_clamped():
    logmel = torch.tensor([[-20.0, 0.0, 10.0]]).repeat(256, 1)
    back = image_to_mel(mel_to_image(logmel))
    assert torch.allclose(back[:, 0], torch.full((256,), LOG_MEL_MIN))
    assert torch.allclose(back[:, 1], torch.zeros(256), atol=1e-5)
    assert torch.allclose(back[:, 2], torch.full((256,), LOG_MEL_MAX))


def test_low_frequencies_are_at_the_bottom():
    t = torch.arange(16000) / 16000
    low_tone = 0.5 * torch.sin(2 * torch.pi * 200 * t)
    image = mel_to_image(log_mel(low_tone))
    row_energy = image[0].mean(dim=1)
    assert row_energy.argmax() > 200  # near the bottom (row 255 = lowest mel bin)
    # and the normalisation is (x - lo) / (hi - lo)
    expected = (log_mel(low_tone).clamp(LOG_MEL_MIN, LOG_MEL_MAX) - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN)
    assert torch.allclose(image[1], expected.flip(0))


def test_batched_image_map_and_channel_reduction():
    logmel = torch.empty(2, 256, 16).uniform_(-10, 4)
    image = mel_to_image(logmel)
    assert image.shape == (2, 3, 256, 16)
    image[:, 1:] = 0.0  # channels differ: mean and first disagree in the documented way
    first = image_to_mel(image, reduce="first")
    mean = image_to_mel(image, reduce="mean")
    assert torch.allclose(first, logmel, atol=1e-5)
    expected_mean = (image[:, 0] / 3).flip(-2) * (LOG_MEL_MAX - LOG_MEL_MIN) + LOG_MEL_MIN
    assert torch.allclose(mean, expected_mean, atol=1e-5)
    with pytest.raises(ValueError, match="reduce"):
        image_to_mel(image, reduce="max")


def test_fit_canvas_pads_with_silence_and_crops():
    image = torch.rand(3, 256, 1000)
    padded = fit_canvas(image)
    assert padded.shape == (3, 256, 1024)
    assert torch.equal(padded[..., :1000], image) and torch.all(padded[..., 1000:] == 0)
    mel = torch.zeros(256, 10)
    assert torch.all(fit_canvas(mel, value=LOG_MEL_MIN)[:, 10:] == LOG_MEL_MIN)
    long = torch.rand(3, 256, 1100)
    assert torch.equal(fit_canvas(long), long[..., :1024])


def test_vae_range_helpers():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(from_vae_range(to_vae_range(x)), x, atol=1e-6)
    assert to_vae_range(torch.zeros(1)).item() == -1 and to_vae_range(torch.ones(1)).item() == 1
    assert from_vae_range(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]
