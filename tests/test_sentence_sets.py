"""The shipped sentence sets: nine-word sentences, every English phoneme, held-out test set, image prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakimg.text import ENGLISH_PHONEMES, phoneme_coverage, prepare_text, unknown_symbols

DATA = Path(__file__).resolve().parents[1] / "configs" / "data"


def _lines(name: str) -> list[str]:
    return (DATA / name).read_text("utf-8").splitlines()


@pytest.mark.parametrize(("name", "minimum"), [("train_sentences.txt", 150), ("test_sentences.txt", 20)])
def test_nine_word_sentences_with_every_english_phoneme(name, minimum):
    lines = _lines(name)
    assert len(lines) >= minimum and len(set(lines)) == len(lines)
    assert [line for line in lines if len(line.split()) != 9] == []
    prepared = [prepare_text(line) for line in lines]  # raises on anything unspeakable
    assert set().union(*(unknown_symbols(p.phonemes) for p in prepared)) == set()
    coverage = phoneme_coverage(p.phonemes for p in prepared)
    assert coverage.missing == [] and len(coverage.counts) == len(ENGLISH_PHONEMES)


def test_test_sentences_are_held_out_and_twenty():
    train, test = set(_lines("train_sentences.txt")), _lines("test_sentences.txt")
    assert len(test) == 20 and not train & set(test)


def test_twenty_image_prompts():
    prompts = _lines("image_prompts.txt")
    assert len(prompts) == 20 and len(set(prompts)) == 20 and all(p.strip() == p and p for p in prompts)
