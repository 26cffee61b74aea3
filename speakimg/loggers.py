"""Experiment loggers: one place to choose one (W&B offline by default, TensorBoard, CSV, none), and
logger-agnostic media logging (images, audio, tables, scalars) for callbacks and the evaluation CLI.

Both the evaluation CLI and training configs can use :func:`make_logger`; it returns a Lightning
logger, so the same object works inside a ``Trainer`` and in a plain script (``log_hyperparams``,
``log_metrics``, and for W&B ``log_table`` / ``log_image`` / ``log_audio``).

W&B runs offline unless asked otherwise: no account or network is needed, the run lands in
``SAVE_DIR/wandb/offline-run-<time>-<id>/`` and ``wandb sync SAVE_DIR/wandb/offline-run-*`` uploads it
later.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from speakimg.errors import ConfigError, MissingDependencyError

__all__ = [
    "LOGGERS",
    "AudioCell",
    "ImageCell",
    "LoggerName",
    "finish_logger",
    "log_audios",
    "log_images",
    "log_scalars",
    "log_table",
    "make_logger",
]

log = logging.getLogger("speakimg.loggers")

LoggerName = Literal["wandb", "tensorboard", "csv", "none"]
LOGGERS: tuple[str, ...] = ("wandb", "tensorboard", "csv", "none")


def make_logger(
    name: str,
    save_dir: str | Path,
    *,
    project: str = "speakimg",
    run_name: str | None = None,
    offline: bool = True,
    config: dict[str, Any] | None = None,
    job_type: str | None = None,
):
    """A Lightning logger writing under ``save_dir`` (``None`` for ``"none"``).

    Args:
        name: ``wandb`` (``SAVE_DIR/wandb/``), ``tensorboard`` (``SAVE_DIR/tensorboard/version_N/``),
            ``csv`` (``SAVE_DIR/csv_logs/version_N/``) or ``none``.
        save_dir: the folder that holds the logger's files.
        project, run_name: W&B project and run name (TensorBoard / CSV: ``run_name`` is unused).
        offline: W&B only: write the run locally (``wandb sync`` uploads it later).
        config: logged as the run's hyperparameters / W&B config.
        job_type: W&B job type (``eval``, ``train``...).
    """
    if name not in LOGGERS:
        raise ConfigError(f"logger must be one of {', '.join(LOGGERS)}, got {name!r}")
    if name == "none":
        return None
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        kwargs: dict[str, Any] = {"job_type": job_type} if job_type else {}
        logger = WandbLogger(project=project, name=run_name, save_dir=str(save_dir), offline=offline, **kwargs)
    elif name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            logger = TensorBoardLogger(save_dir=str(save_dir), name="tensorboard")
            logger.experiment  # noqa: B018  (fails here, not later, without tensorboard)
        except ModuleNotFoundError as error:
            raise MissingDependencyError(
                f"logger: tensorboard needs the tensorboard package ({error}): pip install tensorboard"
            ) from error
    else:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(save_dir=str(save_dir), name="csv_logs")
    if config is not None:
        logger.log_hyperparams(config)
    return logger


def finish_logger(logger, status: str = "success") -> None:
    """Flush and close ``logger`` (a W&B run is finished, so its offline folder is complete)."""
    if logger is None:
        return
    logger.finalize(status)
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        run = logger.experiment
        folder = Path(run.dir).parent
        offline = run.settings.mode == "offline" if hasattr(run, "settings") else True
        run.finish(exit_code=0 if status == "success" else 1)
        if offline:
            log.info("W&B offline run: %s (upload it with: wandb sync %s)", folder, folder)


# ---------------------------------------------------------------------------------------------- media
# Logger-agnostic media logging, shared by the training callbacks and the evaluation CLI: W&B
# (log_image / log_audio / log_table), TensorBoard (add_image / add_audio / add_text), and any other
# logger (CSV) or none: files under the logger's folder (or ``files_dir``) in ``media/``. None of these
# functions is a collective: under DDP call them on global rank 0 only.


@dataclass
class ImageCell:
    """An image for a table cell: ``[H, W, 3]`` / ``[3, H, W]`` / ``[H, W]`` in [0, 1] or uint8, or a PNG path."""

    image: Any
    caption: str = ""


@dataclass
class AudioCell:
    """An audio clip for a table cell: mono ``[T]`` in [-1, 1], or a wav path."""

    audio: Any
    sample_rate: int = 16000
    caption: str = ""


def _logger_kind(logger: Any) -> str:
    name = type(logger).__name__
    return {"WandbLogger": "wandb", "TensorBoardLogger": "tensorboard"}.get(name, "files")


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _image_array(x: Any) -> np.ndarray:
    from speakimg.media import to_uint8

    if _is_path(x):
        from PIL import Image

        with Image.open(x) as img:
            return np.asarray(img.convert("RGB"))
    return to_uint8(x)


def _audio_array(x: Any, sample_rate: int) -> tuple[np.ndarray, int]:
    if _is_path(x):
        import soundfile as sf

        data, rate = sf.read(str(x), dtype="float32", always_2d=True)
        return data.mean(axis=1), int(rate)
    array = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    return np.clip(np.squeeze(array).astype(np.float32), -1.0, 1.0), sample_rate


def _files_dir(logger: Any, files_dir: str | os.PathLike | None) -> Path:
    folder = getattr(logger, "log_dir", None) if logger is not None else None
    if folder:
        return Path(folder) / "media"
    if files_dir is None:
        raise ConfigError("no folder to write media files to: pass files_dir")
    return Path(files_dir)


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")


def _targets(loggers: Sequence[Any] | Any | None) -> list[Any]:
    if loggers is None:
        return [None]
    if not isinstance(loggers, (list, tuple)):
        loggers = [loggers]
    return [lg for lg in loggers if lg is not None] or [None]


def _wandb_media(kind: str, x: Any, caption: str = "", sample_rate: int = 16000):
    import wandb

    caption = caption or None
    if kind == "image":
        return wandb.Image(str(x) if _is_path(x) else _image_array(x), caption=caption)
    if _is_path(x):
        return wandb.Audio(str(x), caption=caption)
    return wandb.Audio(_audio_array(x, sample_rate)[0], sample_rate=sample_rate, caption=caption)


def log_images(
    loggers: Sequence[Any] | Any | None,
    key: str,
    images: Sequence[Any],
    captions: Sequence[str] | None = None,
    step: int | None = None,
    files_dir: str | os.PathLike | None = None,
) -> None:
    """Log images (arrays/tensors in [0, 1] or uint8, or PNG paths) under ``key``."""
    from speakimg.media import save_image

    captions = list(captions or [""] * len(images))
    for logger in _targets(loggers):
        kind = _logger_kind(logger) if logger is not None else "files"
        if kind == "wandb":
            logger.experiment.log(
                {key: [_wandb_media("image", im, c) for im, c in zip(images, captions, strict=True)]}
                | ({"trainer/global_step": step} if step is not None else {})
            )
        elif kind == "tensorboard":
            for i, im in enumerate(images):
                array = _image_array(im)
                logger.experiment.add_image(
                    f"{key}/{i}", array, step or 0, dataformats="HWC" if array.ndim == 3 else "HW"
                )
        else:
            folder = _files_dir(logger, files_dir) / _slug(key)
            for i, im in enumerate(images):
                save_image(folder / f"step{step or 0:07d}_{i}.png", _image_array(im).astype(np.float32) / 255.0)


def log_audios(
    loggers: Sequence[Any] | Any | None,
    key: str,
    audios: Sequence[Any],
    captions: Sequence[str] | None = None,
    sample_rate: int = 16000,
    step: int | None = None,
    files_dir: str | os.PathLike | None = None,
) -> None:
    """Log mono audio clips (``[T]`` in [-1, 1], or wav paths) under ``key``."""
    from speakimg.audio import save_audio

    captions = list(captions or [""] * len(audios))
    for logger in _targets(loggers):
        kind = _logger_kind(logger) if logger is not None else "files"
        if kind == "wandb":
            logger.experiment.log(
                {key: [_wandb_media("audio", a, c, sample_rate) for a, c in zip(audios, captions, strict=True)]}
                | ({"trainer/global_step": step} if step is not None else {})
            )
        elif kind == "tensorboard":
            for i, clip in enumerate(audios):
                array, rate = _audio_array(clip, sample_rate)
                logger.experiment.add_audio(f"{key}/{i}", torch.from_numpy(array)[None], step or 0, sample_rate=rate)
        else:
            folder = _files_dir(logger, files_dir) / _slug(key)
            for i, clip in enumerate(audios):
                array, rate = _audio_array(clip, sample_rate)
                save_audio(folder / f"step{step or 0:07d}_{i}.wav", array, rate)


def log_table(
    loggers: Sequence[Any] | Any | None,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    step: int | None = None,
    files_dir: str | os.PathLike | None = None,
) -> None:
    """Log a table; cells may be :class:`ImageCell` / :class:`AudioCell` (media where the logger has them;
    TensorBoard shows the other columns as a markdown table; other loggers get a CSV with media files)."""
    from speakimg.audio import save_audio
    from speakimg.media import save_image

    for logger in _targets(loggers):
        kind = _logger_kind(logger) if logger is not None else "files"
        if kind == "wandb":

            def cell(value: Any) -> Any:
                if isinstance(value, ImageCell):
                    return _wandb_media("image", value.image, value.caption)
                if isinstance(value, AudioCell):
                    return _wandb_media("audio", value.audio, value.caption, value.sample_rate)
                return value

            logger.log_table(key, columns=list(columns), data=[[cell(v) for v in row] for row in rows], step=step)
        elif kind == "tensorboard":
            plain = [i for i, v in enumerate(rows[0]) if not isinstance(v, (ImageCell, AudioCell))] if rows else []
            lines = ["| " + " | ".join(columns[i] for i in plain) + " |", "|" + " --- |" * len(plain)]
            lines += ["| " + " | ".join(str(row[i]).replace("|", "/") for i in plain) + " |" for row in rows]
            logger.experiment.add_text(key, "\n".join(lines), step or 0)
        else:
            folder = _files_dir(logger, files_dir) / _slug(key)
            folder.mkdir(parents=True, exist_ok=True)
            prefix = f"step{step or 0:07d}"
            with (folder / f"{prefix}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                for r, row in enumerate(rows):
                    values = []
                    for c, value in enumerate(row):
                        name = f"{prefix}_{r}_{_slug(columns[c])}"
                        if isinstance(value, ImageCell):
                            path = save_image(
                                folder / f"{name}.png", _image_array(value.image).astype(np.float32) / 255
                            )
                            values.append(path.name)
                        elif isinstance(value, AudioCell):
                            array, rate = _audio_array(value.audio, value.sample_rate)
                            values.append(save_audio(folder / f"{name}.wav", array, rate).name)
                        else:
                            values.append(value)
                    writer.writerow(values)


def log_scalars(loggers: Sequence[Any] | Any | None, metrics: dict[str, float], step: int | None = None) -> None:
    """Log scalars through every logger (``log_metrics``)."""
    for logger in _targets(loggers):
        if logger is not None:
            logger.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
