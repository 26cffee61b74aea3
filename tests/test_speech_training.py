"""SpeechLoRAModule: the loss, the batch contract, training, small checkpoints, exact resume, export."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import speech_standin as standin
import torch
from conftest import requires_festival
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from speakimg.errors import CheckpointError, DataError
from speakimg.modules.optim import WarmupCosine
from speakimg.modules.speech_lora import SpeechLoRAModule, warmup_cosine

pytestmark = requires_festival  # the data are festival speech

KW = dict(
    max_phonemes=64,
    lora_rank=4,
    lora_alpha=8,
    unfreeze=(r"attn2\.to_k", r"attn2\.to_v"),
    scheduler=functools.partial(WarmupCosine, warmup_steps=1),
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def examples(tmp_path_factory) -> Path:
    return standin.make_examples(tmp_path_factory.mktemp("speech") / "examples.pt")


def make_module(tiny_auffusion, tiny_plbert, **kw) -> SpeechLoRAModule:
    return SpeechLoRAModule(base_model=str(tiny_auffusion), plbert=str(tiny_plbert), **{**KW, **kw})


def make_data(examples, tiny_auffusion, **kw) -> standin.StandInSpeechData:
    return standin.StandInSpeechData(str(examples), **{"latents_vae": str(tiny_auffusion), **kw})


def batch_of(data: standin.StandInSpeechData, n: int = 2) -> dict:
    data.setup()
    return standin.collate_speech(data.items[:n])


class Recorder(Callback):
    """Per-step training losses."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def make_trainer(root: Path, steps: int, callbacks=(), **kw) -> Trainer:
    options = dict(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        callbacks=list(callbacks),
    )
    return Trainer(**{**options, **kw})


@pytest.fixture(scope="module")
def module(tiny_auffusion, tiny_plbert) -> SpeechLoRAModule:
    return make_module(tiny_auffusion, tiny_plbert)


