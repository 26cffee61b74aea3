"""``python -m speakimg.fit --config configs/<job>.yaml``: train any speakimg job with LightningCLI.

The YAML chooses the LightningModule and LightningDataModule by class path; every trainer, model and
data option can be overridden on the command line (``--trainer.max_steps 100``,
``--model.init_args.lora_rank 8``). The resolved config is saved in the run folder (reruns in the same
folder overwrite it) and logged to the run's loggers (the W&B run's config). ``--ckpt_path PATH`` (or ``last``) resumes a run exactly.

``--trainer.default_root_dir`` is the run folder: with a W&B logger without ``save_dir``, W&B logs under
it and a ``ModelCheckpoint`` without ``dirpath`` writes to ``<run folder>/checkpoints`` (one option moves
a whole run, and ``--ckpt_path last`` finds the checkpoints of earlier runs in the same folder).

Multi-GPU: ``--trainer.strategy ddp --trainer.devices N``; multi-node: launch the same command with
torchrun or under SLURM (``srun``), adding ``--trainer.num_nodes M``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from speakimg.errors import SpeakimgError

log = logging.getLogger("speakimg.fit")


class LogConfigCallback(SaveConfigCallback):
    """Save the resolved config in the run folder (``config.yaml``) and log it to every logger.

    W&B shows it as the run's config (``config/trainer/max_steps`` ...), TensorBoard and CSV as hparams.
    Called on rank 0 only (no collective).
    """

    def save_config(self, trainer, pl_module, stage: str) -> None:
        import yaml

        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


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


def _is(node, class_name: str) -> bool:
    return str(getattr(node, "class_path", "")).endswith(class_name)


def _run_folder_defaults(config) -> None:
    """W&B defaults: a ``WandbLogger`` without ``save_dir`` logs into ``trainer.default_root_dir``, and with
    it a ``ModelCheckpoint`` without ``dirpath`` writes to ``<default_root_dir>/checkpoints``.

    (W&B's own default checkpoint folder is named after the W&B run id, new for every run, so a rerun
    with ``--ckpt_path last`` would find no checkpoint.) Other loggers keep Lightning's defaults.
    """
    trainer = config.get("trainer")
    root = trainer.get("default_root_dir") if trainer is not None else None
    if not root:
        return
    loggers = trainer.get("logger")
    wandb = [lg for lg in (loggers if isinstance(loggers, list) else [loggers]) if _is(lg, "WandbLogger")]
    if not wandb:
        return
    for logger in wandb:
        if logger.init_args.get("save_dir") in (None, "", "."):
            logger.init_args.save_dir = str(root)
    for callback in trainer.get("callbacks") or []:
        if _is(callback, "ModelCheckpoint") and callback.init_args.get("dirpath") is None:
            callback.init_args.dirpath = str(Path(root) / "checkpoints")


def _finish_wandb(trainer, failed: bool = False) -> None:
    """Close the W&B run of a finished (or failed) job; Lightning leaves it open for notebooks, and the
    next job in the same process would append to it instead of starting its own run."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)


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
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=args,
        parser_kwargs={"prog": "python -m speakimg.fit", "description": __doc__},
    )


def main(args: list[str] | None = None) -> SpeakimgCLI:
    """Run ``trainer.fit``; returns the CLI object (trainer, model, datamodule) for inspection."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli = build_cli(args)
    ckpt_path = cli.config.get("ckpt_path")
    failed = True
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        failed = False
    finally:
        _finish_wandb(cli.trainer, failed)
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


def console() -> None:
    """Console-script entry point (``speakimg-fit``): exit status 0 on success."""
    main()


if __name__ == "__main__":
    main()
