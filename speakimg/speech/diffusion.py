"""The diffusion training objective (docs/method.md 8), as plain functions of tensors.

``z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps`` with ``t ~ U{0 .. T-1}`` on the DDPM schedule of the
base model's own scheduler config (SD 1.5: scaled-linear betas 0.00085 .. 0.012, T = 1000), and the MSE
between the UNet's prediction and its target (``eps`` for epsilon prediction, the velocity for
v-prediction), optionally min-SNR weighted (Hang et al. 2023) and with offset noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speakimg.errors import ConfigError

__all__ = ["draw_noise", "diffusion_target", "diffusion_loss", "min_snr_weights"]


def draw_noise(
    latents: torch.Tensor,
    num_train_timesteps: int,
    generator: torch.Generator | None = None,
    noise_offset: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise like ``latents`` (plus ``noise_offset`` x per-channel constant noise) and timesteps."""
    batch, channels = latents.shape[:2]
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=torch.float32)
    if noise_offset:
        offset = torch.randn((batch, channels, 1, 1), generator=generator, device=latents.device)
        noise = noise + noise_offset * offset
    timesteps = torch.randint(0, num_train_timesteps, (batch,), generator=generator, device=latents.device)
    return noise.to(latents.dtype), timesteps


def diffusion_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict: ``noise`` (epsilon) or the velocity (v-prediction)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ConfigError(
        f"prediction_type {kind!r} of the base model's scheduler is not supported (epsilon, v_prediction)"
    )


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample min-SNR-gamma loss weights: ``min(snr, gamma) / snr`` (``/(snr + 1)`` for v-prediction)."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


def diffusion_loss(
    unet: nn.Module,
    scheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """Mean squared error of the UNet's prediction on ``z_t`` (float32 loss)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, encoder_hidden_states=cond).sample
    target = diffusion_target(scheduler, latents, noise, timesteps)
    if snr_gamma is None:
        return F.mse_loss(pred.float(), target.float())
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
    return (per_sample * min_snr_weights(scheduler, timesteps, snr_gamma)).mean()
