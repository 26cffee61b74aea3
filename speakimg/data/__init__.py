"""Datasets: the speech dataset layout (manifest), its store, builder, verification and report, the DataModules.

Library entry points (the ``build`` / ``verify`` / ``report`` modules are command lines): ``build_dataset``,
``merge_datasets``, ``BuildConfig``, ``DatasetStore``, ``verify_dataset``, ``repair_dataset``.
Everything is imported on first use, so ``import speakimg.data`` stays light.
"""

from __future__ import annotations

from speakimg.lazy import lazy_exports

_LAZY = {
    "BUILD_CONFIG": "speakimg.data.manifest",
    "CANVAS_SAMPLES": "speakimg.data.manifest",
    "MANIFEST": "speakimg.data.manifest",
    "ManifestRecord": "speakimg.data.manifest",
    "load_mel": "speakimg.data.manifest",
    "load_record_audio": "speakimg.data.manifest",
    "read_manifest": "speakimg.data.manifest",
    "write_records": "speakimg.data.manifest",
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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [*_LAZY]
