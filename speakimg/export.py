"""``python -m speakimg.export CKPT OUT_DIR``: a training checkpoint -> a standalone speech model folder.

The folder holds a reference to the base model, the UNet LoRA in diffusers' format
(``pytorch_lora_weights.safetensors``), the unfrozen UNet weights, the phoneme adapter (with the learned
unconditional embedding) and a copy of PL-BERT, all in safetensors, plus the ``speakimg_speech.json``
marker. Load it with ``speakimg.SpeechModel.from_pretrained(OUT_DIR)``. If the run kept an EMA of the
trainable weights, the EMA weights are exported (``--no-ema`` exports the raw ones).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from speakimg.errors import CheckpointError
from speakimg.io import load_torch

__all__ = ["export_checkpoint", "main"]

log = logging.getLogger("speakimg.export")


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    use_ema: bool = True,
    base_model: str | None = None,
    plbert: str | None = None,
) -> Path:
    """Export a ``SpeechLoRAModule`` checkpoint to ``out_dir``; ``base_model`` / ``plbert`` override the
    references recorded in the checkpoint (e.g. the run used local folders that are elsewhere here)."""
    from speakimg.modules.speech_lora import CHECKPOINT_KIND, SpeechLoRAModule

    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise CheckpointError(f"{ckpt_path}: no such checkpoint file")
    checkpoint = load_torch(ckpt_path, what="speech training checkpoint")
    kind = checkpoint.get("speakimg", {}).get("kind")
    if kind != CHECKPOINT_KIND:
        raise CheckpointError(f"{ckpt_path}: not a speech fine-tune checkpoint (kind {kind!r}, want {CHECKPOINT_KIND})")
    overrides = {k: v for k, v in {"base_model": base_model, "plbert": plbert}.items() if v}
    module = SpeechLoRAModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True, **overrides)
    extra = {"checkpoint": str(ckpt_path.resolve()), "global_step": int(checkpoint.get("global_step", 0))}
    return module.export(out_dir, use_ema=use_ema, extra=extra)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m speakimg.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt", type=Path, help="a checkpoint of `python -m speakimg.fit` (SpeechLoRAModule)")
    parser.add_argument("out_dir", type=Path, help="the speech model folder to write")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights even if the run kept an EMA")
    parser.add_argument("--base-model", help="override the base model reference (hub id or folder)")
    parser.add_argument("--plbert", help="override the PL-BERT reference (folder or hub id)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.time()
    out = export_checkpoint(args.ckpt, args.out_dir, not args.no_ema, args.base_model, args.plbert)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("exported %s -> %s (%.1f MB) in %.1f s", args.ckpt, out, size / 2**20, time.time() - start)
    return out


def console() -> None:
    """Console-script entry point (``speakimg-export``): exit status 0 on success."""
    main()


if __name__ == "__main__":
    main()
