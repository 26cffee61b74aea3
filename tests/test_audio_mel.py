"""The mel front end against an independent computation, and its shape/gradient contracts."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from speakimg.audio import AudioError, MelConfig, log_mel, num_frames


def reference_log_mel(wav: np.ndarray, cfg: MelConfig = MelConfig()) -> np.ndarray:
    """Straightforward numpy version of docs/method.md section 1 (float64, explicit framing)."""
    pad = (cfg.n_fft - cfg.hop_length) // 2
    x = np.pad(wav.astype(np.float64), (pad, pad), mode="reflect")
    n = np.arange(cfg.win_length)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)  # periodic Hann
    window = np.zeros(cfg.n_fft)
    left = (cfg.n_fft - cfg.win_length) // 2
    window[left : left + cfg.win_length] = hann
    frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop_length * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[idx] * window, axis=-1).T  # [freq, frames]
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    basis = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney"
    )
    return np.log(np.clip(basis @ mag, 1e-5, None))


def test_log_mel_equals_independent_computation(speech):
    wav = speech[:48000]
    ref = reference_log_mel(wav.numpy())
    # float64 audio runs the same code in float64: equal to the reference to rounding
    ours64 = log_mel(wav.double()).numpy()
    assert ours64.shape == ref.shape == (256, 300)
    assert np.abs(ours64 - ref).max() < 1e-4
    # float32 (the usual path): float32 FFT rounding only shows in near-silent bins (mel ~ 1e-5),
    # measured max 3e-3 nats there; in the linear mel domain it is ~1e-7 of the peak
    ours = log_mel(wav).numpy()
    err = np.abs(ours - ref)
    assert err.mean() < 1e-4
    assert err[ref > -6].max() < 1e-4
    assert err.max() < 1e-2
    assert np.abs(np.exp(ours) - np.exp(ref)).max() < 1e-6 * np.exp(ref).max()
    # a real spectrogram, not a constant: speech spans a wide dynamic range
    assert ours.max() - ours.min() > 8


def test_log_mel_full_band_config_matches_reference(speech):
    cfg = MelConfig(fmax=None)
    wav = speech[:16000]
    assert np.abs(log_mel(wav.double(), cfg).numpy() - reference_log_mel(wav.numpy(), cfg)).max() < 1e-4


@pytest.mark.parametrize("samples", [1000, 1600, 1759, 16000, 16159, 160000])
def test_frames_are_floor_of_samples_over_hop(samples):
    wav = torch.randn(samples) * 0.1
    assert log_mel(wav).shape == (256, samples // 160) == (256, num_frames(samples))


def test_ten_seconds_is_1000_frames():
    assert log_mel(torch.zeros(160000) + 1e-3 * torch.randn(160000)).shape == (256, 1000)


def test_silence_is_the_floor():
    out = log_mel(torch.zeros(16000))
    assert torch.allclose(out, torch.full_like(out, np.log(1e-5)))


def test_batched_equals_per_item():
    torch.manual_seed(0)
    batch = torch.randn(3, 8000) * 0.3
    out = log_mel(batch)
    assert out.shape == (3, 256, 50)
    for i in range(3):
        assert torch.allclose(out[i], log_mel(batch[i]), atol=1e-5)
    # a vocoder output [B, 1, T] is accepted as [B, T]
    assert torch.allclose(log_mel(batch[:, None]), out)


def test_gradients_flow_to_the_waveform():
    wav = (torch.randn(4000) * 0.3).requires_grad_(True)
    log_mel(wav).mean().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_float64_input_keeps_precision():
    wav = torch.randn(4000, dtype=torch.float64) * 0.3
    out = log_mel(wav)
    assert out.dtype == torch.float64
    assert torch.allclose(out.float(), log_mel(wav.float()), atol=1e-4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(4000, np.float32), "torch.Tensor"),
        (torch.zeros(4000, dtype=torch.int16), "floating-point"),
        (torch.zeros(2, 3, 4000), "shape"),
        (torch.zeros(500), "too short"),
    ],
)
def test_bad_input_is_one_clear_error(bad, message):
    with pytest.raises(AudioError, match=message):
        log_mel(bad)


def test_mel_config_rejects_a_non_integer_sample_rate():
    with pytest.raises(TypeError, match="sample_rate"):
        MelConfig(sample_rate="16k")
