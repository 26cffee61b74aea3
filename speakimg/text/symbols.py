"""PL-BERT's 178-symbol table (docs/method.md section 7): phoneme strings <-> input ids.

Order: ``$`` (pad, id 0); the 16 punctuation characters ``;:,.!?¡¿—…"«»“”`` and space (id 16);
A-Z, a-z; then 109 IPA symbols. As in the original tables, the apostrophe appears twice in the IPA
list and maps to its later index; unknown characters map to ``U``. Input ids start with a 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "SYMBOLS",
    "SYMBOL_TO_ID",
    "PAD",
    "PAD_ID",
    "SPACE_ID",
    "UNKNOWN",
    "phonemes_to_ids",
    "ids_to_phonemes",
    "unknown_symbols",
]

PAD = "$"
_PUNCTUATION = ';:,.!?¡¿—…"«»“” '
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_IPA = (
    "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘'\u0329'ᵻ"
)

SYMBOLS: tuple[str, ...] = (PAD, *_PUNCTUATION, *_LETTERS, *_IPA)
"""All 178 symbols in id order."""

SYMBOL_TO_ID: dict[str, int] = {}
for _index, _symbol in enumerate(SYMBOLS):
    SYMBOL_TO_ID[_symbol] = _index  # a repeated symbol keeps its later index, as upstream

PAD_ID = 0
SPACE_ID = SYMBOL_TO_ID[" "]
UNKNOWN = "U"

assert len(SYMBOLS) == 178 and SPACE_ID == 16


def unknown_symbols(phonemes: str) -> set[str]:
    """Characters of ``phonemes`` that are not in the table."""
    return {ch for ch in phonemes if ch not in SYMBOL_TO_ID}


def phonemes_to_ids(phonemes: str, leading_pad: bool = True) -> list[int]:
    """Look a phoneme string up character by character (unknown -> ``U``), with a leading 0."""
    unknown = SYMBOL_TO_ID[UNKNOWN]
    ids = [SYMBOL_TO_ID.get(ch, unknown) for ch in phonemes]
    return [PAD_ID, *ids] if leading_pad else ids


def ids_to_phonemes(ids: Sequence[int] | Iterable[int], leading_pad: bool = True) -> str:
    """Inverse of :func:`phonemes_to_ids` (padding ids are dropped)."""
    ids = [int(i) for i in ids]
    if leading_pad and ids and ids[0] == PAD_ID:
        ids = ids[1:]
    for i in ids:
        if not 0 <= i < len(SYMBOLS):
            raise ValueError(f"phoneme id {i} is outside the {len(SYMBOLS)}-symbol table")
    return "".join(SYMBOLS[i] for i in ids if i != PAD_ID)
