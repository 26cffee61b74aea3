"""``python -m speakimg.data.report DATA_DIR``: what is in a speech dataset, and how intelligible it is.

::

    python -m speakimg.data.report data/speech [--whisper small.en | PATH | none] [--samples 20]

Writes ``DATA_DIR/report/`` (or ``--out``): ``report.json`` (every number), ``report.md`` (the same,
readable), ``spectrograms.png`` (example spectrograms as the diffusion models see them, with their
sentences) and ``durations.png`` (speech durations and canvas fill). Reported:

- items: ok / failed (by kind) / train / val;
- speech durations, canvas fill (speech seconds / 10 s), stretch factors, where speech starts;
- per voice (multi-voice datasets: ``--tts festival,espeak``): items, durations, canvas fill, WER;
- **short items**: speech shorter than ``--min-speech-seconds`` (default 1 s), usually a TTS failure
  (a clipped rendering) or a one-word line; the vocoder trains on such clips mostly as silence;
- phoneme coverage: the 39 English phonemes (ARPAbet) and how often each occurs;
- an **intelligibility ceiling**: Whisper transcribes a sample of the stored audio, and of its
  Griffin-Lim re-synthesis from the stored mel (what a weight-free vocoder gets back from a perfect
  spectrogram); both word error rates are reported. A trained speech model cannot do better than the
  stored audio's WER, and a Griffin-Lim decode of its outputs not better than the second.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speakimg import cli
from speakimg.errors import DataError

if TYPE_CHECKING:
    from speakimg.data.manifest import ManifestRecord

__all__ = ["dataset_report", "format_report", "main"]

log = logging.getLogger("speakimg.data.report")

DEFAULT_WHISPER = "small.en"


def _stats(values: Sequence[float]) -> dict:
    if not values:
        return {}
    return {
        "min": round(min(values), 4),
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def voice_of(record: ManifestRecord) -> str:
    """The voice spec of a record (its engine for datasets built before voices were recorded)."""
    return record.voice or record.tts


def _by_voice(records: Sequence[ManifestRecord]) -> dict[str, list[ManifestRecord]]:
    groups: dict[str, list[ManifestRecord]] = {}
    for record in records:
        groups.setdefault(voice_of(record), []).append(record)
    return groups


def _sample(records: list[ManifestRecord], n: int, seed: int) -> list[ManifestRecord]:
    """``n`` records drawn with ``seed``, the voices taking turns (every voice is heard), in input order."""
    shuffled = [
        random.Random(f"{seed}:{voice}").sample(group, len(group)) for voice, group in _by_voice(records).items()
    ]
    chosen = []
    while len(chosen) < min(n, len(records)):
        for group in shuffled:
            if group and len(chosen) < n:
                chosen.append(group.pop())
    return sorted(chosen, key=lambda r: r.index)


def _load_whisper(whisper: str, device: Any) -> Any:
    """The Whisper metric with its model loaded: a model that cannot load fails before any work is done."""
    from speakimg.metrics import WhisperWER
    from speakimg.runtime import select_device

    metric = WhisperWER(whisper, device=select_device(device))
    metric.whisper_model  # noqa: B018  (loads it now)
    return metric


def _intelligibility(
    data_dir: Path, records: list[ManifestRecord], metric: Any, samples: int, seed: int, gl_iters: int
) -> dict:
    import torch
    from tqdm.auto import tqdm

    from speakimg.audio import griffin_lim
    from speakimg.data.manifest import load_mel, load_record_audio
    from speakimg.metrics import word_error_rate

    whisper = metric.model_name
    device = metric.device
    chosen = _sample(records, samples, seed)
    stored, resynth = [], []
    for record in tqdm(chosen, desc="griffin-lim", unit="item", leave=False):
        stored.append(load_record_audio(data_dir, record))
        generator = torch.Generator().manual_seed(seed)
        mel = load_mel(data_dir, record).to(device)
        resynth.append(griffin_lim(mel, n_iter=gl_iters, generator=generator).cpu())
    references = [r.text for r in chosen]
    wers, texts = {}, {}
    for name, audio in (("stored_audio", stored), ("griffin_lim", resynth)):
        log.info("whisper: transcribing %d clips (%s)", len(audio), name)
        metric.reset()
        metric.update(audio, references)
        wers[name] = float(metric.compute())
        texts[name] = [hypothesis for _, hypothesis in metric.transcripts]
    stored_text, gl_text = texts["stored_audio"], texts["griffin_lim"]
    by_voice = {}
    for voice in _by_voice(chosen):
        rows = [k for k, r in enumerate(chosen) if voice_of(r) == voice]
        refs = [references[k] for k in rows]
        by_voice[voice] = {
            "samples": len(rows),
            "wer_stored_audio": word_error_rate([stored_text[k] for k in rows], refs),
            "wer_griffin_lim": word_error_rate([gl_text[k] for k in rows], refs),
        }
    return {
        "whisper": str(whisper),
        "samples": len(chosen),
        "griffin_lim_iters": gl_iters,
        "wer_stored_audio": wers["stored_audio"],
        "wer_griffin_lim": wers["griffin_lim"],
        "by_voice": by_voice,
        "transcripts": [
            {"id": r.id, "text": r.text, "voice": voice_of(r), "stored_audio": a, "griffin_lim": g}
            for r, a, g in zip(chosen, stored_text, gl_text, strict=True)
        ],
    }


def _spectrogram_grid(path: Path, data_dir: Path, records: list[ManifestRecord]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speakimg.audio import mel_to_image
    from speakimg.data.manifest import load_mel

    fig, axes = plt.subplots(len(records), 1, figsize=(12, 1.6 * len(records)), squeeze=False)
    for ax, record in zip(axes[:, 0], records, strict=True):
        image = mel_to_image(load_mel(data_dir, record))[0].numpy()  # [256, 1024], low frequencies at the bottom
        ax.imshow(image, cmap="magma", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        title = f"{record.text}  ({record.speech_seconds:.1f} s, x{record.stretch:g})"
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_xticks([0, 256, 512, 768, 1000])
        ax.set_xticklabels(["0 s", "2.56", "5.12", "7.68", "10 s"], fontsize=6)
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _durations_plot(path: Path, seconds: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    import numpy as np

    ax.hist(seconds, bins=np.linspace(0, 10, 41), color="#444")
    ax.set_xlabel("speech seconds (canvas holds 10 s)")
    ax.set_ylabel("items")
    ax.set_xlim(0, 10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dataset_report(
    data_dir: str | os.PathLike,
    whisper: str | os.PathLike | None = DEFAULT_WHISPER,
    samples: int = 20,
    examples: int = 8,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    gl_iters: int = 64,
    device: str | None = None,
    min_speech_seconds: float = 1.0,
) -> dict:
    """Compute the report of a built dataset, write its files, and return it as a dict.

    Args:
        data_dir: a dataset built by ``speakimg.data.build``.
        whisper: a Whisper model name (``small.en``, ``large-v3``...) or checkpoint path; ``None`` skips
            the intelligibility check.
        samples: items transcribed (stored audio and Griffin-Lim), drawn with ``seed``.
        examples: spectrograms in the PNG grid.
        out: output folder (default ``DATA_DIR/report``).
        gl_iters: Griffin-Lim iterations of the re-synthesis.
        device: torch device of Whisper (default: CUDA if available).
        min_speech_seconds: items with less speech are listed (and logged) as short.
    """
    from speakimg.data.canvas import SPEECH_SAMPLES
    from speakimg.data.manifest import BUILD_CONFIG, read_manifest
    from speakimg.io import write_text
    from speakimg.text import SYMBOL_TO_ID, UNKNOWN, phoneme_coverage

    data_dir = Path(data_dir)
    everything = read_manifest(data_dir, status=None)
    records = [r for r in everything if r.status == "ok"]
    if not records:
        raise DataError(f"{data_dir}: no ok items to report on ({len(everything)} error records)")
    metric = None
    if whisper is not None and str(whisper).lower() != "none":  # first: a Whisper that cannot load fails now
        metric = _load_whisper(str(whisper), device)
    out = Path(out) if out is not None else data_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / BUILD_CONFIG
    config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
    failures = Counter((r.error or "").split(":")[0] for r in everything if r.status != "ok")
    seconds = [r.speech_seconds for r in records]
    coverage = phoneme_coverage(r.phonemes for r in records)
    unknown = sum(ids.count(SYMBOL_TO_ID[UNKNOWN]) for ids in (r.phoneme_ids for r in records))
    report: dict = {
        "data_dir": str(data_dir),
        "build": {k: config.get(k) for k in ("tts", "tts_options", "fit", "seed", "val_fraction") if k in config},
        "items": {
            "ok": len(records),
            "failed": len(everything) - len(records),
            "train": sum(r.split == "train" for r in records),
            "val": sum(r.split == "val" for r in records),
            "failures_by_kind": dict(failures.most_common()),
        },
        "speech_seconds": _stats(seconds),
        "canvas_fill": _stats([s * 16000 / SPEECH_SAMPLES for s in seconds]),
        "stretch": {
            **_stats([r.stretch for r in records]),
            "methods": dict(Counter(r.stretch_method for r in records)),
        },
        "speech_start_seconds": _stats([r.speech_start / 16000 for r in records]),
        "phonemes": {
            "ids_per_item": _stats([len(r.phoneme_ids) for r in records]),
            "unknown_ids": unknown,
            "coverage": coverage.to_dict(),
        },
    }
    picked = sorted(random.Random(seed).sample(records, min(examples, len(records))), key=lambda r: r.index)
    _spectrogram_grid(out / "spectrograms.png", data_dir, picked)
    _durations_plot(out / "durations.png", seconds)
    report["voices"] = {
        voice: {
            "ok": sum(r.status == "ok" for r in group),
            "failed": sum(r.status != "ok" for r in group),
            "speech_seconds": _stats([r.speech_seconds for r in group if r.status == "ok"]),
            "canvas_fill": _stats([r.speech_seconds * 16000 / SPEECH_SAMPLES for r in group if r.status == "ok"]),
        }
        for voice, group in _by_voice(everything).items()
    }
    short = [r for r in records if r.speech_seconds < min_speech_seconds]
    report["short_items"] = {
        "min_speech_seconds": min_speech_seconds,
        "items": [
            {"id": r.id, "text": r.text, "voice": voice_of(r), "speech_seconds": r.speech_seconds} for r in short
        ],
    }
    if short:
        log.warning(
            "%s: %d item(s) with less than %.1f s of speech (e.g. %s, %.2f s: %r): TTS failures or one-word lines?",
            data_dir, len(short), min_speech_seconds, short[0].id, short[0].speech_seconds, short[0].text,
        )  # fmt: skip
    report["files"] = {"spectrograms": str(out / "spectrograms.png"), "durations": str(out / "durations.png")}
    if metric is not None:
        report["intelligibility"] = _intelligibility(data_dir, records, metric, samples, seed, gl_iters)
    write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text(out / "report.md", format_report(report))
    return report


def format_report(report: dict) -> str:
    """The report as Markdown."""
    items, cov = report["items"], report["phonemes"]["coverage"]

    def row(name: str, stats: dict, unit: str = "") -> str:
        if not stats:
            return f"| {name} | - | - | - | - |"
        return f"| {name} | {stats['min']:g}{unit} | {stats['mean']:g}{unit} | {stats['median']:g}{unit} | {stats['max']:g}{unit} |"

    lines = [
        f"# Speech dataset report: {report['data_dir']}",
        "",
        f"Built with: `{json.dumps(report.get('build', {}), sort_keys=True)}`",
        "",
        f"**Items**: {items['ok']} ok ({items['train']} train, {items['val']} val), {items['failed']} failed"
        + (f" ({', '.join(f'{k} x{n}' for k, n in items['failures_by_kind'].items())})" if items["failed"] else ""),
        "",
        "| | min | mean | median | max |",
        "| --- | --- | --- | --- | --- |",
        row("speech seconds", report["speech_seconds"], " s"),
        row("canvas fill (of 10 s)", report["canvas_fill"]),
        row("stretch factor", {k: v for k, v in report["stretch"].items() if k != "methods"}),
        row("speech start", report["speech_start_seconds"], " s"),
        row("phoneme ids per item", report["phonemes"]["ids_per_item"]),
        "",
        f"Stretch methods: {report['stretch'].get('methods', {})}",
        "",
    ]
    voices = report.get("voices", {})
    if len(voices) > 1:
        lines += ["**By voice**:", "", "| voice | ok | failed | speech seconds (min / mean / max) | canvas fill (mean) |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for voice, v in voices.items():
            sec, fill = v["speech_seconds"], v["canvas_fill"]
            span = f"{sec['min']:g} / {sec['mean']:g} / {sec['max']:g}" if sec else "-"
            lines.append(f"| {voice} | {v['ok']} | {v['failed']} | {span} | {fill.get('mean', '-')} |")
        lines.append("")
    short = report.get("short_items", {}).get("items", [])
    if short:
        limit = report["short_items"]["min_speech_seconds"]
        lines += [f"**Warning**: {len(short)} item(s) with less than {limit:g} s of speech (TTS failures or "
                  "one-word lines? the vocoder trains on them mostly as silence):", ""]  # fmt: skip
        lines += [f"- `{i['id']}` ({i['voice']}, {i['speech_seconds']:g} s): {i['text']}" for i in short[:20]]
        lines.append("")
    lines += [
        f"**Phoneme coverage**: {cov['fraction']:.0%} of the 39 English phonemes"
        + (f"; missing: {', '.join(cov['missing'])}" if cov["missing"] else "")
        + f"; unknown symbol ids: {report['phonemes']['unknown_ids']}",
        "",
        "| " + " | ".join(cov["counts"]) + " |",
        "| " + " | ".join("---" for _ in cov["counts"]) + " |",
        "| " + " | ".join(str(n) for n in cov["counts"].values()) + " |",
        "",
    ]
    if "intelligibility" in report:
        intel = report["intelligibility"]
        lines += [
            f"**Intelligibility ceiling** (Whisper `{intel['whisper']}`, {intel['samples']} items):",
            "",
            "| audio | WER |",
            "| --- | --- |",
            f"| stored audio | {intel['wer_stored_audio']:.1%} |",
            f"| Griffin-Lim ({intel['griffin_lim_iters']} it.) from the stored mel | {intel['wer_griffin_lim']:.1%} |",
            "",
        ]
        if len(intel.get("by_voice", {})) > 1:
            lines += ["| voice | items | WER stored audio | WER Griffin-Lim |", "| --- | --- | --- | --- |"]
            for voice, v in intel["by_voice"].items():
                lines.append(f"| {voice} | {v['samples']} | {v['wer_stored_audio']:.1%} | {v['wer_griffin_lim']:.1%} |")
            lines.append("")
    lines += ["![spectrograms](spectrograms.png)", "", "![durations](durations.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser("python -m speakimg.data.report", __doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--whisper", default=DEFAULT_WHISPER, help="Whisper name or checkpoint path; 'none' skips")
    parser.add_argument("--samples", type=int, default=20, help="items transcribed")
    parser.add_argument("--examples", type=int, default=8, help="spectrograms in the PNG grid")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default DATA_DIR/report)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gl-iters", type=int, default=64, help="Griffin-Lim iterations")
    parser.add_argument("--device", default=None, help="Whisper's device (default: cuda if available)")
    parser.add_argument("--min-speech-seconds", type=float, default=1.0, help="list items with less speech")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = dataset_report(args.data_dir, args.whisper, args.samples, args.examples, args.out, args.seed,
                            args.gl_iters, args.device, args.min_speech_seconds)  # fmt: skip
    print(format_report(report))
    print(f"written to {Path(report['files']['spectrograms']).parent}")


if __name__ == "__main__":
    cli.console(main)
