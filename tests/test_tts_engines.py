"""The optional TTS backends: a transformers model by folder or hub id (tiny VITS), and tacotron2's clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from speakimg.audio import resample
from speakimg.errors import MissingDependencyError, ModelNotFoundError
from speakimg.tts import ENGINES, Tacotron2TTS, TransformersTTS, get_engine

SENTENCE = "Seven bright kites float above the quiet harbor."


def test_registry_names_every_engine():
    assert set(ENGINES) == {"festival", "espeak", "piper", "tacotron2", "transformers"}


def test_transformers_engine_loads_a_local_vits_folder(tiny_vits):
    engine = get_engine("transformers", model=str(tiny_vits))
    assert isinstance(engine, TransformersTTS) and engine.native_stretch
    assert engine.name == f"transformers:{tiny_vits}"
    wav = engine.synthesize(SENTENCE)
    assert wav.dtype == torch.float32 and wav.ndim == 1
    assert wav.shape[0] % 256 == 0  # VITS hop 256 at 16 kHz: no resampling happened
    assert 0 < wav.abs().max() <= 1.0 and torch.isfinite(wav).all()
    # VITS samples noise: seeded per sentence, so the same sentence gives the same audio
    assert torch.equal(engine.synthesize(SENTENCE), wav)
    other = TransformersTTS(model=tiny_vits, seed=1).synthesize(SENTENCE)
    assert not (other.shape == wav.shape and torch.equal(other, wav))
    # the global RNG is left alone
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    engine.synthesize(SENTENCE)
    assert torch.equal(torch.rand(3), expected)


def test_transformers_engine_native_rate_control(tiny_vits):
    engine = get_engine("transformers", model=tiny_vits)
    natural = engine.synthesize(SENTENCE)
    slow = engine.synthesize(SENTENCE, stretch=2.0)
    assert 1.6 < slow.shape[0] / natural.shape[0] < 2.4
    assert torch.equal(engine.synthesize(SENTENCE), natural)  # the rate is restored


def test_transformers_engine_resamples_to_16k(tmp_path):
    from speakimg.testing.vits import write_tiny_vits

    write_tiny_vits(tmp_path / "vits22k", sampling_rate=22050)
    engine = get_engine("transformers", model=tmp_path / "vits22k")
    torch.manual_seed(engine._sentence_seed(SENTENCE))  # the engine's own per-sentence seed
    raw = engine._pipe(SENTENCE)  # the model's own output, at 22.05 kHz
    wav = engine.synthesize(SENTENCE)
    assert raw["sampling_rate"] == 22050
    expected = resample(np.asarray(raw["audio"], np.float32).reshape(-1), 22050, 16000)
    assert wav.shape == (expected.shape[0],)
    assert np.allclose(wav.numpy(), np.clip(expected, -1, 1), atol=1e-6)


def test_transformers_engine_unknown_model_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a reachable"):
        get_engine("transformers", model="nobody-here/no-such-tts-model")


def test_tacotron2_without_torchaudio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # import torchaudio -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'speakimg\[tacotron2\]'"):
        get_engine("tacotron2")
    with pytest.raises(MissingDependencyError, match="torchaudio"):
        Tacotron2TTS(bundle="TACOTRON2_GRIFFINLIM_CHAR_LJSPEECH")
