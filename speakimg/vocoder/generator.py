"""The HiFi-GAN generator in Auffusion's configuration, loadable from and savable to its files.

Architecture (docs/method.md section 3, HiFi-GAN V1 for 256 mels at 16 kHz): ``conv_pre`` (kernel 7), then
per upsampling stage a leaky ReLU (0.1), a transposed convolution (stride ``u_i``, kernel ``k_i``) and
the *mean* of the stage's multi-receptive-field residual blocks; a final leaky ReLU (0.01),
``conv_post`` (kernel 7) and ``tanh``. Every convolution is weight-normed while training; the norm
is folded into the weights for inference (:meth:`Generator.remove_weight_norm`).

On disk (Auffusion's hub layout, also what :meth:`Generator.save_pretrained` writes)::

    <model>/vocoder/config.json     the jik876-style config (architecture + training settings)
    <model>/vocoder/vocoder.pt      {"generator": state_dict} with the legacy keys
                                    (conv_pre.bias / .weight_g / .weight_v, ups.{i}.*, resblocks.{i*K+j}.convs1.{n}.*, ...)
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speakimg.errors import ConfigError, SpeakimgWarning
from speakimg.vocoder.checkpoints import CONFIG_NAME, WEIGHTS_NAME, read_generator, write_generator_files
from speakimg.vocoder.norms import (
    apply_weight_norm,
    from_legacy_state_dict,
    has_norms,
    remove_norms,
    to_legacy_state_dict,
)

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "LRELU_SLOPE", "GeneratorConfig", "Generator", "ResBlock1", "ResBlock2"]

LRELU_SLOPE = 0.1
"""Slope of every leaky ReLU inside the network; the one before ``conv_post`` uses PyTorch's 0.01."""


@dataclass
class GeneratorConfig:
    """Architecture of a HiFi-GAN generator; the defaults are Auffusion's vocoder (13.68 M parameters).

    ``extra`` keeps every other field of a ``config.json`` (batch size, learning rate, STFT settings...)
    so that loading and saving a vocoder folder round-trips its config.
    """

    resblock: str = "1"
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 4, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [11, 8, 8, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    num_mels: int = 256
    sampling_rate: int = 16000
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resblock = str(self.resblock)
        self.upsample_rates = [int(u) for u in self.upsample_rates]
        self.upsample_kernel_sizes = [int(k) for k in self.upsample_kernel_sizes]
        self.resblock_kernel_sizes = [int(k) for k in self.resblock_kernel_sizes]
        self.resblock_dilation_sizes = [[int(d) for d in ds] for ds in self.resblock_dilation_sizes]
        if self.resblock not in ("1", "2"):
            raise ConfigError(f"vocoder config: resblock must be '1' or '2', got {self.resblock!r}")
        if not self.upsample_rates or len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError(
                f"vocoder config: upsample_rates {self.upsample_rates} and upsample_kernel_sizes "
                f"{self.upsample_kernel_sizes} must be non-empty and of the same length"
            )
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            if u < 1 or k < u:
                raise ConfigError(f"vocoder config: upsample kernel {k} must be >= its rate {u} >= 1")
        odd = [
            (u, k)
            for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True)
            if k not in (2 * u, 2 * u + 1)
        ]
        if odd:  # e.g. swapped rates: they load pretrained weights (shapes follow the kernels) and give noise
            warnings.warn(
                SpeakimgWarning(
                    f"vocoder config: upsample_rates {self.upsample_rates} with upsample_kernel_sizes "
                    f"{self.upsample_kernel_sizes}: rate {odd[0][0]} has kernel {odd[0][1]}, where HiFi-GAN configs "
                    "use kernel 2 x rate (or + 1). Are the two lists in the same order?"
                ),
                stacklevel=3,
            )
        if not self.resblock_kernel_sizes or len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError(
                f"vocoder config: resblock_kernel_sizes {self.resblock_kernel_sizes} and resblock_dilation_sizes "
                f"{self.resblock_dilation_sizes} must be non-empty and of the same length"
            )
        need = 3 if self.resblock == "1" else 2
        for ds in self.resblock_dilation_sizes:
            if len(ds) < need:
                raise ConfigError(
                    f"vocoder config: resblock '{self.resblock}' needs {need} dilations per block, got {ds}"
                )
        stages = len(self.upsample_rates)
        if self.upsample_initial_channel < 2**stages or self.upsample_initial_channel % 2**stages:
            raise ConfigError(
                f"vocoder config: upsample_initial_channel {self.upsample_initial_channel} must be divisible by "
                f"2^{stages} (it is halved at each of the {stages} upsampling stages)"
            )
        if self.num_mels < 1 or self.sampling_rate < 1:
            raise ConfigError(
                f"vocoder config: num_mels {self.num_mels} and sampling_rate {self.sampling_rate} must be positive"
            )

    @property
    def hop_length(self) -> int:
        """Samples generated per mel frame: the product of the upsampling rates (160 for Auffusion)."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorConfig:
        """Read a jik876/Auffusion ``config.json`` dict (unknown fields go to ``extra``)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        extra = dict(data.get("extra", {}))
        extra.update({k: v for k, v in data.items() if k not in known and k != "extra"})
        try:
            return cls(**{k: v for k, v in data.items() if k in known}, extra=extra)
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"vocoder config: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        """The flat ``config.json`` dict (architecture fields, then ``extra``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = json.loads(json.dumps(out))  # deep copy as plain lists
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation, padding=_padding(kernel_size, dilation))


