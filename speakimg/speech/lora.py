"""LoRA on the UNet (peft, diffusers conventions) and unfrozen UNet blocks saved beside it.

- :func:`add_lora` calls ``unet.add_adapter``, which freezes every non-adapter weight; then
  :func:`unfreeze` turns chosen UNet parameters back on by regular-expression patterns (so the order
  is always LoRA first, unfreeze after).
- LoRA weights are saved in diffusers' format (``pytorch_lora_weights.safetensors`` with the adapter
  metadata, so ``lora_alpha != rank`` survives) and load with ``pipe.load_lora_weights(dir)`` or
  ``unet.load_lora_adapter(dir, prefix="unet", weight_name=...)``.
- LoRA files do not carry unfrozen (non-LoRA) weights, and ``add_adapter`` renames a wrapped layer's
  own weight ``<layer>.base_layer.weight``. Unfrozen weights are therefore saved under the plain UNet
  names (``<layer>.weight``, as in the base model's own files) and loaded through an explicit name map
  with a strict check, never through ``load_state_dict(strict=False)`` which drops renamed keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from speakimg.errors import CheckpointError, ConfigError

__all__ = [
    "DEFAULT_TARGETS",
    "LORA_WEIGHTS",
    "LoRASpec",
    "add_lora",
    "canonical_name",
    "is_lora_name",
    "load_lora",
    "load_unfrozen",
    "lora_state_dict",
    "save_lora",
    "unfreeze",
    "unfrozen_state_dict",
]

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass
class LoRASpec:
    """LoRA hyper-parameters: rank, alpha (``None``: = rank), target module names, dropout."""

    rank: int = 32
    alpha: float | None = None
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora rank must be >= 1, got {self.rank}")
        if not self.targets:
            raise ConfigError(
                "lora targets are empty: name the UNet modules to adapt (e.g. to_q, to_k, to_v, to_out.0)"
            )
        self.targets = list(self.targets)

    def to_peft(self):
        from peft import LoraConfig

        # "gaussian" init: A ~ N(0, 1/r), B = 0, so step 0 reproduces the base model (diffusers' recipe).
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha if self.alpha is not None else self.rank,
            lora_dropout=self.dropout,
            init_lora_weights="gaussian",
            target_modules=self.targets,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def is_lora_name(name: str) -> bool:
    """True for peft's LoRA parameter names (``...lora_A.<adapter>.weight`` etc.)."""
    return ".lora_A." in name or ".lora_B." in name or ".lora_embedding_" in name or ".lora_magnitude" in name


def canonical_name(name: str) -> str:
    """The plain UNet name of a parameter: ``x.to_k.base_layer.weight`` -> ``x.to_k.weight``."""
    return name.replace(".base_layer.", ".")


def add_lora(unet: nn.Module, spec: LoRASpec) -> list[str]:
    """Add a LoRA adapter (freezes every other UNet weight); returns the LoRA parameter names."""
    try:
        unet.add_adapter(spec.to_peft())
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"LoRA targets {spec.targets} do not fit the UNet: {error}") from error
    return [n for n, p in unet.named_parameters() if p.requires_grad and is_lora_name(n)]


def unfreeze(module: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Make trainable every non-LoRA parameter whose name matches a pattern (``re.search``).

    Call it after :func:`add_lora`. Returns the unfrozen names; a pattern that matches nothing is a
    :class:`ConfigError` (a typo would otherwise train nothing silently).
    """
    names = [(n, p) for n, p in module.named_parameters() if not is_lora_name(n)]
    chosen: dict[str, nn.Parameter] = {}
    for pattern in patterns:
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise ConfigError(f"unfreeze pattern {pattern!r} is not a regular expression ({error})") from error
        hits = [(n, p) for n, p in names if regex.search(n) or regex.search(canonical_name(n))]
        if not hits:
            sample = sorted({".".join(n.split(".")[:2]) for n, _ in names})[:12]
            raise ConfigError(
                f"unfreeze pattern {pattern!r} matches no parameter. Patterns are regular expressions searched in "
                f"parameter names such as {sample} ... (e.g. 'attn2\\.to_k', 'up_blocks\\.3\\.', 'mid_block')."
            )
        chosen.update(hits)
    for param in chosen.values():
        param.requires_grad_(True)
    return list(chosen)


def unfrozen_state_dict(module: nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The given parameters under their plain names (``base_layer`` removed), on CPU, contiguous."""
    params = dict(module.named_parameters())
    return {canonical_name(n): params[n].detach().to("cpu").contiguous() for n in names}


def load_unfrozen(module: nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike = "state dict") -> None:
    """Copy plain-named weights into ``module`` (with or without LoRA wrappers); every key must land."""
    targets = {canonical_name(n): p for n, p in module.named_parameters() if not is_lora_name(n)}
    missing = sorted(k for k in state if k not in targets)
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} unfrozen weights have no place in the UNet: {missing[:6]}. Was it saved from "
            "a UNet of another architecture?"
        )
    with torch.no_grad():
        for key, value in state.items():
            target = targets[key]
            if target.shape != value.shape:
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(value.shape)}, the UNet expects {tuple(target.shape)}"
                )
            target.copy_(value.to(device=target.device, dtype=target.dtype))


def lora_state_dict(unet: nn.Module, adapter_name: str | None = None) -> dict[str, torch.Tensor]:
    """LoRA weights in diffusers' naming (``...to_q.lora.down.weight``), as the LoRA file stores them."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=adapter_name)
    return {k: v.detach().to("cpu").contiguous() for k, v in convert_state_dict_to_diffusers(state).items()}


def save_lora(unet: nn.Module, folder: str | os.PathLike, adapter_name: str | None = None) -> Path:
    """Write ``folder/pytorch_lora_weights.safetensors`` (diffusers format, with the adapter metadata)."""
    from diffusers import StableDiffusionPipeline

    name = adapter_name or next(iter(unet.peft_config))
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=lora_state_dict(unet, name),
        unet_lora_adapter_metadata=unet.peft_config[name].to_dict(),
        safe_serialization=True,
        weight_name=LORA_WEIGHTS,
    )
    return Path(folder) / LORA_WEIGHTS


def load_lora(unet: nn.Module, folder: str | os.PathLike, adapter_name: str = "speech") -> None:
    """Load a LoRA file written by :func:`save_lora` through diffusers' own loader."""
    path = Path(folder) / LORA_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a speech model folder holds its LoRA weights there")
    unet.load_lora_adapter(str(folder), prefix="unet", weight_name=LORA_WEIGHTS, adapter_name=adapter_name)
    loaded = [n for n, _ in unet.named_parameters() if is_lora_name(n) and f".{adapter_name}." in n]
    if not loaded:
        raise CheckpointError(f"{path}: diffusers found no UNet LoRA weights in it (prefix 'unet.')")
