"""Griffin-Lim: the weight-free vocoder, in torch (CPU or GPU), matched to the mel front end.

The log-mel is mapped back to a linear magnitude with the filterbank's pseudo-inverse (clamped at
zero), then the phase is recovered with the fast Griffin-Lim iteration (Perraudin et al., momentum
0.99, as librosa). Frames are aligned with :func:`speakimg.audio.log_mel`: its frame ``k`` is
centred on sample ``k * hop + hop / 2``, so the output has exactly ``frames * hop`` samples and
re-analyses onto the same frame grid.
"""

from __future__ import annotations

import torch

from speakimg.audio.mel import MelConfig, mel_filterbank

__all__ = ["griffin_lim", "mel_to_linear"]

_PINV_CACHE: dict[tuple, torch.Tensor] = {}


def mel_to_linear(logmel: torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """Natural-log mel ``[..., n_mels, F]`` -> non-negative linear magnitude ``[..., n_fft//2+1, F]``."""
    key = (config, str(logmel.device))
    pinv = _PINV_CACHE.get(key)
    if pinv is None:
        basis = mel_filterbank(config, logmel.device, torch.float64)
        pinv = torch.linalg.pinv(basis).float()
        _PINV_CACHE[key] = pinv
    return torch.matmul(pinv, logmel.float().exp()).clamp_min(0.0)


@torch.no_grad()
def griffin_lim(
    logmel: torch.Tensor,
    config: MelConfig = MelConfig(),
    n_iter: int = 64,
    momentum: float = 0.99,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Log-mel ``[n_mels, F]`` or ``[B, n_mels, F]`` -> audio ``[F * hop]`` or ``[B, F * hop]``.

    Args:
        logmel: natural-log mel magnitudes as produced by :func:`speakimg.audio.log_mel`.
        config: the analysis settings the log-mel was made with.
        n_iter: Griffin-Lim iterations (32 is usable, 64-100 is better).
        momentum: fast Griffin-Lim momentum (0 gives the classic algorithm).
        generator: seeds the random initial phase (deterministic output for a seeded generator).
    """
    if logmel.ndim not in (2, 3):
        raise ValueError(f"griffin_lim expects [n_mels, F] or [B, n_mels, F], got {tuple(logmel.shape)}")
    if logmel.shape[-2] != config.n_mels:
        raise ValueError(f"griffin_lim got {logmel.shape[-2]} mel bins, the config has {config.n_mels}")
    single = logmel.ndim == 2
    mel = logmel.unsqueeze(0) if single else logmel
    frames = mel.shape[-1]
    length = frames * config.hop_length
    magnitude = mel_to_linear(mel, config)
    window = torch.hann_window(config.win_length, periodic=True, device=mel.device)
    stft_kwargs = dict(
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
    )

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, length=length, **stft_kwargs)

    def stft(audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(audio, return_complex=True, pad_mode="reflect", **stft_kwargs)[..., :frames]

    phase = torch.rand(magnitude.shape, generator=generator, device="cpu").to(mel.device)
    angles = torch.polar(torch.ones_like(magnitude), 2 * torch.pi * phase)
    rebuilt = torch.zeros_like(angles)
    for _ in range(n_iter):
        previous = rebuilt
        rebuilt = stft(istft(magnitude * angles))
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)
    audio = istft(magnitude * angles)
    # frame k of log_mel is centred on k * hop + hop / 2: shift right by half a hop.
    shift = config.hop_length // 2
    audio = torch.nn.functional.pad(audio, (shift, 0))[..., :length]
    audio = audio.clamp(-1.0, 1.0)
    return audio[0] if single else audio
