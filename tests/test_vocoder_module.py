"""HiFiGANModule: the manual G/D updates, fine-tuning, checkpoints, export, NaN guard and media logging."""

from __future__ import annotations

import functools
import itertools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from vocoder_helpers import one_thread  # noqa: F401  (an autouse fixture)

from speakimg.audio import MelConfig, log_mel
from speakimg.errors import ConfigError, ModelNotFoundError, TrainingError
from speakimg.modules.hifigan import HiFiGANModule
from speakimg.testing import TINY_VOCODER_CONFIG
from speakimg.vocoder import (
    Generator,
    GeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    load_vocoder,
)
from speakimg.vocoder.export import main as export_main
from speakimg.vocoder.norms import from_legacy_state_dict

TINY_G = GeneratorConfig(
    upsample_initial_channel=16, resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5]] * 2
)
WIDTH = 1 / 16
DECAY_09 = functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9)


class Batches(Dataset):
    """Fixed batches of speech segments (``batch_size=None`` loader); ``nan_at`` poisons one of them."""

    def __init__(self, speech: torch.Tensor, n: int, batch: int = 2, segment: int = 1600, nan_at: int | None = None):
        starts = torch.arange(n * batch) * 1440 + 8000
        audio = torch.stack([speech[s : s + segment] for s in starts.tolist()]).view(n, batch, 1, segment)
        self.items = [{"mel": log_mel(a[:, 0]), "audio": a.clone()} for a in audio]
        if nan_at is not None:
            self.items[nan_at]["audio"][0, 0, 100] = float("nan")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]


def _module(**kwargs) -> HiFiGANModule:
    torch.manual_seed(0)
    return HiFiGANModule(generator=kwargs.pop("generator", TINY_G), discriminator_width=WIDTH, **kwargs)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    return L.Trainer(**{**defaults, **kwargs})


def test_training_step_does_the_hifigan_updates_of_an_independent_loop(tmp_path, speech):
    data = Batches(speech, n=2)
    module = _module(scheduler=DECAY_09)
    G, mpd, msd = (m for m in (module.generator, module.mpd, module.msd))
    ref_g, ref_mpd, ref_msd = (
        Generator(TINY_G),
        MultiPeriodDiscriminator(width=WIDTH),
        MultiScaleDiscriminator(width=WIDTH),
    )
    for ref, ours in ((ref_g, G), (ref_mpd, mpd), (ref_msd, msd)):
        ref.load_state_dict(ours.state_dict())

    _trainer(tmp_path, max_epochs=2).fit(module, DataLoader(data, batch_size=None))
    assert module.trainer.global_step == 8  # 2 epochs x 2 batches x (D + G) optimizer steps

    # the reference: jik876's loop (D step on the detached output, then G step; ExponentialLR per epoch)
    opt_g = torch.optim.AdamW(ref_g.parameters(), 2e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(itertools.chain(ref_msd.parameters(), ref_mpd.parameters()), 2e-4, betas=(0.8, 0.99))
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, 0.9) for o in (opt_g, opt_d)]
    full_band = MelConfig(fmax=None)
    for _epoch in range(2):
        for batch in data:
            mel, y = batch["mel"], batch["audio"]
            y_hat = ref_g(mel)
            rp, fp, _, _ = ref_mpd(y, y_hat.detach())
            rs, fs, _, _ = ref_msd(y, y_hat.detach())
            opt_d.zero_grad()
            (discriminator_loss(rp, fp)[0] + discriminator_loss(rs, fs)[0]).backward()
            opt_d.step()
            _, fp, mrp, mfp = ref_mpd(y, y_hat)
            _, fs, mrs, mfs = ref_msd(y, y_hat)
            mel_l1 = (log_mel(y, full_band) - log_mel(y_hat, full_band)).abs().mean()
            loss_g = (
                generator_adversarial_loss(fp)[0]
                + generator_adversarial_loss(fs)[0]
                + feature_matching_loss(mrp, mfp)
                + feature_matching_loss(mrs, mfs)
                + 45 * mel_l1
            )
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        for s in schedulers:
            s.step()
    for ref, ours in ((ref_g, G), (ref_mpd, mpd), (ref_msd, msd)):
        for (name, a), b in zip(ref.state_dict().items(), ours.state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=2e-6), name
    assert module.optimizers()[0].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.9**2)
    # and the weights did move
    fresh = _module(scheduler=DECAY_09)
    assert not torch.allclose(
        fresh.generator.conv_post.parametrizations.weight.original1, G.conv_post.parametrizations.weight.original1
    )


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, speech):
    data = Batches(speech, n=3, nan_at=2)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    trainer = _trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint])
    with pytest.raises(TrainingError, match=r"discriminator loss is nan at global step 4"):
        trainer.fit(_module(), DataLoader(data, batch_size=None))
    saved = list((tmp_path / "ckpt").glob("*.ckpt"))
    assert [p.name for p in saved] == ["epoch=0-step=4.ckpt"]
    generator = Generator.from_pretrained(saved[0])
    assert torch.isfinite(generator(data[0]["mel"])).all()


