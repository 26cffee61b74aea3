"""``python -m speakimg.testing --out DIR``: write every tiny model of the kit under DIR."""

from __future__ import annotations

import logging
from pathlib import Path

from speakimg import cli
from speakimg.errors import ConfigError
from speakimg.testing import BUILDERS, default_root


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser("python -m speakimg.testing", __doc__)
    parser.add_argument("--out", default=None, help=f"output folder (default {default_root()})")
    parser.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="build only these models")
    args = parser.parse_args(argv)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: a file, not a folder")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tqdm.auto import tqdm

    names = args.only or list(BUILDERS)
    for name in tqdm(names, desc="tiny models", unit="model"):
        path = BUILDERS[name](args.out)
        tqdm.write(f"{name:>18}: {path}")


if __name__ == "__main__":
    cli.console(main)
