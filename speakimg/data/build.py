"""``python -m speakimg.data.build``: sentences -> phonemes -> speech on the 10 s canvas -> log-mels.

::

    python -m speakimg.data.build --texts configs/data/train_sentences.txt --out data/speech \\
        [--tts festival] [--fit pad] [--workers N] [--shard I/N] [--val-fraction 0.05] [--seed 0]
    python -m speakimg.data.build --merge SHARD_DIR [SHARD_DIR ...] --out data/speech

One sentence per line of ``--texts``. Per sentence the builder writes the canvas audio, its log-mel
and a record (text, phonemes, PL-BERT ids, timing); ``manifest.jsonl`` lists every record in input
order (layout: :mod:`speakimg.data.manifest`).

- **Deterministic**: an item's id is a hash of its sentence; its random placement and the train/val
  split derive from (seed, id) only, so 1 or N workers, a resumed or a sharded build give byte-identical
  files and the same manifest.
- **Resumable**: every file is written under a temporary name and renamed into place, the item's record
  last; a rerun skips items whose record and files exist (failed items are retried).
- **Sharded**: ``--shard I/N`` builds every N-th item from the I-th; shards writing into one folder
  (a shared filesystem, e.g. a SLURM array) form one dataset; separate shard folders are merged
  with ``--merge``.
- **Robust**: a sentence that fails (empty line, not English, no phonemes, too long for 10 s, a TTS
  error or a missing engine) gets an error record, and the build goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speakimg.data.canvas import SPEECH_SAMPLES, CanvasFit
from speakimg.data.manifest import BUILD_CONFIG, CANVAS_SAMPLES, MANIFEST, ManifestRecord, write_records
from speakimg.errors import DataError

__all__ = [
    "TEXTS",
    "BuildConfig",
    "BuildSummary",
    "Item",
    "build_dataset",
    "item_id",
    "main",
    "merge_datasets",
    "plan_items",
]

log = logging.getLogger("speakimg.data.build")

TEXTS = "texts.txt"
"""The builder's input sentences, copied into the dataset folder."""
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides a dataset's contents (stored in ``build_config.json``).

    Attributes:
        tts: engine name in ``speakimg.tts.ENGINES`` (``festival``, ``espeak``, ``tacotron2``, ``transformers``).
        tts_options: keyword arguments of the engine (e.g. ``{"model": "facebook/mms-tts-eng"}``).
        fit: how speech is fitted to the canvas (:class:`~speakimg.data.canvas.CanvasFit`).
        val_fraction: share of the sentences in the validation split.
        seed: seeds the random placement and the split (per item, from the item id).
        language: espeak language of the phonemizer.
    """

    tts: str = "festival"
    tts_options: dict = field(default_factory=dict)
    fit: CanvasFit = field(default_factory=CanvasFit)
    val_fraction: float = 0.05
    seed: int = 0
    language: str = "en-us"

    def __post_init__(self) -> None:
        from speakimg.tts import ENGINES

        if self.tts not in ENGINES:
            raise ValueError(f"unknown TTS engine {self.tts!r}; choose one of {sorted(ENGINES)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

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


# settings that change the files; a rerun or a merge must agree on all of them
_OUTPUT_KEYS = (
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


# ----------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """One input line: its id, position, text, split and per-item seed (``error`` for an empty line)."""

    id: str
    index: int
    text: str
    split: str
    seed: int
    error: str | None = None


def item_id(text: str) -> str:
    """Stable id of a sentence: the first 16 hex digits of the SHA-256 of its stripped text."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def _hash_int(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def plan_items(lines: Sequence[str], seed: int = 0, val_fraction: float = 0.05) -> tuple[list[Item], int]:
    """Items of the input lines in order, and the number of duplicate sentences dropped.

    Empty lines become items with an ``error``. Validation items are the ``round(val_fraction * n)``
    sentences (at least one when ``val_fraction > 0`` and ``n >= 2``) with the smallest
    ``hash(seed, id)``: the split depends on the seed and the set of sentences only.
    """
    items: list[Item] = []
    seen: set[str] = set()
    duplicates = 0
    for index, line in enumerate(lines):
        text = line.strip()
        if not text:
            uid = f"empty-line-{index + 1:06d}"
            items.append(Item(uid, index, "", "train", 0, f"TextError: line {index + 1} is empty: nothing to speak"))
            continue
        uid = item_id(text)
        if uid in seen:
            duplicates += 1
            continue
        seen.add(uid)
        items.append(Item(uid, index, text, "train", _hash_int(seed, uid, "item")))
    speakable = [item for item in items if item.error is None]
    n_val = round(val_fraction * len(speakable))
    if val_fraction > 0 and len(speakable) >= 2:
        n_val = min(max(n_val, 1), len(speakable) - 1)
    val_ids = {item.id for item in sorted(speakable, key=lambda item: _hash_int(seed, item.id, "split"))[:n_val]}
    items = [Item(i.id, i.index, i.text, "val", i.seed) if i.id in val_ids else i for i in items]
    return items, duplicates


