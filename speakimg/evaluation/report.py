"""Sending an evaluation to the experiment logger: summary numbers, a table of samples with media.

- W&B: ``samples`` table (kind, prompts, seed, picture, spectrogram, audio, transcript, scores),
  ``summary`` table (one row per kind), the summary numbers as metrics (``combined/clip`` ...), and
  galleries of the first :data:`GALLERY_SIZE` samples with media of each kind (``gallery/<kind>/...``).
  W&B stores a table's media in an artifact staged under ``$WANDB_DATA_DIR``; unless that variable
  is set, it is pointed at ``OUT/wandb/data`` while the table is logged, so an offline run keeps
  everything under ``OUT`` until ``wandb sync``.
- TensorBoard: the summary numbers as scalars, ``summary.md`` as text, each sample with media as
  images and audio.
- CSV: the summary numbers (``csv_logs/version_N/metrics.csv``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speakimg.loggers import AudioCell, ImageCell, log_audios, log_images, log_table

__all__ = ["log_evaluation", "summary_metrics"]

log = logging.getLogger("speakimg.evaluate")

GALLERY_SIZE = 8
"""Samples per kind shown as W&B image/audio galleries (the table holds them all)."""

SAMPLE_COLUMNS = [
    "kind",
    "image_prompt",
    "audio_prompt",
    "seed",
    "image",
    "spectrogram",
    "audio",
    "transcript",
    "clip",
    "wer",
    "clap",
    "vocoder_cycle_error",
]


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Flat ``{"<kind>/<metric>": value}`` of the summary (means, intervals, corpus WER, n)."""
    metrics: dict[str, float] = {}
    for kind, entry in summary["kinds"].items():
        metrics[f"{kind}/n"] = float(entry["n"])
        for name in ("clip", "wer_mean", "clap", "vocoder_cycle_error"):
            stat = entry.get(name)
            if stat and stat.get("mean") is not None:
                metrics[f"{kind}/{name}"] = stat["mean"]
                if stat.get("ci95") is not None:
                    metrics[f"{kind}/{name}_ci95"] = stat["ci95"]
        if entry.get("wer_corpus") is not None:
            metrics[f"{kind}/wer_corpus"] = entry["wer_corpus"]
    return metrics


def _media_path(out: Path, row: dict[str, Any], column: str) -> Path | None:
    value = row.get(column)
    if not value:
        return None
    path = out / value
    return path if path.exists() else None


@contextmanager
def _wandb_data_dir(folder: Path) -> Iterator[None]:
    """Stage W&B artifact files (a table's media) under ``folder`` unless ``WANDB_DATA_DIR`` is set."""
    if os.environ.get("WANDB_DATA_DIR"):
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(folder.resolve())
    try:
        yield
    finally:
        os.environ.pop("WANDB_DATA_DIR", None)


def _caption(row: dict[str, Any]) -> str:
    scores = ", ".join(
        f"{name.upper()} {row[name]:.1f}" for name in ("clip", "wer", "clap") if row.get(name) is not None
    )
    prompts = " | ".join(p for p in (row["image_prompt"], row["audio_prompt"]) if p)
    return f"{prompts} | seed {row['seed']} | {scores}"


def _media_cell(out: Path, row: dict[str, Any], column: str) -> ImageCell | AudioCell | None:
    path = _media_path(out, row, column)
    if path is None:
        return None
    return AudioCell(path) if column == "audio" else ImageCell(path)


def _log_wandb(logger, out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    data = [
        [
            row["kind"],
            row["image_prompt"],
            row["audio_prompt"],
            row["seed"],
            *(_media_cell(out, row, column) for column in ("image", "spectrogram", "audio")),
            row.get("transcript") or "",
            row.get("clip"),
            row.get("wer"),
            row.get("clap"),
            row.get("vocoder_cycle_error"),
        ]
        for row in rows
    ]
    columns = ["kind", "n", "clip", "clip_ci95", "wer_corpus", "wer_mean", "wer_mean_ci95", "clap", "clap_ci95"]
    table = []
    for kind, entry in summary["kinds"].items():

        def get(name: str, field: str = "mean", entry: dict = entry) -> float | None:
            stat = entry.get(name)
            return stat.get(field) if stat else None

        table.append(
            [
                kind,
                entry["n"],
                get("clip"),
                get("clip", "ci95"),
                entry.get("wer_corpus"),
                get("wer_mean"),
                get("wer_mean", "ci95"),
                get("clap"),
                get("clap", "ci95"),
            ]
        )
    with _wandb_data_dir(out / "wandb" / "data"):
        log_table(logger, "samples", SAMPLE_COLUMNS, data)
        log_table(logger, "summary", columns, table)
    _log_media(logger, out, rows, dict.fromkeys(summary["kinds"], GALLERY_SIZE), "gallery")
    logger.experiment.summary.update(summary_metrics(summary))


def _first_with_media(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first row of each of the first ``limit`` media folders."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        folder = row.get("folder")
        if folder and folder not in seen:
            seen[folder] = row
            if len(seen) == limit:
                break
    return list(seen.values())


def _log_media(logger, out: Path, rows: list[dict[str, Any]], limits: dict[str, int], prefix: str) -> None:
    """Images, spectrograms and audio of the first ``limits[kind]`` samples with media of each kind."""
    for kind, limit in limits.items():
        shown = _first_with_media([r for r in rows if r["kind"] == kind], limit)
        for column in ("image", "spectrogram", "audio"):
            kept = [r for r in shown if _media_path(out, r, column)]
            if not kept:
                continue
            paths, captions = [_media_path(out, r, column) for r in kept], [_caption(r) for r in kept]
            if column == "audio":
                log_audios(logger, f"{prefix}/{kind}/{column}", paths, captions)
            else:
                log_images(logger, f"{prefix}/{kind}/{column}", paths, captions)


def _log_tensorboard(logger, out: Path, rows: list[dict[str, Any]], markdown: str) -> None:
    logger.experiment.add_text("summary", markdown)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    _log_media(logger, out, rows, {kind: len(rows) for kind in kinds}, "samples")
    logger.experiment.flush()


def log_evaluation(logger, out: Path, rows: list[dict[str, Any]], summary: dict[str, Any], markdown: str) -> None:
    """Log the summary numbers and the samples (with their media) to ``logger`` (any of ``make_logger``'s)."""
    if logger is None:
        return
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    logger.log_metrics(summary_metrics(summary))
    if isinstance(logger, WandbLogger):
        _log_wandb(logger, out, rows, summary)
    elif isinstance(logger, TensorBoardLogger):
        _log_tensorboard(logger, out, rows, markdown)
    logger.save()