class ResBlock1(nn.Module):
    """``x = x + conv2(lrelu(conv1_d(lrelu(x))))`` for each dilation ``d`` (conv2 undilated)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, kernel_size, d) for d in dilation[:3])
        self.convs2 = nn.ModuleList(_conv(channels, kernel_size, 1) for _ in dilation[:3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """``x = x + conv_d(lrelu(x))`` for the first two dilations (HiFi-GAN V3)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels, kernel_size, d) for d in dilation[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """HiFi-GAN generator: natural-log mel ``[B, num_mels, T]`` -> audio ``[B, 1, hop * T]`` in [-1, 1].

    ``hop = prod(upsample_rates)`` (160 for Auffusion). A 2-D mel ``[num_mels, T]`` gives ``[1, 1, hop * T]``;
    ``output[:, 0]`` is the ``[B, hop * T]`` waveform. Build from a config or keyword overrides:
    ``Generator()`` is Auffusion's, ``Generator(upsample_initial_channel=32)`` a tiny one.
    """

    def __init__(self, config: GeneratorConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = GeneratorConfig(**overrides)
        elif isinstance(config, Mapping):
            config = GeneratorConfig.from_dict({**config, **overrides})
        elif overrides:
            config = GeneratorConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        c = config
        self.num_kernels = len(c.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(c.num_mels, c.upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True)):
            # Output length is exactly u * input: padding (k - u) / 2, or Auffusion's output_padding for odd k - u.
            pad, out_pad = ((k - u) // 2, 0) if (k - u) % 2 == 0 else ((k - u) // 2 + 1, 1)
            cin, cout = c.upsample_initial_channel // 2**i, c.upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, cout, k, u, padding=pad, output_padding=out_pad))
        block = ResBlock1 if c.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = c.upsample_initial_channel // 2 ** (i + 1)
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3)
        # N(0, 0.01) on every conv but conv_pre, drawn before the weight norm so that it takes effect.
        for m in [*self.ups.modules(), *self.resblocks.modules(), self.conv_post]:
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.normal_(m.weight, 0.0, 0.01)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                apply_weight_norm(m)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def has_weight_norm(self) -> bool:
        return has_norms(self)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        single = mel.ndim == 2
        x = mel.unsqueeze(0) if single else mel
        if x.ndim != 3 or x.shape[1] != self.config.num_mels:
            raise ValueError(
                f"the vocoder expects a log-mel [B, {self.config.num_mels}, T] (or [{self.config.num_mels}, T]), "
                f"got {tuple(mel.shape)}: the mel must have {self.config.num_mels} bins"
            )
        x = self.conv_pre(x.to(self.conv_pre.bias.dtype))
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x)

    def remove_weight_norm(self) -> Generator:
        """Fold the weight norm into plain weights (inference); returns ``self``."""
        remove_norms(self)
        return self

    # ----------------------------------------------------------------------------------- state dicts
    def legacy_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict in the original checkpoints' layout: ``weight_g``/``weight_v`` for every convolution.

        A weight-norm-free (inference) generator gets its weight norm re-applied exactly (``g = ||w||``,
        ``v = w``): the original code, which builds the generator with weight norm and loads strictly, reads it.
        """
        return to_legacy_state_dict(self, weight_norm_convs=True)

    def load_legacy_state_dict(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Load a generator state dict in the original (legacy), parametrized or weight-norm-free layout.

        Raises :class:`ConfigError` naming ``source`` when the keys or shapes do not fit this config.
        """
        converted = from_legacy_state_dict(self, state)
        own = self.state_dict()
        missing = sorted(set(own) - set(converted))
        unexpected = sorted(set(converted) - set(own))
        wrong = sorted(k for k in set(own) & set(converted) if tuple(own[k].shape) != tuple(converted[k].shape))
        if missing or unexpected or wrong:
            details = []
            if wrong:
                details.append(
                    "shape mismatch for "
                    + ", ".join(f"{k} {tuple(converted[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:4])
                )
            if missing:
                details.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
            if unexpected:
                details.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
            raise ConfigError(
                f"{source} does not fit the generator configuration ({'; '.join(details)}). Check that the "
                "config.json next to the weights is the one they were trained with."
            )
        self.load_state_dict(converted, strict=True)

    # --------------------------------------------------------------------------------- files and hub
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``vocoder.pt`` (``{"generator": legacy state dict}``), Auffusion's layout.

        Always the layout Auffusion's and jik876's loaders read strictly (weight norm keys), with or without
        weight norm in memory (:meth:`legacy_state_dict`). Both files are written atomically.
        """
        write_generator_files(save_directory, self.config.to_dict(), self.legacy_state_dict())
        return Path(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        subfolder: str | None = "vocoder",
        remove_weight_norm: bool = True,
        map_location: str | torch.device = "cpu",
    ) -> Generator:
        """Load a generator from a model folder, a vocoder folder, a hub id or a training checkpoint.

        Accepted (:mod:`speakimg.vocoder.checkpoints`): ``<model>/vocoder/{config.json, vocoder.pt}``
        (Auffusion's hub layout, ``subfolder``), a folder holding ``config.json`` + ``vocoder.pt`` directly
        (what :meth:`save_pretrained` writes), the ``vocoder.pt`` file itself (its ``config.json`` beside it),
        a hub id, or a Lightning checkpoint (``.ckpt``) of :class:`~speakimg.modules.hifigan.HiFiGANModule`.

        Returns an eval-mode generator; with ``remove_weight_norm`` (default) the weight norm is folded
        in for inference. Pass ``remove_weight_norm=False`` to fine-tune it.
        """
        files = read_generator(pretrained_model_name_or_path, subfolder, map_location)
        try:
            config = GeneratorConfig.from_dict(files.config)
        except ConfigError as error:
            raise ConfigError(f"{files.config_source}: {error}") from error
        generator = cls(config)
        generator.load_legacy_state_dict(files.state, source=files.source)
        generator.eval()
        if remove_weight_norm:
            generator.remove_weight_norm()
        return generator

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"num_mels={c.num_mels}, hop={c.hop_length}, upsample_initial_channel={c.upsample_initial_channel}, "
            f"resblock={c.resblock!r}, weight_norm={self.has_weight_norm}"
        )
