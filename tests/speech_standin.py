"""A small data module in ``speakimg.data.SpeechMelDataModule``'s batch contract, for unit tests.

The end-to-end tests use the real ``SpeechMelDataModule`` on a built dataset; the module-level tests use
this one where they need control: one or two items in a fixed order, images or latents on demand, or
mel images of a wrong height. Real data all the same: festival speech of a few sentences ->
``log_mel`` -> ``mel_to_image`` -> the 1024-frame canvas -> ``to_vae_range``, and ``prepare_text``
phoneme ids. Batches: ``image`` float32 [B, 3, 256, 1024] in [-1, 1] (or ``latents`` [B, 4, 32, 128] x
scaling_factor when ``latents_vae`` is given), ``phoneme_ids`` / ``phoneme_mask`` long [B, L] padded with
0 to the batch maximum, ``text`` and ``id`` lists.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from speakimg.data.datamodule import collate_speech  # the real module's collation

SENTENCES = (
    "A small red fox jumped over the quiet garden wall.",
    "The old clock in the hall struck nine.",
    "Bright stars shine above the silent lake.",
    "She opened the window and heard the rain.",
)


def make_examples(path: str | os.PathLike, sentences=SENTENCES, image_size=(256, 1024)) -> Path:
    """Speak ``sentences`` with festival and save images + phoneme ids to ``path`` (a .pt of tensors)."""
    from speakimg.audio import fit_canvas, log_mel, mel_to_image, peak_normalize, to_vae_range
    from speakimg.text import prepare_text
    from speakimg.tts import get_engine

    engine = get_engine("festival")
    images, ids = [], []
    for sentence in sentences:
        wav = fit_canvas(peak_normalize(engine.synthesize(sentence), 0.95), 160000)
        image = to_vae_range(fit_canvas(mel_to_image(log_mel(wav)), image_size[1]))
        images.append(image[:, : image_size[0]].clone())
        ids.append(torch.tensor(prepare_text(sentence).ids))
    path = Path(path)
    torch.save({"images": torch.stack(images), "ids": ids, "text": list(sentences)}, path)
    return path


class _Items(Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


class StandInSpeechData(LightningDataModule):
    """The batch contract of ``SpeechMelDataModule`` over a file written by :func:`make_examples`."""

    def __init__(
        self,
        data_file: str,
        batch_size: int = 2,
        num_workers: int = 0,
        latents_vae: str | None = None,
        limit: int | None = None,
        val_items: int = 0,
        height: int | None = None,
    ) -> None:
        super().__init__()
        self.data_file, self.batch_size, self.num_workers = data_file, batch_size, num_workers
        self.latents_vae, self.limit, self.val_items = latents_vae, limit, val_items
        self.height = height  # crop the mel images (a dataset of the wrong shape, for error tests)
        self.items: list[dict] = []

    def setup(self, stage: str | None = None) -> None:
        if self.items:
            return
        data = torch.load(self.data_file, weights_only=True)
        count = self.limit or len(data["text"])
        images = data["images"][:count]
        if self.height is not None:
            images = images[:, :, : self.height]
        latents = None
        if self.latents_vae:
            from diffusers import AutoencoderKL

            from speakimg.hub import resolve_dir

            vae = AutoencoderKL.from_pretrained(resolve_dir(self.latents_vae), subfolder="vae").eval()
            with torch.no_grad():
                latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
        for i in range(count):
            item = {"phoneme_ids": data["ids"][i], "text": data["text"][i], "id": f"utt{i:03d}"}
            if latents is not None:
                item["latents"] = latents[i]
            else:
                item["image"] = images[i]
            self.items.append(item)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            _Items(self.items), self.batch_size, shuffle=False, collate_fn=collate_speech, num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            _Items(self.items[: self.val_items or len(self.items)]),
            self.batch_size,
            collate_fn=collate_speech,
            num_workers=0,
        )
