"""Exact resume with DataLoader workers: speech and vocoder data modules, at an epoch boundary and mid-epoch.

Lightning creates the training iterator before it sets the sampler's epoch, and keeps it on a resumed
run; with workers the first indices are drawn right then. A sampler that reads its epoch there (the old
``EpochShuffleSampler``, the old vocoder sampler) replays epoch 0 after a resume into epoch 1: these
tests fail with it (checked by hand on the old code: different batch ids from the first resumed step).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from conftest import requires_festival
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from test_speech_training import Recorder, make_module, make_trainer
from test_vocoder_module import _module as vocoder_module
from test_vocoder_module import _trainer as vocoder_trainer

from speakimg.data import SpeechMelDataModule
from speakimg.data.epochs import EpochSampler
from speakimg.data.vocoder import VocoderDataModule

pytestmark = [pytest.mark.slow, requires_festival]


@contextmanager
def one_thread():
    """Every run (straight and resumed) on one intra-op thread: the same reduction order, bit-identical losses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Batches(Callback):
    """What each training step saw: item ids (speech) or a fingerprint of the audio (vocoder)."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "id" in batch:
            self.seen.append(list(batch["id"]))
        else:
            self.seen.append(round(float(batch["audio"].double().sum()), 6))


def test_sampler_starts_where_a_checkpoint_left_off():
    sampler = EpochSampler(10, batch_size=3, seed=5)
    assert sampler.batches_per_epoch == 4
    sampler.set_epoch(2)
    epoch2 = list(sampler)
    sampler.resume_from(2, 1)  # one batch of epoch 2 consumed
    assert sampler.epoch == 2 and list(sampler) == epoch2[3:]
    assert list(sampler) == epoch2  # skipped once
    sampler.resume_from(1, 4)  # epoch 1 finished: start epoch 2
    assert sampler.epoch == 2 and list(sampler) == epoch2


# ----------------------------------------------------------------------------- speech


@pytest.fixture(scope="module")
def speech_runs(tmp_path_factory, speech_data, tiny_auffusion, tiny_plbert):
    """8 steps straight (3 batches per epoch, num_workers=2) with a checkpoint after every step."""
    root = tmp_path_factory.mktemp("speech-resume")

    def run(ckpt_path=None, callbacks=()):
        module = make_module(tiny_auffusion, tiny_plbert, max_phonemes=128)
        data = SpeechMelDataModule(str(speech_data), batch_size=10, num_workers=2, latents_vae="tiny:auffusion")
        recorder, batches = Recorder(), Batches()
        trainer = make_trainer(root, 8, [recorder, batches, *callbacks])
        with one_thread():
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        assert trainer.global_step == 8
        return recorder.losses, batches.seen, module

    checkpoint = ModelCheckpoint(
        root / "ckpt", filename="s{step}", auto_insert_metric_name=False, every_n_train_steps=1, save_top_k=-1
    )
    losses, seen, module = run(callbacks=[checkpoint])
    assert len(seen) == 8 and sorted(sum(seen[:3], [])) == sorted(sum(seen[3:6], [])) and seen[:3] != seen[3:6]
    return {"run": run, "losses": losses, "seen": seen, "module": module, "ckpt": root / "ckpt"}


@pytest.mark.parametrize("step", [3, 4], ids=["epoch-boundary", "mid-epoch"])
def test_speech_resume_with_workers_is_exact(speech_runs, step):
    losses, seen, module = speech_runs["run"](ckpt_path=speech_runs["ckpt"] / f"s{step}.ckpt")
    assert seen == speech_runs["seen"][step:]
    torch.testing.assert_close(losses, speech_runs["losses"][step:], rtol=0, atol=0)
    params = dict(module.named_parameters())
    for name, param in speech_runs["module"].named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(params[name], param, rtol=0, atol=0, msg=name)


# ----------------------------------------------------------------------------- vocoder


@pytest.fixture(scope="module")
def vocoder_runs(tmp_path_factory, vocoder_dataset):
    """12 batches straight (4 per epoch, num_workers=2; 2 optimizer steps per batch), checkpoints at 8 and 10."""
    root = tmp_path_factory.mktemp("vocoder-resume")

    def run(ckpt_path=None, callbacks=()):
        # per-step LR decay: with the per-epoch decay (stepped in on_train_epoch_end) a checkpoint written at
        # the last batch of an epoch misses that epoch's decay step on resume, a module matter, not the data's
        module = vocoder_module(scheduler_interval="step")
        data = VocoderDataModule(
            str(vocoder_dataset), segment_size=1600, batch_size=2, samples_per_epoch=8, num_workers=2, num_val=0
        )
        batches = Batches()
        trainer = vocoder_trainer(root, max_steps=24, callbacks=[batches, *callbacks],
                                  enable_checkpointing=bool(callbacks))  # fmt: skip
        with one_thread():
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        assert trainer.global_step == 24
        return batches.seen, module

    checkpoint = ModelCheckpoint(
        root / "ckpt", filename="s{step}", auto_insert_metric_name=False, every_n_train_steps=2, save_top_k=-1
    )
    seen, module = run(callbacks=[checkpoint])
    assert len(seen) == 12 and seen[:4] != seen[4:8]
    return {"run": run, "seen": seen, "module": module, "ckpt": root / "ckpt"}


@pytest.mark.parametrize("step", [8, 10], ids=["epoch-boundary", "mid-epoch"])
def test_vocoder_resume_with_workers_is_exact(vocoder_runs, step):
    seen, module = vocoder_runs["run"](ckpt_path=vocoder_runs["ckpt"] / f"s{step}.ckpt")
    assert seen == vocoder_runs["seen"][step // 2 :]
    straight = vocoder_runs["module"].state_dict()
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, straight[name], rtol=0, atol=0, msg=name)
