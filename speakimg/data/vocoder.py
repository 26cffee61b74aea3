"""Vocoder training data: random audio segments of a built dataset with the matching mel frames.

A built dataset (``speakimg.data.manifest``: ``manifest.jsonl``, ``audio/<id>.wav``, ``mels/<id>.npy``)
gives, per item, a random segment of ``segment_size`` samples (a multiple of the hop, 160) and its
``segment_size / 160`` mel frames ``[256, F]``. Frame ``i`` of a clip's mel belongs to samples
``[160 i, 160 (i + 1))``, so a crop starting at frame ``s`` pairs with audio ``[160 s, 160 (s + F))``.

Where the mels come from (``mel_dir``):

- ``"mels"`` (default): the dataset's stored mels (``log_mel`` of the clip: train from scratch or fine-tune);
- another folder relative to the dataset, holding ``<id>.npy`` ``[256, frames]``: e.g. the VAE
  round-trip mels ``python -m speakimg.vocoder.prepare_mels DATA_DIR --vae MODEL`` writes to
  ``mels_vae/`` (what generated spectrograms look like; fine-tune the vocoder on them);
- ``None``: computed on the fly from each audio segment with :func:`speakimg.audio.log_mel` (jik876's way).

The loss mel is always computed from the real audio by the module. Segments are drawn inside the
speech of each clip (``speech_start`` samples, ``speech_seconds`` long, when the manifest has them).

Randomness is a pure function of ``(seed, epoch, item)`` and the data module records how far into
the epoch training got (:mod:`speakimg.data.epochs`), so a run resumed from any checkpoint (mid-epoch
included, with any ``num_workers``) sees exactly the batches the uninterrupted run would have seen.
Under DDP every rank reads its own shard of each epoch.

Clips whose speech is shorter than ``segment_size`` are used (their segments are padded with the
clip's silence, as the original HiFi-GAN pads short clips), but ``setup`` warns, naming how many and
an example: a dataset of mostly short clips trains the vocoder on silence.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from speakimg.audio import LOG_MEL_MIN, MelConfig, log_mel
from speakimg.data.epochs import EpochSampler, ResumableEpochs
from speakimg.data.manifest import ManifestRecord, read_manifest, repair_hint
from speakimg.errors import ConfigError, DataError

__all__ = ["HOP", "VocoderSegments", "VocoderClips", "SegmentSampler", "VocoderDataModule"]

log = logging.getLogger(__name__)

HOP = 160
"""Samples per mel frame of the dataset (Auffusion's hop)."""
_MIN_SEGMENT = 8 * HOP  # the mel front end needs more than (n_fft - hop) / 2 = 944 samples


def check_segment_size(segment_size: int) -> int:
    """``segment_size`` or a :class:`ConfigError` if it is not a positive multiple of the hop (160)."""
    if isinstance(segment_size, bool) or not isinstance(segment_size, int) or segment_size % HOP:
        lower, upper = (segment_size // HOP) * HOP, (segment_size // HOP + 1) * HOP
        raise ConfigError(
            f"segment_size {segment_size!r} is not a multiple of the hop ({HOP} samples): the audio segment must "
            f"cover whole mel frames. Use e.g. {lower or upper} or {upper}."
        )
    if segment_size < _MIN_SEGMENT:
        raise ConfigError(f"segment_size {segment_size} is too short: use at least {_MIN_SEGMENT} samples (8 frames)")
    return segment_size


class _ClipReader:
    """Reads a record's audio slice and mel frames (stored, prepared or computed) with clear errors."""

    def __init__(self, data_dir: Path, mel_dir: str | None, mel_config: MelConfig) -> None:
        self.data_dir = data_dir
        self.mel_dir = mel_dir
        self.mel_config = mel_config

    def audio_path(self, record: ManifestRecord) -> Path:
        if not record.audio:
            raise DataError(f"record {record.id} has no audio (status {record.status!r})")
        return self.data_dir / record.audio

    def mel_path(self, record: ManifestRecord) -> Path | None:
        if self.mel_dir is None:
            return None
        if self.mel_dir == "mels" and record.mel:
            return self.data_dir / record.mel
        return self.data_dir / self.mel_dir / f"{record.id}.npy"

    def open_mel(self, record: ManifestRecord) -> np.ndarray | None:
        path = self.mel_path(record)
        if path is None:
            return None
        if not path.is_file():
            hint = (
                f" Write them with `python -m speakimg.vocoder.prepare_mels {self.data_dir} --vae MODEL --out {self.mel_dir}`."
                if self.mel_dir != "mels"
                else ""
            )
            raise DataError(f"{path}: no mel for record {record.id} in '{self.mel_dir}'.{hint}")
        try:
            mel = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:  # e.g. truncated: shorter than its header says
            raise DataError(f"{path}: cannot read the mel of {record.id} ({error}); {self._fix()}") from error
        if mel.ndim != 2 or mel.shape[0] != self.mel_config.n_mels:
            raise DataError(
                f"{path}: mel of shape {mel.shape}, expected [{self.mel_config.n_mels}, frames] "
                f"({self.mel_config.n_mels} mel bins)"
            )
        return mel

    def _fix(self) -> str:
        if self.mel_dir in (None, "mels"):
            return repair_hint(self.data_dir)
        return f"write it again with `python -m speakimg.vocoder.prepare_mels {self.data_dir} --vae MODEL --out {self.mel_dir}`"

    def frames(self, record: ManifestRecord, mel: np.ndarray | None) -> tuple[int, int]:
        """``(audio samples, usable frames)`` of a record."""
        path = self.audio_path(record)
        try:
            info = sf.info(str(path))
        except Exception as error:
            raise DataError(
                f"{path}: cannot read the audio of {record.id} ({error}); {repair_hint(self.data_dir)}"
            ) from error
        if info.samplerate != self.mel_config.sample_rate:
            raise DataError(
                f"{path}: sampled at {info.samplerate} Hz, the vocoder data must be {self.mel_config.sample_rate} Hz"
            )
        frames = info.frames // HOP
        if mel is not None:
            frames = min(frames, mel.shape[1])
        return info.frames, frames

    def speech_frames(self, record: ManifestRecord, frames: int) -> tuple[int, int]:
        """First and end frame of the speech in the clip (the whole clip if the manifest does not say)."""
        start = min(max(record.speech_start, 0) // HOP, max(frames - 1, 0))
        if record.speech_seconds and record.speech_seconds > 0:
            end = math.ceil((record.speech_start + record.speech_seconds * self.mel_config.sample_rate) / HOP)
            end = min(max(end, start + 1), frames)
        else:
            end = frames
        return start, end

    def read(self, record: ManifestRecord, mel: np.ndarray | None, start: int, num_frames: int) -> dict[str, Any]:
        """Audio ``[1, num_frames * HOP]`` and mel ``[n_mels, num_frames]`` from frame ``start`` (zero-padded)."""
        path = self.audio_path(record)
        n = num_frames * HOP
        try:
            audio, _ = sf.read(str(path), start=start * HOP, frames=n, dtype="float32", always_2d=True)
        except Exception as error:
            raise DataError(
                f"{path}: cannot read the audio of {record.id} ({error}); {repair_hint(self.data_dir)}"
            ) from error
        audio = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))
        if audio.numel() < n:
            audio = torch.nn.functional.pad(audio, (0, n - audio.numel()))
        if mel is None:
            mel_t = log_mel(audio, self.mel_config)
        else:
            crop = np.asarray(mel[:, start : start + num_frames], dtype=np.float32)
            mel_t = torch.from_numpy(crop)
            if mel_t.shape[1] < num_frames:
                mel_t = torch.nn.functional.pad(mel_t, (0, num_frames - mel_t.shape[1]), value=LOG_MEL_MIN)
        if not torch.isfinite(mel_t).all():
            raise DataError(
                f"{self.mel_path(record) or path}: the mel of {record.id} has NaN or infinite values; {self._fix()}"
            )
        return {"mel": mel_t, "audio": audio.unsqueeze(0), "id": record.id}


class VocoderSegments(Dataset):
    """Training items: a random ``segment_size`` crop inside the speech of each clip.

    Indexed by ``(index, epoch)`` (what :class:`SegmentSampler` yields): the crop is a pure function of
    ``(seed, epoch, index)``. A plain integer index means epoch 0.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        records: list[ManifestRecord],
        segment_size: int,
        mel_dir: str | None = "mels",
        seed: int = 1234,
        mel_config: MelConfig = MelConfig(),
    ) -> None:
        self.records = records
        self.segment_frames = check_segment_size(segment_size) // HOP
        self.seed = seed
        self.reader = _ClipReader(Path(data_dir), mel_dir, mel_config)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        record = self.records[index]
        mel = self.reader.open_mel(record)
        _, frames = self.reader.frames(record, mel)
        first, end = self.reader.speech_frames(record, frames)
        last = max(first, end - self.segment_frames)
        rng = np.random.default_rng([self.seed, epoch, index])
        start = int(rng.integers(first, last + 1))
        return self.reader.read(record, mel, start, self.segment_frames)


class VocoderClips(Dataset):
    """Validation items: a fixed crop per clip, from the start of its speech, at most ``max_frames`` long."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        records: list[ManifestRecord],
        max_frames: int | None = None,
        mel_dir: str | None = "mels",
        mel_config: MelConfig = MelConfig(),
    ) -> None:
        self.records = records
        self.max_frames = max_frames
        self.reader = _ClipReader(Path(data_dir), mel_dir, mel_config)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        mel = self.reader.open_mel(record)
        _, frames = self.reader.frames(record, mel)
        first, end = self.reader.speech_frames(record, frames)
        length = max(end - first, _MIN_SEGMENT // HOP)
        if self.max_frames:
            length = min(length, self.max_frames)
        return self.reader.read(record, mel, first, length)


class SegmentSampler(EpochSampler):
    """:class:`~speakimg.data.epochs.EpochSampler` over a dataset's items, yielding ``(index, epoch)`` keys.

    Only full batches (``drop_last``); ``samples_per_epoch`` repeats the items (further permutations).
    Being a ``DistributedSampler``, Lightning keeps it instead of injecting its own.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 1234,
        samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__(len(dataset), batch_size, num_replicas, rank, seed, samples_per_epoch, drop_last=True)

    def key(self, index: int) -> tuple[int, int]:
        return (index, self.epoch)


class VocoderDataModule(ResumableEpochs, LightningDataModule):
    """Random segments of a built speech dataset for HiFi-GAN training (see the module docstring).

    Args:
        data_dir: a dataset built by ``python -m speakimg.data.build`` (manifest + audio + mels).
        segment_size: samples per training segment, a multiple of 160 (e.g. 8000 or 8320, not 8192).
        batch_size: segments per batch and per process.
        mel_dir: ``"mels"`` (stored), a prepared folder such as ``"mels_vae"``, or ``None`` (computed).
        val_split: manifest split used for validation; if it has no records, the last ``num_val``
            training records (by id) are held out instead.
        num_val: how many clips to hold out when ``val_split`` is empty.
        val_max_frames: validation crops start at the speech and are at most this many frames (None: all speech).
        samples_per_epoch: segments per epoch (default: one per clip); set it for tiny datasets.
        seed: drives the epoch order and every crop.
    """

    def __init__(
        self,
        data_dir: str,
        segment_size: int = 8000,
        batch_size: int = 16,
        mel_dir: str | None = "mels",
        val_split: str = "val",
        num_val: int = 4,
        val_max_frames: int | None = 500,
        samples_per_epoch: int | None = None,
        num_workers: int = 4,
        seed: int = 1234,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        self.data_dir = str(data_dir)
        self.segment_size = check_segment_size(segment_size)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        if val_max_frames is not None and val_max_frames < _MIN_SEGMENT // HOP:
            raise ConfigError(
                f"val_max_frames {val_max_frames} is too short: use at least {_MIN_SEGMENT // HOP} frames"
            )
        self.mel_dir = mel_dir
        self.val_split = val_split
        self.num_val = num_val
        self.val_max_frames = val_max_frames
        self.samples_per_epoch = samples_per_epoch
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_records: list[ManifestRecord] = []
        self.val_records: list[ManifestRecord] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_records:
            return
        records = [r for r in read_manifest(self.data_dir) if r.audio]
        if not records:
            raise DataError(f"{self.data_dir}: the manifest has no usable ('ok') records with audio")
        val = [r for r in records if r.split == self.val_split]
        train = [r for r in records if r.split == "train"]
        if not val and self.num_val > 0:
            train = sorted(train, key=lambda r: r.id)
            if len(train) <= self.num_val:
                raise DataError(
                    f"{self.data_dir}: {len(train)} training clips and no '{self.val_split}' split: need more than "
                    f"num_val={self.num_val} clips to hold some out for validation"
                )
            train, val = train[: -self.num_val], train[-self.num_val :]
            log.info(
                "no '%s' split in %s: holding out %d clips for validation", self.val_split, self.data_dir, len(val)
            )
        if not train:
            raise DataError(f"{self.data_dir}: no 'train' records")
        self.train_records, self.val_records = train, val
        reader = _ClipReader(Path(self.data_dir), self.mel_dir, MelConfig())
        reader.open_mel(train[0])  # fail early on a missing mel folder, with the hint
        self._warn_short_clips(reader)

    def _warn_short_clips(self, reader: _ClipReader) -> None:
        """Warn when training clips hold less speech (or audio) than one segment."""
        segment_frames = self.segment_size // HOP
        short = []
        for record in self.train_records:
            _, frames = reader.frames(record, None)
            first, end = reader.speech_frames(record, frames)
            if end - first < segment_frames:
                short.append((record, (end - first) * HOP / reader.mel_config.sample_rate))
        if short:
            record, seconds = short[0]
            message = (
                f"{self.data_dir}: {len(short)} of {len(self.train_records)} training clips hold less speech than "
                f"one segment ({self.segment_size / reader.mel_config.sample_rate:.2f} s), e.g. {record.id} "
                f"({seconds:.2f} s, {reader.audio_path(record)}): their segments are padded with silence. Lower "
                "segment_size, or drop such clips if they are TTS failures (speakimg.data.report lists them)."
            )
            warnings.warn(message, UserWarning, stacklevel=2)

    def train_dataloader(self) -> DataLoader:
        dataset = VocoderSegments(self.data_dir, self.train_records, self.segment_size, self.mel_dir, self.seed)
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = SegmentSampler(dataset, self.batch_size, world, rank, self.seed, self.samples_per_epoch)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self._start_epoch(sampler),
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        dataset = VocoderClips(self.data_dir, self.val_records, self.val_max_frames, self.mel_dir)
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=min(self.num_workers, 2))
