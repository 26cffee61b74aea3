"""SpeechMelDataModule's training order: a permutation per epoch drawn from (seed, epoch) only."""

from __future__ import annotations

import torch

from speakimg.data.epochs import EpochSampler as EpochShuffleSampler


def test_each_epoch_is_a_seeded_permutation_independent_of_the_global_rng():
    sampler = EpochShuffleSampler(12, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(12)) and len(sampler) == 12
    torch.manual_seed(999)  # the global RNG does not matter (RandomSampler would follow it)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(12)) and second != first
    again = EpochShuffleSampler(12, seed=3)
    again.set_epoch(1)
    assert list(again) == second  # a resumed run (a fresh sampler told the epoch) sees the same order
    assert list(EpochShuffleSampler(12, seed=4)) != first


def test_the_seed_defaults_to_seed_everything(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    assert list(EpochShuffleSampler(10)) == list(EpochShuffleSampler(10, seed=7))
