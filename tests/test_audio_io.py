"""Audio I/O: formats, mono mix, resampling, normalisation, and one clear error per bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from speakimg.audio import AudioError, load_audio, peak_normalize, save_audio


def _tone(sr: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_load_formats_resamples_to_16k_mono(tmp_path, fmt, ext):
    sr = 44100
    stereo = np.stack([_tone(sr), _tone(sr)], axis=1)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, stereo, sr, format=fmt)
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.ndim == 1
    assert abs(wav.shape[0] - 16000) <= 1200  # lossy codecs add encoder delay/padding
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    peak_hz = spectrum.argmax() * 16000 / len(wav)
    assert abs(peak_hz - 440) < 5


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = _tone(16000), np.zeros(16000, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    assert np.allclose(load_audio(tmp_path / "s.wav").numpy(), left / 2, atol=1e-6)


def test_peak_normalise():
    wav = torch.tensor([0.1, -0.5, 0.25])
    assert torch.allclose(peak_normalize(wav), torch.tensor([0.19, -0.95, 0.475]))
    assert np.allclose(peak_normalize(np.array([0.2, -0.1])), [0.95, -0.475])


def test_save_load_round_trip(tmp_path):
    wav = torch.from_numpy(_tone(16000))
    path = save_audio(tmp_path / "sub" / "a.wav", wav)
    info = sf.info(path)
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    back = load_audio(path)
    assert back.shape == wav.shape and torch.allclose(back, wav, atol=1 / 32768 + 1e-6)
    assert torch.allclose(load_audio(path, normalize=0.95).abs().max(), torch.tensor(0.95))


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError, match="corrupt.wav"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav.*(no samples|empty)"):
        load_audio(path)


def test_silent_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent.wav.*silent"):
        load_audio(path)
    with pytest.raises(AudioError, match="silent"):
        peak_normalize(torch.zeros(10))


def test_nan_audio(tmp_path):
    path = tmp_path / "nan.wav"
    data = _tone(16000)
    data[100] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        load_audio(path)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "out.wav", torch.from_numpy(data))


@pytest.mark.parametrize("rate", ["16k", 16000.0, None, True])
def test_wrong_sample_rate_type(tmp_path, rate):
    sf.write(tmp_path / "a.wav", _tone(16000), 16000)
    with pytest.raises(AudioError, match="integer number of Hz"):
        load_audio(tmp_path / "a.wav", sample_rate=rate)
    with pytest.raises(AudioError, match="integer number of Hz"):
        save_audio(tmp_path / "b.wav", _tone(16000), sample_rate=rate)


def test_save_rejects_multichannel(tmp_path):
    with pytest.raises(AudioError, match="mono"):
        save_audio(tmp_path / "x.wav", np.zeros((2, 100), np.float32))
