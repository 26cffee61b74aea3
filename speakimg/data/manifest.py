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
is a hash of its sentence, so ids are stable when sentences are added or reordered. Each ok record
carries the SHA-256 of its files (``checksums``), written at build time and checked by
``python -m speakimg.data.verify``; the folder itself is managed by :class:`speakimg.data.store.DatasetStore`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speakimg.audio.canvas import CANVAS
from speakimg.errors import DataError
from speakimg.io import atomic_write

if TYPE_CHECKING:
    import torch

__all__ = [
    "MANIFEST",
    "BUILD_CONFIG",
    "CANVAS_SAMPLES",
    "ManifestRecord",
    "read_manifest",
    "write_records",
    "load_array",
    "load_mel",
    "load_record_audio",
    "repair_hint",
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
    voice: str = ""
    """The voice spec that spoke the item (``festival``, ``piper:joe``, ...; see ``speakimg.tts.parse_voices``)."""
    checksums: dict[str, str] = field(default_factory=dict)
    """SHA-256 (hex) of the item's files, by path relative to DATA_DIR, recorded when they were written."""
    tts_settings: dict = field(default_factory=dict)
    """What decided the engine's audio (``TTSEngine.settings``: e.g. Piper's voice file and fixed noise scales)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> ManifestRecord:
        """A record from its JSON object; a field of the wrong type raises ``TypeError`` naming the field."""
        if not isinstance(data, dict):
            raise TypeError(f"a record is a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known}
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            problem = _type_problem(name, value)
            if problem:
                raise TypeError(f"field {name!r} {problem}, got {_show(value)}")
        for name in ("id", "text"):
            if name not in values:
                raise TypeError(f"field {name!r} is missing")
        record = cls(**values)
        record.extra.update(extra)
        return record


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STRINGS = ("id", "text", "status", "split", "normalized", "phonemes", "tts", "fit", "stretch_method", "voice")
_OPTIONAL_STRINGS = ("audio", "mel", "error")
_INTS = ("num_samples", "speech_start", "index")
_NUMBERS = ("speech_seconds", "stretch")


def _type_problem(name: str, value: object) -> str | None:
    """What is wrong with the type of one record field (``None``: nothing)."""
    if name in _STRINGS and not isinstance(value, str):
        return "must be a string"
    if name in _OPTIONAL_STRINGS and value is not None and not isinstance(value, str):
        return "must be a string or null"
    if name in _INTS and not _is_int(value):
        return "must be an integer"
    if name in _NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "must be a number"
    if name == "phoneme_ids" and not (isinstance(value, list) and all(_is_int(v) for v in value)):
        return "must be a list of integers (PL-BERT ids)"
    if name in ("extra", "checksums", "tts_settings") and not isinstance(value, dict):
        return "must be an object"
    if name == "checksums" and not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "must map file paths to SHA-256 strings"
    return None


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
                raise DataError(
                    f"{path}:{line_no}: not a manifest record ({error}). Rewrite the manifest with "
                    f"`python -m speakimg.data.verify {data_dir} --repair` (a built dataset) or fix that line."
                ) from error
            if (status is None or record.status == status) and (split is None or record.split == split):
                records.append(record)
    return records


def write_records(data_dir: str | os.PathLike, records: list[ManifestRecord]) -> Path:
    """Write ``manifest.jsonl`` atomically (``speakimg.io.atomic_write``)."""
    path = Path(data_dir) / MANIFEST
    with atomic_write(path) as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
    return path


def repair_hint(data_dir: str | os.PathLike) -> str:
    """What to run when a stored file of a built dataset is broken."""
    return f"check and rebuild the broken items with `python -m speakimg.data.verify {data_dir} --repair`"


def load_array(
    path: str | os.PathLike, what: str, data_dir: str | os.PathLike, shape: tuple | None = None
) -> np.ndarray:
    """A stored ``.npy`` array, checked: readable, of ``shape`` (when given) and finite.

    Raises:
        DataError: naming the file, what is wrong with it and the command that repairs it.
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: the {what} is missing; {repair_hint(data_dir)}") from None
    except (OSError, ValueError, EOFError) as error:  # truncated or not a .npy file
        raise DataError(f"{path}: cannot read the {what} ({error}); {repair_hint(data_dir)}") from error
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise DataError(
            f"{path}: the {what} has shape {tuple(array.shape)}, expected {tuple(shape)}; {repair_hint(data_dir)}"
        )
    if array.dtype.kind != "f":
        raise DataError(f"{path}: the {what} has dtype {array.dtype}, expected floats; {repair_hint(data_dir)}")
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise DataError(
            f"{path}: the {what} has {bad} NaN or infinite values; it must not reach training. {repair_hint(data_dir)}"
        )
    return array


def load_mel(data_dir: str | os.PathLike, record: ManifestRecord) -> torch.Tensor:
    """The stored log-mel of a record as float32 ``[n_mels, frames]`` (checked: readable and finite)."""
    if not record.mel:
        raise DataError(f"record {record.id} has no mel (status {record.status!r})")
    array = load_array(Path(data_dir) / record.mel, f"stored mel of {record.id}", data_dir)
    if array.ndim != 2:
        raise DataError(f"{Path(data_dir) / record.mel}: the stored mel of {record.id} has shape {array.shape}, "
                        f"expected [n_mels, frames]; {repair_hint(data_dir)}")  # fmt: skip
    import torch

    return torch.from_numpy(array.astype(np.float32))


def load_record_audio(data_dir: str | os.PathLike, record: ManifestRecord) -> torch.Tensor:
    """The stored 16 kHz canvas audio of a record as float32 ``[T]``."""
    from speakimg.audio import load_audio

    if not record.audio:
        raise DataError(f"record {record.id} has no audio (status {record.status!r})")
    return load_audio(Path(data_dir) / record.audio)
