"""VocoderDataModule: aligned audio/mel segments of a built dataset, deterministic and resumable epochs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from vocoder_helpers import one_thread  # noqa: F401  (an autouse fixture)

from speakimg.audio import load_audio, log_mel
from speakimg.data.manifest import read_manifest
from speakimg.data.vocoder import SegmentSampler as EpochSampler
from speakimg.data.vocoder import VocoderClips, VocoderDataModule, VocoderSegments
from speakimg.errors import ConfigError, DataError


def _full(dataset_dir, record):
    audio = load_audio(dataset_dir / record.audio)
    mel = torch.from_numpy(np.load(dataset_dir / record.mel).astype(np.float32))
    return audio, mel


def test_segments_pair_audio_with_the_matching_mel_frames_inside_the_speech(vocoder_dataset):
    records = read_manifest(vocoder_dataset, split="train")
    data = VocoderSegments(vocoder_dataset, records, segment_size=3200, seed=7)
    starts = []
    for index, record in enumerate(records):
        audio, mel = _full(vocoder_dataset, record)
        for epoch in range(3):
            item = data[(index, epoch)]
            assert item["mel"].shape == (256, 20) and item["audio"].shape == (1, 3200)
            # locate the crop in the clip: the audio is an exact slice at a frame boundary ...
            windows = audio.unfold(0, 3200, 160)  # every frame-aligned 3200-sample slice
            start = int((windows - item["audio"][0]).abs().sum(dim=1).argmin())
            assert torch.equal(item["audio"][0], audio[start * 160 : start * 160 + 3200])
            # ... and the mel is exactly the stored frames of that slice
            assert torch.equal(item["mel"], mel[:, start : start + 20])
            # inside the speech (speech_start 1600 samples = frame 10; speech_seconds long)
            end = (record.speech_start + record.speech_seconds * 16000) / 160
            assert start >= 10 and start + 20 <= np.ceil(end)
            starts.append(start)
            assert torch.equal(data[(index, epoch)]["audio"], item["audio"])  # pure function of (seed, epoch, index)
    assert len(set(starts)) > len(starts) // 2  # crops move between epochs and clips


def test_stored_mels_are_the_mel_front_end_of_the_audio(vocoder_dataset):
    """The pairing is meaningful: the stored mel frames are log_mel of the audio around them."""
    record = read_manifest(vocoder_dataset, split="train")[0]
    item = VocoderSegments(vocoder_dataset, [record], segment_size=8000, seed=1)[(0, 0)]
    computed = VocoderSegments(vocoder_dataset, [record], segment_size=8000, seed=1, mel_dir=None)[(0, 0)]
    assert torch.equal(item["audio"], computed["audio"])
    assert torch.allclose(computed["mel"], log_mel(item["audio"][0]), atol=1e-6)
    # away from the segment's edges (where the on-the-fly mel sees reflect padding) both agree
    assert (computed["mel"][:, 8:-8] - item["mel"][:, 8:-8]).abs().max() < 0.02


def test_validation_clips_are_fixed_crops_from_the_speech_start(vocoder_dataset):
    records = read_manifest(vocoder_dataset, split="val")
    clips = VocoderClips(vocoder_dataset, records, max_frames=150)
    item = clips[0]
    audio, mel = _full(vocoder_dataset, records[0])
    assert item["mel"].shape == (256, 150)
    assert torch.equal(item["audio"][0], audio[1600 : 1600 + 150 * 160])
    assert torch.equal(item["mel"], mel[:, 10:160])
    whole = VocoderClips(vocoder_dataset, records, max_frames=None)[0]
    assert abs(whole["mel"].shape[1] - records[0].speech_seconds * 100) <= 1  # all of the speech
    assert whole["audio"].shape[-1] == 160 * whole["mel"].shape[1]


def test_epoch_sampler_shards_ranks_and_resumes_mid_epoch():
    dataset = list(range(10))
    ranks = [EpochSampler(dataset, batch_size=2, num_replicas=2, rank=r, seed=3, samples_per_epoch=16) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(4)
    keys = [list(s) for s in ranks]
    assert all(len(k) == len(s) == 8 for k, s in zip(keys, ranks, strict=True))
    assert all(epoch == 4 for k in keys for _, epoch in k)
    # the two ranks split one 16-item epoch order (10 items, then a second permutation)
    merged = [i for pair in zip(*keys, strict=True) for i, _ in pair]
    assert sorted(merged[:10]) == list(range(10))
    again = EpochSampler(dataset, batch_size=2, num_replicas=2, rank=0, seed=3, samples_per_epoch=16)
    again.set_epoch(4)
    assert list(again) == keys[0]  # deterministic
    again.set_epoch(5)
    assert list(again) != keys[0]
    # resume after 3 batches of epoch 4: exactly the remaining keys, once
    again.set_epoch(4)
    again.resume_from(4, 3)
    assert list(again) == keys[0][6:]
    assert list(again) == keys[0]
    with pytest.raises(ConfigError, match="no full batch"):
        EpochSampler(dataset, batch_size=8, num_replicas=2)


def test_datamodule_batches_and_splits(vocoder_dataset):
    dm = VocoderDataModule(str(vocoder_dataset), segment_size=1600, batch_size=2, num_workers=0, samples_per_epoch=6)
    dm.setup("fit")
    assert [r.split for r in dm.val_records] == ["val"] and len(dm.train_records) == 5
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    assert batches[0]["mel"].shape == (2, 256, 10) and batches[0]["audio"].shape == (2, 1, 1600)
    val = next(iter(dm.val_dataloader()))
    frames = val["mel"].shape[-1]
    assert val["mel"].shape == (1, 256, frames) and val["audio"].shape == (1, 1, 160 * frames) and frames <= 500
    # no 'val' split: the last clips by id are held out
    held = VocoderDataModule(str(vocoder_dataset), val_split="dev", num_val=2, num_workers=0)
    held.setup("fit")
    assert [r.id for r in held.val_records] == ["utt003", "utt004"] and len(held.train_records) == 3


def test_bad_data_raises_clear_errors(vocoder_dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"8192 is not a multiple of the hop \(160 samples\).*8160 or 8320"):
        VocoderDataModule(str(vocoder_dataset), segment_size=8192)
    with pytest.raises(ConfigError, match="too short"):
        VocoderDataModule(str(vocoder_dataset), segment_size=640)
    with pytest.raises(ConfigError, match="val_max_frames 4 is too short"):
        VocoderDataModule(str(vocoder_dataset), val_max_frames=4)
    with pytest.raises(DataError, match="no manifest"):
        VocoderDataModule(str(tmp_path)).setup("fit")
    missing = VocoderDataModule(str(vocoder_dataset), mel_dir="mels_vae", num_workers=0)
    with pytest.raises(DataError, match=r"no mel for record .*prepare_mels"):
        missing.setup("fit")

    broken = tmp_path / "broken"
    shutil.copytree(vocoder_dataset, broken)
    record = read_manifest(broken, split="train")[0]
    np.save(broken / record.mel, np.zeros((80, 1024), np.float16))
    with pytest.raises(DataError, match=r"expected \[256, frames\]"):
        VocoderSegments(broken, [record], 1600)[(0, 0)]
    audio, _ = sf.read(broken / record.audio)
    sf.write(broken / record.audio, audio[::2], 8000)
    data = VocoderSegments(broken, [record], 1600, mel_dir=None)
    with pytest.raises(DataError, match="8000 Hz"):
        data[(0, 0)]
