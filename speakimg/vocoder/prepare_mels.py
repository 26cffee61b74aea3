"""``python -m speakimg.vocoder.prepare_mels DATA_DIR --vae MODEL``: VAE round-trip mels for vocoder fine-tuning.

Generated spectrograms are VAE decodes, a little blurred and noisy compared with the analysis mel. A
vocoder fine-tuned on mels that went through the same VAE (mel -> image -> encode -> decode -> mel) learns
to turn *those* into clean speech. For every ``ok`` record of a built dataset this writes::

    DATA_DIR/<out>/<id>.npy          float16 [256, frames]: the stored mel after the VAE round trip
    DATA_DIR/<out>/prepare_config.json   which VAE, which latent, how many clips

``MODEL`` is an SD/Auffusion pipeline folder or hub id (its ``vae/`` is used) or a VAE folder. The image
convention is the project's (``mel_to_image``: [0, 1], low frequencies at the bottom, 3 channels; VAE range
[-1, 1]); the decode is mapped back with the channel mean (Images that Sound). Existing files are kept
(rerun to resume) unless ``--overwrite``. Train on them with ``VocoderDataModule(mel_dir=<out>)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from speakimg import cli
from speakimg.errors import DataError

if TYPE_CHECKING:  # torch and the models are imported where used: `--help` answers at once
    import torch

__all__ = ["vae_round_trip", "prepare_mels", "main"]

log = logging.getLogger("speakimg.vocoder.prepare_mels")


def vae_round_trip(
    vae, mels: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``[B, n_mels, F]`` log-mels -> the same after image map, VAE encode (mean or a sample) and decode."""
    import torch

    with torch.no_grad():
        return _round_trip(vae, mels, sample, generator)


def _round_trip(vae, mels: torch.Tensor, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
    import torch.nn.functional as F

    from speakimg.audio import LOG_MEL_MIN, from_vae_range, image_to_mel, mel_to_image, to_vae_range

    frames = mels.shape[-1]
    pad = (-frames) % 8  # the VAE downsamples 8x
    x = F.pad(mels, (0, pad), value=LOG_MEL_MIN) if pad else mels
    param = next(vae.parameters())
    image = to_vae_range(mel_to_image(x)).to(device=param.device, dtype=param.dtype)
    dist = vae.encode(image).latent_dist
    latent = dist.sample(generator=generator) if sample else dist.mean
    decoded = vae.decode(latent).sample.float()
    return image_to_mel(from_vae_range(decoded), reduce="mean")[..., :frames].cpu()


def prepare_mels(
    data_dir: str | os.PathLike,
    vae: str | os.PathLike,
    out: str = "mels_vae",
    batch_size: int = 4,
    device: str | None = None,
    dtype: str = "float32",
    sample: bool = False,
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """Write the VAE round-trip mel of every ok record under ``DATA_DIR/out``; returns that folder."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from speakimg.data.manifest import load_mel, read_manifest
    from speakimg.io import save_npy, write_json
    from speakimg.loading import load_vae
    from speakimg.runtime import select_device, select_dtype

    data_dir = Path(data_dir)
    device = select_device(device)
    torch_dtype = select_dtype(dtype)
    records = [r for r in read_manifest(data_dir) if r.mel]
    if not records:
        raise DataError(f"{data_dir}: the manifest has no ok records with a mel")
    folder = data_dir / out
    folder.mkdir(parents=True, exist_ok=True)
    todo = [r for r in records if overwrite or not (folder / f"{r.id}.npy").is_file()]
    log.info("%d of %d clips to round-trip through %s -> %s", len(todo), len(records), vae, folder)
    model = load_vae(vae, frozen=True, device=device, dtype=torch_dtype)
    generator = torch.Generator(device=device).manual_seed(seed) if sample else None
    for start in tqdm(range(0, len(todo), batch_size), desc="VAE round trip", unit="batch"):
        chunk = todo[start : start + batch_size]
        mels = [load_mel(data_dir, r) for r in chunk]
        widths = {m.shape for m in mels}
        if len(widths) > 1:  # different lengths: one at a time
            outs = [vae_round_trip(model, m[None], sample, generator)[0] for m in mels]
        else:
            outs = list(vae_round_trip(model, torch.stack(mels), sample, generator))
        for record, mel in zip(chunk, outs, strict=True):
            save_npy(folder / f"{record.id}.npy", mel.numpy().astype(np.float16))
    info = {"vae": str(vae), "latent": "sample" if sample else "mean", "dtype": dtype, "count": len(records)}
    write_json(folder / "prepare_config.json", info)
    return folder


def main(argv: list[str] | None = None) -> Path:
    parser = cli.ArgumentParser("python -m speakimg.vocoder.prepare_mels", __doc__)
    parser.add_argument("data_dir", help="a dataset built by python -m speakimg.data.build")
    parser.add_argument("--vae", required=True, help="pipeline folder or hub id (uses its vae/), or a VAE folder")
    parser.add_argument("--out", default="mels_vae", help="output folder inside DATA_DIR (default mels_vae)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--sample", action="store_true", help="decode a latent sample instead of the mean")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--overwrite", action="store_true", help="redo clips already written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = prepare_mels(
        args.data_dir,
        args.vae,
        args.out,
        args.batch_size,
        args.device,
        args.dtype,
        args.sample,
        args.overwrite,
        args.seed,
    )
    log.info("wrote %s", folder)
    return folder


if __name__ == "__main__":
    cli.console(main)
