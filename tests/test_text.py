"""The phoneme path: normalisation, espeak IPA phonemes, PL-BERT's symbol table, phoneme coverage."""

from __future__ import annotations

import pytest

from speakimg.errors import TextError
from speakimg.text import (
    ENGLISH_PHONEMES,
    PAD_ID,
    PUNCTUATION,
    SPACE_ID,
    SYMBOL_TO_ID,
    SYMBOLS,
    UNKNOWN,
    ids_to_phonemes,
    normalize_text,
    phoneme_coverage,
    phonemes_to_ids,
    phonemize,
    prepare_text,
    split_phonemes,
    unknown_symbols,
)

# ---------------------------------------------------------------- the 178-symbol table


def test_table_order_and_size():
    assert len(SYMBOLS) == 178
    assert SYMBOLS[0] == "$" and PAD_ID == 0
    assert "".join(SYMBOLS[1:17]) == ';:,.!?¡¿—…"«»“” '
    assert SPACE_ID == 16 and SYMBOLS[16] == " "
    assert "".join(SYMBOLS[17:69]) == "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert SYMBOLS[69] == "ɑ" and SYMBOLS[-1] == "ᵻ"
    # ids PL-BERT/StyleTTS2 checkpoints were trained with (fixed by the upstream table order)
    assert [SYMBOL_TO_ID[s] for s in ("h", "ɑ", "ˈ", "ː", "ɹ", "ə", "ɪ")] == [50, 69, 156, 158, 123, 83, 102]


def test_repeated_apostrophe_maps_to_its_later_index():
    first, last = (i for i, s in enumerate(SYMBOLS) if s == "'")
    assert first < last and SYMBOL_TO_ID["'"] == last
    assert ids_to_phonemes(phonemes_to_ids("'")) == "'"


def test_unknown_symbols_map_to_U_and_a_leading_pad():
    ids = phonemes_to_ids("hˈi☃")
    assert ids[0] == PAD_ID
    assert ids[1:] == [SYMBOL_TO_ID["h"], SYMBOL_TO_ID["ˈ"], SYMBOL_TO_ID["i"], SYMBOL_TO_ID[UNKNOWN]]
    assert unknown_symbols("hˈi☃x") == {"☃"}
    assert phonemes_to_ids("ab", leading_pad=False) == [SYMBOL_TO_ID["a"], SYMBOL_TO_ID["b"]]


def test_ids_round_trip_and_bad_ids():
    phonemes = "ðə kwˈaɪət hˈɑːɹbɚ , ɐ bˈʊk !"
    ids = phonemes_to_ids(phonemes)
    assert ids_to_phonemes(ids) == phonemes
    assert ids_to_phonemes(ids + [PAD_ID, PAD_ID]) == phonemes  # batch padding is dropped
    assert ids_to_phonemes(phonemes_to_ids(phonemes, leading_pad=False), leading_pad=False) == phonemes
    with pytest.raises(ValueError, match="178"):
        ids_to_phonemes([0, 178])


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have 42 cats.", "I have forty-two cats."),
        ("Born in 1990, gone by 2000.", "Born in nineteen ninety, gone by two thousand."),
        ("The 2nd and the 21st.", "The second and the twenty-first."),
        ("It weighs 3.5 kilos.", "It weighs three point five kilos."),
        ("A crowd of 1,000,000 people.", "A crowd of one million people."),
        ("It cost $3.50 or £1.", "It cost three dollars and fifty cents or one pound."),
        ("Meet at 10:30, not 9:00.", "Meet at ten thirty, not nine o'clock."),
        ("Songs of the 1980s.", "Songs of the nineteen eighties."),
        ("Dr. Smith met Mr. Jones.", "doctor Smith met mister Jones."),
        ("Room No. 7 is here.", "Room number seven is here."),
        ("The answer was no.", "The answer was no."),
        ("Apples, pears, etc.", "Apples, pears, et cetera."),
        ("Café crème at the Hôtel", "Cafe creme at the Hotel"),
        ("Salt & pepper, 50% off", "Salt and pepper, fifty percent off"),
        ("the cat (black) sat", "the cat black sat"),
        ("  many   spaces\there \n", "many spaces here"),
        ("it’s fine", "it's fine"),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_an_error(text):
    with pytest.raises(TextError, match="empty"):
        normalize_text(text)


@pytest.mark.parametrize(("text", "culprit"), [("Привет, мир", "П"), ("你好世界", "你"), ("Grüße aus der Straße", "ß")])
def test_non_english_text_is_an_error_naming_the_characters(text, culprit):
    with pytest.raises(TextError, match="not English") as info:
        prepare_text(text)
    assert culprit in str(info.value) and text in str(info.value)


def test_non_string_is_an_error():
    with pytest.raises(TextError, match="expected a sentence"):
        normalize_text(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- phonemes


def test_phonemize_keeps_stress_and_spaced_punctuation():
    phonemes = phonemize("Hello, world!")
    assert phonemes == "həlˈoʊ , wˈɜːld !"
    assert phonemize("Hello, world!") == phonemes  # deterministic


@pytest.mark.parametrize("text", ["...", "?!", " — ", '"…"'])
def test_punctuation_only_yields_no_phonemes(text):
    with pytest.raises(TextError, match="no phonemes") as info:
        prepare_text(text)
    assert repr(text) in str(info.value)


def test_prepare_text_is_consistent():
    item = prepare_text("Dr. Jones paid $5 for 2 books.")
    assert item.normalized == "doctor Jones paid five dollars for two books."
    assert item.phonemes == phonemize(item.normalized, normalize=False)
    assert list(item.ids) == phonemes_to_ids(item.phonemes)
    assert item.ids[0] == PAD_ID and SPACE_ID in item.ids
    assert ids_to_phonemes(item.ids) == item.phonemes
    assert not unknown_symbols(item.phonemes)
    # every word of the sentence is phonemised: words are separated by single spaces
    assert item.phonemes.count(" ") >= len(item.normalized.split()) - 1
    assert {p for p in PUNCTUATION if p in item.phonemes} == {"."}


def test_brackets_never_reach_the_symbol_table():
    item = prepare_text("The cat (a black one) sat [quietly].")
    assert not unknown_symbols(item.phonemes)
    assert SYMBOL_TO_ID[UNKNOWN] not in item.ids


# ---------------------------------------------------------------- phoneme inventory


def test_split_phonemes_longest_match():
    assert split_phonemes("tʃˈɪp ʃˈiːt") == ["tʃ", "ɪ", "p", "ʃ", "iː", "t"]
    assert split_phonemes("dʒˈʌdʒ , bˈɔɪ .") == ["dʒ", "ʌ", "dʒ", "b", "ɔɪ"]
    assert split_phonemes("bˈʌʔn̩") == ["b", "ʌ", "ʔ", "n"]


def test_phoneme_coverage_of_words():
    words = "father cat cup bought cow bite bet bird bait bit sheet boat boy book boot"
    vowels = phoneme_coverage(phonemize(w) for w in words.split())
    assert [
        v
        for v in ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
        if v in vowels.missing
    ] == []
    assert "ZH" in vowels.missing and "NG" in vowels.missing
    assert 0 < vowels.fraction < 1
    full = phoneme_coverage(
        [phonemize(words), phonemize("judge chip this thin sing measure yes van zoo hat go let red wet")]
    )
    assert full.missing == [] and full.fraction == 1.0
    assert len(ENGLISH_PHONEMES) == 39
    assert full.counts["AY"] == 1 and full.counts["ZH"] == 1  # bite; measure
    assert full.to_dict()["counts"]["DH"] == 2  # father, this
