"""Griffin-Lim: re-analysed audio matches its input log-mel (the error is stated in the README)."""

from __future__ import annotations

import torch

from speakimg.audio import griffin_lim, log_mel


def test_griffin_lim_reanalysis_is_close_to_input(speech):
    mel = log_mel(speech)
    audio = griffin_lim(mel, n_iter=64, generator=torch.Generator().manual_seed(0))
    assert audio.shape == (mel.shape[-1] * 160,)
    assert audio.abs().max() <= 1.0
    error = (log_mel(audio) - mel).abs()
    speech_frames = mel.mean(0) > -8
    # measured: ~0.08 nats mean absolute error overall, ~0.10 on speech frames (range is 16.8 nats)
    assert error.mean() < 0.15
    assert error[:, speech_frames].mean() < 0.2
    # far better than a random-phase guess (no iterations)
    baseline = (log_mel(griffin_lim(mel, n_iter=0, generator=torch.Generator().manual_seed(0))) - mel).abs().mean()
    assert error.mean() < 0.5 * baseline


def test_griffin_lim_is_aligned_with_the_front_end(speech):
    mel = log_mel(speech[:32000])
    audio = griffin_lim(mel, n_iter=32, generator=torch.Generator().manual_seed(0))
    aligned = (log_mel(audio) - mel).abs().mean()
    for shift in (-80, 80):
        assert aligned < (log_mel(torch.roll(audio, shift)) - mel).abs().mean()


def test_griffin_lim_batched_and_seeded(speech):
    mel = log_mel(torch.stack([speech[:16000], speech[16000:32000]]))
    a = griffin_lim(mel, n_iter=8, generator=torch.Generator().manual_seed(3))
    b = griffin_lim(mel, n_iter=8, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 16000)
    assert torch.equal(a, b)
