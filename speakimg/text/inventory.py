"""The English phoneme inventory, and how much of it a set of espeak phoneme strings covers.

The 39 phonemes of General American English (the CMU dictionary's ARPAbet set: 15 vowels and 24
consonants), each with the IPA units espeak-ng (en-us) writes for it. A phoneme is covered by a
sentence set when any of its units occurs in the sentences' phonemes. Flaps (``ɾ``) and glottal
stops (``ʔ``) are counted as units but are allophones of /t/ and /d/, not required phonemes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from speakimg.text.phonemes import PUNCTUATION

__all__ = ["ENGLISH_PHONEMES", "PHONEME_EXAMPLES", "PhonemeCoverage", "phoneme_coverage", "split_phonemes"]

ENGLISH_PHONEMES: dict[str, tuple[str, ...]] = {
    # vowels
    "AA": ("ɑː", "ɑ"),
    "AE": ("æ",),
    "AH": ("ʌ", "ə", "ɐ"),
    "AO": ("ɔː", "ɔ", "oː"),
    "AW": ("aʊ",),
    "AY": ("aɪ",),
    "EH": ("ɛ",),
    "ER": ("ɜː", "ɚ", "ɝ"),
    "EY": ("eɪ",),
    "IH": ("ɪ", "ᵻ"),
    "IY": ("iː", "i"),
    "OW": ("oʊ",),
    "OY": ("ɔɪ",),
    "UH": ("ʊ",),
    "UW": ("uː", "u"),
    # consonants
    "B": ("b",),
    "CH": ("tʃ", "ʧ"),
    "D": ("d",),
    "DH": ("ð",),
    "F": ("f",),
    "G": ("ɡ", "g"),
    "HH": ("h",),
    "JH": ("dʒ", "ʤ"),
    "K": ("k",),
    "L": ("l",),
    "M": ("m",),
    "N": ("n",),
    "NG": ("ŋ",),
    "P": ("p",),
    "R": ("ɹ", "r"),
    "S": ("s",),
    "SH": ("ʃ",),
    "T": ("t",),
    "TH": ("θ",),
    "V": ("v",),
    "W": ("w",),
    "Y": ("j",),
    "Z": ("z",),
    "ZH": ("ʒ",),
}
"""ARPAbet name -> the IPA units espeak-ng (en-us) writes for it."""

PHONEME_EXAMPLES: dict[str, str] = {
    "AA": "father",
    "AE": "cat",
    "AH": "cut, sofa",
    "AO": "thought, four",
    "AW": "cow",
    "AY": "bite",
    "EH": "bet",
    "ER": "bird, butter",
    "EY": "bait",
    "IH": "bit",
    "IY": "sheet, happy",
    "OW": "boat",
    "OY": "boy",
    "UH": "book",
    "UW": "boot",
    "B": "bet",
    "CH": "chip",
    "D": "dog",
    "DH": "this",
    "F": "five",
    "G": "go",
    "HH": "hat",
    "JH": "judge",
    "K": "king",
    "L": "let",
    "M": "me",
    "N": "no",
    "NG": "sing",
    "P": "pet",
    "R": "red",
    "S": "sit",
    "SH": "ship",
    "T": "tea",
    "TH": "think",
    "V": "voice",
    "W": "wet",
    "Y": "yes",
    "Z": "zoo",
    "ZH": "measure",
}
"""An example word for every phoneme (for reports)."""

_UNIT_TO_PHONEME = {unit: name for name, units in ENGLISH_PHONEMES.items() for unit in units}
_MULTI = sorted((u for u in _UNIT_TO_PHONEME if len(u) > 1), key=len, reverse=True)
_SKIP = set(PUNCTUATION) | {" ", "ˈ", "ˌ", "\u0329", "-"}


def split_phonemes(phonemes: str) -> list[str]:
    """Split an espeak IPA string into phoneme units (longest match first; stress, punctuation dropped).

    >>> split_phonemes("tʃˈɪp ʃˈiːt")
    ['tʃ', 'ɪ', 'p', 'ʃ', 'iː', 't']
    """
    units: list[str] = []
    i = 0
    while i < len(phonemes):
        ch = phonemes[i]
        if ch in _SKIP:
            i += 1
            continue
        for unit in _MULTI:
            if phonemes.startswith(unit, i):
                units.append(unit)
                i += len(unit)
                break
        else:
            units.append(ch)
            i += 1
    return units


@dataclass(frozen=True)
class PhonemeCoverage:
    """Occurrences of the English phonemes (ARPAbet names) and of every IPA unit seen."""

    counts: dict[str, int]
    units: dict[str, int]

    @property
    def missing(self) -> list[str]:
        """English phonemes that never occur."""
        return [name for name in ENGLISH_PHONEMES if self.counts.get(name, 0) == 0]

    @property
    def fraction(self) -> float:
        """Share of the 39 English phonemes that occur at least once."""
        return 1.0 - len(self.missing) / len(ENGLISH_PHONEMES)

    @property
    def other_units(self) -> dict[str, int]:
        """IPA units that are not one of the English phonemes (allophones such as ɾ and ʔ, foreign sounds)."""
        return {u: n for u, n in self.units.items() if u not in _UNIT_TO_PHONEME}

    def to_dict(self) -> dict:
        return {
            "fraction": self.fraction,
            "missing": self.missing,
            "counts": {name: self.counts.get(name, 0) for name in ENGLISH_PHONEMES},
            "other_units": self.other_units,
        }


def phoneme_coverage(phoneme_strings: Iterable[str]) -> PhonemeCoverage:
    """Count the English phonemes in espeak IPA strings (e.g. the ``phonemes`` of manifest records)."""
    units: Counter[str] = Counter()
    for phonemes in phoneme_strings:
        units.update(split_phonemes(phonemes))
    counts: Counter[str] = Counter()
    for unit, n in units.items():
        name = _UNIT_TO_PHONEME.get(unit)
        if name is not None:
            counts[name] += n
    return PhonemeCoverage(counts=dict(counts), units=dict(units))
