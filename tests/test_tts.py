"""TTS backends: real offline engines, native rate control, clear errors."""

from __future__ import annotations

import pytest

from speakimg.errors import MissingDependencyError, TextError
from speakimg.tts import get_engine


@pytest.mark.parametrize("name", ["festival", "espeak"])
def test_engine_speaks_at_16k(name):
    engine = get_engine(name)
    wav = engine.synthesize("Seven bright kites float above the quiet harbor.")
    seconds = wav.shape[0] / 16000
    assert 1.0 < seconds < 6.0
    assert 0.05 < wav.abs().max() <= 1.0
    slow = engine.synthesize("Seven bright kites float above the quiet harbor.", stretch=1.5)
    assert 1.25 < slow.shape[0] / wav.shape[0] < 1.75


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_an_error(text):
    with pytest.raises(TextError, match="empty"):
        get_engine("espeak").synthesize(text)


def test_missing_engine_says_how_to_install(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install festival"):
        get_engine("festival")


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown TTS engine"):
        get_engine("nope")
