"""Shared command-line error handling: a speakimg error is one line on stderr, the traceback only with ``--debug``.

Every CLI's ``console()`` / ``__main__`` runs its ``main(argv)`` through :func:`run`; ``main`` stays a plain
function that raises (tests and scripts call it directly).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from speakimg.errors import SpeakimgError

__all__ = ["one_line", "run"]


def one_line(error: BaseException) -> str:
    """The error's message on one line (newlines and runs of spaces collapsed)."""
    return " ".join(str(error).split())


def run(main: Callable[[list[str] | None], Any], argv: Sequence[str] | None = None, prog: str | None = None) -> Any:
    """Call ``main(argv)``; a :class:`SpeakimgError` becomes ``PROG: error: <message>`` and exit status 1,
    unless ``--debug`` is among the arguments (then it propagates with its traceback)."""
    try:
        return main(None if argv is None else list(argv))  # None: main reads sys.argv (DDP relaunches it)
    except SpeakimgError as error:
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        print(f"{prog or 'speakimg'}: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None
