"""HiFi-GAN's losses (LSGAN, feature matching, mel L1), docs/method.md section 4.

Each function takes the per-sub-discriminator lists the discriminators return and gives the summed
loss (and, for the adversarial ones, the per-sub-discriminator terms for logging)::

    D     = sum_k mean((1 - D_k(y))^2) + mean(D_k(y_hat)^2)
    G_adv = sum_k mean((1 - D_k(y_hat))^2)
    FM    = 2 * sum_k sum_l mean|f_kl(y) - f_kl(y_hat)|
    mel   = 45 * mean|log_mel(y) - log_mel(y_hat)|       (the loss mel may have its own fmax)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from speakimg.audio import MelConfig, log_mel

__all__ = ["discriminator_loss", "generator_adversarial_loss", "feature_matching_loss", "mel_l1", "mel_loss"]


def discriminator_loss(
    real_scores: Sequence[torch.Tensor], fake_scores: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """LSGAN discriminator loss: ``(total, real terms, fake terms)``; pass the fake scores of ``y_hat.detach()``."""
    real_terms = [torch.mean((1.0 - r.float()) ** 2) for r in real_scores]
    fake_terms = [torch.mean(f.float() ** 2) for f in fake_scores]
    return torch.stack([r + f for r, f in zip(real_terms, fake_terms, strict=True)]).sum(), real_terms, fake_terms


def generator_adversarial_loss(fake_scores: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss ``sum_k mean((1 - D_k(y_hat))^2)``: ``(total, per-discriminator terms)``."""
    terms = [torch.mean((1.0 - f.float()) ** 2) for f in fake_scores]
    return torch.stack(terms).sum(), terms


def feature_matching_loss(
    real_maps: Sequence[Sequence[torch.Tensor]], fake_maps: Sequence[Sequence[torch.Tensor]], weight: float = 2.0
) -> torch.Tensor:
    """``weight * sum_k sum_l mean|real_kl - fake_kl|`` over every sub-discriminator's feature maps."""
    terms = [
        torch.mean(torch.abs(r.float() - f.float()))
        for rs, fs in zip(real_maps, fake_maps, strict=True)
        for r, f in zip(rs, fs, strict=True)
    ]
    return weight * torch.stack(terms).sum()


def mel_l1(y: torch.Tensor, y_hat: torch.Tensor, config: MelConfig = MelConfig(fmax=None)) -> torch.Tensor:
    """Mean absolute log-mel difference between real and generated audio (the unweighted mel error).

    Computed outside autocast in float32 (float64 input stays float64): the STFT and the log need the precision.
    """
    with torch.autocast(device_type=y.device.type, enabled=False):
        return torch.mean(torch.abs(log_mel(y, config) - log_mel(y_hat, config)))


def mel_loss(
    y: torch.Tensor, y_hat: torch.Tensor, config: MelConfig = MelConfig(fmax=None), weight: float = 45.0
) -> torch.Tensor:
    """HiFi-GAN's reconstruction loss: ``weight * mel_l1``; the real mel is recomputed from ``y``."""
    return weight * mel_l1(y, y_hat, config)
