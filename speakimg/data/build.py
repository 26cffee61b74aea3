"""``python -m speakimg.data.build``: sentences -> phonemes -> speech on the 10 s canvas -> log-mels.

::

    python -m speakimg.data.build --texts configs/data/train_sentences.txt --out data/speech \\
        [--tts festival | --tts festival,piper:joe,espeak] [--fit pad] [--workers N] [--shard I/N] \\
        [--val-fraction 0.05] [--seed 0]
    python -m speakimg.data.build --merge SHARD_DIR [SHARD_DIR ...] --out data/speech

One sentence per line of ``--texts``. Per sentence the builder writes the canvas audio, its log-mel
and a record (text, phonemes, PL-BERT ids, voice, timing, checksums); ``manifest.jsonl`` lists every
record in input order (layout: :mod:`speakimg.data.manifest`).

- **Deterministic**: an item's id is a hash of its sentence; its random placement, its voice and the
  train/val split derive from (seed, id) only, so 1 or N workers, a resumed or a sharded build give
  byte-identical files and the same manifest. Validation items are chosen among the built items.
- **Resumable and self-repairing**: every file is written under a temporary name and renamed into
  place, the item's record last; a rerun checks finished items against their checksums, rebuilds
  broken ones, retries failed ones and removes temporary files of killed runs.
- **Sharded**: ``--shard I/N`` builds every N-th item from the I-th; shards writing into one folder
  (a shared filesystem, e.g. a SLURM array) form one dataset; separate shard folders are merged
  with ``--merge``.
- **Robust**: a sentence that fails (empty line, not English, no phonemes, too long for 10 s, a TTS
  error or a missing engine) gets an error record, and the build goes on.

The library behind it: :func:`speakimg.data.build_dataset` (:mod:`speakimg.data.builder`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speakimg import cli
from speakimg.data.canvas import CanvasFit
from speakimg.data.plan import BuildConfig
from speakimg.errors import DataError
from speakimg.runtime import available_cpus

# A command line only: the library is speakimg.data (build_dataset, merge_datasets, BuildConfig, ...).
# The builder (torch, the engines) is imported after the arguments are parsed, so --help answers at once.
__all__ = ["main"]


# ----------------------------------------------------------------------------- CLI


def _parse_shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N (e.g. 0/4), got {value!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {value!r}")
    return index, count


def _parse_tts(value: str) -> str:
    from speakimg.tts import parse_voices

    try:
        return ",".join(str(v) for v in parse_voices(value))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    from speakimg.audio.stretch import STRETCH_METHODS
    from speakimg.data.canvas import FIT_MODES, PLACEMENTS
    from speakimg.tts import ENGINES

    defaults = CanvasFit()
    p = cli.ArgumentParser("python -m speakimg.data.build", __doc__)
    p.add_argument("--texts", type=Path, help="UTF-8 file with one sentence per line")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (resumed if it exists)")
    p.add_argument("--merge", type=Path, nargs="*", metavar="SHARD_DIR", help="merge shard folders into --out")
    p.add_argument(
        "--tts",
        default="festival",
        type=_parse_tts,
        metavar="VOICE[,VOICE...]",
        help=f"TTS voice spec(s) ENGINE[:VOICE], comma-separated for a multi-voice dataset (engines: "
        f"{', '.join(sorted(ENGINES))}; e.g. festival,piper:joe,espeak; default festival)",
    )
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
    p.add_argument("--workers", type=int, default=available_cpus(), help="parallel processes (default: all CPUs)")
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
    from speakimg.data.builder import build_dataset, merge_datasets

    try:
        if args.merge is not None:
            summary = merge_datasets(args.merge, args.out)
        else:
            if args.texts is None:
                parser.error("--texts is required (or --merge to merge shard folders)")
            engines = {voice.split(":", 1)[0] for voice in args.tts.split(",")}
            options = {}
            if "transformers" in engines:  # the model of transformers voices given without one
                options["model"] = args.tts_model or "facebook/mms-tts-eng"
            if args.tts_device and engines & {"transformers", "tacotron2"}:
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
        if args.debug:
            raise
        print(cli.error_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished items are kept in {args.out}; rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary.format())
    nothing_built = summary.failed > 0 and summary.built == 0 and summary.skipped == 0
    return 1 if nothing_built else 0


if __name__ == "__main__":
    cli.console(main)
