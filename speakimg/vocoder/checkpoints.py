"""Every HiFi-GAN file format speakimg reads or writes, parsed in this one module.

=====================================  ===============================================================
format                                 layout
=====================================  ===============================================================
Auffusion vocoder folder               ``config.json`` (jik876 fields) + ``vocoder.pt`` = ``{"generator": state_dict}``
(also :meth:`Generator.save_pretrained`  with the legacy weight-norm keys (``conv_pre.weight_g`` / ``weight_v``, ...);
and the hub's ``<model>/vocoder/``)     jik876 calls the same content ``g_XXXXXXXX``
jik876 discriminator file              ``do_XXXXXXXX`` = ``{"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"}``
HiFiGANModule Lightning checkpoint     ``.ckpt``: ``state_dict`` (``generator.*``, ``mpd.*``, ``msd.*``),
                                       ``vocoder_config``, ``hyper_parameters``, ``optimizer_states``, ...
=====================================  ===============================================================

Every torch file is read with :func:`speakimg.io.load_torch` (``weights_only=True``: a file holding other
Python objects is refused, a truncated one reported, both naming the file); every file is written
atomically. State dicts are returned as stored: the modules convert key layouts
(:mod:`speakimg.vocoder.norms`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from speakimg.errors import ConfigError, ModelNotFoundError
from speakimg.io import atomic_path, load_torch, write_json

__all__ = [
    "CONFIG_NAME",
    "DISCRIMINATORS_PREFIX",
    "WEIGHTS_NAME",
    "GeneratorFiles",
    "TrainingCheckpoint",
    "read_discriminators",
    "read_generator",
    "read_training_checkpoint",
    "resolve_vocoder_files",
    "write_discriminator_file",
    "write_generator_files",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "vocoder.pt"
DISCRIMINATORS_PREFIX = "do_"


@dataclass
class GeneratorFiles:
    """A generator's config dict and state dict as stored, and where each came from (for messages)."""

    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    config_source: str
    source: str


@dataclass
class TrainingCheckpoint:
    """The parts of a :class:`~speakimg.modules.hifigan.HiFiGANModule` Lightning checkpoint."""

    path: Path
    vocoder_config: dict[str, Any]
    generator: dict[str, torch.Tensor]
    mpd: dict[str, torch.Tensor]
    msd: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    optimizer_states: list[Any] = field(default_factory=list)
    global_step: int = 0
    epoch: int = 0


def _sub_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def resolve_vocoder_files(name: str | os.PathLike, subfolder: str | None = "vocoder") -> tuple[Path, Path]:
    """``(config.json, vocoder.pt)`` of a model folder (its ``subfolder``), a vocoder folder, the file, or a hub id."""
    from speakimg.hub import expand_reference, resolve_dir

    name = expand_reference(name)  # e.g. tiny:vocoder (a vocoder folder) or tiny:auffusion (a model folder)
    local = Path(name).expanduser()
    if local.is_file():
        config = local.parent / CONFIG_NAME
        if not config.is_file():
            raise ModelNotFoundError(f"{config}: no config.json beside the vocoder weights {local}")
        return config, local
    if local.is_dir():
        candidates = [local / subfolder, local] if subfolder else [local]
        for folder in candidates:
            if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
                return folder / CONFIG_NAME, folder / WEIGHTS_NAME
        looked = " or ".join(str(f) for f in candidates)
        raise ModelNotFoundError(
            f"no HiFi-GAN vocoder in {local}: expected {CONFIG_NAME} and {WEIGHTS_NAME} in {looked}. "
            "Pass an Auffusion model folder (with vocoder/), a vocoder folder written by "
            "Generator.save_pretrained / `python -m speakimg.vocoder.export`, or a training .ckpt."
        )
    folder = resolve_dir(name, subfolder)
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / filename).is_file():
            raise ModelNotFoundError(f"hub model '{name}' has no {subfolder or '.'}/{filename}")
    return folder / CONFIG_NAME, folder / WEIGHTS_NAME


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a JSON vocoder config ({error})") from error
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a JSON vocoder config (a {type(config).__name__}, not an object)")
    return config


