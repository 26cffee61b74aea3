"""Datasets: the speech dataset layout (manifest), its builder and report, and the DataModules."""

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

__all__ = [
    "BUILD_CONFIG",
    "CANVAS_SAMPLES",
    "MANIFEST",
    "ManifestRecord",
    "load_mel",
    "load_record_audio",
    "read_manifest",
    "write_records",
]
