"""HiFi-GAN's multi-period and multi-scale discriminators (docs/method.md section 4), original key layout.

Both take the real and the generated audio ``[B, 1, T]`` and return, per sub-discriminator, the
scores on each and the feature maps (every convolution's output, ``conv_post`` included)::

    real_scores, fake_scores, real_fmaps, fake_fmaps = mpd(y, y_hat)

Outputs and losses equal the original's from the first training step: the raw-audio scale of the MSD uses
the legacy spectral norm hook (jik876's, one power iteration per call) and sees the real and the generated
audio in two calls, real first, as the original does (each call moves the power iteration on, so one
batched call would give another sigma). The weight-normed sub-discriminators see both in one batch
(faster, the same numbers). State-dict keys follow jik876/hifi-gan: ``discriminators.{i}.convs.{j}.*``,
``discriminators.{i}.conv_post.*`` (legacy ``weight_g``/``weight_v`` once converted with
:func:`~speakimg.vocoder.norms.to_legacy_state_dict`; the raw-audio scale's ``weight_orig``/``weight_u``/
``weight_v`` as they are).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speakimg.vocoder.generator import LRELU_SLOPE
from speakimg.vocoder.norms import apply_spectral_norm, apply_weight_norm

__all__ = [
    "DiscriminatorOutput",
    "DiscriminatorP",
    "DiscriminatorS",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
]

DiscriminatorOutput = tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]
"""``(real_scores, fake_scores, real_feature_maps, fake_feature_maps)``, one entry per sub-discriminator."""


def _normed(module: nn.Module, spectral: bool) -> nn.Module:
    return apply_spectral_norm(module) if spectral else apply_weight_norm(module)


def _width(channels: int, scale: float, multiple: int) -> int:
    """``channels * scale`` rounded to a positive multiple of ``multiple`` (exactly ``channels`` at scale 1)."""
    if scale == 1.0:
        return channels
    return max(multiple, round(channels * scale / multiple) * multiple)


def _run_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Conv + LeakyReLU(0.1) stack, then the post conv: flattened logits and every conv output (feature maps)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period discriminator: audio reflect-padded to a multiple of ``period``, viewed ``[B, 1, T/p, p]``."""

    def __init__(
        self,
        period: int,
        kernel_size: int = 5,
        stride: int = 3,
        use_spectral_norm: bool = False,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.period = period
        pad = ((kernel_size - 1) // 2, 0)
        chans = [1] + [_width(c, width, 4) for c in (32, 128, 512, 1024)]
        convs = [nn.Conv2d(a, b, (kernel_size, 1), (stride, 1), padding=pad) for a, b in itertools.pairwise(chans)]
        convs.append(nn.Conv2d(chans[-1], chans[-1], (kernel_size, 1), 1, padding=pad))
        self.convs = nn.ModuleList(_normed(c, use_spectral_norm) for c in convs)
        self.conv_post = _normed(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), mode="reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        return _run_stack(self.convs, self.conv_post, x)


class DiscriminatorS(nn.Module):
    """Scale discriminator: a strided, grouped Conv1d stack on (average-pooled) raw audio."""

    def __init__(self, use_spectral_norm: bool = False, width: float = 1.0) -> None:
        super().__init__()
        self.use_spectral_norm = use_spectral_norm
        if use_spectral_norm:  # checkpoints of older versions hold parametrized spectral-norm keys
            self._register_load_state_dict_pre_hook(_rename_parametrized_spectral_keys)
        c = [1] + [_width(n, width, 16) for n in (128, 128, 256, 512, 1024, 1024, 1024)]
        specs = [  # kernel, stride, groups, padding of each conv
            (15, 1, 1, 7),
            (41, 2, 4, 20),
            (41, 2, 16, 20),
            (41, 4, 16, 20),
            (41, 4, 16, 20),
            (41, 1, 16, 20),
            (5, 1, 1, 2),
        ]
        self.convs = nn.ModuleList(
            _normed(nn.Conv1d(c[i], c[i + 1], k, s, groups=g, padding=p), use_spectral_norm)
            for i, (k, s, g, p) in enumerate(specs)
        )
        self.conv_post = _normed(nn.Conv1d(c[-1], 1, 3, 1, padding=1), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run_stack(self.convs, self.conv_post, x)


def _rename_parametrized_spectral_keys(state_dict, prefix, *args) -> None:
    """Load hook: ``<conv>.parametrizations.weight.original`` / ``.0._u`` / ``.0._v`` -> ``weight_orig/_u/_v``."""
    renames = (("parametrizations.weight.original", "weight_orig"), ("parametrizations.weight.0._u", "weight_u"))
    for key in [k for k in state_dict if k.startswith(prefix) and ".parametrizations.weight." in k]:
        for old, new in (*renames, ("parametrizations.weight.0._v", "weight_v")):
            if key.endswith(old):
                state_dict[key[: -len(old)] + new] = state_dict.pop(key)


def _joined(
    first: tuple[torch.Tensor, list[torch.Tensor]], second: tuple[torch.Tensor, list[torch.Tensor]]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Two separate calls' outputs as one batched call's (scores and every feature map concatenated)."""
    return torch.cat([first[0], second[0]]), [torch.cat(pair) for pair in zip(first[1], second[1], strict=True)]


def _split(outputs: Sequence[tuple[torch.Tensor, list[torch.Tensor]]], batch: int) -> DiscriminatorOutput:
    real, fake, real_maps, fake_maps = [], [], [], []
    for score, fmap in outputs:
        real.append(score[:batch])
        fake.append(score[batch:])
        real_maps.append([f[:batch] for f in fmap])
        fake_maps.append([f[batch:] for f in fmap])
    return real, fake, real_maps, fake_maps


def _check_pair(y: torch.Tensor, y_hat: torch.Tensor) -> None:
    if y.ndim != 3 or y.shape[1] != 1 or y.shape != y_hat.shape:
        raise ValueError(
            f"the discriminators expect real and generated audio of the same shape [B, 1, T], "
            f"got {tuple(y.shape)} and {tuple(y_hat.shape)}"
        )


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`DiscriminatorP` per period (HiFi-GAN: 2, 3, 5, 7, 11).

    ``width`` scales every channel count (1.0 = HiFi-GAN, 41.1 M parameters; small values for CPU tests).
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.periods = [int(p) for p in periods]
        self.discriminators = nn.ModuleList(DiscriminatorP(p, width=width) for p in self.periods)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> DiscriminatorOutput:
        _check_pair(y, y_hat)
        x = torch.cat([y, y_hat], dim=0)
        return _split([d(x) for d in self.discriminators], y.shape[0])


class MultiScaleDiscriminator(nn.Module):
    """Three :class:`DiscriminatorS`: raw audio (spectral norm), then 2x and 4x average-pooled (weight norm).

    The spectral-norm scale is called on the real audio, then on the generated audio (as the original), so
    its power iteration, outputs and losses are the original's from the first step.

    ``width`` scales every channel count (1.0 = HiFi-GAN, 29.6 M parameters; channels stay multiples of 16).
    """

    def __init__(self, num_scales: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            DiscriminatorS(use_spectral_norm=(i == 0), width=width) for i in range(num_scales)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(num_scales - 1))

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> DiscriminatorOutput:
        _check_pair(y, y_hat)
        x = torch.cat([y, y_hat], dim=0)
        outputs = []
        batch = y.shape[0]
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.meanpools[i - 1](x)
            outputs.append(_joined(d(x[:batch]), d(x[batch:])) if d.use_spectral_norm else d(x))
        return _split(outputs, batch)
