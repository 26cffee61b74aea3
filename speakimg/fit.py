"""``python -m speakimg.fit --config configs/<job>.yaml``: train any speakimg job with LightningCLI.

The YAML chooses the LightningModule and LightningDataModule by class path; every trainer, model and
data option can be overridden on the command line (``--trainer.max_steps 100``,
``--model.init_args.lora_rank 8``). The resolved config is saved in the run folder (reruns in the same
folder overwrite it). ``--ckpt_path PATH`` (or ``last``) resumes a run exactly.

``--trainer.default_root_dir`` is the run folder: a ``ModelCheckpoint`` without ``dirpath`` writes to
``<run folder>/checkpoints`` and a W&B / TensorBoard / CSV logger without ``save_dir`` logs under the run
folder, so one option moves a whole run.

Multi-GPU: ``--trainer.strategy ddp --trainer.devices N``; multi-node: launch the same command with
torchrun or under SLURM (``srun``), adding ``--trainer.num_nodes M``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from speakimg.errors import SpeakimgError

log = logging.getLogger("speakimg.fit")


class SpeakimgCLI(LightningCLI):
    """LightningCLI with a ``--ckpt_path`` option for resuming (the CLI runs without subcommands)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint ('last' resumes from the newest checkpoint of the run).",
        )

    def before_instantiate_classes(self) -> None:
        _run_folder_defaults(self.config)

    def instantiate_classes(self) -> None:
        """Instantiate; a speakimg error raised by a class (e.g. a missing model folder) surfaces as itself,
        not wrapped in jsonargparse's "Does not validate against any of the Union subtypes" dump."""
        try:
            super().instantiate_classes()
        except Exception as error:
            cause = _speakimg_cause(error)
            if cause is None:
                raise
            raise cause from None


_LOGGERS_WITH_SAVE_DIR = ("WandbLogger", "TensorBoardLogger", "CSVLogger")


def _run_folder_defaults(config) -> None:
    """Point checkpoints and loggers that have no folder of their own into ``trainer.default_root_dir``."""
    trainer = config.get("trainer")
    root = trainer.get("default_root_dir") if trainer is not None else None
    if not root:
        return
    for callback in trainer.get("callbacks") or []:
        if (
            getattr(callback, "class_path", "").endswith("ModelCheckpoint")
            and callback.init_args.get("dirpath") is None
        ):
            callback.init_args.dirpath = str(Path(root) / "checkpoints")
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        is_file_logger = getattr(logger, "class_path", "").endswith(_LOGGERS_WITH_SAVE_DIR)
        if is_file_logger and logger.init_args.get("save_dir") in (None, "", "."):
            logger.init_args.save_dir = str(root)


def _speakimg_cause(error: BaseException) -> SpeakimgError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, SpeakimgError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def build_cli(args: list[str] | None = None) -> SpeakimgCLI:
    """Parse ``args`` (default ``sys.argv``) and instantiate trainer, model and datamodule."""
    return SpeakimgCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        parser_kwargs={"prog": "python -m speakimg.fit", "description": __doc__},
    )


def main(args: list[str] | None = None) -> SpeakimgCLI:
    """Run ``trainer.fit``; returns the CLI object (trainer, model, datamodule) for inspection."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli = build_cli(args)
    ckpt_path = cli.config.get("ckpt_path")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    run_folder = cli.trainer.log_dir  # a broadcast under DDP: every rank must take part (not only rank 0)
    if cli.trainer.is_global_zero:
        best = getattr(cli.trainer.checkpoint_callback, "last_model_path", None) or getattr(
            cli.trainer.checkpoint_callback, "best_model_path", None
        )
        log.info(
            "finished at step %d; run folder %s; checkpoint %s",
            cli.trainer.global_step,
            run_folder,
            best or "(none)",
        )
    return cli


if __name__ == "__main__":
    main()
