"""``python -m speakimg.data.verify DATA_DIR [--repair]``: is a built speech dataset intact? Repair it.

::

    python -m speakimg.data.verify data/speech              # check; exit 1 if anything is broken
    python -m speakimg.data.verify data/speech --repair     # rebuild what is broken, then check again

Checks every ok item (files present and readable, the SHA-256 recorded at build time, audio of the
10.24 s canvas at 16 kHz, float16 [256, 1024] mels with finite values), the manifest, items never
built, the latent caches (readable, [4, 32, 128], finite, not stale) and temporary files of killed runs.
``--repair`` removes the temporary files and the broken or stale latents and reruns the build with the
dataset's own settings and sentences: broken items come back byte-identical, failed ones are retried,
missing ones built. Cached latents removed are computed again by the data module (``latents_vae``) or
``python -m speakimg.data.latents``. Library: :mod:`speakimg.data.integrity`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from speakimg import cli

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser("python -m speakimg.data.verify", __doc__)
    p.add_argument("data_dir", type=Path, help="a dataset folder built by speakimg.data.build")
    p.add_argument("--repair", action="store_true", help="rebuild what is broken (and remove stale latents)")
    p.add_argument("--workers", type=int, default=None, help="processes for rebuilding (default: all CPUs)")
    p.add_argument("--json", type=Path, default=None, help="also write the findings as JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns 0 when the dataset is intact (after a repair, if asked), 1 if not, 2 on bad input."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from speakimg.data.integrity import repair_dataset, verify_dataset
    from speakimg.errors import DataError
    from speakimg.runtime import available_cpus

    workers = args.workers if args.workers is not None else available_cpus()
    try:
        if args.repair:
            before, summary, result = repair_dataset(args.data_dir, workers, progress=not args.quiet)
            print(before.format())
            print(summary.format())
        else:
            result = verify_dataset(args.data_dir, workers, progress=not args.quiet)
    except DataError as error:
        if args.debug:
            raise
        print(cli.error_line(error), file=sys.stderr)
        return 2
    print(result.format())
    if args.json is not None:
        from speakimg.io import write_text

        write_text(args.json, json.dumps(result.to_dict(), indent=2) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    cli.console(main)
