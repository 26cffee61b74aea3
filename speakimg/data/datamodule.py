"""``SpeechMelDataModule``: (sentence, speech spectrogram) pairs of a built dataset, for the speech fine-tune.

Batch contract (a dict):

- ``"image"``: float32 ``[B, 3, 256, 1024]`` in [-1, 1], the VAE input (``mel_to_image`` + ``to_vae_range``:
  low frequencies at the bottom), **or** ``"latents"``: float32 ``[B, 4, 32, 128]`` (the cached posterior
  mean, already times the VAE's ``scaling_factor``) when ``latents_vae`` is set;
- ``"phoneme_ids"``: long ``[B, L]`` PL-BERT ids (leading 0 included), padded with 0 to the batch maximum;
- ``"phoneme_mask"``: long ``[B, L]``, 1 on real tokens (the leading 0 included), 0 on padding;
- ``"text"``: list of the sentences; ``"id"``: list of the item ids.

Training order: :class:`speakimg.data.epochs.EpochSampler` (a permutation per epoch from ``seed + epoch``,
sharded over DDP ranks); a run resumed from any checkpoint sees the batches of the uninterrupted run,
with any ``num_workers`` (:class:`speakimg.data.epochs.ResumableEpochs`).

Every stored file is checked when it is read (readable, shape, finite values): a broken one raises a
``DataError`` naming the file and ``python -m speakimg.data.verify DATA_DIR --repair``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from speakimg.data.epochs import EpochSampler, ResumableEpochs
from speakimg.data.latents import LATENT_SHAPE, VAE_META, cache_latents, latents_dir, mel_to_vae_input
from speakimg.data.manifest import MANIFEST, ManifestRecord, load_array, load_mel, read_manifest, repair_hint
from speakimg.data.store import MEL_SHAPE
from speakimg.errors import DataError

__all__ = ["SpeechMelDataModule", "SpeechMelDataset", "collate_speech"]

log = logging.getLogger("speakimg.data")


class SpeechMelDataset(Dataset):
    """Items of a built dataset: the VAE-ready image (or cached latent), phoneme ids, text and id."""

    def __init__(self, data_dir: str | os.PathLike, records: list[ManifestRecord], latents: Path | None = None):
        self.data_dir = Path(data_dir)
        self.records = list(records)
        self.latents = latents

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item = {
            "phoneme_ids": torch.tensor(record.phoneme_ids, dtype=torch.long),
            "text": record.text,
            "id": record.id,
        }
        if self.latents is not None:
            path = self.latents / f"{record.id}.npy"
            latent = load_array(path, f"cached latent of {record.id}", self.data_dir, LATENT_SHAPE)
            item["latents"] = torch.from_numpy(latent.astype(np.float32))
        else:
            item["image"] = mel_to_vae_input(load_mel(self.data_dir, record))
        return item


def collate_speech(items: list[dict]) -> dict:
    """Stack images/latents; pad phoneme ids with 0 to the longest in the batch, with a mask."""
    lengths = [int(item["phoneme_ids"].shape[0]) for item in items]
    ids = torch.zeros(len(items), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (item, n) in enumerate(zip(items, lengths, strict=True)):
        ids[row, :n] = item["phoneme_ids"]
        mask[row, :n] = 1
    batch = {
        "phoneme_ids": ids,
        "phoneme_mask": mask,
        "text": [i["text"] for i in items],
        "id": [i["id"] for i in items],
    }
    key = "latents" if "latents" in items[0] else "image"
    batch[key] = torch.stack([item[key] for item in items])
    return batch


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    return array.shape, array.dtype


class SpeechMelDataModule(ResumableEpochs, LightningDataModule):
    """Train/val batches of a dataset built by ``python -m speakimg.data.build`` (split from its manifest).

    Args:
        data_dir: the dataset folder.
        batch_size: items per batch (per device under DDP).
        num_workers: DataLoader worker processes.
        latents_vae: hub id or folder of a diffusers pipeline / VAE: batches carry cached ``"latents"``
            instead of ``"image"``; missing latents are computed in ``prepare_data`` (rank 0).
        pin_memory: pin batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        val_batch_size: batch size of the val loader (default ``batch_size``).
        drop_last: drop the last incomplete training batch.
        max_phonemes: longest phoneme-id sequence allowed (PL-BERT has 512 positions).
        latents_device: device used to compute missing latents (default: CUDA if available).
        latents_batch_size: batch size used to compute missing latents.
        sentences: a UTF-8 file with one sentence per line: when ``data_dir`` has no dataset yet (or an
            interrupted build), ``prepare_data`` builds it (rank 0 of each node, before any other rank reads
            it; ``speakimg.data.build_dataset``, resumable).
        build: settings of that build, the fields of :class:`speakimg.data.BuildConfig`: ``tts`` (voice
            specs, e.g. ``festival,espeak``), ``val_fraction``, ``seed``, ``language``, ``tts_options``,
            ``fit`` (a dict of :class:`speakimg.data.CanvasFit` fields). Default: the builder's defaults.
        build_workers: processes of that build (default: the CPUs this process may use).
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 8,
        num_workers: int = 4,
        latents_vae: str | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_batch_size: int | None = None,
        drop_last: bool = False,
        max_phonemes: int = 512,
        latents_device: str | None = None,
        latents_batch_size: int = 8,
        sentences: str | None = None,
        build: dict | None = None,
        build_workers: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.latents_vae = latents_vae
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.val_batch_size = val_batch_size or batch_size
        self.drop_last = drop_last
        self.max_phonemes = max_phonemes
        self.latents_device = latents_device
        self.latents_batch_size = latents_batch_size
        self.sentences = sentences
        self.build_config = _build_config(build)  # a bad setting fails here, before anything runs
        self.build_workers = build_workers
        self.train_dataset: SpeechMelDataset | None = None
        self.val_dataset: SpeechMelDataset | None = None

    # -------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        """Build the dataset if it is missing and ``sentences`` is set; compute missing VAE latents.

        Lightning runs it on one process per node (local rank 0) while the others wait.
        """
        if self.sentences is not None and self._incomplete():
            self._build()
        if self.latents_vae is not None:
            self._records()  # a clear error for a missing manifest before loading any VAE
            cache_latents(self.data_dir, self.latents_vae, self.latents_device, self.latents_batch_size)

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest, split train/val, and validate every file the loaders will read."""
        if self.train_dataset is not None:
            return
        records = self._records()
        train = [r for r in records if r.split == "train"]
        val = [r for r in records if r.split == "val"]
        if not train:
            raise DataError(
                f"{self.data_dir / MANIFEST}: no 'train' items among {len(records)} ok items. Rebuild with a "
                "smaller --val-fraction."
            )
        latents = self._check_latents(records) if self.latents_vae is not None else None
        if latents is None:
            self._check_mels(records)
        self._check_phonemes(records)
        self.train_dataset = SpeechMelDataset(self.data_dir, train, latents)
        self.val_dataset = SpeechMelDataset(self.data_dir, val, latents)
        log.info("speech data %s: %d train, %d val items (%s)", self.data_dir, len(train), len(val),
                 f"latents {latents.name}" if latents else "images")  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(len(self.train_dataset), self.batch_size, world, rank, drop_last=self.drop_last)
        return self._loader(self.train_dataset, self.batch_size, self._start_epoch(sampler), self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_dataset:
            return []  # no val split: Lightning skips validation
        return self._loader(self.val_dataset, self.val_batch_size, None, drop_last=False)

    # -------------------------------------------------------------- helpers

    def _loader(self, dataset: SpeechMelDataset | None, batch_size: int, sampler, drop_last: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=drop_last,
            collate_fn=collate_speech,
        )

    def _incomplete(self) -> bool:
        """No manifest yet, or one that lists fewer items than the build planned (an interrupted build)."""
        if not (self.data_dir / MANIFEST).is_file():
            return True
        from speakimg.data.store import DatasetStore

        settings = DatasetStore(self.data_dir).settings()
        if settings is None:  # not written by the builder: used as it is
            return False
        try:
            return len(read_manifest(self.data_dir, status=None)) < int(settings.get("num_items", 0))
        except DataError:  # an unreadable manifest: the build rewrites it
            return True

    def _build(self) -> None:
        from speakimg.data.builder import build_dataset
        from speakimg.runtime import available_cpus

        workers = self.build_workers if self.build_workers is not None else available_cpus()
        log.info(
            "%s has no dataset yet: building it from %s (%s)", self.data_dir, self.sentences, self.build_config.tts
        )
        summary = build_dataset(self.sentences, self.data_dir, self.build_config, workers)
        log.info("%s", summary.format())
        if summary.built + summary.skipped == 0:
            raise DataError(
                f"{self.data_dir}: no sentence of {self.sentences} could be built ({summary.failed} failed); "
                f"see the error records in {self.data_dir / MANIFEST}"
            )

    def _records(self) -> list[ManifestRecord]:
        if not (self.data_dir / MANIFEST).is_file():
            raise DataError(
                f"{self.data_dir / MANIFEST}: no manifest. Build the dataset first: "
                f"python -m speakimg.data.build --texts SENTENCES.txt --out {self.data_dir} "
                "(or set the data module's `sentences` to build it in prepare_data)"
            )
        records = read_manifest(self.data_dir)
        if not records:
            raise DataError(f"{self.data_dir / MANIFEST}: no ok items (every sentence failed?); see its error records")
        return records

    def _check_mels(self, records: list[ManifestRecord]) -> None:
        for record in records:
            path = self.data_dir / (record.mel or "")
            if not record.mel or not path.is_file():
                raise DataError(f"{path}: the mel of item {record.id} is missing; {repair_hint(self.data_dir)}")
            try:
                shape, dtype = _npy_shape(path)
            except (OSError, ValueError) as error:
                raise DataError(f"{path}: not a readable .npy mel ({error}); {repair_hint(self.data_dir)}") from error
            if tuple(shape) != MEL_SHAPE or dtype.kind != "f":
                raise DataError(
                    f"{path}: a mel of shape {tuple(shape)} and dtype {dtype}; expected float {MEL_SHAPE}. "
                    "Was it written by another tool? Rebuild the dataset with speakimg.data.build."
                )

    def _check_latents(self, records: list[ManifestRecord]) -> Path:
        folder = latents_dir(self.data_dir, self.latents_vae)
        hint = (
            f"run `python -m speakimg.data.latents {self.data_dir} --vae {self.latents_vae}` (or fit once on one GPU)"
        )
        if not (folder / VAE_META).is_file():
            raise DataError(f"{folder}: no latent cache for VAE {self.latents_vae!r}; {hint}")
        missing = [r.id for r in records if not (folder / f"{r.id}.npy").is_file()]
        if missing:
            raise DataError(f"{folder}: {len(missing)} latents missing (e.g. {missing[0]}.npy); {hint}")
        for record in records:  # headers only: fast
            path = folder / f"{record.id}.npy"
            try:
                shape, _ = _npy_shape(path)
            except (OSError, ValueError) as error:
                raise DataError(
                    f"{path}: not a readable latent ({error}); {repair_hint(self.data_dir)} (it removes broken "
                    f"latents), then {hint}"
                ) from error
            if tuple(shape) != LATENT_SHAPE:
                raise DataError(f"{path}: a latent of shape {tuple(shape)}, expected {LATENT_SHAPE}")
        meta = json.loads((folder / VAE_META).read_text("utf-8"))
        log.info("latents of %s (scaling factor %s)", meta.get("vae"), meta.get("scaling_factor"))
        return folder

    def _check_phonemes(self, records: list[ManifestRecord]) -> None:
        for record in records:
            n = len(record.phoneme_ids)
            if n < 2 or n > self.max_phonemes:
                raise DataError(
                    f"{self.data_dir / MANIFEST}: item {record.id} ({record.text!r}) has {n} phoneme ids; expected "
                    f"2..{self.max_phonemes}. Shorten the sentence or rebuild the dataset."
                )


def _build_config(build: dict | None):
    """The :class:`BuildConfig` of the data module's ``build`` settings (a ConfigError names a bad key)."""
    from dataclasses import fields

    from speakimg.data.canvas import CanvasFit
    from speakimg.data.plan import BuildConfig
    from speakimg.errors import ConfigError

    settings = dict(build or {})
    known = {f.name for f in fields(BuildConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"data.build: unknown setting(s) {unknown}; accepted: {sorted(known)}")
    try:
        if isinstance(settings.get("fit"), dict):
            settings["fit"] = CanvasFit(**settings["fit"])
        return BuildConfig(**settings)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"data.build: {error}") from error
