"""When each model takes part in the combined sampler, and with what weight (docs/sampling.md).

Images that Sound (eq. 4-6) weighs the two noise estimates per timestep ``t`` with

    w_a(t) = H(t_a * T - t),   w_v(t) = H(t_v * T - t),   lambda_m = w_m / (w_a + w_v)

where ``T`` is the number of training timesteps (1000), ``t_a`` / ``t_v`` (``t_audio`` /
``t_image``) are the fractions of the reverse process in which the audio / image model take part,
and ``H`` is the Heaviside step with ``H(0) = 1``. Once both models take part, ``audio_weight``
replaces the even split: ``eps = audio_weight * eps_audio + (1 - audio_weight) * eps_image``.

**Mapping to discrete timesteps.** A model with fraction ``f`` takes part at timestep ``t`` iff
``t <= f * T``. With Stable Diffusion 1.5's DDIM schedule ("leading" spacing, ``steps_offset=1``)
``N`` steps visit ``t_k = (N - 1 - k) * (T // N) + 1``, so ``t_image = 0.9`` skips the image model on

- ``N = 100``: t = 991, 981, ..., 901 -> the first 10 steps are audio-only (the paper's setting);
- ``N = 50``: t = 981, ..., 901 -> the first 5 steps;
- ``N = 10``: t = 901 -> the first step;
- ``N = 5``: none (the first step is t = 801 <= 900).

``f = 1.0`` means "from the very first step". Since timesteps only decrease, a model that takes
part at some step takes part in every later one.
"""

from __future__ import annotations

import math

import torch

from speakimg.errors import ConfigError
from speakimg.sampling.settings import check_fraction

__all__ = ["check_fraction", "combination_weights", "takes_part"]


def takes_part(timesteps: torch.Tensor, fraction: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """``H(fraction * T - t)`` with ``H(0) = 1``: a bool tensor, True where ``t <= fraction * T``."""
    # Timesteps are integers; the small epsilon keeps e.g. 0.9 * 1000 = 900.0000000000001 at 900.
    threshold = math.floor(fraction * num_train_timesteps + 1e-6)
    return torch.as_tensor(timesteps).long().cpu() <= threshold


def combination_weights(
    timesteps: torch.Tensor,
    *,
    t_image: float,
    t_audio: float,
    audio_weight: float,
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """Per-step weights ``[N, 2]`` of (image, audio) noise estimates; each row sums to 1.

    Both models: ``(1 - audio_weight, audio_weight)``; audio only: ``(0, 1)``; image only: ``(1, 0)``.

    Raises:
        ConfigError: a fraction outside (0, 1], ``audio_weight`` outside [0, 1], or a step in which
            neither model takes part.
    """
    t_image = check_fraction("t_image", t_image)
    t_audio = check_fraction("t_audio", t_audio)
    if isinstance(audio_weight, bool) or not isinstance(audio_weight, (int, float)) or not 0.0 <= audio_weight <= 1.0:
        raise ConfigError(f"audio_weight must be a number in [0, 1], got {audio_weight!r}")
    timesteps = torch.as_tensor(timesteps)
    image = takes_part(timesteps, t_image, num_train_timesteps)
    audio = takes_part(timesteps, t_audio, num_train_timesteps)
    idle = ~(image | audio)
    if idle.any():
        first = timesteps[idle]
        raise ConfigError(
            f"with t_image={t_image} and t_audio={t_audio}, no model takes part in {int(idle.sum())} of the "
            f"{len(timesteps)} steps (timesteps {int(first[0])}..{int(first[-1])}): set t_image or t_audio to 1.0"
        )
    weights = torch.zeros(len(timesteps), 2, dtype=torch.float64)
    both = image & audio
    weights[both, 0] = 1.0 - float(audio_weight)
    weights[both, 1] = float(audio_weight)
    weights[image & ~audio, 0] = 1.0
    weights[audio & ~image, 1] = 1.0
    return weights
