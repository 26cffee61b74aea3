"""Fitting speech to the 10 s canvas: placement, native and signal-level slow-down, too-long sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speakimg.audio.stretch import STRETCH_METHODS, time_stretch
from speakimg.data.canvas import SPEECH_SAMPLES, CanvasFit, place_on_canvas, speak_on_canvas, trim_silence
from speakimg.data.manifest import CANVAS_SAMPLES
from speakimg.errors import TextError
from speakimg.tts import TTSEngine, get_engine

SR = 16000
SENTENCE = "Seven bright kites float above the quiet harbor at dawn."


def _tone(seconds: float, freq: float = 200.0, amp: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def _dominant_hz(wav: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(wav.numpy() * np.hanning(wav.shape[0])))
    return float(np.argmax(spectrum) * SR / wav.shape[0])


class ToneTTS(TTSEngine):
    """A 'speech' engine without rate control: a 200 Hz tone of a fixed length, with silence around it."""

    name = "tone"

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        silence = torch.zeros(int(0.3 * SR))
        return torch.cat([silence, _tone(self.seconds), silence])


@pytest.fixture(scope="module")
def festival():
    return get_engine("festival")


# ---------------------------------------------------------------- placement


@pytest.mark.parametrize("placement", ["left", "center", "random"])
def test_pad_places_natural_speech_on_a_silent_canvas(festival, placement):
    natural = trim_silence(festival.synthesize(SENTENCE))
    fitted = speak_on_canvas(festival, SENTENCE, CanvasFit(placement=placement), seed=7)
    n = natural.shape[0]
    assert fitted.audio.shape == (CANVAS_SAMPLES,) and fitted.audio.dtype == torch.float32
    assert fitted.length == n and fitted.stretch == 1.0 and fitted.stretch_method == "none"
    expected_start = {"left": 0, "center": (SPEECH_SAMPLES - n) // 2}.get(placement)
    if expected_start is not None:
        assert fitted.start == expected_start
    assert 0 <= fitted.start <= SPEECH_SAMPLES - n
    speech = fitted.audio[fitted.start : fitted.start + n]
    assert torch.allclose(speech, natural / natural.abs().max() * 0.95, atol=1e-6)  # peak-normalised, same speed
    assert fitted.start == 0 or fitted.audio[: fitted.start].abs().max() == 0  # silence before it
    assert fitted.audio[fitted.start + n :].abs().max() == 0  # silence after it, incl. the last 0.24 s


def test_random_placement_is_seeded():
    speech = _tone(2.0)
    starts = {seed: place_on_canvas(speech, "random", seed)[1] for seed in range(6)}
    assert starts[0] == place_on_canvas(speech, "random", 0)[1]
    assert len(set(starts.values())) > 3
    assert all(0 <= s <= SPEECH_SAMPLES - speech.shape[0] for s in starts.values())
    canvas, start = place_on_canvas(speech, "random", 3)
    assert torch.equal(canvas[start : start + speech.shape[0]], speech)
    with pytest.raises(ValueError, match="placement"):
        place_on_canvas(speech, "middle")


def test_trim_silence_keeps_a_margin():
    wav = torch.cat([torch.zeros(SR), _tone(1.0), torch.zeros(SR)])
    trimmed = trim_silence(wav, top_db=50, margin=0.05)
    assert abs(trimmed.shape[0] - (SR + 2 * 0.05 * SR)) <= 512  # librosa's trim works in 512-sample frames
    assert torch.equal(trim_silence(wav, top_db=None), wav)


# ---------------------------------------------------------------- stretch


def test_stretch_uses_the_engines_rate_control(festival):
    natural = trim_silence(festival.synthesize(SENTENCE)).shape[0]
    fitted = speak_on_canvas(festival, SENTENCE, CanvasFit(mode="stretch", target_fill=0.8, max_stretch=4), seed=0)
    assert fitted.stretch_method == "native"
    assert abs(fitted.length - 0.8 * SPEECH_SAMPLES) <= 0.03 * 0.8 * SPEECH_SAMPLES
    assert fitted.stretch == pytest.approx(fitted.length / natural, abs=1e-3)
    assert fitted.audio[fitted.length :].abs().max() == 0 and fitted.audio.abs().max() == pytest.approx(0.95)


@pytest.mark.parametrize("method", STRETCH_METHODS)
def test_stretch_without_rate_control_time_stretches(method):
    engine = ToneTTS(seconds=2.0)
    fit = CanvasFit(mode="stretch", target_fill=0.6, max_stretch=4, stretch_method=method)
    fitted = speak_on_canvas(engine, "a tone", fit)
    natural = trim_silence(engine.synthesize("a tone")).shape[0]
    assert fitted.stretch_method == method
    assert fitted.length == round(natural * 0.6 * SPEECH_SAMPLES / natural)
    assert fitted.stretch == pytest.approx(0.6 * SPEECH_SAMPLES / natural, abs=1e-3)
    middle = fitted.audio[fitted.length // 4 : 3 * fitted.length // 4]
    assert abs(_dominant_hz(middle) - 200.0) < 3.0  # slower, same pitch


def test_stretch_is_capped_and_never_speeds_up():
    capped = speak_on_canvas(ToneTTS(2.0), "x", CanvasFit(mode="stretch", target_fill=1.0, max_stretch=1.5))
    natural = trim_silence(ToneTTS(2.0).synthesize("x")).shape[0]
    assert capped.stretch == pytest.approx(1.5, abs=1e-3) and capped.length == round(1.5 * natural)
    long = speak_on_canvas(ToneTTS(8.0), "x", CanvasFit(mode="stretch", target_fill=0.5))
    assert long.stretch == 1.0 and long.stretch_method == "none"


def test_speech_longer_than_the_canvas_is_rejected_naming_the_sentence():
    with pytest.raises(TextError, match=r"'a very long sentence' is 10\.\d+ s of speech.*holds 10 s"):
        speak_on_canvas(ToneTTS(10.2), "a very long sentence")


def test_fit_options_are_validated():
    for bad in ({"mode": "squeeze"}, {"placement": "top"}, {"target_fill": 0.0}, {"max_stretch": 0.5},
                {"stretch_method": "wsola9"}, {"peak": 1.5}):  # fmt: skip
        with pytest.raises(ValueError):
            CanvasFit(**bad)


# ---------------------------------------------------------------- time_stretch


@pytest.mark.parametrize("method", STRETCH_METHODS)
@pytest.mark.parametrize("factor", [1.25, 2.5])
def test_time_stretch_length_and_pitch(method, factor):
    tone = _tone(1.0, freq=300.0)
    out = time_stretch(tone, factor, method)
    assert out.shape == (round(SR * factor),) and out.dtype == torch.float32
    middle = out[out.shape[0] // 4 : 3 * out.shape[0] // 4]
    assert abs(_dominant_hz(middle) - 300.0) < 3.0
    assert 0.15 < float(middle.abs().max()) < 0.45  # the level is kept (the phase vocoder loses some)
    assert torch.equal(time_stretch(tone, factor, method), out)  # deterministic


def test_time_stretch_errors():
    with pytest.raises(ValueError, match="unknown time-stretch method"):
        time_stretch(_tone(0.5), 2.0, "magic")
    with pytest.raises(ValueError, match="positive"):
        time_stretch(_tone(0.5), 0.0)
