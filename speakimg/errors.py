"""Exception types shared by every part of speakimg.

Each error names the culprit (a file, a text, a config key) and what to do about it, so a user
never has to read a traceback to know what went wrong.
"""

from __future__ import annotations


class SpeakimgError(Exception):
    """Base class of every error speakimg raises on purpose."""


class AudioError(SpeakimgError, ValueError):
    """Audio that cannot be used: unreadable, empty, silent, non-finite, or of the wrong type."""


class TextError(SpeakimgError, ValueError):
    """Text that cannot be used: empty, no phonemes, too long for the canvas."""


class ModelNotFoundError(SpeakimgError, FileNotFoundError):
    """A model folder, file or hub id that cannot be found or fetched."""


class ConfigError(SpeakimgError, ValueError):
    """A configuration value or key that is not valid."""


class DataError(SpeakimgError, ValueError):
    """A dataset that does not have the expected layout, shapes or values."""


class MissingDependencyError(SpeakimgError, ImportError):
    """An optional engine or package that is not installed; the message says how to install it."""


class TrainingError(SpeakimgError, RuntimeError):
    """Training cannot go on (e.g. a NaN loss); checkpoints written so far are kept."""


class CheckpointError(SpeakimgError, ValueError):
    """A weights file or training checkpoint that cannot be used: unsafe, incomplete or mismatched."""


class SpeakimgWarning(UserWarning):
    """An input that is accepted but altered or unusual (a prompt cut to the encoder's length, an
    out-of-range guidance scale): the run goes on, the user is told what happened."""


def printable(text: object) -> str:
    """``text`` with every control or non-printable character escaped (``\\n``, ``\\x1b``...): one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def quote(text: object, limit: int = 80) -> str:
    """``text`` for a message: quoted, control characters escaped, cut to ``limit`` characters with a note
    of how many were left out (a 5000-character sentence stays one readable line)."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"
