"""prepare_mels: VAE round-trip mels of a built dataset, and fine-tuning data that reads them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from vocoder_helpers import one_thread  # noqa: F401  (an autouse fixture)

from speakimg.data.manifest import read_manifest
from speakimg.data.vocoder import VocoderSegments
from speakimg.errors import ModelNotFoundError
from speakimg.vocoder.prepare_mels import main


def _independent_round_trip(vae_dir, mel: np.ndarray) -> np.ndarray:
    """mel -> [0, 1] image (low frequencies at the bottom, 3 channels) -> VAE mean -> decode -> channel mean -> mel."""
    from diffusers import AutoencoderKL

    lo, hi = np.log(1e-5), np.log(200.0)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    x = (np.clip(mel, lo, hi) - lo) / (hi - lo)
    image = torch.from_numpy(np.ascontiguousarray(x[::-1])).float()[None, None].repeat(1, 3, 1, 1) * 2 - 1
    with torch.no_grad():
        decoded = vae.decode(vae.encode(image).latent_dist.mean).sample
    back = ((decoded / 2 + 0.5).clamp(0, 1).mean(dim=1)[0].numpy())[::-1]
    return back * (hi - lo) + lo


def test_prepare_mels_writes_vae_round_trips_that_the_data_module_reads(vocoder_dataset, tiny_auffusion, tmp_path):
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(vocoder_dataset, data_dir)
    folder = main([str(data_dir), "--vae", str(tiny_auffusion), "--batch-size", "4"])
    records = read_manifest(data_dir)
    files = sorted(p.name for p in folder.glob("*.npy"))
    assert files == sorted(f"{r.id}.npy" for r in records)
    info = json.loads((folder / "prepare_config.json").read_text())
    assert info["count"] == len(records) and info["latent"] == "mean"

    record = records[0]
    stored = np.load(data_dir / record.mel).astype(np.float32)
    prepared = np.load(folder / f"{record.id}.npy")
    assert prepared.dtype == np.float16 and prepared.shape == (256, 1024)
    expected = _independent_round_trip(tiny_auffusion / "vae", stored)
    assert np.abs(prepared.astype(np.float32) - expected).max() < 0.02  # float16 storage
    assert np.abs(prepared.astype(np.float32) - stored).mean() > 0.1  # the (random tiny) VAE changed it

    # rerun: nothing to redo, files untouched
    mtime = (folder / f"{record.id}.npy").stat().st_mtime_ns
    main([str(data_dir), "--vae", str(tiny_auffusion / "vae")])  # a VAE folder works too
    assert (folder / f"{record.id}.npy").stat().st_mtime_ns == mtime

    # fine-tune data: the prepared mel frames with the real audio
    plain = VocoderSegments(data_dir, [record], 1600, mel_dir="mels", seed=3)[(0, 0)]
    vae_item = VocoderSegments(data_dir, [record], 1600, mel_dir="mels_vae", seed=3)[(0, 0)]
    assert torch.equal(plain["audio"], vae_item["audio"])
    start = int(np.argmin([np.abs(stored[:, s : s + 10] - plain["mel"].numpy()).sum() for s in range(1014)]))
    assert torch.equal(vae_item["mel"], torch.from_numpy(prepared[:, start : start + 10].astype(np.float32)))

    with pytest.raises(ModelNotFoundError):
        main([str(data_dir), "--vae", str(tmp_path / "no-such-model"), "--overwrite"])
