"""``samples.csv`` (one row per sample, written row by row) and the summary computed from it.

Scores are in percent: CLIP and CLAP 0-100 (floored at 0), WER 0-100+ (insertions can push it past
100). Two WERs are reported and they answer different questions:

- ``wer_corpus``: all word errors over all reference words (what ASR papers call WER; long
  sentences weigh more). Computed from the ``wer_errors`` and ``wer_words`` columns.
- ``wer_mean``: the mean of the per-sample WERs, with its 95% interval.

Intervals are ``1.96 * std / sqrt(n)`` with the sample standard deviation (``ddof=1``): a normal
approximation of the 95% confidence interval of the mean (null when n < 2).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from speakimg.errors import ConfigError
from speakimg.io import write_text

__all__ = ["COLUMNS", "ANCHORS", "ResultsCSV", "interval", "summarize", "summary_markdown", "write_summary"]

log = logging.getLogger("speakimg.evaluate")

COLUMNS: list[str] = [
    "kind",
    "image_index",
    "audio_index",
    "image_prompt",
    "audio_prompt",
    "seed",
    "settings_hash",
    "clip",
    "wer",
    "wer_errors",
    "wer_words",
    "transcript",
    "clap",
    "vocoder_cycle_error",
    "sample_s",
    "metrics_s",
    "folder",
    "image",
    "spectrogram",
    "audio",
    "video",
]
"""The CSV header. Empty cells: a score the protocol does not compute, or media not kept."""

_INTS = ("image_index", "audio_index", "seed", "wer_errors", "wer_words")
_FLOATS = ("clip", "wer", "clap", "vocoder_cycle_error", "sample_s", "metrics_s")

ANCHORS: dict[str, dict[str, Any]] = {
    "speech": {
        "source": "Images that Speak (published)",
        "combined": {"clip": 22.3, "wer": 93.4},
    },
    "sound": {
        "source": "Images that Sound (Chen, Geng, Owens 2024)",
        "combined": {"clip": 28.2, "clap": 33.5},
        "image_only": {"clip": 34.5},
        "audio_only": {"clip": 22.5},
    },
}
"""Published numbers to compare with (percent)."""


def _parse(row: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(row)
    for key in _INTS:
        parsed[key] = int(row[key]) if row[key] not in ("", None) else None
    for key in _FLOATS:
        parsed[key] = float(row[key]) if row[key] not in ("", None) else None
    return parsed


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ResultsCSV:
    """``samples.csv``: read what a previous run wrote, append rows one at a time (flushed to disk)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[dict[str, Any]]:
        """The complete rows written so far (parsed). A last row cut short by a killed run is dropped and
        the file rewritten without it; any other malformed content is an error naming the line."""
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        if "\n" not in text:  # empty, or killed while writing the header
            self.path.unlink()
            return []
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames != COLUMNS:
            raise ConfigError(
                f"{self.path} has the columns {reader.fieldnames}, not those of this version of speakimg "
                f"({COLUMNS}): evaluate into another `out` folder, or move this file away"
            )
        raw = list(reader)
        cut = not text.endswith("\n")  # the last row was being written when the run was killed
        if cut and raw:
            raw.pop()
            log.warning("%s: dropping the incomplete last row (a killed run); its sample is redone", self.path)
        rows: list[dict[str, Any]] = []
        for number, row in enumerate(raw, start=2):
            try:
                if None in row or any(row[c] is None for c in COLUMNS):
                    raise ValueError(f"not {len(COLUMNS)} cells")
                parsed = _parse(row)
                if parsed["seed"] is None or not row["kind"]:
                    raise ValueError("no kind or seed")
            except ValueError as error:
                raise ConfigError(
                    f"{self.path} line {number} is malformed ({error}); fix or delete that line and rerun"
                ) from None
            rows.append(parsed)
        if cut:
            self._rewrite(rows)
        return rows

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _format(row.get(k)) for k in COLUMNS})
        os.replace(tmp, self.path)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows (dicts with the :data:`COLUMNS` keys), flushed and synced: a killed run loses
        at most the sample in progress."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            for row in rows:
                unknown = set(row) - set(COLUMNS)
                if unknown:
                    raise ValueError(f"unknown CSV columns {sorted(unknown)}")
                writer.writerow({k: _format(row.get(k)) for k in COLUMNS})
            f.flush()
            os.fsync(f.fileno())


def interval(values: Iterable[float]) -> dict[str, Any]:
    """``{"mean", "ci95", "std", "n"}`` of ``values``: ``ci95 = 1.96 * std / sqrt(n)`` (``ddof=1``; null for n < 2)."""
    x = np.asarray(list(values), dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "ci95": None, "std": None, "n": 0}
    std = float(x.std(ddof=1)) if n > 1 else None
    return {
        "mean": float(x.mean()),
        "ci95": 1.96 * std / math.sqrt(n) if std is not None else None,
        "std": std,
        "n": n,
    }


