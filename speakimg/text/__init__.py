"""The one phoneme path: normalisation, espeak IPA phonemes, and PL-BERT's symbol table.

Used by the dataset builder (stored phonemes and ids) and by the speech model's conditioning
encoder (sentence -> PL-BERT input ids), so both see exactly the same ids for a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from speakimg.errors import TextError
from speakimg.text.inventory import (
    ENGLISH_PHONEMES,
    PHONEME_EXAMPLES,
    PhonemeCoverage,
    phoneme_coverage,
    split_phonemes,
)
from speakimg.text.normalize import ABBREVIATIONS, normalize_text
from speakimg.text.phonemes import PUNCTUATION, phonemize
from speakimg.text.symbols import (
    PAD_ID,
    SPACE_ID,
    SYMBOL_TO_ID,
    SYMBOLS,
    UNKNOWN,
    ids_to_phonemes,
    phonemes_to_ids,
    unknown_symbols,
)

__all__ = [
    "ABBREVIATIONS",
    "ENGLISH_PHONEMES",
    "PHONEME_EXAMPLES",
    "PhonemeCoverage",
    "PAD_ID",
    "PUNCTUATION",
    "SPACE_ID",
    "SYMBOLS",
    "SYMBOL_TO_ID",
    "UNKNOWN",
    "PhonemizedText",
    "ids_to_phonemes",
    "normalize_text",
    "phonemes_to_ids",
    "phoneme_coverage",
    "phonemize",
    "prepare_text",
    "split_phonemes",
    "unknown_symbols",
]


@dataclass(frozen=True)
class PhonemizedText:
    """A sentence ready for TTS and PL-BERT: its normalised text, phonemes and input ids."""

    text: str
    normalized: str
    phonemes: str
    ids: tuple[int, ...]


def prepare_text(text: str, language: str = "en-us") -> PhonemizedText:
    """Normalise, phonemise and encode one sentence (raises ``TextError`` naming bad text)."""
    normalized = normalize_text(text)
    try:
        phonemes = phonemize(normalized, language=language, normalize=False)
    except TextError as error:  # name the text the user wrote, not its normalised form
        raise TextError(str(error).replace(repr(normalized), repr(text), 1)) from None
    return PhonemizedText(text, normalized, phonemes, tuple(phonemes_to_ids(phonemes)))
