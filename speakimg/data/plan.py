"""Planning a dataset build: the settings, which items, their seeds, voices and the validation split.

Everything here is a pure function of the input lines and :class:`BuildConfig`, so 1 or N workers,
a resumed or a sharded build plan the same items:

- an item's id is a hash of its sentence (:func:`item_id`); duplicates are built once;
- its random placement seed derives from ``(seed, id)``;
- with several voices, the speakable items are ranked by ``hash(seed, id)`` and dealt to the voices in
  turn (balanced within one item, deterministic for a seed);
- the validation split is the ``round(val_fraction x n)`` items (at least one when ``val_fraction > 0``
  and ``n >= 2``) with the smallest ``hash(seed, id)``, chosen among the items that were **built**
  (:func:`assign_splits`, when the manifest is written), so failed sentences never take validation slots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from speakimg.data.canvas import SPEECH_SAMPLES, CanvasFit
from speakimg.data.manifest import CANVAS_SAMPLES, ManifestRecord

__all__ = ["BuildConfig", "Item", "OUTPUT_KEYS", "assign_splits", "item_id", "plan_items", "select_val"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides a dataset's contents (stored in ``build_config.json``).

    Attributes:
        tts: one voice spec or several, comma-separated: ``festival``, ``festival,piper:joe,espeak``
            (engines of ``speakimg.tts.ENGINES``; ``engine:voice`` picks the engine's voice).
        tts_options: keyword arguments of the engines (e.g. ``{"model": "facebook/mms-tts-eng"}``), given to
            each engine whose factory takes them.
        fit: how speech is fitted to the canvas (:class:`~speakimg.data.canvas.CanvasFit`).
        val_fraction: share of the built sentences in the validation split.
        seed: seeds the random placement, the voice assignment and the split (per item, from the item id).
        language: espeak language of the phonemizer.
    """

    tts: str = "festival"
    tts_options: dict = field(default_factory=dict)
    fit: CanvasFit = field(default_factory=CanvasFit)
    val_fraction: float = 0.05
    seed: int = 0
    language: str = "en-us"

    def __post_init__(self) -> None:
        from speakimg.tts import parse_voices

        voices = parse_voices(self.tts)  # ConfigError (a ValueError) naming the bad spec
        object.__setattr__(self, "tts", ",".join(str(v) for v in voices))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def voices(self) -> list[str]:
        """The voice specs, in the order given (one for a single-voice build)."""
        return self.tts.split(",")

    def to_dict(self) -> dict:
        """The settings plus the fixed formats they produce (what ``build_config.json`` holds)."""
        from speakimg import __version__
        from speakimg.audio import SAMPLE_RATE, MelConfig

        return {
            "format": FORMAT_VERSION,
            "speakimg": __version__,
            "tts": self.tts,
            "tts_options": {k: str(v) for k, v in sorted(self.tts_options.items())},
            "fit": self.fit.to_dict(),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "language": self.language,
            "sample_rate": SAMPLE_RATE,
            "canvas_samples": CANVAS_SAMPLES,
            "speech_samples": SPEECH_SAMPLES,
            "audio_format": "wav PCM_16",
            "mel": MelConfig().to_dict(),
            "mel_dtype": "float16",
        }

    @classmethod
    def from_dict(cls, data: dict) -> BuildConfig:
        return cls(
            tts=data["tts"],
            tts_options=dict(data.get("tts_options", {})),
            fit=CanvasFit(**data["fit"]),
            val_fraction=data["val_fraction"],
            seed=data["seed"],
            language=data.get("language", "en-us"),
        )


OUTPUT_KEYS = (
    "format",
    "tts",
    "tts_options",
    "fit",
    "val_fraction",
    "seed",
    "language",
    "sample_rate",
    "canvas_samples",
    "mel",
    "texts_sha256",
)
"""Settings that change the files; a rerun or a merge must agree on all of them."""


@dataclass(frozen=True)
class Item:
    """One input line: id, position, text, planned split, per-item seed, voice (``error`` for an empty line)."""

    id: str
    index: int
    text: str
    split: str
    seed: int
    error: str | None = None
    voice: str = ""


def item_id(text: str) -> str:
    """Stable id of a sentence: the first 16 hex digits of the SHA-256 of its stripped text."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def _hash_int(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def select_val(ids: Sequence[str], seed: int, val_fraction: float) -> set[str]:
    """The validation ids among ``ids``: the ``round(val_fraction * n)`` smallest ``hash(seed, id)``.

    At least one when ``val_fraction > 0`` and ``n >= 2``, and never all of them. Depends on the seed and
    the set of ids only (not their order).
    """
    unique = sorted(set(ids))
    n_val = round(val_fraction * len(unique))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    return set(sorted(unique, key=lambda uid: _hash_int(seed, uid, "split"))[:n_val])


def plan_items(
    lines: Sequence[str], seed: int = 0, val_fraction: float = 0.05, voices: Sequence[str] = ("festival",)
) -> tuple[list[Item], int]:
    """Items of the input lines in order, and the number of duplicate sentences dropped.

    Empty lines become items with an ``error``. ``split`` is the planned split, the one the manifest
    gets if every speakable item builds (the manifest's split is chosen among the built items:
    :func:`assign_splits`). ``voice`` deals the voices to the speakable items in ``hash(seed, id)`` order.
    """
    if not voices:
        raise ValueError("plan_items needs at least one voice")
    items: list[Item] = []
    seen: set[str] = set()
    duplicates = 0
    for index, line in enumerate(lines):
        text = line.strip()
        if not text:
            uid = f"empty-line-{index + 1:06d}"
            error = f"TextError: line {index + 1} is empty: nothing to speak"
            items.append(Item(uid, index, "", "train", 0, error, voices[0]))
            continue
        uid = item_id(text)
        if uid in seen:
            duplicates += 1
            continue
        seen.add(uid)
        items.append(Item(uid, index, text, "train", _hash_int(seed, uid, "item")))
    speakable = [item.id for item in items if item.error is None]
    val_ids = select_val(speakable, seed, val_fraction)
    ranked = sorted(speakable, key=lambda uid: _hash_int(seed, uid, "voice"))
    voice_of = {uid: voices[rank % len(voices)] for rank, uid in enumerate(ranked)}
    planned = []
    for item in items:
        if item.error is None:
            item = replace(item, split="val" if item.id in val_ids else "train", voice=voice_of[item.id])
        planned.append(item)
    return planned, duplicates


def assign_splits(records: Sequence[ManifestRecord], seed: int, val_fraction: float) -> list[ManifestRecord]:
    """The records with their final split: validation chosen among the ``ok`` ones; error records get ``""``."""
    val_ids = select_val([r.id for r in records if r.status == "ok"], seed, val_fraction)
    out = []
    for record in records:
        split = ("val" if record.id in val_ids else "train") if record.status == "ok" else ""
        out.append(replace(record, split=split))
    return out
