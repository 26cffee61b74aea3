"""Griffin-Lim as a vocoder module: the same call as a HiFi-GAN (log-mel in, audio out)."""

from __future__ import annotations

import torch
from torch import nn

from speakimg.audio import MelConfig, griffin_lim

__all__ = ["GriffinLimVocoder"]


class GriffinLimVocoder(nn.Module):
    """Weight-free vocoder: ``[B, n_mels, T]`` natural-log mel -> ``[B, 1, hop * T]`` audio."""

    def __init__(self, n_iter: int = 64, seed: int = 0, config: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.n_iter = n_iter
        self.seed = seed
        self.config = config
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        single = mel.ndim == 2
        audio = griffin_lim(mel.float(), self.config, n_iter=self.n_iter, generator=generator)
        audio = audio.unsqueeze(0) if single else audio
        return audio.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"n_iter={self.n_iter}, seed={self.seed}"