def test_checkpoint_loads_as_a_generator_and_exports_to_the_original_files(tmp_path, speech):
    data = Batches(speech, n=2)
    module = _module(mpd_periods=(2, 3))
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint]).fit(
        module, DataLoader(data, batch_size=None)
    )
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    raw = torch.load(ckpt, weights_only=True)  # plain types only: safe loading works
    assert raw["vocoder_config"]["upsample_initial_channel"] == 16
    mel = data[1]["mel"]
    module.generator.eval()
    with torch.no_grad():
        expected = module.generator(mel)
        assert torch.allclose(Generator.from_pretrained(ckpt)(mel), expected, atol=1e-5)
        assert torch.allclose(load_vocoder(ckpt)(mel), expected, atol=1e-5)

    written = export_main([str(ckpt), str(tmp_path / "export")])  # python -m speakimg.vocoder.export CKPT OUT
    assert {p.name for p in (tmp_path / "export").iterdir()} == {"config.json", "vocoder.pt", "do_00000002"}
    with torch.no_grad():
        assert torch.allclose(load_vocoder(tmp_path / "export")(mel), expected, atol=1e-5)
    generator_file = torch.load(written["generator"], weights_only=True)
    assert set(generator_file) == {"generator"} and "conv_pre.weight_g" in generator_file["generator"]
    do = torch.load(written["discriminators"], weights_only=True)
    assert set(do) == {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"}
    assert do["steps"] == 2 and do["epoch"] == 0
    assert "discriminators.0.convs.0.weight_orig" in do["msd"] and "discriminators.1.convs.0.weight_g" in do["msd"]
    # the optimizer states index the parameters as jik876 does: generator; then MSD, then MPD
    mpd, msd = MultiPeriodDiscriminator((2, 3), width=WIDTH), MultiScaleDiscriminator(width=WIDTH)
    mpd.load_state_dict(from_legacy_state_dict(mpd, do["mpd"]), strict=True)
    msd.load_state_dict(from_legacy_state_dict(msd, do["msd"]), strict=True)
    params = list(itertools.chain(msd.parameters(), mpd.parameters()))
    opt_d = torch.optim.AdamW(params)
    opt_d.load_state_dict(do["optim_d"])
    assert all(opt_d.state[p]["exp_avg"].shape == p.shape for p in params)
    assert torch.equal(
        mpd.discriminators[1].conv_post.parametrizations.weight.original1,
        module.mpd.discriminators[1].conv_post.parametrizations.weight.original1,
    )

    # fine-tuning starts from the exported generator and discriminators
    resumed = HiFiGANModule(
        pretrained=str(tmp_path / "export"),
        pretrained_discriminators=str(written["discriminators"]),
        mpd_periods=(2, 3),
        discriminator_width=WIDTH,
    )
    assert resumed.generator.training and resumed.generator.has_weight_norm
    for a, b in zip(resumed.state_dict().values(), module.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ModelNotFoundError, match="no such discriminator checkpoint"):
        HiFiGANModule(
            generator=TINY_G, pretrained_discriminators=str(tmp_path / "do_missing"), discriminator_width=WIDTH
        )
    with pytest.raises(ConfigError, match="not a discriminator checkpoint"):
        HiFiGANModule(generator=TINY_G, pretrained_discriminators=str(written["generator"]), discriminator_width=WIDTH)


def test_fine_tuning_starts_from_auffusions_vocoder(tiny_auffusion):
    module = HiFiGANModule(pretrained=str(tiny_auffusion), discriminator_width=WIDTH, fmax_for_loss=4000.0)
    assert module.generator.config.upsample_initial_channel == TINY_VOCODER_CONFIG["upsample_initial_channel"]
    assert module.generator.has_weight_norm and module.generator.training
    assert module.loss_mel.fmax == 4000.0 and module.hparams.generator["num_mels"] == 256
    mel = torch.randn(1, 256, 8) - 5
    module.generator.eval()
    with torch.no_grad():
        assert torch.allclose(module(mel), load_vocoder(tiny_auffusion)(mel), atol=1e-5)


def test_validation_logs_mel_error_and_media_to_tensorboard_and_wandb(tmp_path, speech, monkeypatch):
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from callbacks import VocoderMediaCallback

    monkeypatch.setenv("WANDB_MODE", "offline")
    train, val = Batches(speech, n=1, segment=3200), Batches(speech, n=3, batch=1, segment=3200)
    tensorboard = TensorBoardLogger(tmp_path, name="tb")
    wandb = WandbLogger(save_dir=str(tmp_path), offline=True, project="speakimg-tests")
    trainer = _trainer(
        tmp_path,
        max_epochs=1,
        limit_val_batches=3,
        log_every_n_steps=1,
        logger=[tensorboard, wandb],
        callbacks=[VocoderMediaCallback(num_clips=2)],
    )
    trainer.fit(_module(), DataLoader(train, batch_size=None), DataLoader(val, batch_size=None))
    error = trainer.callback_metrics["val/mel_error"]
    assert 0 < error < 20
    wandb.experiment.finish()

    events = EventAccumulator(str(tensorboard.log_dir), size_guidance={"audio": 0, "images": 0}).Reload()
    tags = events.Tags()
    # clip i: audio/0 is the real clip, audio/1 the generated one; one mel image (real above generated)
    assert {"val/clip0/audio/0", "val/clip0/audio/1", "val/clip1/audio/1"} <= set(tags["audio"])
    assert {"val/clip0/mel/0", "val/clip1/mel/0"} <= set(tags["images"])
    assert "val/mel_error" in tags["scalars"] and "train/loss_g" in tags["scalars"]
    image = events.Images("val/clip0/mel/0")[0]
    assert (image.height, image.width) == (512, 20)  # real above generated: 2 x 256 mel rows, 20 frames
    media = list(tmp_path.glob("wandb/offline-run-*/files/media/**/*.*"))
    assert sum(p.suffix == ".wav" for p in media) == 4 and sum(p.suffix == ".png" for p in media) == 2
