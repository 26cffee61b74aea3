"""``python -m speakimg.vocoder.export CKPT OUT_DIR``: a training checkpoint -> the original vocoder files.

Writes, from a :class:`~speakimg.modules.hifigan.HiFiGANModule` Lightning checkpoint::

    OUT_DIR/config.json       the generator config (Auffusion/jik876 fields)
    OUT_DIR/vocoder.pt        {"generator": state dict, legacy weight-norm keys}  (Auffusion's file;
                              jik876 calls the same content g_XXXXXXXX)
    OUT_DIR/do_XXXXXXXX       {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"} (jik876's second file;
                              XXXXXXXX = generator steps), unless --no-discriminators

``OUT_DIR`` then works as a vocoder folder everywhere (``load_vocoder(OUT_DIR)``,
``Generator.from_pretrained(OUT_DIR)``, Auffusion's own loader), and with the ``do_`` file the original
training code can continue from it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from speakimg.errors import ConfigError, ModelNotFoundError
from speakimg.vocoder.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from speakimg.vocoder.generator import Generator, GeneratorConfig
from speakimg.vocoder.norms import to_legacy_state_dict

__all__ = ["export_checkpoint", "main"]

log = logging.getLogger("speakimg.vocoder.export")


def _sub_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def export_checkpoint(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, discriminators: bool = True
) -> dict[str, Path]:
    """Write the generator (and the discriminators + optimizers) of a training checkpoint in the original format.

    Returns the written paths by role: ``config``, ``generator`` and, with ``discriminators``, ``discriminators``.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    ckpt: Any = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "vocoder_config" not in ckpt:
        raise ConfigError(f"{path}: not a HiFiGANModule training checkpoint (no 'state_dict' with 'vocoder_config')")
    state = ckpt["state_dict"]
    generator = Generator(GeneratorConfig.from_dict(ckpt["vocoder_config"]))
    generator.load_legacy_state_dict(_sub_state(state, "generator."), source=str(path))
    out = Path(out_dir)
    generator.save_pretrained(out)
    written = {"config": out / "config.json", "generator": out / "vocoder.pt"}
    if discriminators:
        hparams = ckpt.get("hyper_parameters", {})
        width = hparams.get("discriminator_width", 1.0)
        mpd = MultiPeriodDiscriminator(hparams.get("mpd_periods", (2, 3, 5, 7, 11)), width=width)
        msd = MultiScaleDiscriminator(hparams.get("msd_scales", 3), width=width)
        mpd.load_state_dict(_sub_state(state, "mpd."), strict=True)
        msd.load_state_dict(_sub_state(state, "msd."), strict=True)
        optimizers = ckpt.get("optimizer_states") or [None, None]
        steps = int(ckpt.get("global_step", 0)) // 2  # one D and one G optimizer step per batch
        payload = {
            "mpd": to_legacy_state_dict(mpd),
            "msd": to_legacy_state_dict(msd),
            "optim_g": optimizers[0],
            "optim_d": optimizers[1],
            "steps": steps,
            "epoch": int(ckpt.get("epoch", 0)),
        }
        do_path = out / f"do_{steps:08d}"
        tmp = do_path.with_name(do_path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, do_path)
        written["discriminators"] = do_path
    return written


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m speakimg.vocoder.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="HiFiGANModule Lightning checkpoint (.ckpt)")
    parser.add_argument("out_dir", help="folder to write config.json, vocoder.pt and do_XXXXXXXX into")
    parser.add_argument("--no-discriminators", action="store_true", help="write only the generator files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = export_checkpoint(args.checkpoint, args.out_dir, discriminators=not args.no_discriminators)
    for role, p in written.items():
        log.info("%14s: %s", role, p)
    return written


if __name__ == "__main__":
    main()