# ----------------------------------------------------------------------------- one item (runs in workers)

_STATE: dict = {}


def _init_worker(out: str, config: BuildConfig, threads: int = 1) -> None:
    """Per-process setup: one TTS engine (or the error that prevents it), one torch thread."""
    torch.set_num_threads(threads)
    _STATE.clear()
    _STATE.update(out=Path(out), config=config)
    from speakimg.tts import get_engine

    try:
        _STATE["engine"] = get_engine(config.tts, **config.tts_options)
    except Exception as error:  # a missing engine fails every item with the same clear message
        _STATE["engine_error"] = f"{type(error).__name__}: {error}"


class _EngineUnavailable(Exception):
    """The TTS engine could not be created in this process (its message says why and how to fix it)."""


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_record(out: Path, record: ManifestRecord) -> None:
    _atomic_write(out / "records" / f"{record.id}.json", lambda p: p.write_text(record.to_json() + "\n", "utf-8"))


def _error_record(item: Item, config: BuildConfig, error: str, **fields) -> ManifestRecord:
    return ManifestRecord(
        id=item.id,
        text=item.text,
        status="error",
        split=item.split,
        error=error,
        tts=config.tts,
        index=item.index,
        fit=config.fit.mode,
        **fields,
    )


def _build_item(item: Item) -> ManifestRecord:
    """Build one item; never raises (failures become error records). Writes files, then the record."""
    from speakimg.audio import load_audio, log_mel, save_audio
    from speakimg.data.canvas import speak_on_canvas
    from speakimg.errors import SpeakimgError
    from speakimg.text import prepare_text

    out: Path = _STATE["out"]
    config: BuildConfig = _STATE["config"]
    prepared = None
    if item.error is not None:
        record = _error_record(item, config, item.error)
    else:
        try:
            prepared = prepare_text(item.text, language=config.language)
            if "engine_error" in _STATE:
                raise _EngineUnavailable(_STATE["engine_error"])
            fitted = speak_on_canvas(_STATE["engine"], prepared.normalized, config.fit, seed=item.seed)
            audio_rel, mel_rel = f"audio/{item.id}.wav", f"mels/{item.id}.npy"
            _atomic_write(out / audio_rel, lambda path: save_audio(path, fitted.audio))
            stored = load_audio(out / audio_rel)  # the mel is of exactly what was stored (16-bit PCM)
            if stored.shape[0] != CANVAS_SAMPLES:
                raise DataError(f"{out / audio_rel}: {stored.shape[0]} samples, expected {CANVAS_SAMPLES}")
            mel = log_mel(stored).numpy().astype(np.float16)

            def save_mel(path: Path) -> None:
                with path.open("wb") as handle:
                    np.save(handle, mel, allow_pickle=False)

            _atomic_write(out / mel_rel, save_mel)
            record = ManifestRecord(
                id=item.id,
                text=item.text,
                status="ok",
                split=item.split,
                normalized=prepared.normalized,
                phonemes=prepared.phonemes,
                phoneme_ids=list(prepared.ids),
                audio=audio_rel,
                mel=mel_rel,
                num_samples=CANVAS_SAMPLES,
                speech_seconds=round(fitted.seconds, 4),
                speech_start=fitted.start,
                tts=_STATE["engine"].name,
                index=item.index,
                fit=config.fit.mode,
                stretch=fitted.stretch,
                stretch_method=fitted.stretch_method,
            )
        except _EngineUnavailable as error:
            record = _error_record(item, config, str(error), **_text_fields(prepared))
        except SpeakimgError as error:
            record = _error_record(item, config, f"{type(error).__name__}: {error}", **_text_fields(prepared))
        except Exception as error:  # an unexpected failure must not stop the build
            log.exception("item %s (%r) failed", item.id, item.text)
            record = _error_record(
                item, config, f"unexpected {type(error).__name__}: {error}", **_text_fields(prepared)
            )
    _write_record(out, record)
    return record


def _text_fields(prepared) -> dict:
    if prepared is None:
        return {}
    return {"normalized": prepared.normalized, "phonemes": prepared.phonemes, "phoneme_ids": list(prepared.ids)}


# ----------------------------------------------------------------------------- the dataset folder


