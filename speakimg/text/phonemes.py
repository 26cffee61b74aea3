"""Sentences -> espeak IPA phonemes (phonemizer, en-us, punctuation kept, stress marks), PL-BERT style."""

from __future__ import annotations

import functools
import logging
import re

from speakimg.errors import MissingDependencyError, TextError
from speakimg.text.normalize import normalize_text

__all__ = ["phonemize", "PUNCTUATION"]

PUNCTUATION = ';:,.!?¡¿—…"«»“”'
_PUNCT_RE = re.compile(r"\s*([" + re.escape(PUNCTUATION) + r"])\s*")


@functools.lru_cache(maxsize=4)
def _backend(language: str):
    try:
        from phonemizer.backend import EspeakBackend

        # phonemizer resets the level of its own logger; a private one keeps its per-call warnings quiet
        # ("words count mismatch" is about batches of lines; we phonemise one sentence at a time)
        logger = logging.getLogger("speakimg.text.phonemizer")
        logger.setLevel(logging.ERROR)
        return EspeakBackend(
            language, preserve_punctuation=True, with_stress=True, language_switch="remove-flags", logger=logger
        )
    except RuntimeError as error:  # phonemizer raises RuntimeError when libespeak-ng is missing
        raise MissingDependencyError(
            f"phonemizer cannot find espeak-ng ({error}); install it: apt-get install espeak-ng"
        ) from error


def phonemize(text: str, language: str = "en-us", normalize: bool = True) -> str:
    """espeak IPA of ``text`` with stress marks and punctuation kept, punctuation space-separated.

    >>> phonemize("Hello, world!")  # doctest: +SKIP
    'həlˈoʊ , wˈɜːld !'

    Raises:
        TextError: the text is empty, not English, or yields no phonemes (the message names it).
    """
    sentence = normalize_text(text) if normalize else text
    raw = _backend(language).phonemize([sentence], strip=True, njobs=1)[0]
    phonemes = " ".join(_PUNCT_RE.sub(r" \1 ", raw).split())
    if not any(ch not in PUNCTUATION and not ch.isspace() for ch in phonemes):
        raise TextError(f"text {text!r} yields no phonemes; give a sentence with words")
    return phonemes
