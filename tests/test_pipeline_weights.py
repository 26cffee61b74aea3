"""Which model takes part at which DDIM step, and with what weight (docs/method.md section 5)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from speakimg.errors import ConfigError
from speakimg.pipeline import combination_weights, takes_part
from speakimg.testing import SD15_SCHEDULER_CONFIG


def sd15_timesteps(steps: int) -> torch.Tensor:
    scheduler = DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps


def test_sd15_ddim_visits_991_to_1_in_100_steps():
    timesteps = sd15_timesteps(100)
    assert timesteps.tolist() == list(range(991, 0, -10))


@pytest.mark.parametrize(("steps", "audio_only"), [(100, 10), (50, 5), (10, 1), (5, 0), (20, 2)])
def test_t_image_09_makes_the_first_tenth_audio_only(steps, audio_only):
    timesteps = sd15_timesteps(steps)
    weights = combination_weights(timesteps, t_image=0.9, t_audio=1.0, audio_weight=0.5)
    assert weights.shape == (steps, 2)
    expected = torch.tensor([[0.0, 1.0]] * audio_only + [[0.5, 0.5]] * (steps - audio_only), dtype=torch.float64)
    assert torch.equal(weights, expected)
    # the boundary itself: the last audio-only step is above 900, the first shared one at or below
    if audio_only:
        assert timesteps[audio_only - 1] > 900 >= timesteps[audio_only]


def test_boundary_is_inclusive_heaviside_at_zero():
    t = torch.tensor([901, 900, 899])
    assert takes_part(t, 0.9).tolist() == [False, True, True]  # H(0) = 1
    assert takes_part(t, 0.7).tolist() == [False, False, False]
    assert takes_part(torch.tensor([999, 1]), 1.0).tolist() == [True, True]
    # 0.3 * 1000 is 300.00000000000006 in floating point: still the integer timestep 300
    assert takes_part(torch.tensor([301, 300]), 0.3).tolist() == [False, True]


def test_audio_weight_once_both_and_image_only_warm_start():
    timesteps = sd15_timesteps(10)  # 901, 801, ..., 1
    w = combination_weights(timesteps, t_image=1.0, t_audio=0.7, audio_weight=0.3)
    assert w[0].tolist() == [1.0, 0.0] and w[1].tolist() == [1.0, 0.0] and w[2].tolist() == [1.0, 0.0]
    assert w[3:, 0].allclose(torch.tensor(0.7, dtype=torch.float64)) and w[3:, 1].eq(0.3).all()
    assert torch.equal(w.sum(dim=1), torch.ones(10, dtype=torch.float64))
    # audio_weight 0 once both run: the audio model only drives its own warm start
    w0 = combination_weights(timesteps, t_image=0.9, t_audio=1.0, audio_weight=0.0)
    assert w0[0].tolist() == [0.0, 1.0] and w0[1:].tolist() == [[1.0, 0.0]] * 9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t_image": 0.0}, "t_image=0.0 is outside"),
        ({"t_image": 1.5}, "t_image=1.5 is outside"),
        ({"t_audio": -0.1}, "t_audio"),
        ({"t_image": float("nan")}, "t_image must be a number"),
        ({"t_image": True}, "t_image must be a number"),
        ({"audio_weight": 1.2}, "audio_weight"),
        ({"audio_weight": -0.5}, "audio_weight"),
        ({"t_image": 0.5, "t_audio": 0.5}, "no model takes part in 5 of the 10 steps"),
    ],
)
def test_bad_fractions_and_weights_name_the_culprit(kwargs, match):
    settings = {"t_image": 0.9, "t_audio": 1.0, "audio_weight": 0.5, **kwargs}
    with pytest.raises(ConfigError, match=match):
        combination_weights(sd15_timesteps(10), **settings)
