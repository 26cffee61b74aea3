"""Datasets: the speech dataset layout (manifest), its builder and report, and the DataModules.

``SpeechMelDataModule`` (Lightning) is imported on first use, so ``import speakimg.data`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from speakimg.data.manifest import (
    BUILD_CONFIG,
    CANVAS_SAMPLES,
    MANIFEST,
    ManifestRecord,
    load_mel,
    load_record_audio,
    read_manifest,
    write_records,
)

_LAZY = {
    "SpeechMelDataModule": "speakimg.data.datamodule",
    "SpeechMelDataset": "speakimg.data.datamodule",
    "collate_speech": "speakimg.data.datamodule",
    "BuildConfig": "speakimg.data.build",
    "build_dataset": "speakimg.data.build",
    "merge_datasets": "speakimg.data.build",
    "CanvasFit": "speakimg.data.canvas",
    "cache_latents": "speakimg.data.latents",
}

__all__ = [
    "BUILD_CONFIG",
    "CANVAS_SAMPLES",
    "MANIFEST",
    "ManifestRecord",
    "load_mel",
    "load_record_audio",
    "read_manifest",
    "write_records",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakimg.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
