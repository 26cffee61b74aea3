"""HiFi-GAN losses and discriminators against independent computations on fixed tensors."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from vocoder_helpers import RefMPD, RefMSD, one_thread  # noqa: F401  (one_thread: an autouse fixture)

from speakimg.audio import MelConfig
from speakimg.vocoder import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_loss,
)
from speakimg.vocoder.norms import from_legacy_state_dict, to_legacy_state_dict


def _fixed(seed: int, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in shapes]


def test_discriminator_and_generator_adversarial_losses():
    real = _fixed(0, (2, 30), (2, 11), (2, 7))
    fake = _fixed(1, (2, 30), (2, 11), (2, 7))
    total, real_terms, fake_terms = discriminator_loss(real, fake)
    r = [x.numpy().astype(np.float64) for x in real]
    f = [x.numpy().astype(np.float64) for x in fake]
    expected = sum(np.mean((1 - a) ** 2) + np.mean(b**2) for a, b in zip(r, f, strict=True))
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert [t.item() for t in real_terms] == pytest.approx([np.mean((1 - a) ** 2) for a in r], rel=1e-6)
    assert [t.item() for t in fake_terms] == pytest.approx([np.mean(b**2) for b in f], rel=1e-6)
    adv, terms = generator_adversarial_loss(fake)
    assert adv.item() == pytest.approx(sum(np.mean((1 - b) ** 2) for b in f), rel=1e-6)
    assert len(terms) == 3


def test_feature_matching_loss_is_twice_the_summed_mean_abs_difference():
    real = [_fixed(2, (2, 4, 9), (2, 8, 3)), _fixed(3, (2, 5), (2, 1, 2))]
    fake = [_fixed(4, (2, 4, 9), (2, 8, 3)), _fixed(5, (2, 5), (2, 1, 2))]
    expected = 2 * sum(
        np.mean(np.abs(a.numpy().astype(np.float64) - b.numpy()))
        for rs, fs in zip(real, fake, strict=True)
        for a, b in zip(rs, fs, strict=True)
    )
    assert feature_matching_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert feature_matching_loss(real, fake, weight=1.0).item() == pytest.approx(expected / 2, rel=1e-6)


def _librosa_log_mel(y: np.ndarray, fmax: float | None) -> np.ndarray:
    padded = np.pad(y, (944, 944), mode="reflect")
    spec = librosa.stft(padded, n_fft=2048, hop_length=160, win_length=1024, window="hann", center=False)
    magnitude = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    basis = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=256, fmin=0, fmax=fmax, htk=False, norm="slaney")
    return np.log(np.clip(basis @ magnitude, 1e-5, None))


@pytest.mark.parametrize("fmax", [None, 4000.0])
def test_mel_loss_is_45_times_the_l1_of_log_mels_with_the_loss_fmax(speech, fmax):
    y = speech[8000:16000].double()
    y_hat = (y + 0.05 * torch.sin(torch.arange(8000, dtype=torch.float64) * 0.3)).clamp(-1, 1)
    loss = mel_loss(y[None, None], y_hat[None, None], MelConfig(fmax=fmax))
    expected = 45 * np.mean(np.abs(_librosa_log_mel(y.numpy(), fmax) - _librosa_log_mel(y_hat.numpy(), fmax)))
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    if fmax is not None:  # the loss fmax matters: a full-band loss differs
        assert abs(mel_loss(y[None, None], y_hat[None, None], MelConfig(fmax=None)).item() - loss.item()) > 1e-3


def test_discriminators_match_the_original_modules_and_key_layout():
    torch.manual_seed(0)
    y, y_hat = _fixed(6, (2, 1, 1203), (2, 1, 1203))
    y, y_hat = 0.5 * torch.tanh(y), 0.5 * torch.tanh(y_hat)
    for ours, reference, n_params in (
        (MultiPeriodDiscriminator(), RefMPD(), 41_105_770),
        (MultiScaleDiscriminator(), RefMSD(), 29_618_821),
    ):
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == n_params
        legacy = to_legacy_state_dict(ours)
        assert list(legacy) == list(reference.state_dict())  # the original key names, in order
        reference.load_state_dict(legacy, strict=True)
        ours.eval()
        reference.eval()
        with torch.no_grad():
            got, want = ours(y, y_hat), reference(y, y_hat)
        for g_list, w_list in zip(got[:2], want[:2], strict=True):  # scores, real and fake
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_list, w_list, strict=True))
        for g_maps, w_maps in zip(got[2] + got[3], want[2] + want[3], strict=True):  # every conv output + post
            assert len(g_maps) == len(w_maps) == len(reference.discriminators[0].convs) + 1
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_maps, w_maps, strict=True))
        # and the original files load back into ours
        before = {k: v.clone() for k, v in ours.state_dict().items()}
        with torch.no_grad():
            for p in ours.parameters():
                p.zero_()
        ours.load_state_dict(from_legacy_state_dict(ours, reference.state_dict()), strict=True)
        assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match=r"same shape \[B, 1, T\]"):
        MultiPeriodDiscriminator(width=1 / 16)(torch.zeros(1, 1, 100), torch.zeros(1, 1, 90))
