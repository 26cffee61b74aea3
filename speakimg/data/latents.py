"""A cache of VAE latents of a built speech dataset: encode each spectrogram once, train on latents.

::

    python -m speakimg.data.latents DATA_DIR --vae runwayml/stable-diffusion-v1-5 [--device cuda]

writes ``DATA_DIR/latents/<vae-key>/<id>.npy`` (float16 ``[4, 32, 128]``: the posterior mean times the
VAE's ``scaling_factor``) and ``vae.json`` (which VAE, its scaling factor and fingerprint).
``SpeechMelDataModule(latents_vae=...)`` fills the same cache in ``prepare_data`` and then yields
``"latents"`` instead of ``"image"``. ``<vae-key>`` is the VAE name as given (a hub id or a path),
made file-safe: use the same string when caching and training.

A stored mel with NaN or infinite values is refused before it is encoded (``load_mel`` names the file),
and :func:`check_latent_caches` (what ``python -m speakimg.data.verify`` runs) finds broken latents and
stale ones (of items no longer in the dataset, or rebuilt since: the builder removes those).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from speakimg import cli
from speakimg.audio.canvas import CANVAS
from speakimg.errors import DataError

if TYPE_CHECKING:  # torch, numpy and the models are imported where used: `--help` answers at once
    import torch

__all__ = [
    "LATENTS",
    "LATENT_SHAPE",
    "VAE_META",
    "LatentCacheCheck",
    "cache_latents",
    "check_latent_caches",
    "latents_dir",
    "mel_to_vae_input",
    "vae_key",
]

log = logging.getLogger("speakimg.data.latents")

LATENTS = "latents"
VAE_META = "vae.json"
LATENT_SHAPE = CANVAS.latent_shape
"""A cached latent: ``[4, 32, 128]``."""


def mel_to_vae_input(logmel: torch.Tensor) -> torch.Tensor:
    """A stored log-mel ``[256, F]`` -> the VAE's input image ``[3, 256, 1024]`` in [-1, 1].

    Low frequencies at the bottom (``mel_to_image``), the canvas padded with silence to 1024 frames.
    """
    from speakimg.audio import CANVAS_FRAMES, LOG_MEL_MIN, fit_canvas, mel_to_image, to_vae_range

    canvas = fit_canvas(logmel.float(), CANVAS_FRAMES, value=LOG_MEL_MIN)
    return to_vae_range(mel_to_image(canvas))


def vae_key(vae: str | os.PathLike) -> str:
    """File-safe folder name for a VAE name as given.

    A hub id ``org/name`` -> ``org--name``; a path -> its folder name plus a hash of the path as given
    (``/models/sd15`` -> ``sd15-1a2b3c4d``).
    """
    name = str(vae).strip().rstrip("/\\")
    is_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).exists()
    if not is_path and re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name):
        return name.replace("/", "--")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip("-.")[:60] or "vae"
    return f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def latents_dir(data_dir: str | os.PathLike, vae: str | os.PathLike) -> Path:
    """``DATA_DIR/latents/<vae-key>``."""
    return Path(data_dir) / LATENTS / vae_key(vae)


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def cache_latents(
    data_dir: str | os.PathLike,
    vae: str | os.PathLike,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> Path:
    """Encode every ok item's spectrogram that has no cached latent yet; returns the cache folder.

    Latents are the posterior mean times ``vae.config.scaling_factor`` (read from the VAE config),
    stored as float16 ``[4, H/8, W/8]``. Each file is written atomically, so an interrupted run resumes.

    Raises:
        DataError: the cache folder holds latents of another VAE (different config or weights).
    """
    import torch

    with torch.no_grad():
        return _cache_latents(data_dir, vae, device, batch_size, torch.float32 if dtype is None else dtype, progress)


def _cache_latents(
    data_dir: str | os.PathLike,
    vae: str | os.PathLike,
    device: str | torch.device | None,
    batch_size: int,
    dtype: torch.dtype,
    progress: bool,
) -> Path:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from speakimg.data.manifest import ManifestRecord, load_mel, read_manifest
    from speakimg.io import save_npy, write_json
    from speakimg.loading import load_vae, vae_folder

    records: list[ManifestRecord] = read_manifest(data_dir)
    out = latents_dir(data_dir, vae)
    todo = [r for r in records if not (out / f"{r.id}.npy").is_file()]
    folder = vae_folder(vae)
    fingerprint = _fingerprint(folder)
    meta_path = out / VAE_META
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text("utf-8"))
        if meta.get("fingerprint") != fingerprint:
            raise DataError(
                f"{out} holds latents of another VAE ({meta.get('resolved')}, fingerprint {meta.get('fingerprint')}); "
                f"{vae} has fingerprint {fingerprint}. Delete {out} or use another VAE name."
            )
    if not todo:
        return out
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_vae(vae, frozen=True, device=device, dtype=dtype)
    scaling = float(model.config.scaling_factor)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "vae": str(vae),
        "resolved": str(folder.resolve()),
        "fingerprint": fingerprint,
        "scaling_factor": scaling,
        "latent": "posterior mean x scaling_factor",
        "dtype": "float16",
    }
    write_json(meta_path, meta)
    bar = tqdm(total=len(todo), desc=f"latents {vae_key(vae)}", unit="item", disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images = torch.stack([mel_to_vae_input(load_mel(data_dir, r)) for r in chunk])
        latents = model.encode(images.to(device, dtype)).latent_dist.mean * scaling
        for record, latent in zip(chunk, latents.float().cpu().numpy().astype(np.float16), strict=True):
            save_npy(out / f"{record.id}.npy", latent)
        bar.update(len(chunk))
    bar.close()
    log.info("cached %d latents in %s (scaling factor %s)", len(todo), out, scaling)
    return out


@dataclass
class LatentCacheCheck:
    """What :func:`check_latent_caches` found in one ``latents/<vae-key>/`` folder."""

    folder: Path
    vae: str | None
    cached: int = 0
    missing: int = 0
    """Ok items without a latent yet (not a fault: the data module or ``speakimg.data.latents`` adds them)."""
    stale: list[Path] = field(default_factory=list)
    """Latents of items that are not ok items of the dataset."""
    broken: dict[Path, str] = field(default_factory=dict)
    """Unreadable, wrongly shaped or non-finite latents, and what is wrong with each."""
    problem: str | None = None
    """A problem of the folder itself (no readable ``vae.json``)."""

    @property
    def ok(self) -> bool:
        return not (self.stale or self.broken or self.problem)


def _latent_problem(path: Path) -> str | None:
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return f"not a readable .npy ({error})"
    if tuple(array.shape) != LATENT_SHAPE or array.dtype.kind != "f":
        return f"shape {tuple(array.shape)} and dtype {array.dtype}, expected float {LATENT_SHAPE}"
    if not np.isfinite(array).all():
        return f"{int(array.size - np.isfinite(array).sum())} NaN or infinite values"
    return None


def check_latent_caches(data_dir: str | os.PathLike, ok_ids: set[str]) -> list[LatentCacheCheck]:
    """Check every latent cache of a dataset: each latent readable, ``[4, 32, 128]`` and finite; stale ones."""
    root = Path(data_dir) / LATENTS
    checks = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        check = LatentCacheCheck(folder=folder, vae=None)
        try:
            check.vae = json.loads((folder / VAE_META).read_text("utf-8")).get("vae")
        except (OSError, ValueError) as error:
            check.problem = f"{folder / VAE_META}: missing or unreadable ({type(error).__name__}); delete {folder}"
        present = set()
        for path in sorted(folder.glob("*.npy")):
            uid = path.stem
            if uid not in ok_ids:
                check.stale.append(path)
                continue
            present.add(uid)
            problem = _latent_problem(path)
            if problem:
                check.broken[path] = problem
        check.cached = len(present) - len(check.broken)
        check.missing = len(ok_ids - present)
        checks.append(check)
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser("python -m speakimg.data.latents", __doc__)
    parser.add_argument("data_dir", type=Path, help="a dataset built by speakimg.data.build")
    parser.add_argument("--vae", required=True, help="hub id or folder of a diffusers pipeline (its vae/) or a VAE")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = cache_latents(args.data_dir, args.vae, args.device, args.batch_size)
    print(f"latents: {out}")


if __name__ == "__main__":
    cli.console(main)
