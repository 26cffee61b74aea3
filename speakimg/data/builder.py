"""The dataset builder library: plan the items, check what is already built, build the rest in a process pool.

:func:`build_dataset` is what ``python -m speakimg.data.build`` (and ``SpeechMelDataModule.prepare_data``)
runs; :func:`merge_datasets` merges shard folders. The pieces: :mod:`speakimg.data.plan` (items, voices,
split), :mod:`speakimg.data.store` (the folder), :mod:`speakimg.data.worker` (one item).

- **Deterministic**: 1 or N workers, a resumed or a sharded-then-merged build give byte-identical files.
- **Resumable and self-repairing**: a rerun checks every finished item against its checksums and
  shapes (:meth:`DatasetStore.check_item`), rebuilds the broken ones (their cached latents are
  removed), retries failed ones and builds the missing ones; temporary files of killed runs are removed.
- **Robust**: a sentence that fails gets an error record, and the build goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speakimg.data.manifest import MANIFEST, ManifestRecord
from speakimg.data.plan import OUTPUT_KEYS, BuildConfig, Item, assign_splits, plan_items
from speakimg.data.store import BUILD_CONFIG, DatasetStore
from speakimg.data.worker import build_item, init_worker
from speakimg.errors import DataError
from speakimg.runtime import available_cpus

__all__ = ["BuildSummary", "available_cpus", "build_dataset", "merge_datasets", "read_lines"]

log = logging.getLogger("speakimg.data.build")


@dataclass
class BuildSummary:
    """What a build did: counts, the failed items and the speed."""

    out: Path
    total: int
    built: int = 0
    skipped: int = 0
    failed: int = 0
    missing: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    failures: list[ManifestRecord] = field(default_factory=list)
    shard: tuple[int, int] | None = None
    action: str = "built"
    """What happened to the new items: ``built`` (a build) or ``copied`` (a merge)."""
    repaired: list[str] = field(default_factory=list)
    """Finished items found broken (missing, corrupt or changed files) and rebuilt: one line each."""
    cleaned: int = 0
    """Temporary files of interrupted runs removed."""

    @property
    def items_per_second(self) -> float:
        return (self.built + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def format(self, max_failures: int = 10) -> str:
        where = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        lines = [
            f"speakimg.data.build{where}: {self.action} {self.built}, skipped {self.skipped} (already there), "
            f"failed {self.failed} in {self.seconds:.1f} s ({self.items_per_second:.2f} items/s)",
            f"  dataset: {self.out}  ({self.total} sentences; manifest {self.out / MANIFEST})",
        ]
        if self.duplicates:
            lines.append(f"  {self.duplicates} duplicate sentence(s) were built once")
        if self.cleaned:
            lines.append(f"  removed {self.cleaned} temporary file(s) left by an interrupted run")
        if self.repaired:
            lines.append(f"  rebuilt {len(self.repaired)} broken item(s) (their cached latents were removed):")
            lines += [f"    {problem}" for problem in self.repaired[:max_failures]]
        if self.missing:
            lines.append(
                f"  {self.missing} item(s) not built yet (other shards, or interrupted): rerun, then "
                "`python -m speakimg.data.build --merge ... --out DIR` if the shards used separate folders"
            )
        if self.failures:
            reasons = Counter((r.error or "").split(":")[0] for r in self.failures)
            lines.append("  failures by kind: " + ", ".join(f"{k} x{n}" for k, n in reasons.most_common()))
            for record in self.failures[:max_failures]:
                lines.append(f"    line {record.index + 1}: {record.error}")
            if len(self.failures) > max_failures:
                lines.append(f"    ... and {len(self.failures) - max_failures} more (status 'error' in the manifest)")
        return "\n".join(lines)


def read_lines(texts: str | os.PathLike | Iterable[str]) -> list[str]:
    """The sentences of a UTF-8 file (one per line) or of an iterable of strings."""
    if isinstance(texts, (str, os.PathLike)):
        path = Path(texts)
        if not path.is_file():
            raise DataError(f"{path}: no such sentence file (one sentence per line)")
        try:
            return path.read_text("utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}); save it as UTF-8") from error
    return [str(line) for line in texts]


def _texts_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


@contextmanager
def _torch_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _warm_up(language: str) -> None:
    """Import and run once what every item uses (librosa, soxr, soundfile, espeak), so forked workers start warm.

    Without it each worker spends seconds on first-call imports, and two of them starting together on a
    small machine double that.
    """
    import io

    import soundfile

    from speakimg.audio import log_mel, resample
    from speakimg.data.canvas import trim_silence
    from speakimg.text import prepare_text

    wave = 0.1 * torch.sin(torch.arange(22050, dtype=torch.float32) * 0.05)
    speech = torch.from_numpy(resample(wave.numpy(), 22050, 16000))
    log_mel(trim_silence(speech))
    buffer = io.BytesIO()
    soundfile.write(buffer, speech.numpy(), 16000, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    soundfile.read(buffer, dtype="float32")
    prepare_text("Warm up.", language=language)


def _run_items(
    todo: Sequence[Item], out: Path, config: BuildConfig, workers: int, on_record: Callable[[ManifestRecord], None]
) -> None:
    if workers <= 0:  # in this process (debugging); same single-threaded maths as the workers
        with _torch_threads(1):
            init_worker(str(out), config)
            for item in todo:
                on_record(build_item(item))
        return
    import multiprocessing

    with _torch_threads(1):
        _warm_up(config.language)
    # fork where it exists (Linux): workers start in milliseconds and scripts need no __main__ guard; it is
    # safe because a worker only runs single-threaded torch (set in init_worker, as DataLoader workers do)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(str(out), config))
    queue = iter(todo)
    pending: set = set()
    try:
        while True:
            while len(pending) < 4 * workers:
                item = next(queue, None)
                if item is None:
                    break
                pending.add(pool.submit(build_item, item))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_record(future.result())
    except BrokenProcessPool as error:
        raise DataError(
            f"a build worker died ({error}), e.g. killed for memory. Finished items are kept in {out}; "
            "rerun the same command to continue (with fewer --workers if memory is short)."
        ) from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_finished(store: DatasetStore, items: Sequence[Item], threads: int, progress: bool) -> dict[str, list[str]]:
    """Problems of the items that have an ok record (empty list: intact), checked in ``threads`` threads."""
    from tqdm.auto import tqdm

    records = [(item.id, store.read_record(item.id)) for item in items]
    finished = [(uid, record) for uid, record in records if record is not None and record.status == "ok"]
    if not finished:
        return {}
    with ThreadPoolExecutor(max(1, threads)) as pool:  # reading and hashing release the GIL
        checks = pool.map(lambda pair: store.check_item(pair[1]), finished)
        bar = tqdm(checks, total=len(finished), desc="check", unit="item", disable=not progress, leave=False)
        return {uid: problems for (uid, _), problems in zip(finished, bar, strict=True)}


def _write_manifest(
    store: DatasetStore, items: Sequence[Item], config: BuildConfig
) -> tuple[list[ManifestRecord], list[str]]:
    """Write ``manifest.jsonl`` from the records present, splits chosen among the ok items."""
    records, missing = store.collect([item.id for item in items])
    records = assign_splits(records, config.seed, config.val_fraction)
    store.write_manifest(records)
    return records, missing


def build_dataset(
    texts: str | os.PathLike | Iterable[str],
    out: str | os.PathLike,
    config: BuildConfig = BuildConfig(),
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> BuildSummary:
    """Build (or resume, or repair) a speech dataset in ``out`` from sentences (a file, one per line, or a list).

    Args:
        texts: path of a UTF-8 text file with one sentence per line, or the sentences.
        out: the dataset folder (created; an existing build with the same settings is resumed).
        config: TTS voice(s), canvas fit, split and seed.
        workers: parallel processes (0 builds in this process).
        shard: ``(i, n)`` builds items ``i, i + n, i + 2n, ...`` only.
        progress: show a progress bar.

    Returns:
        The counts of built, skipped, failed and repaired items (the manifest covers all shards' items so far).

    Raises:
        DataError: unreadable sentences, a folder built with other settings, or a worker that died.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    store = DatasetStore(out)
    lines = read_lines(texts)
    items, duplicates = plan_items(lines, config.seed, config.val_fraction, config.voices)
    if not items:
        raise DataError(f"no sentences in {texts if isinstance(texts, (str, os.PathLike)) else 'the input'}")
    if shard is not None:
        index, count = shard
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    settings = {**config.to_dict(), "texts_sha256": _texts_sha256(lines), "num_items": len(items)}
    store.create(settings, lines, OUTPUT_KEYS)
    cleaned = store.clean_temp_files()

    mine = [item for k, item in enumerate(items) if shard is None or k % shard[1] == shard[0]]
    problems = _check_finished(store, mine, max(workers, 1), progress)
    broken = {uid: p for uid, p in problems.items() if p}
    for uid, found in broken.items():
        log.warning("item %s is broken and is rebuilt: %s", uid, "; ".join(found))
        store.invalidate(uid)
    todo = [item for item in mine if item.id not in problems or item.id in broken]
    summary = BuildSummary(out=store.root, total=len(items), skipped=len(mine) - len(todo), duplicates=duplicates,
                           shard=shard, cleaned=len(cleaned),
                           repaired=[f"{uid}: {'; '.join(p)}" for uid, p in broken.items()])  # fmt: skip
    label = f"build {shard[0]}/{shard[1]}" if shard else "build"
    bar = tqdm(total=len(todo), desc=label, unit="item", disable=not progress, dynamic_ncols=True)

    def on_record(record: ManifestRecord) -> None:
        if record.status == "ok":
            summary.built += 1
        else:
            summary.failed += 1
            summary.failures.append(record)
            bar.set_postfix(failed=summary.failed)
        bar.update()

    try:
        if todo:
            log.info("building %d of %d items with %s (%s fit), %d worker(s)", len(todo), len(items), config.tts,
                     config.fit.mode, workers)  # fmt: skip
            _run_items(todo, store.root, config, workers, on_record)
    finally:  # interrupted or not: the manifest lists every finished item
        bar.close()
        _, missing = _write_manifest(store, items, config)
        summary.missing = len(missing)
        summary.failures.sort(key=lambda r: r.index)
        summary.seconds = time.perf_counter() - start
    return summary


def merge_datasets(sources: Sequence[str | os.PathLike], out: str | os.PathLike) -> BuildSummary:
    """Merge shard folders (same settings and sentences) into ``out`` and write its manifest.

    Only intact items are copied (checked like a rebuild does); with no sources, ``out`` itself is
    re-indexed (shards that wrote into one folder).
    """
    start = time.perf_counter()
    target = DatasetStore(out)
    stores = [DatasetStore(s) for s in sources] or [target]
    configs = []
    for store in stores:
        settings = store.settings()
        if settings is None:
            raise DataError(f"{store.root}: no {BUILD_CONFIG}; is it a folder written by speakimg.data.build?")
        configs.append(settings)
    for store, cfg in zip(stores[1:], configs[1:], strict=True):
        differ = [k for k in OUTPUT_KEYS if cfg.get(k) != configs[0].get(k)]
        if differ:
            raise DataError(f"{store.root} was built with other settings than {stores[0].root} ({', '.join(differ)})")
    lines = stores[0].texts()
    config = BuildConfig.from_dict(configs[0])
    items, duplicates = plan_items(lines, config.seed, config.val_fraction, config.voices)
    target.create(configs[0], lines, OUTPUT_KEYS)
    copied = 0
    for store in stores:
        if store.root.resolve() == target.root.resolve():
            continue
        for item in items:
            record = store.read_record(item.id)
            if record is None:
                continue
            mine = target.read_record(item.id)
            if mine is not None and mine.status == "ok" and not target.check_item(mine):
                continue  # already intact in the target
            if record.status == "ok" and store.check_item(record):
                log.warning("not copying broken item %s of %s: %s", item.id, store.root, store.check_item(record))
                continue
            target.invalidate(item.id)
            target.copy_item(store, record)
            copied += record.status == "ok"
    records, missing = _write_manifest(target, items, config)
    failures = [r for r in records if r.status != "ok"]
    return BuildSummary(
        out=target.root,
        total=len(items),
        built=copied,
        skipped=len(records) - len(failures) - copied,
        failed=len(failures),
        missing=len(missing),
        duplicates=duplicates,
        seconds=time.perf_counter() - start,
        failures=failures,
        action="copied",
    )
