"""The vocoder cycle check: log_mel(vocoder(mel)) against mel."""

from __future__ import annotations

import math

import pytest
import torch

from speakimg.audio import log_mel
from speakimg.errors import AudioError
from speakimg.metrics import vocoder_cycle_error
from speakimg.vocoder import GriffinLimVocoder


def chirp(seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.5 * torch.sin(2 * math.pi * (200 * t + 900 * t**2))


def test_audio_that_is_the_analysis_of_itself_has_zero_error_and_offsets_are_measured():
    audio = chirp()
    mel = log_mel(audio)
    assert float(vocoder_cycle_error(mel, audio)) < 1e-5
    assert vocoder_cycle_error(mel + 0.5, audio).item() == pytest.approx(0.5, abs=1e-5)
    batch = torch.stack([audio, 0.5 * audio])
    errors = vocoder_cycle_error(torch.stack([mel, mel]), batch.unsqueeze(1))  # [B, 1, N] vocoder layout
    assert errors.shape == (2,)
    assert errors[0] < 1e-5
    # half the amplitude is ln 2 lower wherever the mel is above the 1e-5 floor
    expected = (log_mel(0.5 * audio) - mel).abs().mean().item()
    assert errors[1].item() == pytest.approx(expected, rel=1e-5)
    assert 0.5 < expected <= math.log(2) + 1e-6


def test_griffin_lim_round_trip_has_a_small_positive_error():
    mel = log_mel(chirp(0.5))
    audio = GriffinLimVocoder(n_iter=32)(mel.unsqueeze(0))
    error = vocoder_cycle_error(mel, audio[0, 0])
    assert 0.0 < float(error) < 1.0
    noise = GriffinLimVocoder(n_iter=32)(torch.full_like(mel, -2.0).unsqueeze(0))
    assert float(vocoder_cycle_error(mel, noise[0, 0])) > 2 * float(error)  # the wrong audio scores worse


def test_mismatched_lengths_and_shapes_are_refused():
    audio = chirp()
    mel = log_mel(audio)
    with pytest.raises(AudioError, match="frames but the log-mel has"):
        vocoder_cycle_error(mel, audio[:8000])
    with pytest.raises(AudioError, match="same B"):
        vocoder_cycle_error(torch.stack([mel, mel]), audio.unsqueeze(0))
    with pytest.raises(AudioError, match="mel bins"):
        vocoder_cycle_error(mel[:80], audio)
