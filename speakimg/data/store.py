"""``DatasetStore``: one speech dataset folder: its layout, records, manifest, settings and checksums.

The layout is the contract of :mod:`speakimg.data.manifest`. The store is the only code that writes
into a dataset folder, always atomically (``speakimg.io``: a unique hidden temporary name, then a
rename), in the order audio, mel, record: an item's record (``records/<id>.json``) marks it finished
and holds the SHA-256 of its files. :meth:`DatasetStore.check_item` verifies an item against them, so
a rebuild, ``speakimg.data.verify`` and a merge all agree on what is intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speakimg.audio.canvas import CANVAS
from speakimg.data.manifest import BUILD_CONFIG, CANVAS_SAMPLES, MANIFEST, ManifestRecord, write_records
from speakimg.errors import DataError
from speakimg.io import atomic_path, clean_temp_files, is_temp_file, write_bytes, write_text

__all__ = ["DatasetStore", "MEL_SHAPE", "STALE_TEMP_SECONDS", "TEXTS", "sha256_file"]

log = logging.getLogger("speakimg.data.store")

TEXTS = "texts.txt"
"""The builder's input sentences, copied into the dataset folder."""
AUDIO, MELS, RECORDS, LATENTS = "audio", "mels", "records", "latents"
MEL_SHAPE = (CANVAS.n_mels, CANVAS.frames)
"""A stored mel: ``[256, 1024]``."""
STALE_TEMP_SECONDS = 60.0
"""Temporary files older than this are left by killed writers (one file takes well under a second to write)."""
_LEGACY_TEMP = re.compile(r"^\..+\.\d+\.tmp(\.tmp)?$")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DatasetStore:
    """The folder of a built speech dataset (see :mod:`speakimg.data.manifest` for the layout).

    Args:
        root: the dataset folder (``DATA_DIR``).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DatasetStore({str(self.root)!r})"

    # ------------------------------------------------------------------ layout

    @staticmethod
    def audio_name(uid: str) -> str:
        return f"{AUDIO}/{uid}.wav"

    @staticmethod
    def mel_name(uid: str) -> str:
        return f"{MELS}/{uid}.npy"

    def record_path(self, uid: str) -> Path:
        return self.root / RECORDS / f"{uid}.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    # ------------------------------------------------------------------ settings and input sentences

    def settings(self) -> dict | None:
        """The stored build settings (``build_config.json``), or ``None`` if the folder has none."""
        path = self.root / BUILD_CONFIG
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(
                f"{path}: unreadable build settings ({error}); restore it or rebuild into a new folder"
            ) from error

    def texts(self) -> list[str]:
        """The input sentences stored with the dataset (``texts.txt``)."""
        path = self.root / TEXTS
        if not path.is_file():
            raise DataError(f"{path}: missing; is {self.root} a folder written by speakimg.data.build?")
        return path.read_text("utf-8").splitlines()

    def create(self, settings: dict, lines: Sequence[str], compare: Sequence[str]) -> None:
        """Create the layout and store the settings and sentences; refuse a folder built with other settings.

        Args:
            settings: what ``build_config.json`` holds.
            lines: the input sentences.
            compare: the keys of ``settings`` that an existing folder must agree on.
        """
        for sub in (AUDIO, MELS, RECORDS):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        existing = self.settings()
        if existing is not None:
            differ = [k for k in compare if existing.get(k) != settings.get(k)]
            if differ:
                detail = "; ".join(f"{k}: {existing.get(k)!r} there, {settings.get(k)!r} now" for k in differ)
                raise DataError(
                    f"{self.root} holds a dataset built with other settings ({detail}). Rerun with the same "
                    "settings to resume, or choose another --out."
                )
            if existing == settings and (self.root / TEXTS).is_file():
                return
        write_text(self.root / BUILD_CONFIG, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        write_text(self.root / TEXTS, "".join(line + "\n" for line in lines))

    def temp_files(self) -> list[Path]:
        """Temporary files of writers in the folder (``speakimg.io`` names, and the older builder's ``.<name>.<pid>.tmp``)."""
        return sorted(p for p in self.root.rglob(".*") if is_temp_file(p) or _LEGACY_TEMP.match(p.name))

    def clean_temp_files(self, older_than_s: float = STALE_TEMP_SECONDS) -> list[Path]:
        """Remove the temporary files of killed writers (``speakimg.io.clean_temp_files``); returns them."""
        removed = clean_temp_files(self.root, older_than_s=older_than_s)
        now = time.time()
        for path in self.temp_files():  # names of builds before speakimg.io, e.g. ``.x.wav.123.tmp.tmp``
            if _LEGACY_TEMP.match(path.name) and now - path.stat().st_mtime >= older_than_s:
                path.unlink(missing_ok=True)
                removed.append(path)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), self.root)
        return removed

    # ------------------------------------------------------------------ items

    def write_audio(self, uid: str, audio) -> tuple[str, str]:
        """Store an item's canvas audio (16-bit PCM wav); returns ``(relative path, sha256)``."""
        from speakimg.audio import save_audio

        rel = self.audio_name(uid)
        with atomic_path(self.root / rel) as tmp:
            save_audio(tmp, audio)
            digest = sha256_file(tmp)
        return rel, digest

    def write_mel(self, uid: str, mel: np.ndarray) -> tuple[str, str]:
        """Store an item's log-mel (``.npy``); returns ``(relative path, sha256)``."""
        buffer = io.BytesIO()
        np.save(buffer, mel, allow_pickle=False)
        data = buffer.getvalue()
        rel = self.mel_name(uid)
        write_bytes(self.root / rel, data)
        return rel, hashlib.sha256(data).hexdigest()

    def write_record(self, record: ManifestRecord) -> None:
        """Store an item's record: written last, it marks the item finished."""
        write_text(self.record_path(record.id), record.to_json() + "\n")

    def read_record(self, uid: str) -> ManifestRecord | None:
        """An item's record, or ``None`` if it has none (an unreadable record counts as none: rebuilt)."""
        path = self.record_path(uid)
        try:
            return ManifestRecord.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as error:
            log.warning("ignoring unreadable record %s (%s); the item is rebuilt", path, error)
            return None

    def has_files(self, record: ManifestRecord | None) -> bool:
        """An ok record whose files exist (a cheap test; :meth:`check_item` reads them)."""
        return (
            record is not None
            and record.status == "ok"
            and all(rel and (self.root / rel).is_file() for rel in (record.audio, record.mel))
        )

    def check_item(self, record: ManifestRecord) -> list[str]:
        """What is wrong with an ok item's files (empty: intact).

        Checked: both files present and readable; the SHA-256 recorded at build time (when there is one);
        the audio is 16 kHz mono with the canvas length; the mel is float16 ``[256, 1024]`` and finite.
        """
        if record.status != "ok":
            return [f"item {record.id} has status {record.status!r}"]
        problems = []
        for rel, parse in ((record.audio, _check_audio), (record.mel, _check_mel)):
            if not rel:
                problems.append(f"record {record.id} names no file ({'audio' if parse is _check_audio else 'mel'})")
                continue
            path = self.root / rel
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                problems.append(f"{path}: missing")
                continue
            except OSError as error:
                problems.append(f"{path}: unreadable ({error})")
                continue
            expected = record.checksums.get(rel)
            if expected and hashlib.sha256(data).hexdigest() != expected:
                problems.append(f"{path}: checksum mismatch (the file changed or is corrupt since it was built)")
                continue
            problem = parse(data)
            if problem:
                problems.append(f"{path}: {problem}")
        return problems

    def remove_item(self, uid: str) -> None:
        """Delete an item's record and every file derived from it (cached latents included)."""
        self.record_path(uid).unlink(missing_ok=True)
        for rel in (self.audio_name(uid), self.mel_name(uid)):
            (self.root / rel).unlink(missing_ok=True)
        self.invalidate(uid)

    def invalidate(self, uid: str) -> list[Path]:
        """Remove the cached latents of an item whose files are rebuilt; returns what was removed."""
        removed = []
        latents = self.root / LATENTS
        if latents.is_dir():
            for folder in latents.iterdir():
                path = folder / f"{uid}.npy"
                if path.is_file():
                    path.unlink()
                    removed.append(path)
        return removed

    def copy_item(self, source: DatasetStore, record: ManifestRecord) -> None:
        """Copy an item (files, then record) from another store of the same build."""
        for rel in (record.audio, record.mel):
            if rel:
                with atomic_path(self.root / rel) as tmp:
                    shutil.copyfile(source.root / rel, tmp)
        self.write_record(record)

    # ------------------------------------------------------------------ the manifest

    def collect(self, ids: Sequence[str]) -> tuple[list[ManifestRecord], list[str]]:
        """Records of ``ids`` in order (ok ones whose files exist, and error records), and the ids without one."""
        records, missing = [], []
        for uid in ids:
            record = self.read_record(uid)
            if record is None or (record.status == "ok" and not self.has_files(record)):
                missing.append(uid)
            else:
                records.append(record)
        return records, missing

    def write_manifest(self, records: Sequence[ManifestRecord]) -> Path:
        """Write ``manifest.jsonl`` (atomically)."""
        return write_records(self.root, list(records))


def _check_audio(data: bytes) -> str | None:
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile raises its own error types
        return f"not a readable wav ({type(error).__name__}: {error})"
    if rate != CANVAS.sample_rate or audio.shape[1] != 1:
        return f"{rate} Hz, {audio.shape[1]} channel(s); expected {CANVAS.sample_rate} Hz mono"
    if audio.shape[0] != CANVAS_SAMPLES:
        return f"{audio.shape[0]} samples, expected {CANVAS_SAMPLES} (the 10.24 s canvas): truncated?"
    return None


def _check_mel(data: bytes) -> str | None:
    try:
        mel = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return f"not a readable .npy ({error})"
    if tuple(mel.shape) != MEL_SHAPE or mel.dtype != np.float16:
        return f"a mel of shape {tuple(mel.shape)} and dtype {mel.dtype}, expected float16 {MEL_SHAPE}"
    if not np.isfinite(mel).all():
        return f"{int(mel.size - np.isfinite(mel).sum())} NaN or infinite values"
    return None
