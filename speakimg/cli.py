"""What every speakimg command line shares: one line per error, a traceback only with ``--debug``.

>>> def main(argv=None) -> Path:                    # a library-callable function that raises
...     args = cli.ArgumentParser(PROG, __doc__).parse_args(argv)   # --debug; usage mistakes: one line
...     return do_the_work(args)
>>> if __name__ == "__main__":
...     cli.console(main)                             # exit status: main's int result, else 0; 2 on error

- A :class:`~speakimg.errors.SpeakimgError` (bad settings, a missing file or model, ...) prints one
  ``error: ...`` line on stderr (control characters escaped, very long messages shortened) and exits
  with status 2; ``--debug`` prints the traceback too.
- A :class:`~speakimg.errors.SpeakimgWarning` (an input accepted but altered) prints one ``warning: ...`` line.
- ``main`` is called with ``argv`` as given (``None``: it reads ``sys.argv`` itself, as ``fit`` must for
  DDP launchers that rerun the command for the other ranks); ``prog`` prefixes the error line if given.
- Every command line (fit, export, sample, evaluate, demo, data.build/report/verify/latents,
  vocoder.prepare_mels/export, testing) follows this; ``tests/test_cli_all.py`` checks each one. Heavy
  libraries are imported after parsing, so ``--help`` and bad arguments answer before torch loads.
- Options may be spelled with dashes or underscores (``--image-prompt`` = ``--image_prompt``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from speakimg.errors import SpeakimgError, SpeakimgWarning, printable

__all__ = [
    "COMMANDS",
    "DEBUG_HELP",
    "MAX_MESSAGE",
    "ArgumentParser",
    "console",
    "error_line",
    "main",
    "normalize_options",
    "usage_error",
]

COMMANDS = (
    "speakimg.fit",
    "speakimg.export",
    "speakimg.sample",
    "speakimg.evaluate",
    "speakimg.demo",
    "speakimg.app",
    "speakimg.data.build",
    "speakimg.data.report",
    "speakimg.data.verify",
    "speakimg.data.latents",
    "speakimg.vocoder.prepare_mels",
    "speakimg.vocoder.export",
    "speakimg.testing",
)
"""Every command line, as ``python -m NAME`` runs it (read by the CLI tests, the start-up benchmark and the
layer test's check that no library module imports a command line)."""
MAX_MESSAGE = 1000
"""Characters of an error message printed without ``--debug``."""
DEBUG_HELP = "print the full traceback of an error (by default: one line)"
_OPTION = re.compile(r"^--([A-Za-z][\w-]*)(=.*)?$", re.S)


def normalize_options(argv: list[str]) -> list[str]:
    """``--image-prompt x`` -> ``--image_prompt x``: option names with dashes spelled as the parser's
    (underscores); values after ``=`` and everything after ``--`` are left as they are (a value that
    itself looks like an option is given as ``--option=value``)."""
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + argv[i:]
        match = _OPTION.match(token)
        if match:
            token = "--" + match.group(1).replace("-", "_") + (match.group(2) or "")
        out.append(token)
    return out


def error_line(error: BaseException | str, *, full: bool = False) -> str:
    """``error: <message>`` on one line (control characters escaped, shortened unless ``full``)."""
    message = printable(error)
    if not full and len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters; --debug prints all)"
    return f"error: {message}"


def usage_error(message: str, prog: str | None = None) -> NoReturn:
    """A command-line mistake: one ``error:`` line (pointing at ``--help``) and exit status 2."""
    hint = f" (see {prog} --help)" if prog else ""
    print(error_line(" ".join(str(message).split()) + hint), file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` as every speakimg command line uses it: the description printed as written, ``--debug``,
    and a usage mistake as one ``error:`` line (exit status 2) instead of the usage block."""

    def __init__(self, prog: str, description: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, **kwargs)
        self.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    def error(self, message: str) -> NoReturn:
        usage_error(message, self.prog)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    original = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, SpeakimgWarning):
            print(f"warning: {printable(message)}", file=sys.stderr)
        else:
            original(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def main(run: Callable[[list[str] | None], Any], argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run ``run(argv)`` as a console entry point: 0 on success (or the status ``run`` returns, if an int),
    2 with one ``[PROG: ]error:`` line for a :class:`SpeakimgError` (and its traceback with ``--debug``),
    130 on Ctrl-C. ``argv=None`` is passed on as ``None`` (``run`` reads ``sys.argv``)."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with _warnings_as_lines():
        try:
            status = run(None if argv is None else list(argv))
        except SpeakimgError as error:
            if debug:
                traceback.print_exc()
            line = error_line(error, full=debug)
            print(f"{prog}: {line}" if prog else line, file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def console(run: Callable[[list[str] | None], Any], prog: str | None = None) -> NoReturn:
    """``if __name__ == "__main__": cli.console(main)``: :func:`main` on ``sys.argv``, then exit with its status."""
    raise SystemExit(main(run, prog=prog))