def _read_record(out: Path, uid: str) -> ManifestRecord | None:
    path = out / "records" / f"{uid}.json"
    try:
        return ManifestRecord.from_dict(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        log.warning("ignoring unreadable record %s (%s); the item is rebuilt", path, error)
        return None


def _is_finished(out: Path, record: ManifestRecord | None) -> bool:
    return (
        record is not None
        and record.status == "ok"
        and all(p and (out / p).is_file() for p in (record.audio, record.mel))
    )


def _read_lines(texts: str | os.PathLike | Iterable[str]) -> list[str]:
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


def _prepare_folder(out: Path, settings: dict, lines: Sequence[str]) -> None:
    """Create the folder layout; refuse a folder built with other settings."""
    for sub in ("audio", "mels", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    path = out / BUILD_CONFIG
    if path.is_file():
        existing = json.loads(path.read_text("utf-8"))
        differ = [k for k in _OUTPUT_KEYS if existing.get(k) != settings.get(k)]
        if differ:
            detail = "; ".join(f"{k}: {existing.get(k)!r} there, {settings.get(k)!r} now" for k in differ)
            raise DataError(
                f"{out} holds a dataset built with other settings ({detail}). Rerun with the same "
                "settings to resume, or choose another --out."
            )
        if existing == settings:
            return
    _atomic_write(path, lambda p: p.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", "utf-8"))
    _atomic_write(out / TEXTS, lambda p: p.write_text("".join(line + "\n" for line in lines), "utf-8"))


def _assemble_manifest(out: Path, items: Sequence[Item]) -> tuple[list[ManifestRecord], list[Item]]:
    """Write ``manifest.jsonl`` from the item records present; returns (records, items without one)."""
    records, missing = [], []
    for item in items:
        record = _read_record(out, item.id)
        if record is None or (record.status == "ok" and not _is_finished(out, record)):
            missing.append(item)
        else:
            records.append(record)
    write_records(out, records)
    return records, missing


# ----------------------------------------------------------------------------- running a build


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


@contextmanager
def _torch_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects SLURM / taskset CPU masks
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


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
            _init_worker(str(out), config)
            for item in todo:
                on_record(_build_item(item))
        return
    import multiprocessing

    with _torch_threads(1):
        _warm_up(config.language)
    # fork where it exists (Linux): workers start in milliseconds and scripts need no __main__ guard; it is
    # safe because a worker only runs single-threaded torch (set in _init_worker, as DataLoader workers do)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(str(out), config))
    queue = iter(todo)
    pending: set = set()
    try:
        while True:
            while len(pending) < 4 * workers:
                item = next(queue, None)
                if item is None:
                    break
                pending.add(pool.submit(_build_item, item))
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


def build_dataset(
    texts: str | os.PathLike | Iterable[str],
    out: str | os.PathLike,
    config: BuildConfig = BuildConfig(),
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> BuildSummary:
    """Build (or resume) a speech dataset in ``out`` from sentences (a file, one per line, or a list).

    Args:
        texts: path of a UTF-8 text file with one sentence per line, or the sentences.
        out: the dataset folder (created; an existing build with the same settings is resumed).
        config: TTS engine, canvas fit, split and seed.
        workers: parallel processes (0 builds in this process).
        shard: ``(i, n)`` builds items ``i, i + n, i + 2n, ...`` only.
        progress: show a progress bar.

    Returns:
        The counts of built, skipped and failed items (the manifest covers all shards' items so far).

    Raises:
        DataError: unreadable sentences, a folder built with other settings, or a worker that died.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    lines = _read_lines(texts)
    items, duplicates = plan_items(lines, config.seed, config.val_fraction)
    if not items:
        raise DataError(f"no sentences in {texts if isinstance(texts, (str, os.PathLike)) else 'the input'}")
    if shard is not None:
        index, count = shard
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    settings = {**config.to_dict(), "texts_sha256": _texts_sha256(lines), "num_items": len(items)}
    _prepare_folder(out, settings, lines)

    mine = [item for k, item in enumerate(items) if shard is None or k % shard[1] == shard[0]]
    todo = [item for item in mine if not _is_finished(out, _read_record(out, item.id))]
    summary = BuildSummary(out=out, total=len(items), skipped=len(mine) - len(todo), duplicates=duplicates, shard=shard)
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
            _run_items(todo, out, config, workers, on_record)
    finally:  # interrupted or not: the manifest lists every finished item
        bar.close()
        _, missing = _assemble_manifest(out, items)
        summary.missing = len(missing)
        summary.failures.sort(key=lambda r: r.index)
        summary.seconds = time.perf_counter() - start
    return summary


def merge_datasets(sources: Sequence[str | os.PathLike], out: str | os.PathLike) -> BuildSummary:
    """Merge shard folders (same settings and sentences) into ``out`` and write its manifest.

    With no sources, ``out`` itself is re-indexed (shards that wrote into one folder).
    """
    start = time.perf_counter()
    out = Path(out)
    folders = [Path(s) for s in sources] or [out]
    configs = []
    for folder in folders:
        path = folder / BUILD_CONFIG
        if not path.is_file():
            raise DataError(f"{folder}: no {BUILD_CONFIG}; is it a folder written by speakimg.data.build?")
        configs.append(json.loads(path.read_text("utf-8")))
    for folder, cfg in zip(folders[1:], configs[1:], strict=True):
        differ = [k for k in _OUTPUT_KEYS if cfg.get(k) != configs[0].get(k)]
        if differ:
            raise DataError(f"{folder} was built with other settings than {folders[0]} ({', '.join(differ)})")
    lines = (folders[0] / TEXTS).read_text("utf-8").splitlines()
    config = BuildConfig.from_dict(configs[0])
    items, duplicates = plan_items(lines, config.seed, config.val_fraction)
    _prepare_folder(out, configs[0], lines)
    copied = 0
    for folder in folders:
        if folder.resolve() == out.resolve():
            continue
        for item in items:
            record = _read_record(folder, item.id)
            if record is None or _is_finished(out, _read_record(out, item.id)):
                continue
            if record.status == "ok" and not _is_finished(folder, record):
                continue
            for rel in (record.audio, record.mel):
                if rel:
                    _atomic_write(out / rel, lambda p, src=folder / rel: shutil.copyfile(src, p))
            _write_record(out, record)
            copied += record.status == "ok"
    records, missing = _assemble_manifest(out, items)
    failures = [r for r in records if r.status != "ok"]
    return BuildSummary(
        out=out,
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


# ----------------------------------------------------------------------------- CLI


def _parse_shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N (e.g. 0/4), got {value!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {value!r}")
    return index, count


def _parser() -> argparse.ArgumentParser:
    from speakimg.audio.stretch import STRETCH_METHODS
    from speakimg.data.canvas import FIT_MODES, PLACEMENTS
    from speakimg.tts import ENGINES

    defaults = CanvasFit()
    p = argparse.ArgumentParser(
        prog="python -m speakimg.data.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--texts", type=Path, help="UTF-8 file with one sentence per line")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (resumed if it exists)")
    p.add_argument("--merge", type=Path, nargs="*", metavar="SHARD_DIR", help="merge shard folders into --out")
    p.add_argument("--tts", default="festival", choices=sorted(ENGINES), help="TTS engine (default festival)")
    p.add_argument("--tts-model", help="transformers engine: hub id or folder (default facebook/mms-tts-eng)")
    p.add_argument("--tts-device", help="torch device of neural engines (transformers, tacotron2)")
    p.add_argument("--fit", default=defaults.mode, choices=FIT_MODES, help="natural speed + silence, or slow down")
    p.add_argument("--placement", default=defaults.placement, choices=PLACEMENTS, help="where speech sits in 10 s")
    p.add_argument("--target-fill", type=float, default=defaults.target_fill, help="stretch: fraction of 10 s")
    p.add_argument("--max-stretch", type=float, default=defaults.max_stretch, help="stretch: largest slow-down")
    p.add_argument(
        "--stretch-method",
        default=defaults.stretch_method,
        choices=STRETCH_METHODS,
        help="stretch, engines without rate control",
    )
    p.add_argument("--workers", type=int, default=_available_cpus(), help="parallel processes (default: all CPUs)")
    p.add_argument("--shard", type=_parse_shard, help="build only shard I of N (e.g. $SLURM_ARRAY_TASK_ID/8)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of sentences in the val split")
    p.add_argument("--seed", type=int, default=0, help="seed of placement and split")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 unless no item could be built)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        if args.merge is not None:
            summary = merge_datasets(args.merge, args.out)
        else:
            if args.texts is None:
                parser.error("--texts is required (or --merge to merge shard folders)")
            options = {}
            if args.tts == "transformers":
                options["model"] = args.tts_model or "facebook/mms-tts-eng"
            if args.tts_device and args.tts in ("transformers", "tacotron2"):
                options["device"] = args.tts_device
            fit = CanvasFit(
                mode=args.fit,
                placement=args.placement,
                target_fill=args.target_fill,
                max_stretch=args.max_stretch,
                stretch_method=args.stretch_method,
            )
            config = BuildConfig(
                tts=args.tts, tts_options=options, fit=fit, val_fraction=args.val_fraction, seed=args.seed
            )
            summary = build_dataset(args.texts, args.out, config, args.workers, args.shard, progress=not args.quiet)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished items are kept in {args.out}; rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary.format())
    nothing_built = summary.failed > 0 and summary.built == 0 and summary.skipped == 0
    return 1 if nothing_built else 0


if __name__ == "__main__":
    sys.exit(main())
