"""``python -m speakimg.fit --config configs/<job>.yaml [--config OVERLAY.yaml] [--KEY VALUE ...]``: train any
speakimg job with LightningCLI.

The YAML chooses the LightningModule and LightningDataModule by class path; every trainer, model and
data option can be overridden by a later config (an overlay, such as ``configs/quickstart_speech.yaml`` on
``configs/auffusion_lora.yaml``) or on the command line (``--trainer.max_steps 100``,
``--model.init_args.lora_rank 8``, ``--model.init_args.optimizer.init_args.weight_decay 0.1``). The resolved
config is saved in the run folder (reruns in the same folder overwrite it) and logged to the run's loggers
(the W&B run's config). ``--ckpt_path PATH`` (or ``last``) resumes a run exactly.

``--trainer.default_root_dir`` is the run folder: with a W&B logger without ``save_dir``, W&B logs under
it and a ``ModelCheckpoint`` without ``dirpath`` writes to ``<run folder>/checkpoints`` (one option moves
a whole run, and ``--ckpt_path last`` finds the checkpoints of earlier runs in the same folder). W&B runs
offline in every shipped config; ``--trainer.logger.init_args.offline false`` logs online.

A config error (an unknown key, a wrong type) is one line naming the key and the accepted keys nearest to
it; ``--debug`` shows jsonargparse's full report and tracebacks. ``python -m speakimg.fit --config CONFIG
--help`` lists every option of a job with its default.

Multi-GPU: ``--trainer.strategy ddp --trainer.devices N``; multi-node: launch the same command with
torchrun or under SLURM (``srun``), adding ``--trainer.num_nodes M``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from speakimg.errors import ConfigError, SpeakimgError

log = logging.getLogger("speakimg.fit")

PROG = "python -m speakimg.fit"

# The short help of a bare ``--help`` (printed without importing Lightning, which takes 10-30 s).
USAGE = f"""usage: {PROG} --config CONFIG [--config OVERLAY ...] [--SECTION.KEY VALUE ...] [--ckpt_path PATH] [--debug]

Train a speakimg job (LightningCLI). The shipped configs (configs/):
  auffusion_lora.yaml                 the speech fine-tune (real models, GPU)
  auffusion_lora.yaml + quickstart_speech.yaml     the same on the tiny kit, CPU, minutes
  hifigan.yaml / hifigan_scratch.yaml fine-tune Auffusion's vocoder / train one from scratch
  hifigan_scratch.yaml + quickstart_vocoder.yaml   a tiny vocoder on CPU, minutes

  {PROG} --config configs/auffusion_lora.yaml --config configs/quickstart_speech.yaml
  {PROG} --config configs/auffusion_lora.yaml --trainer.devices 8 --trainer.strategy ddp
  {PROG} --config configs/auffusion_lora.yaml --ckpt_path last        # resume the run

options:
  --config CONFIG         a YAML config; later ones override earlier ones (overlays)
  --SECTION.KEY VALUE     any key of the config: --trainer.max_steps 100, --model.init_args.lora_rank 8
  --ckpt_path PATH        resume from this checkpoint ('last': the newest checkpoint file of the run folder)
  --print_config          print the resolved config and exit
  --debug                 show the full error report and traceback
  -h, --help              this message; with --config, every option of that job with its default

Run folder: --trainer.default_root_dir (checkpoints/, wandb/, config.yaml). W&B logs offline; online with
--trainer.logger.init_args.offline false. See docs/training.md and docs/vocoder.md.
"""


# ----------------------------------------------------------------------------------- the LightningCLI
@functools.cache
def _classes() -> tuple[type, type]:
    """``(SpeakimgCLI, LogConfigCallback)``, defined on first use so that ``--help`` and the error formatting
    of a bare command line do not import Lightning."""
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

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
        """LightningCLI with ``--ckpt_path`` (the CLI runs without subcommands), run-folder defaults, and
        config errors as :class:`ConfigError` (one line) instead of jsonargparse's report."""

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_argument(
                "--ckpt_path",
                type=str | None,
                default=None,
                help="Resume from this checkpoint ('last' resumes from the newest checkpoint of the run).",
            )

        def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
            from argparse import ArgumentError

            try:
                super().parse_arguments(parser, args)
            except ArgumentError as error:
                raise ConfigError(config_error_message(str(error), parser)) from error

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

    return SpeakimgCLI, LogConfigCallback