def summarize(rows: list[dict[str, Any]], protocol: str) -> dict[str, Any]:
    """Per kind: n, CLIP mean and interval, WER (corpus, and mean of samples with interval), CLAP,
    vocoder cycle error. ``rows`` are parsed CSV rows."""
    kinds: dict[str, Any] = {}
    order = ["combined", "audio_only", "image_only"]
    present = [k for k in order if any(r["kind"] == k for r in rows)]
    present += sorted({r["kind"] for r in rows} - set(order))
    for kind in present:
        group = [r for r in rows if r["kind"] == kind]
        entry: dict[str, Any] = {"n": len(group)}
        clip = [r["clip"] for r in group if r["clip"] is not None]
        entry["clip"] = interval(clip) if clip else None
        if protocol == "speech":
            scored = [r for r in group if r["wer"] is not None]
            words = sum(r["wer_words"] for r in scored)
            errors = sum(r["wer_errors"] for r in scored)
            entry["wer_corpus"] = 100.0 * errors / words if words else None
            entry["wer_mean"] = interval(r["wer"] for r in scored) if scored else None
            entry["wer_errors"], entry["wer_words"] = errors, words
        clap = [r["clap"] for r in group if r["clap"] is not None]
        if clap:
            entry["clap"] = interval(clap)
        cycle = [r["vocoder_cycle_error"] for r in group if r["vocoder_cycle_error"] is not None]
        entry["vocoder_cycle_error"] = interval(cycle) if cycle else None
        kinds[kind] = entry
    return {"protocol": protocol, "kinds": kinds, "anchors": ANCHORS.get(protocol)}


def _pm(stat: dict[str, Any] | None, digits: int = 1) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat.get("ci95") is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: a table per kind, with the published numbers below it."""
    from speakimg.evaluation.plan import KIND_TITLES

    protocol = summary["protocol"]
    speech = protocol == "speech"
    has_clap = any(k.get("clap") for k in summary["kinds"].values())
    title = "images that speak (speech protocol)" if speech else "images that sound (sound protocol)"
    lines = [f"# Evaluation: {title}", ""]
    info = summary.get("run", {})
    if info:
        lines.append(
            f"{info['image_prompts']} image prompts x {info['audio_prompts']} audio prompts x {info['seeds']} seed(s); "
            f"{info['rows_done']} of {info['rows_expected']} rows done"
            + ("" if info.get("complete") else " (**incomplete**: rerun the same command to finish)")
            + f"; settings hash `{info['settings_hash']}`."
        )
        lines.append("")
    lines.append(
        "All scores in percent; ± is the 95% interval of the mean (1.96 std / sqrt(n)). CLIP: windowed CLIP "
        "score of the picture against the image prompt (higher is better)."
    )
    if speech:
        lines.append(
            "WER: Whisper's transcript of the audio against the sentence, after normalisation (lower is better); "
            "*corpus* = all word errors / all reference words, *mean* = the mean of the per-sample WERs."
        )
    if has_clap:
        lines.append("CLAP: CLAP score of the audio against the sound caption (higher is better).")
    lines.append("")
    header = ["samples", "n", "CLIP ↑"]
    if speech:
        header += ["WER corpus ↓", "WER mean ↓"]
    if has_clap:
        header += ["CLAP ↑"]
    header += ["vocoder cycle error (nats)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, entry in summary["kinds"].items():
        cells = [KIND_TITLES.get(kind, kind), str(entry["n"]), _pm(entry["clip"])]
        if speech:
            corpus = entry.get("wer_corpus")
            cells += ["–" if corpus is None else f"{corpus:.1f}", _pm(entry.get("wer_mean"))]
        if has_clap:
            cells.append(_pm(entry.get("clap")))
        cells.append(_pm(entry.get("vocoder_cycle_error"), 3))
        lines.append("| " + " | ".join(cells) + " |")
    anchors = summary.get("anchors")
    if anchors:
        lines += ["", f"Published ({anchors['source']}):", ""]
        for kind, numbers in anchors.items():
            if kind == "source":
                continue
            text = ", ".join(f"{name.upper()} {value}" for name, value in numbers.items())
            lines.append(f"- {KIND_TITLES.get(kind, kind)}: {text}")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``out/summary.json`` and ``out/summary.md`` (replacing earlier ones atomically)."""
    paths = (out / "summary.json", out / "summary.md")
    texts = (json.dumps(summary, indent=2) + "\n", summary_markdown(summary))
    for path, text in zip(paths, texts, strict=True):
        write_text(path, text)
    return paths
