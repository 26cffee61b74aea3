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

import logging
import os
from pathlib import Path

from speakimg import cli
from speakimg.errors import ModelNotFoundError

__all__ = ["export_checkpoint", "main"]

log = logging.getLogger("speakimg.vocoder.export")


def export_checkpoint(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, discriminators: bool = True
) -> dict[str, Path]:
    """Write the generator (and the discriminators + optimizers) of a training checkpoint in the original format.

    Returns the written paths by role: ``config``, ``generator`` and, with ``discriminators``, ``discriminators``.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such checkpoint file")
    # here, not at the top: `--help` and a missing file answer without importing torch
    from speakimg.vocoder.checkpoints import read_training_checkpoint, write_discriminator_file
    from speakimg.vocoder.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
    from speakimg.vocoder.generator import Generator, GeneratorConfig
    from speakimg.vocoder.norms import from_legacy_state_dict, to_legacy_state_dict

    ckpt = read_training_checkpoint(path)
    generator = Generator(GeneratorConfig.from_dict(ckpt.vocoder_config))
    generator.load_legacy_state_dict(ckpt.generator, source=str(path))
    out = Path(out_dir)
    generator.save_pretrained(out)
    written = {"config": out / "config.json", "generator": out / "vocoder.pt"}
    if discriminators:
        hparams = ckpt.hyper_parameters
        width = hparams.get("discriminator_width", 1.0)
        mpd = MultiPeriodDiscriminator(hparams.get("mpd_periods", (2, 3, 5, 7, 11)), width=width)
        msd = MultiScaleDiscriminator(hparams.get("msd_scales", 3), width=width)
        mpd.load_state_dict(from_legacy_state_dict(mpd, ckpt.mpd), strict=True)
        msd.load_state_dict(from_legacy_state_dict(msd, ckpt.msd), strict=True)
        optimizers = ckpt.optimizer_states or [None, None]
        steps = ckpt.global_step // 2  # one D and one G optimizer step per batch
        written["discriminators"] = write_discriminator_file(
            out, to_legacy_state_dict(mpd), to_legacy_state_dict(msd), optimizers[0], optimizers[1], steps, ckpt.epoch
        )
    return written


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = cli.ArgumentParser("python -m speakimg.vocoder.export", __doc__)
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
    cli.console(main)