def __getattr__(name: str) -> Any:
    if name in ("SpeakimgCLI", "LogConfigCallback"):
        return dict(zip(("SpeakimgCLI", "LogConfigCallback"), _classes(), strict=True))[name]
    raise AttributeError(f"module 'speakimg.fit' has no attribute {name!r}")


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


# -------------------------------------------------------------------------------------- config errors
def _nearest(word: str, choices: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.5)
    return f"; nearest accepted: {', '.join(close)}" if close else ""


def _init_parameters(class_path: str) -> list[str]:
    """The keyword arguments a class (or callable) accepts, for suggestions (empty if it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module), name)
        params = inspect.signature(target).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return []
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _parser_keys(parser: Any, group: str = "") -> list[str]:
    """The option names a parser accepts (``max_steps`` ... under ``group`` ``trainer``; full names otherwise)."""
    prefix = f"{group}." if group else ""
    keys = []
    for action in getattr(parser, "_actions", []):
        dest = str(getattr(action, "dest", ""))
        if dest.startswith(prefix) and dest != "help":
            keys.append(dest[len(prefix) :].split(".")[0] if group else dest)
    return keys


_BASE_CLASSES = {"LightningModule", "LightningDataModule"}


def config_error_message(report: str, parser: Any = None) -> str:
    """One line from jsonargparse's error report: the key, what is wrong, and the accepted keys nearest to it.

    (jsonargparse reports a wrong key inside a class as a union of every type tried, ~20-60 lines.)
    """
    keys = [k for k in re.findall(r'Parser key "([^"]+)"', report) if k != "config"]
    path = ".init_args.".join(keys)
    option = re.search(r"Option '([^']+)' is not accepted(.*)", report)
    if option:
        word = option.group(1)
        owners = re.findall(r"class_path[ =]'([^']+)'", report[: option.start()] + option.group(2))
        if owners and owners[-1].split(".")[-1] in _BASE_CLASSES:
            return (
                f"{path} names no class (class_path): the first --config must be a full config; the quickstart "
                "configs are overlays (--config configs/auffusion_lora.yaml --config configs/quickstart_speech.yaml)"
            )
        if owners:
            name = f"{path}.init_args.{word}" if path else word
            first = word.split(".")[0]
            return f"{name} is not accepted by {owners[-1]}{_nearest(first, _init_parameters(owners[-1]))}"
        return f"{word} is not accepted{_nearest(word, _parser_keys(parser))}"
    group = re.search(r"Group '([^']+)' does not accept option '([^']+)'", report)
    if group:
        section, word = group.groups()
        return f"{section}.{word} is not accepted{_nearest(word, _parser_keys(parser, section))}"
    unknown = re.search(r"[Uu]nrecognized arguments: (\S+)", report)
    if unknown:
        word = unknown.group(1).lstrip("-")
        return f"--{word} is not accepted{_nearest(word, _parser_keys(parser))}"
    missing_file = re.search(r"File does not exist: (\S+)", report)
    if missing_file:
        return f"config file {missing_file.group(1)} does not exist"
    if "arguments are required" in report:
        missing = report.split("arguments are required:", 1)[1].strip()
        return (
            f"no {missing} class given: a full config sets model.class_path and data.class_path (the quickstart "
            "configs are overlays: --config configs/auffusion_lora.yaml --config configs/quickstart_speech.yaml)"
        )
    literals = re.findall(r"Expected a typing\.Literal\[([^\]]*)\]", report)
    got = re.search(r"Got value: (.*)|Given value: (.*)", report)
    value = next((g for g in got.groups() if g), "").strip() if got else ""
    if literals:
        return f"{path}: {value!r} is not one of {', '.join(literals)}"
    expected = re.search(r"Expected an? (<class '([^']+)'>|[\w.\[\], ]+)", report)
    if expected:
        kind = expected.group(2) or expected.group(1)
        return f"{path}: expected {kind}, got {value!r}"
    no_import = re.search(r"module '([^']+)' has no attribute '([^']+)'|No module named '([^']+)'", report)
    if no_import:
        return f"{path}: cannot import {no_import.group(0)}"
    lines = [line.strip(" -") for line in report.splitlines() if line.strip(" -")]
    return " ".join(lines[:2])


# ------------------------------------------------------------------------------------------ running
def _cli(cli_class: type, args: list[str] | None, **kwargs: Any):
    from lightning.pytorch import LightningDataModule, LightningModule

    return cli_class(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        auto_configure_optimizers=False,  # the modules take optimizer / scheduler init arguments
        args=args,
        parser_kwargs={"prog": PROG, "description": __doc__, "exit_on_error": False, "allow_abbrev": False},
        **kwargs,
    )


def build_cli(args: list[str] | None = None):
    """Parse ``args`` (default ``sys.argv``) and instantiate trainer, model and datamodule.

    A config error raises :class:`ConfigError` with a one-line message (see :func:`config_error_message`).
    """
    cli_class, log_config = _classes()
    return _cli(cli_class, args, save_config_callback=log_config, save_config_kwargs={"overwrite": True})


def resolve_config(args: list[str]) -> dict[str, Any]:
    """The config ``args`` resolve to (configs, overlays and overrides merged, run-folder defaults filled in),
    as plain data, without instantiating anything."""
    import yaml

    cli_class, _ = _classes()

    class Resolve(cli_class):
        def instantiate_classes(self) -> None:
            pass

    with warnings.catch_warnings():  # args given from Python on purpose (Lightning warns when sys.argv has some too)
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = _cli(Resolve, args)
    return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))


def newest_checkpoint(trainer: Any) -> str:
    """``--ckpt_path last``: the newest checkpoint file of the run's checkpoint folder.

    Lightning's ``"last"`` reads only ``last*.ckpt``: a run killed after writing ``step000002.ckpt`` but
    before ``last.ckpt`` would silently start again from step 0. ``"last"`` is kept (Lightning then warns
    and starts afresh) when the folder holds no checkpoint.
    """
    folder = getattr(trainer.checkpoint_callback, "dirpath", None)
    files = sorted(Path(folder).glob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name)) if folder else []
    if not files:
        return "last"
    log.info("resuming from %s (the newest checkpoint of %s)", files[-1].name, folder)
    return str(files[-1])


def _check_config_files(args: list[str]) -> None:
    """Every ``--config PATH`` names an existing file (a ConfigError naming the path, otherwise)."""
    for i, arg in enumerate(args):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if arg == "--config" and i + 1 < len(args):
            path = args[i + 1]
        if path is not None and not path.lstrip().startswith(("{", "[")) and not Path(path).is_file():
            raise ConfigError(f"--config {path}: no such file (the shipped configs are in configs/)")


def main(args: list[str] | None = None):
    """Run ``trainer.fit``; returns the CLI object (trainer, model, datamodule) for inspection.

    A config error prints one line (``error: ...``) and exits with status 2 (``--debug``: the full report and
    traceback); other speakimg errors are raised (the console entry point prints them as one line).
    """
    from_argv = args is None
    args = list(sys.argv[1:] if from_argv else args)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if args in (["-h"], ["--help"]):
        print(USAGE)
        raise SystemExit(0)
    _check_config_files(args)  # before Lightning's import (seconds): a mistyped path fails at once
    if from_argv:  # LightningCLI reads sys.argv itself (and DDP launchers rerun it for the other ranks)
        sys.argv[1:] = args
    import lightning.pytorch  # noqa: F401  (first: Lightning sets up its own log handler only before ours)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cli = build_cli(None if from_argv else args)
    except ConfigError as error:
        if debug:
            raise
        from speakimg.cli import error_line

        print(f"{PROG}: {error_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    ckpt_path = newest_checkpoint(cli.trainer) if cli.config.get("ckpt_path") == "last" else cli.config.get("ckpt_path")
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
    """Console-script entry point (``speakimg-fit``): exit status 0 on success; a speakimg error is one line
    on stderr and exit status 2 (the traceback with ``--debug``)."""
    from speakimg import cli

    cli.console(main, prog=PROG)


if __name__ == "__main__":
    console()
