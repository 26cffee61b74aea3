"""``python -m speakimg.fit --config configs/<job>.yaml``: train any speakimg job with LightningCLI.

The YAML chooses the LightningModule and LightningDataModule by class path; every trainer, model and
data option can be overridden on the command line (``--trainer.max_steps 100``,
``--model.init_args.lora_rank 8``). The resolved config is saved in the run folder (reruns in the same
folder overwrite it). ``--ckpt_path PATH`` (or ``last``) resumes a run exactly.

Multi-GPU: ``--trainer.strategy ddp --trainer.devices N``; multi-node: launch the same command with
torchrun or under SLURM (``srun``), adding ``--trainer.num_nodes M``.
"""

from __future__ import annotations

import logging

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

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