# ----------------------------------------------------------------------------------- the loss
def test_loss_is_the_epsilon_mse_on_the_sd_schedule(module, examples, tiny_auffusion):
    batch = batch_of(make_data(examples, tiny_auffusion))
    for seed in range(100):  # a draw where conditioning dropout hits the first row only
        out = module.compute_loss(batch, torch.Generator().manual_seed(seed), cond_dropout=0.5)
        if out["dropped"].tolist() == [True, False]:
            break
    # independent SD 1.5 schedule: scaled-linear betas 0.00085 .. 0.012 over 1000 steps
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    torch.testing.assert_close(module.noise_scheduler.alphas_cumprod, alphas_cumprod.float())
    t, eps, z0 = out["timesteps"], out["noise"], batch["latents"]
    assert z0.shape == (2, 4, 32, 128) and ((t >= 0) & (t < 1000)).all()
    abar = alphas_cumprod[t].float()[:, None, None, None]
    noisy = abar.sqrt() * z0 + (1 - abar).sqrt() * eps
    encoder = module.model.prompt_encoder
    with torch.no_grad():
        cond = encoder.encode_ids(batch["phoneme_ids"], batch["phoneme_mask"])
        cond = torch.cat([encoder([""]), cond[1:]])  # the dropped row sees exactly what "" encodes to
        pred = module.model.unet(noisy, t, encoder_hidden_states=cond).sample
    expected = ((pred - eps) ** 2).mean()
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)

    # min-SNR-5 weighting: per-sample MSE x min(snr, 5) / snr, snr = abar / (1 - abar)
    module.hparams.snr_gamma = 5.0
    try:
        weighted = module.compute_loss(batch, torch.Generator().manual_seed(seed), cond_dropout=0.5)["loss"]
    finally:
        module.hparams.snr_gamma = None
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    weights = (torch.clamp(snr, max=5.0) / snr).float()
    per_sample = ((pred - eps) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(weighted.detach(), (per_sample * weights).mean(), rtol=1e-5, atol=1e-6)


def test_noise_offset_adds_a_per_channel_constant(module):
    from speakimg.speech.diffusion import draw_noise

    latents = torch.zeros(2, 4, 32, 128)
    plain, t1 = draw_noise(latents, 1000, torch.Generator().manual_seed(3))
    offset, t2 = draw_noise(latents, 1000, torch.Generator().manual_seed(3), noise_offset=0.1)
    diff = offset - plain
    assert float(diff.abs().max()) > 1e-3
    torch.testing.assert_close(diff, diff[:, :, :1, :1].expand_as(diff))
    assert t1.shape == t2.shape == (2,)


def test_image_batches_are_encoded_with_the_vae(module, examples):
    batch = batch_of(standin.StandInSpeechData(str(examples)), 1)
    assert batch["image"].shape == (1, 3, 256, 1024) and -1 <= batch["image"].min() < batch["image"].max() <= 1
    module.check_batch(batch, "train")
    latents = module.latents_of(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        posterior = module.model.vae.encode(batch["image"]).latent_dist
        expected = posterior.sample(generator=torch.Generator().manual_seed(0)) * 0.18215
    torch.testing.assert_close(latents, expected)
    assert latents.shape == (1, 4, 32, 128)


def test_unconditional_embedding_is_trained_by_dropout(module, examples, tiny_auffusion):
    batch = batch_of(make_data(examples, tiny_auffusion), 1)
    null = module.model.prompt_encoder.adapter.null_embedding
    for rate, expect_grad in ((0.999, True), (0.0, False)):
        null.grad = None
        module.compute_loss(batch, torch.Generator().manual_seed(0), cond_dropout=rate)["loss"].backward()
        assert null.grad is not None  # in the graph every step: DDP never sees it unused
        assert (float(null.grad.abs().sum()) > 0) == expect_grad
    module.zero_grad()


def test_batch_contract_errors_name_the_problem(module, examples, tiny_auffusion):
    good = batch_of(make_data(examples, tiny_auffusion))
    module.check_batch(good, "train")
    cases = {
        "image' has shape \\(1, 3, 128, 1024\\).*\\[B, 3, 256, 1024\\]": {
            **good,
            "latents": None,
            "image": torch.zeros(1, 3, 128, 1024),
        },
        "'latents' has shape \\(2, 4, 16, 128\\)": {**good, "latents": torch.zeros(2, 4, 16, 128)},
        "neither 'image' nor 'latents'": {k: v for k, v in good.items() if k != "latents"},
        "'phoneme_ids' and 'phoneme_mask'": {k: v for k, v in good.items() if k != "phoneme_mask"},
        "178-symbol table": {**good, "phoneme_ids": good["phoneme_ids"] + 500},
        "spans \\[-3.000": {
            **{k: v for k, v in good.items() if k != "latents"},
            "image": torch.full((1, 3, 256, 1024), -3.0),
        },
    }
    for message, batch in cases.items():
        batch = {k: v for k, v in batch.items() if v is not None}
        with pytest.raises(DataError, match=message):
            module.check_batch(batch, "train")


def test_wrong_mel_shape_stops_before_the_first_update(tmp_path, examples, tiny_auffusion, tiny_plbert):
    module = make_module(tiny_auffusion, tiny_plbert)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    trainer = make_trainer(tmp_path, 2)
    with pytest.raises(DataError, match=r"has shape \(2, 3, 128, 1024\)"):
        trainer.fit(module, datamodule=standin.StandInSpeechData(str(examples), height=128))
    assert trainer.global_step == 0
    after = dict(module.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_warmup_cosine():
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)


# ------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_overfits_a_fixed_batch(tmp_path, examples, tiny_auffusion, tiny_plbert):
    constant = functools.partial(WarmupCosine, warmup_steps=0, min_lr_ratio=1.0)
    lr = dict(lora_lr=1e-2, unfreeze_lr=1e-2, adapter_lr=1e-2, scheduler=constant, cond_dropout=0.0)
    module = make_module(tiny_auffusion, tiny_plbert, lora_rank=8, lora_alpha=8, **lr)
    data = make_data(examples, tiny_auffusion, batch_size=1, limit=1)
    batch = batch_of(data, 1)

    def held_out_loss() -> float:  # the same 8 (noise, t) draws before and after training
        generator = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            return sum(float(module.compute_loss(batch, generator, 0.0)["loss"]) for _ in range(8)) / 8

    start = held_out_loss()
    recorder = Recorder()
    make_trainer(tmp_path, 30, [recorder]).fit(module, datamodule=data)
    end = held_out_loss()
    print(f"overfit: held-out loss {start:.4f} -> {end:.4f}; train losses {[round(x, 3) for x in recorder.losses]}")
    assert len(recorder.losses) == 30 and all(math.isfinite(x) for x in recorder.losses)
    assert end < 0.93 * start
    assert sum(recorder.losses[-5:]) < sum(recorder.losses[:5])


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, examples, tiny_auffusion, tiny_plbert) -> dict:
    """4 steps uninterrupted (EMA on), checkpoints after steps 2 and 4."""
    root = tmp_path_factory.mktemp("straight")
    module = make_module(tiny_auffusion, tiny_plbert, ema_decay=0.9, lora_lr=3e-3, adapter_lr=3e-3)
    checkpoint = ModelCheckpoint(
        root / "ckpt", filename="s{step}", auto_insert_metric_name=False, every_n_train_steps=2, save_top_k=-1
    )
    recorder = Recorder()
    trainer = make_trainer(root, 4, [recorder, checkpoint])
    trainer.fit(module, datamodule=make_data(examples, tiny_auffusion, batch_size=1, limit=2))
    return {"module": module, "losses": recorder.losses, "ckpt": root / "ckpt", "root": root}


@pytest.mark.slow
def test_checkpoints_hold_only_what_trains(straight_run, tiny_auffusion):
    module = straight_run["module"]
    files = sorted(p.name for p in straight_run["ckpt"].iterdir())
    assert files == ["s2.ckpt", "s4.ckpt"]
    path = straight_run["ckpt"] / "s4.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert list(checkpoint["state_dict"]) == module.trainable_names
    assert not any(".vae." in k or "text_encoder" in k or ".plbert." in k for k in checkpoint["state_dict"])
    assert {k.split(".")[1] for k in checkpoint["state_dict"]} == {"unet", "prompt_encoder"}
    assert any("base_layer" in k for k in checkpoint["state_dict"])  # unfrozen wrapped layers are kept
    assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"] and "shadow_params" in checkpoint["ema"]
    unet_bytes = (tiny_auffusion / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    print(f"checkpoint {path.stat().st_size} bytes vs UNet {unet_bytes} bytes")
    assert path.stat().st_size < 0.25 * unet_bytes


@pytest.mark.slow
def test_resume_gives_the_same_losses(straight_run, tmp_path, examples, tiny_auffusion, tiny_plbert):
    resumed = make_module(tiny_auffusion, tiny_plbert, ema_decay=0.9, lora_lr=3e-3, adapter_lr=3e-3)
    recorder = Recorder()
    trainer = make_trainer(tmp_path, 4, [recorder])
    trainer.fit(
        resumed,
        datamodule=make_data(examples, tiny_auffusion, batch_size=1, limit=2),
        ckpt_path=straight_run["ckpt"] / "s2.ckpt",
    )
    assert trainer.global_step == 4
    straight = straight_run["module"]
    torch.testing.assert_close(recorder.losses, straight_run["losses"][2:], rtol=0, atol=0)
    params = dict(resumed.named_parameters())
    for name, param in straight.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(params[name], param, rtol=0, atol=0, msg=name)
    for mine, theirs in zip(resumed._ema.shadow_params, straight._ema.shadow_params, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


@pytest.mark.slow
def test_resume_with_the_speech_data_module(tmp_path, speech_data, tiny_auffusion, tiny_plbert):
    """The real, shuffled SpeechMelDataModule (latent cache): a resume at an epoch boundary changes nothing."""
    from speakimg.data import SpeechMelDataModule

    def run(ckpt_path=None, callbacks=()):
        module = make_module(tiny_auffusion, tiny_plbert, max_phonemes=128)
        data = SpeechMelDataModule(str(speech_data), batch_size=10, num_workers=0, latents_vae="tiny:auffusion")
        recorder = Recorder()
        ids: list[list[str]] = []

        class Ids(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                ids.append(batch["id"])

        trainer = make_trainer(tmp_path, 6, [recorder, Ids(), *callbacks])
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return recorder.losses, ids, len(data.train_dataset)

    checkpoint = ModelCheckpoint(
        tmp_path / "ckpt", filename="s{step}", auto_insert_metric_name=False, every_n_train_steps=3, save_top_k=-1
    )
    losses, ids, items = run(callbacks=[checkpoint])
    assert math.ceil(items / 10) == 3  # step 3 ends the first epoch
    assert sorted(sum(ids[:3], [])) == sorted(sum(ids[3:], [])) and ids[:3] != ids[3:]  # reshuffled
    resumed, resumed_ids, _ = run(ckpt_path=tmp_path / "ckpt" / "s3.ckpt")
    assert resumed_ids == ids[3:]
    torch.testing.assert_close(resumed, losses[3:], rtol=0, atol=0)


@pytest.mark.slow
def test_checkpoint_of_other_settings_is_refused(straight_run, tiny_auffusion, tiny_plbert):
    with pytest.raises(CheckpointError, match="Missing"):
        SpeechLoRAModule.load_from_checkpoint(
            straight_run["ckpt"] / "s2.ckpt", unfreeze=(r"attn2\.to_k", r"attn2\.to_v", "conv_out")
        )


@pytest.fixture(scope="module")
def exported(straight_run) -> Path:
    """``python -m speakimg.export`` of the step-4 checkpoint, run in its own process."""
    out = straight_run["root"] / "speech_model"
    subprocess.run(
        [sys.executable, "-m", "speakimg.export", str(straight_run["ckpt"] / "s4.ckpt"), str(out)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
        capture_output=True,
    )
    return out


@pytest.mark.slow
def test_export_reloads_in_a_fresh_process(straight_run, exported, tmp_path):
    module = straight_run["module"]
    out = exported
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    meta = json.loads((out / "speakimg_speech.json").read_text())
    assert meta["training"]["global_step"] == 4 and meta["training"]["ema"] is True
    script = textwrap.dedent(
        f"""
        import torch
        from speakimg import SpeechModel
        model = SpeechModel.from_pretrained({str(out)!r})
        g = torch.Generator().manual_seed(0)
        z, t = torch.randn(2, 4, 32, 128, generator=g), torch.tensor([900, 40])
        with torch.no_grad():
            emb = model.prompt_encoder(["", "A small red fox jumped over the quiet garden wall."])
            eps = model.unet(z, t, encoder_hidden_states=emb).sample
        torch.save({{"emb": emb, "eps": eps}}, {str(tmp_path / "fresh.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(2, 4, 32, 128, generator=g), torch.tensor([900, 40])
    module.eval()
    with module.ema_weights() as used, torch.no_grad():  # the export holds the EMA weights
        assert used
        emb = module.model.prompt_encoder(["", "A small red fox jumped over the quiet garden wall."])
        eps = module.model.unet(z, t, encoder_hidden_states=emb).sample
    with torch.no_grad():
        raw = module.model.unet(z, t, encoder_hidden_states=emb).sample
    torch.testing.assert_close(fresh["emb"], emb, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fresh["eps"], eps, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(raw, eps, atol=1e-6)  # EMA and raw weights differ after 4 steps

    # the LoRA file alone loads into a pipeline with diffusers' own loader
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(meta["base_model"])
    pipe.load_lora_weights(str(out))
    assert sum(".lora_A." in n for n, _ in pipe.unet.named_parameters()) == meta["lora"]["num_tensors"] // 2


@pytest.mark.slow
def test_the_exported_model_drives_the_combined_sampler(exported, tiny_sd):
    """The speech model as the audio model of ImagesThatSpeakPipeline (dispatched on its marker)."""
    from speakimg.pipeline import ImagesThatSpeakPipeline

    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, exported, "griffin-lim")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.sources["audio_model_kind"] == "speech"
    z_T = torch.randn(1, 4, 32, 128, generator=torch.Generator().manual_seed(0))
    run = dict(num_inference_steps=2, latents=z_T, output_type="latent", t_image=0.5)
    one = pipe("a lighthouse", "A small red fox jumped over the quiet garden wall.", **run)
    other = pipe("a lighthouse", "The old clock in the hall struck nine.", **run)
    assert one.latents.shape == (1, 4, 32, 128) and torch.isfinite(one.latents).all()
    assert not torch.allclose(one.latents, other.latents, atol=1e-5)  # the sentence conditions the sample