def read_training_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> TrainingCheckpoint:
    """A HiFiGANModule ``.ckpt``: generator config, generator / MPD / MSD state dicts, optimizer states, counters."""
    path = Path(path)
    checkpoint = load_torch(path, what="vocoder training checkpoint", map_location=map_location)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint or "vocoder_config" not in checkpoint:
        raise ConfigError(
            f"{path}: not a HiFiGANModule training checkpoint (no 'state_dict' with 'vocoder_config'); "
            "for Auffusion's files pass the folder holding config.json and vocoder.pt"
        )
    state = checkpoint["state_dict"]
    return TrainingCheckpoint(
        path=path,
        vocoder_config=dict(checkpoint["vocoder_config"]),
        generator=_sub_state(state, "generator."),
        mpd=_sub_state(state, "mpd."),
        msd=_sub_state(state, "msd."),
        hyper_parameters=dict(checkpoint.get("hyper_parameters") or {}),
        optimizer_states=list(checkpoint.get("optimizer_states") or []),
        global_step=int(checkpoint.get("global_step", 0)),
        epoch=int(checkpoint.get("epoch", 0)),
    )


def read_generator(
    name_or_path: str | os.PathLike, subfolder: str | None = "vocoder", map_location: Any = "cpu"
) -> GeneratorFiles:
    """A generator's config and state dict from any format: vocoder/model folder, ``vocoder.pt``, hub id, ``.ckpt``."""
    local = Path(name_or_path).expanduser()
    if local.is_file() and local.suffix == ".ckpt":
        ckpt = read_training_checkpoint(local, map_location)
        return GeneratorFiles(ckpt.vocoder_config, ckpt.generator, str(local), str(local))
    config_path, weights_path = resolve_vocoder_files(name_or_path, subfolder)
    config = _read_config(config_path)
    checkpoint = load_torch(weights_path, what="vocoder", map_location=map_location)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("generator"), Mapping):
        keys = list(checkpoint)[:5] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise ConfigError(
            f"{weights_path}: expected a dict with a 'generator' state dict (Auffusion/jik876 format), got {keys}"
        )
    return GeneratorFiles(config, dict(checkpoint["generator"]), str(config_path), str(weights_path))


def write_generator_files(folder: str | os.PathLike, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]):
    """Write ``config.json`` and ``vocoder.pt`` (``{"generator": state}``, float32 on CPU) atomically; returns their paths."""
    folder = Path(folder)
    config_path = write_json(folder / CONFIG_NAME, dict(config))
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        torch.save({"generator": {k: v.detach().cpu().float() for k, v in state.items()}}, tmp)
    return {"config": config_path, "generator": folder / WEIGHTS_NAME}


def read_discriminators(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(mpd, msd)`` state dicts of a jik876 ``do_XXXXXXXX`` file or a HiFiGANModule ``.ckpt``."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such discriminator checkpoint (a jik876 do_XXXXXXXX file or a .ckpt)")
    state = load_torch(path, what="discriminator checkpoint")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):  # a HiFiGANModule checkpoint
        return _sub_state(state["state_dict"], "mpd."), _sub_state(state["state_dict"], "msd.")
    if isinstance(state, Mapping) and isinstance(state.get("mpd"), Mapping) and isinstance(state.get("msd"), Mapping):
        return dict(state["mpd"]), dict(state["msd"])  # jik876 do_XXXXXXXX
    raise ConfigError(
        f"{path}: not a discriminator checkpoint (expected jik876's {{'mpd', 'msd', ...}} or a HiFiGANModule .ckpt)"
    )


def write_discriminator_file(
    folder: str | os.PathLike,
    mpd: Mapping[str, torch.Tensor],
    msd: Mapping[str, torch.Tensor],
    optim_g: Any,
    optim_d: Any,
    steps: int,
    epoch: int,
) -> Path:
    """Write jik876's ``do_<steps:08d>`` (``{"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"}``) atomically."""
    path = Path(folder) / f"{DISCRIMINATORS_PREFIX}{int(steps):08d}"
    payload = {"mpd": dict(mpd), "msd": dict(msd), "optim_g": optim_g, "optim_d": optim_d}
    payload.update(steps=int(steps), epoch=int(epoch))
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
