"""``python -m speakimg.export CKPT OUT_DIR``: a training checkpoint -> a standalone speech model folder.

The folder holds a reference to the base model, the UNet LoRA in diffusers' format
(``pytorch_lora_weights.safetensors``), the unfrozen UNet weights, the phoneme adapter (with the learned
unconditional embedding) and a copy of PL-BERT, all in safetensors, plus the ``speakimg_speech.json``
marker. Load it with ``speakimg.SpeechModel.from_pretrained(OUT_DIR)``. If the run kept an EMA of the
trainable weights, the EMA weights are exported (``--no-ema`` exports the raw ones).

A training checkpoint holds only the trained weights (LoRA, unfrozen blocks, adapter): the frozen ones
come from the base model, so the export prints what it read and wrote, not a list of keys it lacks.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from speakimg.errors import CheckpointError

__all__ = ["export_checkpoint", "main"]

log = logging.getLogger("speakimg.export")

PROG = "python -m speakimg.export"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    use_ema: bool = True,
    base_model: str | None = None,
    plbert: str | None = None,
) -> Path:
    """Export a ``SpeechLoRAModule`` checkpoint to ``out_dir``; ``base_model`` / ``plbert`` override the
    references recorded in the checkpoint (e.g. the run used local folders that are elsewhere here).

    Logs a short summary: the checkpoint's step, the trained tensors and parameters per group, the files.
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():  # before the imports below (Lightning: seconds)
        raise CheckpointError(f"{ckpt_path}: no such checkpoint file")
    from speakimg.io import load_torch
    from speakimg.modules.common import describe_state, format_bytes, format_count
    from speakimg.modules.speech_lora import CHECKPOINT_KIND, SpeechLoRAModule

    checkpoint = load_torch(ckpt_path, what="speech training checkpoint")
    kind = checkpoint.get("speakimg", {}).get("kind") if isinstance(checkpoint, dict) else None
    if kind != CHECKPOINT_KIND:
        raise CheckpointError(f"{ckpt_path}: not a speech fine-tune checkpoint (kind {kind!r}, want {CHECKPOINT_KIND})")
    overrides = {k: v for k, v in {"base_model": base_model, "plbert": plbert}.items() if v}
    # the module checks that the checkpoint holds exactly its trained weights (CheckpointError otherwise)
    module = SpeechLoRAModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True, **overrides)
    step = int(checkpoint.get("global_step", 0))
    extra = {"checkpoint": str(ckpt_path.resolve()), "global_step": step}
    out = module.export(out_dir, use_ema=use_ema, extra=extra)
    ema_used = use_ema and "ema" in checkpoint  # a run with an EMA saves it beside the weights
    groups = {k: sum(p.numel() for _, p in v) for k, v in module.model.parameter_groups().items()}
    files = sorted(out.iterdir())
    log.info(
        "read %s (global step %d, %s weights): %s trained (%s); the frozen base model is referenced: %s",
        ckpt_path,
        step,
        "EMA" if ema_used else "raw",
        describe_state(checkpoint["state_dict"]),
        ", ".join(f"{k} {format_count(n)}" for k, n in groups.items() if n),
        module.hparams.base_model,
    )
    log.info(
        "wrote %s: %s",
        out,
        ", ".join(f"{p.name}{'/' if p.is_dir() else ''} ({format_bytes(_size(p))})" for p in files),
    )
    return out


def main(argv: list[str] | None = None) -> Path:
    from speakimg.cli import ArgumentParser

    parser = ArgumentParser(PROG, __doc__)
    parser.add_argument("ckpt", type=Path, help="a checkpoint of `python -m speakimg.fit` (SpeechLoRAModule)")
    parser.add_argument("out_dir", type=Path, help="the speech model folder to write")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights even if the run kept an EMA")
    parser.add_argument("--base-model", help="override the base model reference (hub id or folder)")
    parser.add_argument("--plbert", help="override the PL-BERT reference (folder or hub id)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.time()
    out = export_checkpoint(args.ckpt, args.out_dir, not args.no_ema, args.base_model, args.plbert)
    log.info("exported in %.1f s; load it with speakimg.SpeechModel.from_pretrained(%r)", time.time() - start, str(out))
    return out


def console() -> None:
    """Console-script entry point (``speakimg-export``): exit status 0 on success; a speakimg error is one
    line on stderr and exit status 2 (the traceback with ``--debug``)."""
    from speakimg import cli

    cli.console(main, prog=PROG)


if __name__ == "__main__":
    console()
