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
"""Abbreviation (lower case, written with a trailing period) -> spoken form.

``No.`` is expanded only before a number ("No. 5" -> "number five"; "the answer was no." stays).
"""

_ABBREV_RE = re.compile(
    r"\b(" + "|".join(k for k in ABBREVIATIONS if k != "no") + r")\.(?=\s|$)|\b(no)\.(?=\s*\d)", re.IGNORECASE
)
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d+(?:,\d{3})*)(?:\.(\d{2}))?\b")
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_DECADE_RE = re.compile(r"\b(1\d|20)(\d0)s\b")
_NUMBER_RE = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(st|nd|rd|th)?\b")
_SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals "}
_BRACKETS = re.compile(r"[()\[\]{}]")
_ALLOWED = re.compile(r"^[A-Za-z0-9\s;:,.!?¡¿—…\"«»“”'’\-()\[\]{}$£€]*$")


def _words(value: int) -> str:
    from num2words import num2words

    return num2words(value)


def _number_words(match: re.Match) -> str:
    from num2words import num2words

    digits, suffix = match.group(1).replace(",", ""), match.group(2)
    if suffix:
        return num2words(int(float(digits)), to="ordinal")
    if "." in digits:
        return num2words(float(digits))
    value = int(digits)
    if 1100 <= value <= 2099 and len(digits) == 4 and value % 100 != 0:  # years read as years
        return num2words(value, to="year")
    return num2words(value)


def _currency_words(match: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[match.group(1)]
    units = int(match.group(2).replace(",", ""))
    cents = int(match.group(3) or 0)
    spoken = f"{_words(units)} {one if units == 1 else many}"
    if cents:
        spoken += f" and {_words(cents)} {sub_one if cents == 1 else sub_many}"
    return spoken


def _time_words(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{_words(hours)} o'clock"
    if minutes < 10:
        return f"{_words(hours)} oh {_words(minutes)}"
    return f"{_words(hours)} {_words(minutes)}"


def _decade_words(match: re.Match) -> str:
    from num2words import num2words

    year = num2words(int(match.group(1) + match.group(2)), to="year")  # "nineteen ninety"
    return year[:-1] + "ies" if year.endswith("y") else year + "s"


def _abbreviation(match: re.Match) -> str:
    word = (match.group(1) or match.group(2)).lower()
    spoken = ABBREVIATIONS[word]
    at_end = match.end() == len(match.string)
    return spoken + "." if at_end else spoken  # the period also ended the sentence


def normalize_text(text: str) -> str:
    """Normalise one English sentence for speech.

    Unicode is NFKC-normalised and accents are removed (café -> cafe); symbols like ``&`` and ``%``
    are spelled out; brackets are dropped; abbreviations (Mr., Dr., St., No. 5), amounts ($3.50),
    times (10:30), decades (1990s) and numbers (42, 1990, 3.5, 2nd) become words; whitespace is
    collapsed.

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
    s = _BRACKETS.sub(" ", s)
    s = " ".join(s.split())
    s = _ABBREV_RE.sub(_abbreviation, s)
    s = _CURRENCY_RE.sub(_currency_words, s)
    s = _TIME_RE.sub(_time_words, s)
    s = _DECADE_RE.sub(_decade_words, s)
    s = _NUMBER_RE.sub(_number_words, s)
    if any(ch in s for ch in "$£€"):
        raise TextError(f"text {text!r} has a currency sign without an amount; write the amount as words")
    return " ".join(s.split())
