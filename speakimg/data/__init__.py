"""Datasets: the speech dataset layout (manifest), its store, builder, verification and report, the DataModules.

Library entry points (the ``build`` / ``verify`` / ``report`` modules are command lines): ``build_dataset``,
``merge_datasets``, ``BuildConfig``, ``DatasetStore``, ``verify_dataset``, ``repair_dataset``.
Everything but the manifest is imported on first use, so ``import speakimg.data`` stays light.
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
    "BuildConfig": "speakimg.data.plan",
    "plan_items": "speakimg.data.plan",
    "BuildSummary": "speakimg.data.builder",
    "build_dataset": "speakimg.data.builder",
    "merge_datasets": "speakimg.data.builder",
    "DatasetStore": "speakimg.data.store",
    "Verification": "speakimg.data.integrity",
    "verify_dataset": "speakimg.data.integrity",
    "repair_dataset": "speakimg.data.integrity",
    "EpochSampler": "speakimg.data.epochs",
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
