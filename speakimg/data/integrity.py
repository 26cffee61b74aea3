"""Verifying and repairing a built dataset (the library behind ``python -m speakimg.data.verify``).

:func:`verify_dataset` checks every ok item (:meth:`DatasetStore.check_item`: files present and
readable, the SHA-256 recorded at build time, shapes, finite values), the manifest (readable, in step
with the records), items planned but never built, every latent cache
(:func:`speakimg.data.latents.check_latent_caches`) and temporary files of killed runs.
:func:`repair_dataset` removes those temporary files and the broken or stale latents, then reruns the
build with the stored settings and sentences, which rebuilds broken items byte-identically, retries
failed ones, builds missing ones and rewrites the manifest.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from speakimg.data.latents import LatentCacheCheck, check_latent_caches
from speakimg.data.manifest import MANIFEST, ManifestRecord, read_manifest
from speakimg.data.plan import BuildConfig, plan_items
from speakimg.data.store import DatasetStore
from speakimg.errors import DataError

__all__ = ["Verification", "repair_dataset", "verify_dataset"]


@dataclass
class Verification:
    """What :func:`verify_dataset` found."""

    data_dir: Path
    checked: int = 0
    """Ok items checked."""
    unverified: int = 0
    """Ok items without recorded checksums (built before checksums): checked for shape and values only."""
    failed: int = 0
    """Error records (sentences that could not be built; a repair retries them)."""
    broken: dict[str, list[str]] = field(default_factory=dict)
    """Item id -> what is wrong with its files."""
    not_built: list[str] = field(default_factory=list)
    """Items of the stored sentences without a record (an interrupted build, or another shard's)."""
    manifest: list[str] = field(default_factory=list)
    """Problems of ``manifest.jsonl`` (unreadable, or out of step with the records)."""
    latents: list[LatentCacheCheck] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)
    rebuildable: bool = False
    """Whether the folder holds the build settings and sentences a repair needs."""

    @property
    def ok(self) -> bool:
        """Nothing broken: items, manifest, latents and no leftover temporary files."""
        return not (self.broken or self.manifest or self.temp_files) and all(c.ok for c in self.latents)

    def format(self, max_lines: int = 10) -> str:
        lines = [
            f"speakimg.data.verify: {self.data_dir}: {self.checked} ok item(s) checked"
            + (f" ({self.unverified} without recorded checksums: shapes and values only)" if self.unverified else "")
            + f", {len(self.broken)} broken, {self.failed} failed sentence(s), {len(self.not_built)} not built"
        ]
        for problem in self.manifest:
            lines.append(f"  manifest: {problem}")
        for uid, problems in list(self.broken.items())[:max_lines]:
            lines.append(f"  BROKEN {uid}: {'; '.join(problems)}")
        if len(self.broken) > max_lines:
            lines.append(f"  ... and {len(self.broken) - max_lines} more broken item(s)")
        for check in self.latents:
            lines.append(
                f"  {check.folder.relative_to(self.data_dir)} (VAE {check.vae}): {check.cached} cached, "
                f"{check.missing} not cached yet, {len(check.stale)} stale, {len(check.broken)} broken"
            )
            if check.problem:
                lines.append(f"    {check.problem}")
            for path, problem in list(check.broken.items())[:max_lines]:
                lines.append(f"    BROKEN {path}: {problem}")
        if self.temp_files:
            lines.append(f"  {len(self.temp_files)} temporary file(s) left by an interrupted run")
        if self.ok:
            lines.append("  all intact")
        elif self.rebuildable:
            lines.append(f"  repair: python -m speakimg.data.verify {self.data_dir} --repair")
        else:
            lines.append(f"  {self.data_dir} has no build settings and sentences: rebuild it with speakimg.data.build")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "data_dir": str(self.data_dir),
            "ok": self.ok,
            "checked": self.checked,
            "unverified": self.unverified,
            "failed": self.failed,
            "broken": self.broken,
            "not_built": self.not_built,
            "manifest": self.manifest,
            "latents": [
                {
                    "folder": str(c.folder),
                    "vae": c.vae,
                    "cached": c.cached,
                    "missing": c.missing,
                    "stale": [str(p) for p in c.stale],
                    "broken": {str(k): v for k, v in c.broken.items()},
                    "problem": c.problem,
                }
                for c in self.latents
            ],  # fmt: skip
            "temp_files": [str(p) for p in self.temp_files],
        }


