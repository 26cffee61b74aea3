"""One place to choose an experiment logger: W&B (offline by default), TensorBoard, CSV, or none.

Both the evaluation CLI and training configs can use :func:`make_logger`; it returns a Lightning
logger, so the same object works inside a ``Trainer`` and in a plain script (``log_hyperparams``,
``log_metrics``, and for W&B ``log_table`` / ``log_image`` / ``log_audio``).

W&B runs offline unless asked otherwise: no account or network is needed, the run lands in
``SAVE_DIR/wandb/offline-run-<time>-<id>/`` and ``wandb sync SAVE_DIR/wandb/offline-run-*`` uploads it
later.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from speakimg.errors import ConfigError, MissingDependencyError

__all__ = ["LOGGERS", "LoggerName", "finish_logger", "make_logger"]

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
