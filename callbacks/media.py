"""Logger-agnostic media logging for callbacks: images, audio, tables and scalars.

W&B (``WandbLogger``: ``log_image`` / ``log_audio`` / ``log_table``), TensorBoard (``add_image`` /
``add_audio`` / ``add_text``) and every other logger (CSV, or none: files under the run folder's
``media/``) get the same calls. Call these on global rank 0 only; none of them is a collective.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer

from speakimg.media import to_uint8

__all__ = ["AudioCell", "ImageCell", "log_audios", "log_images", "log_scalars", "log_table", "media_dir"]


@dataclass
class ImageCell:
    """An image in a table row: ``[H, W, 3]`` / ``[3, H, W]`` / ``[H, W]`` in [0, 1] or uint8."""

    image: np.ndarray | torch.Tensor
    caption: str = ""


@dataclass
class AudioCell:
    """An audio clip in a table row: mono ``[T]`` in [-1, 1]."""

    audio: np.ndarray | torch.Tensor
    sample_rate: int = 16000
    caption: str = ""


def _kind(logger: Any) -> str:
    name = type(logger).__name__
    if name == "WandbLogger":
        return "wandb"
    if name == "TensorBoardLogger":
        return "tensorboard"
    return "files"


def _array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _mono(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.clip(np.squeeze(_array(x)).astype(np.float32), -1.0, 1.0)


def media_dir(trainer: Trainer, logger: Any | None = None) -> Path:
    """``<run folder>/media`` for loggers that do not store media themselves.

    Uses the logger's own folder (no collective, unlike ``trainer.log_dir``).
    """
    folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None) or trainer.default_root_dir
    return Path(folder) / "media"


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")


def _loggers(trainer: Trainer) -> list[Any]:
    return list(trainer.loggers) or [None]


def log_images(
    trainer: Trainer,
    key: str,
    images: list[np.ndarray | torch.Tensor],
    captions: list[str] | None = None,
    step: int | None = None,
) -> None:
    """Log images (in [0, 1] or uint8) under ``key``."""
    from speakimg.media import save_image

    step = trainer.global_step if step is None else step
    uint8 = [to_uint8(im) for im in images]
    captions = captions or [""] * len(uint8)
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            logger.log_image(key, uint8, step=step, caption=captions)
        elif kind == "tensorboard":
            for i, im in enumerate(uint8):
                logger.experiment.add_image(f"{key}/{i}", im, step, dataformats="HWC" if im.ndim == 3 else "HW")
        else:
            folder = media_dir(trainer, logger) / _slug(key)
            for i, im in enumerate(uint8):
                save_image(folder / f"step{step:07d}_{i}.png", im.astype(np.float32) / 255.0)


def log_audios(
    trainer: Trainer,
    key: str,
    audios: list[np.ndarray | torch.Tensor],
    captions: list[str] | None = None,
    sample_rate: int = 16000,
    step: int | None = None,
) -> None:
    """Log mono audio clips (``[T]`` in [-1, 1]) under ``key``."""
    from speakimg.audio import save_audio

    step = trainer.global_step if step is None else step
    clips = [_mono(a) for a in audios]
    captions = captions or [""] * len(clips)
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            logger.log_audio(key, clips, step=step, sample_rate=[sample_rate] * len(clips), caption=captions)
        elif kind == "tensorboard":
            for i, clip in enumerate(clips):
                logger.experiment.add_audio(f"{key}/{i}", torch.from_numpy(clip)[None], step, sample_rate=sample_rate)
        else:
            folder = media_dir(trainer, logger) / _slug(key)
            for i, clip in enumerate(clips):
                save_audio(folder / f"step{step:07d}_{i}.wav", clip, sample_rate)


def log_table(trainer: Trainer, key: str, columns: list[str], rows: list[list[Any]], step: int | None = None) -> None:
    """Log a table; cells may be :class:`ImageCell` / :class:`AudioCell` (media where the logger has them)."""
    step = trainer.global_step if step is None else step
    for logger in _loggers(trainer):
        kind = _kind(logger)
        if kind == "wandb":
            import wandb

            def cell(value: Any) -> Any:
                if isinstance(value, ImageCell):
                    return wandb.Image(to_uint8(value.image), caption=value.caption or None)
                if isinstance(value, AudioCell):
                    return wandb.Audio(_mono(value.audio), sample_rate=value.sample_rate, caption=value.caption or None)
                return value

            logger.log_table(key, columns=columns, data=[[cell(v) for v in row] for row in rows], step=step)
        elif kind == "tensorboard":
            plain = [i for i, v in enumerate(rows[0]) if not isinstance(v, (ImageCell, AudioCell))] if rows else []
            header = "| " + " | ".join(columns[i] for i in plain) + " |"
            lines = [header, "|" + " --- |" * len(plain)]
            lines += ["| " + " | ".join(str(row[i]).replace("|", "/") for i in plain) + " |" for row in rows]
            logger.experiment.add_text(key, "\n".join(lines), step)
        else:
            from speakimg.audio import save_audio
            from speakimg.media import save_image

            folder = media_dir(trainer, logger) / _slug(key)
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"step{step:07d}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                for r, row in enumerate(rows):
                    values = []
                    for c, value in enumerate(row):
                        if isinstance(value, ImageCell):
                            path = save_image(folder / f"step{step:07d}_{r}_{_slug(columns[c])}.png", value.image)
                            values.append(path.name)
                        elif isinstance(value, AudioCell):
                            path = folder / f"step{step:07d}_{r}_{_slug(columns[c])}.wav"
                            save_audio(path, _mono(value.audio), value.sample_rate)
                            values.append(path.name)
                        else:
                            values.append(value)
                    writer.writerow(values)


def log_scalars(trainer: Trainer, metrics: dict[str, float], step: int | None = None) -> None:
    """Log scalars through every logger (``log_metrics``)."""
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        logger.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
