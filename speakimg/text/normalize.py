"""Light English text normalisation before phonemisation and TTS: numbers, abbreviations, accents.

The same normalised sentence goes to the phonemizer and to the TTS engine, so the phonemes that
condition the speech model describe exactly what was spoken.
"""

from __future__ import annotations

import re
import unicodedata

from speakimg.errors import TextError

__all__ = ["normalize_text", "ABBREVIATIONS"]

ABBREVIATIONS: dict[str, str] = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "st": "saint",
    "co": "company",
    "jr": "junior",
    "sr": "senior",
    "prof": "professor",
    "capt": "captain",
    "gen": "general",
    "lt": "lieutenant",
    "mt": "mount",
    "ft": "fort",
    "etc": "et cetera",
    "vs": "versus",
    "no": "number",
}
"""Abbreviation (lower case, written with a trailing period) -> spoken form."""

_ABBREV_RE = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s|$)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(st|nd|rd|th)?\b")
_SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals "}
_ALLOWED = re.compile(r"^[A-Za-z0-9\s;:,.!?¡¿—…\"«»“”'’\-()]*$")


def _number_words(match: re.Match) -> str:
    from num2words import num2words

    digits, suffix = match.group(1).replace(",", ""), match.group(2)
    if suffix:
        return num2words(int(digits), to="ordinal")
    if "." in digits:
        return num2words(float(digits))
    value = int(digits)
    if 1100 <= value <= 2099 and len(digits) == 4 and value % 100 != 0:  # years read as years
        return num2words(value, to="year")
    return num2words(value)


def normalize_text(text: str) -> str:
    """Normalise one English sentence for speech.

    Unicode is NFKC-normalised and accents are removed (café -> cafe); symbols like ``&`` and ``%``
    are spelled out; abbreviations (Mr., Dr., St., ...) and numbers (42, 1990, 3.5, 2nd) become
    words; whitespace is collapsed.

    Raises:
        TextError: the text is empty, or holds characters that are not English (naming them).
    """
    if not isinstance(text, str):
        raise TextError(f"expected a sentence (str), got {type(text).__name__}: {text!r}")
    s = unicodedata.normalize("NFKC", text)
    s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
    s = s.replace("’", "'").replace("‘", "'").replace("–", "—")
    for symbol, spoken in _SYMBOLS.items():
        s = s.replace(symbol, spoken)
    s = " ".join(s.split())
    if not s:
        raise TextError(f"empty text {text!r}: nothing to speak")
    if not _ALLOWED.match(s):
        bad = sorted({ch for ch in s if not _ALLOWED.match(ch)})
        raise TextError(f"text {text!r} has characters that are not English: {' '.join(bad)}")
    s = _ABBREV_RE.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], s)
    s = _NUMBER_RE.sub(_number_words, s)
    return " ".join(s.split())
