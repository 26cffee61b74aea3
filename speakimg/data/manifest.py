"""The on-disk layout of a built speech dataset: the contract between the builder and every reader.

::

    DATA_DIR/
      manifest.jsonl        one JSON record per sentence (ok items and error records), in input order
      build_config.json     the settings the dataset was built with
      texts.txt             the input sentences (one per line), as given to the builder
      audio/<id>.wav        16 kHz mono PCM, the 10.24 s canvas (163 840 samples; speech in the first 10 s)
      mels/<id>.npy         float16 [256, 1024] natural-log mel = speakimg.audio.log_mel(audio)
      records/<id>.json     the builder's per-item record (the manifest is assembled from these)
      latents/<vae-key>/<id>.npy   optional cached VAE latents, float16 [4, 32, 128] (x scaling_factor)

Paths in the manifest are relative to DATA_DIR, so a dataset folder can be moved or copied. An item id
is a hash of its sentence, so ids are stable when sentences are added or reordered.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from speakimg.audio.canvas import CANVAS
from speakimg.errors import DataError

__all__ = [
    "MANIFEST",
    "BUILD_CONFIG",
    "CANVAS_SAMPLES",
    "ManifestRecord",
    "read_manifest",
    "write_records",
    "load_mel",
    "load_record_audio",
]

MANIFEST = "manifest.jsonl"
BUILD_CONFIG = "build_config.json"
CANVAS_SAMPLES = CANVAS.num_samples
"""Samples of the 10.24 s canvas audio: ``log_mel`` of it has exactly 1024 frames."""


@dataclass
class ManifestRecord:
    """One line of ``manifest.jsonl``. ``status`` is ``"ok"`` or ``"error"`` (then ``error`` says why)."""

    id: str
    text: str
    status: str = "ok"
    split: str = "train"
    normalized: str = ""
    phonemes: str = ""
    phoneme_ids: list[int] = field(default_factory=list)
    audio: str | None = None
    mel: str | None = None
    num_samples: int = 0
    speech_seconds: float = 0.0
    speech_start: int = 0
    tts: str = ""
    error: str | None = None
    extra: dict = field(default_factory=dict)
    index: int = -1
    """Line number (0-based) of the sentence in the builder's input; the manifest is sorted by it."""
    fit: str = ""
    """How the speech was fitted to the canvas: ``"pad"`` or ``"stretch"``."""
    stretch: float = 1.0
    """Duration factor applied to the speech (1.0 = natural speed)."""
    stretch_method: str = "none"
    """``"none"``, ``"native"`` (the engine's rate control) or the time-stretch method used."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> ManifestRecord:
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known}
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.extra.update(extra)
        return record


def read_manifest(
    data_dir: str | os.PathLike, status: str | None = "ok", split: str | None = None
) -> list[ManifestRecord]:
    """Records of ``DATA_DIR/manifest.jsonl`` filtered by status (``None``: all) and split."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest. Is {data_dir} a dataset built by `python -m speakimg.data.build`?")
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = ManifestRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as error:
                raise DataError(f"{path}:{line_no}: not a manifest record ({error})") from error
            if (status is None or record.status == status) and (split is None or record.split == split):
                records.append(record)
    return records


def write_records(data_dir: str | os.PathLike, records: list[ManifestRecord]) -> Path:
    """Write ``manifest.jsonl`` atomically (a temporary file unique to this process, then rename)."""
    path = Path(data_dir) / MANIFEST
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
    os.replace(tmp, path)
    return path


def load_mel(data_dir: str | os.PathLike, record: ManifestRecord) -> torch.Tensor:
    """The stored log-mel of a record as float32 ``[n_mels, frames]``."""
    if not record.mel:
        raise DataError(f"record {record.id} has no mel (status {record.status!r})")
    path = Path(data_dir) / record.mel
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the stored mel of {record.id} ({error})") from error
    return torch.from_numpy(array.astype(np.float32))


def load_record_audio(data_dir: str | os.PathLike, record: ManifestRecord) -> torch.Tensor:
    """The stored 16 kHz canvas audio of a record as float32 ``[T]``."""
    from speakimg.audio import load_audio

    if not record.audio:
        raise DataError(f"record {record.id} has no audio (status {record.status!r})")
    return load_audio(Path(data_dir) / record.audio)