def _planned_records(store: DatasetStore) -> tuple[list[ManifestRecord], list[str]] | None:
    """Records of the items planned from the stored settings and sentences (and the ids without one)."""
    settings = store.settings()
    if settings is None or not (store.root / "texts.txt").is_file():
        return None
    config = BuildConfig.from_dict(settings)
    items, _ = plan_items(store.texts(), config.seed, config.val_fraction, config.voices)
    records, missing = [], []
    for item in items:
        record = store.read_record(item.id)
        (missing.append(item.id) if record is None else records.append(record))
    return records, missing


def verify_dataset(data_dir: str | os.PathLike, threads: int | None = None, progress: bool = True) -> Verification:
    """Check a dataset folder; nothing is changed. See the module docstring for what is checked."""
    from tqdm.auto import tqdm

    store = DatasetStore(data_dir)
    if not store.root.is_dir():
        raise DataError(f"{store.root}: no such dataset folder")
    result = Verification(data_dir=store.root)
    planned = _planned_records(store)
    result.rebuildable = planned is not None
    try:
        records = read_manifest(store.root, status=None)
    except DataError as error:
        result.manifest.append(str(error))
        records = None
    if planned is not None:
        from_records, result.not_built = planned
        if records is not None:
            ok_manifest = {r.id for r in records if r.status == "ok"}
            ok_records = {r.id for r in from_records if r.status == "ok" and store.has_files(r)}
            if ok_manifest != ok_records:
                result.manifest.append(
                    f"{store.root / MANIFEST} lists {len(ok_manifest)} ok items, the records {len(ok_records)} "
                    f"({len(ok_manifest ^ ok_records)} differ): out of date"
                )
        records = from_records  # the records are the source of truth of a built folder
    elif records is None:
        records = []
    ok = [r for r in records if r.status == "ok"]
    result.failed = len(records) - len(ok)
    result.unverified = sum(not r.checksums for r in ok)
    with ThreadPoolExecutor(max(1, threads or os.cpu_count() or 1)) as pool:
        checks = tqdm(pool.map(store.check_item, ok), total=len(ok), desc="verify", unit="item", disable=not progress)
        for record, problems in zip(ok, checks, strict=True):
            if problems:
                result.broken[record.id] = problems
    result.checked = len(ok)
    result.latents = check_latent_caches(store.root, {r.id for r in ok if r.id not in result.broken})
    result.temp_files = store.temp_files()
    return result


def repair_dataset(
    data_dir: str | os.PathLike, workers: int = 1, progress: bool = True
) -> tuple[Verification, object, Verification]:
    """Repair a built dataset; returns the verification before, the build summary and the verification after.

    Removes temporary files of killed runs and broken or stale latents (the data module or
    ``python -m speakimg.data.latents`` computes missing latents again), then reruns the build with the
    stored settings and sentences: broken items are rebuilt (byte-identical to a fresh build), failed
    ones retried, missing ones built, the manifest rewritten. Run it while no build writes into the folder.

    Raises:
        DataError: the folder has no build settings or sentences (not written by ``speakimg.data.build``).
    """
    from speakimg.data.builder import build_dataset

    before = verify_dataset(data_dir, threads=workers, progress=progress)
    if not before.rebuildable:
        raise DataError(
            f"{before.data_dir}: no build_config.json and texts.txt, so it cannot be rebuilt; rebuild the "
            "dataset with python -m speakimg.data.build"
        )
    store = DatasetStore(data_dir)
    store.clean_temp_files(older_than_s=0.0)
    for check in before.latents:
        for path in [*check.stale, *check.broken]:
            path.unlink(missing_ok=True)
    config = BuildConfig.from_dict(store.settings() or {})
    summary = build_dataset(store.texts(), store.root, config, workers, progress=progress)
    after = verify_dataset(data_dir, threads=workers, progress=progress)
    return before, summary, after
