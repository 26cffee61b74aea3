"""The SDS baseline and colorization (Images that Sound, sec. 4.1 and appendix A.1) on the tiny kit.

Defining properties against independent computations: one SDS step's gradient is
``w(t) (eps_hat - eps)`` pushed through the image's network (hand-made noise schedules, direct UNet
calls); a resumed run equals an uninterrupted one; colorization's greyscale is the spectrogram.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from speakimg.errors import CheckpointError, ConfigError
from speakimg.sampling import PipelineModels, SamplerSettings, load_pipeline


@pytest.fixture(scope="module")
def tiny_if(tiny_root):
    from speakimg.testing import tiny_if

    return tiny_if(tiny_root)


@pytest.fixture(scope="module")
def pipe(tiny_sd, tiny_auffusion, tiny_if):
    models = PipelineModels(str(tiny_sd), str(tiny_auffusion), "griffin-lim", str(tiny_if))
    pipe = load_pipeline(models, 2, torch.device("cpu"), torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd_alphas_cumprod() -> torch.Tensor:
    """SD 1.5's schedule by hand: scaled_linear betas 0.00085..0.012 over 1000 steps."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def if_alphas_cumprod() -> torch.Tensor:
    """IF's schedule by hand: squaredcos_cap_v2 (Nichol & Dhariwal's cosine, betas capped at 0.999)."""
    f = [math.cos((i / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(1001)]
    betas = torch.tensor([min(1 - f[i + 1] / f[i], 0.999) for i in range(1000)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def guided_by_hand(unet, x_t, t, embeddings, scale, channels):
    out = unet(torch.cat([x_t, x_t]), torch.tensor(t), encoder_hidden_states=embeddings).sample[:, :channels]
    uncond, cond = out.chunk(2)
    return uncond + scale * (cond - uncond)


def test_one_sds_step_gradient_is_w_t_times_the_noise_error(pipe):
    from speakimg.pipeline.sampler import GuidedDenoiser
    from speakimg.pipeline.sds import FourierImage, latent_sds_loss, sds_loss

    image = FourierImage(256, 64, features=8, scale=10.0, hidden=16, seed=0)
    params = list(image.parameters())
    t, generator = 700, torch.Generator().manual_seed(1)

    # the audio model on the VAE latent (through our code path)
    emb = pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, ["bells ringing"], [""])
    noise = torch.randn(1, 4, 32, 8, generator=generator)
    alphas = pipe.scheduler.alphas_cumprod
    latent_sds_loss(pipe.audio_vae, GuidedDenoiser(pipe.audio_unet, emb, 10.0), image(), t, noise, alphas).backward()
    ours = [p.grad.clone() for p in params]
    # by hand: z = E(2x - 1) * sf, x_t, the guided estimate, w(t) (eps_hat - eps) pulled back by autograd
    z = pipe.audio_vae.encode(2 * image().expand(-1, 3, -1, -1) - 1).latent_dist.mean * 0.18215
    abar = float(sd_alphas_cumprod()[t])
    with torch.no_grad():
        x_t = math.sqrt(abar) * z + math.sqrt(1 - abar) * noise
        eps_hat = guided_by_hand(pipe.audio_unet, x_t, t, emb, 10.0, 4)
    hand = torch.autograd.grad(z, params, grad_outputs=(1 - abar) * (eps_hat - noise))
    for a, b in zip(ours, hand, strict=True):  # float32 sums in another order: 1e-3 of the largest entry
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))
    # deliberately broken: another noise draw gives another gradient
    image.zero_grad()
    other = torch.randn(noise.shape, generator=generator)
    latent_sds_loss(pipe.audio_vae, GuidedDenoiser(pipe.audio_unet, emb, 10.0), image(), t, other, alphas).backward()
    assert not torch.allclose(params[-1].grad, ours[-1], rtol=1e-3, atol=1e-3 * float(ours[-1].abs().max()))

    # the IF pixel model on a crop, with IF's own (cosine) schedule
    pixel = pipe.pixel_model
    emb = pipe.encode(pixel.prompt_encoder, pixel.unet, ["a castle"], [""])
    crop = torch.rand(1, 3, 64, 64, requires_grad=True)
    noise = torch.randn(1, 3, 64, 64, generator=generator)
    alphas = pixel.scheduler().alphas_cumprod
    sds_loss(GuidedDenoiser(pixel.unet, emb, 80.0), crop, t, noise, alphas).backward()
    abar = float(if_alphas_cumprod()[t])
    with torch.no_grad():
        eps_hat = guided_by_hand(pixel.unet, math.sqrt(abar) * crop + math.sqrt(1 - abar) * noise, t, emb, 80.0, 3)
    torch.testing.assert_close(crop.grad, (1 - abar) * (eps_hat - noise), rtol=1e-4, atol=1e-6)


def test_sds_resumes_from_its_checkpoint_exactly(pipe, tmp_path, monkeypatch):
    from speakimg.sampling import sample_batch

    monkeypatch.setattr(pipe, "pixel_model", None)  # without IF: the image side is SD's latent SDS (step 2)
    settings = SamplerSettings(method="sds", width=64, crop_padding=False, sds_steps=2, sds_audio_only_steps=1,
                               sds_crops=1, sds_crop_size=64, sds_hidden=8, sds_fourier_features=4,
                               sds_checkpoint_every=1)  # fmt: skip

    def run(steps, folder):
        changed = SamplerSettings(**{**vars(settings), "sds_steps": steps, "sds_checkpoint_dir": str(folder)})
        return sample_batch(pipe, changed, ["a castle"], ["bells"], [torch.Generator().manual_seed(5)]).spectrograms

    straight = run(2, tmp_path / "a")
    run(1, tmp_path / "b")
    [key] = list((tmp_path / "b").iterdir())
    assert json.loads((key / "state.json").read_text())["step"] == 1
    resumed = run(2, tmp_path / "b")
    assert torch.equal(straight, resumed)
    assert straight.shape == (1, 256, 64) and straight.min() >= 0 and straight.max() <= 1
    # a damaged checkpoint is one clear error naming the file
    (key / "implicit_image.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="implicit_image.safetensors"):
        run(3, tmp_path / "b")


def test_colorization_keeps_the_spectrogram_as_its_greyscale(pipe):
    from speakimg.pipeline.colorization import colorize_spectrograms, fit_to_range

    spectrogram = torch.rand(1, 256, 32, generator=torch.Generator().manual_seed(0))
    colors = colorize_spectrograms(pipe.pixel_model, spectrogram, ["a colorful photo of a castle"], steps=3,
                                   start_step=1, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert colors.shape == (1, 3, 256, 32) and colors.min() >= 0 and colors.max() <= 1
    torch.testing.assert_close(colors.mean(dim=1), spectrogram, rtol=0, atol=1e-5)
    assert colors.std(dim=1).mean() > 1e-3  # there is colour, not only grey
    # keeping channels in range shrinks the colour and keeps the mean, where clamping would not
    x = 3 * torch.randn(2, 3, 8, 8)
    x = x - x.mean(1, keepdim=True) + x.mean(1, keepdim=True).clamp(-1, 1)
    fitted = fit_to_range(x)
    assert fitted.abs().max() <= 1 + 1e-6
    torch.testing.assert_close(fitted.mean(1), x.mean(1))
    assert not torch.allclose(x.clamp(-1, 1).mean(1), x.mean(1))
    with pytest.raises(ConfigError, match="start step"):
        colorize_spectrograms(pipe.pixel_model, spectrogram, ["a"], steps=3, start_step=3)
    with pytest.raises(ConfigError, match=r"\[B, H, W\]"):
        colorize_spectrograms(pipe.pixel_model, spectrogram[0], ["a"], steps=3)


def test_sample_sds_with_colorize_writes_the_sample_files(tiny_sd, tiny_auffusion, tiny_if, tmp_path):
    from speakimg.sample import run

    argv = ["--image-prompt", "a castle", "--audio-prompt", "bells ringing", "--out", str(tmp_path), "--method", "sds",
            "--width", "64", "--crop-padding", "false", "--sds-steps", "2", "--sds-audio-only-steps", "1",
            "--sds-crops", "1", "--sds-crop-size", "64", "--sds-hidden", "8", "--sds-fourier-features", "4",
            "--colorize", "true", "--colorize-steps", "3", "--colorize-start-step", "2", "--vocoder", "griffin-lim",
            "--griffin-lim-iters", "2", "--device", "cpu", "--image-model", str(tiny_sd), "--audio-model",
            str(tiny_auffusion)]  # fmt: skip
    video = shutil.which("ffmpeg") is not None
    with pytest.raises(ConfigError, match="pixel model"):  # before any model loads
        run([*argv, *([] if video else ["--no-video"])])
    [folder] = run([*argv, "--pixel-model", str(tiny_if), *([] if video else ["--no-video"])])
    assert folder.name == "0-sds"
    names = {p.name for p in folder.iterdir()}
    expected = {"img.png", "spec.png", "spec_color.png", "color.png", "audio.wav", "log_mel.npy", "sample.json"}
    assert names == expected | ({"video.mp4", "color_video.mp4"} if video else set())
    record = json.loads((folder / "sample.json").read_text())
    assert record["settings"]["method"] == "sds" and record["settings"]["image_guidance_scale"] == 80.0
    assert record["settings"]["pixel_model"] == str(tiny_if) and record["files"]["color"] == "color.png"
    assert record["settings"]["sds_checkpoint_dir"] == str(tmp_path / ".sds-checkpoints")
    spec = np.asarray(Image.open(folder / "spec.png"), dtype=np.float64)
    color = np.asarray(Image.open(folder / "color.png"), dtype=np.float64)
    assert color.shape == (256, 64, 3)
    assert np.abs(color.mean(axis=-1) - spec).max() <= 1.0  # the greyscale is the spectrogram, to 8-bit rounding
    assert (color.std(axis=-1) > 0).any()
    picture = np.asarray(Image.open(folder / "img.png"), dtype=np.float64)
    assert np.array_equal(picture[..., 0], spec)  # SDS: the picture is the spectrogram


def test_sds_and_colorize_settings_are_checked_without_models():
    assert SamplerSettings(method="sds").resolved().image_guidance_scale == 80.0
    assert SamplerSettings(method="sds").resolved().audio_guidance_scale == 10.0
    for bad, match in (({"sds_t_min": 0.9, "sds_t_max": 0.5}, "sds_t_min"), ({"sds_steps": 0}, "sds_steps"),
                       ({"colorize_start_step": 30}, "colorize_start_step"), ({"colorize_prompt": "a photo"}, "{}"),
                       ({"sds_crop_size": 512}, "sds_crop_size"), ({"sds_lr": -1.0}, "sds_lr")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            SamplerSettings(method="sds", **bad).validate()


def test_tiny_if_is_an_if_stage_one_folder_and_bad_folders_are_named(tiny_if, tmp_path):
    from speakimg.errors import ModelNotFoundError
    from speakimg.pipeline.deepfloyd import load_pixel_model

    index = json.loads((tiny_if / "model_index.json").read_text())
    assert index["_class_name"] == "IFPipeline" and index["text_encoder"] == ["transformers", "T5EncoderModel"]
    unet = json.loads((tiny_if / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["out_channels"], unet["sample_size"]) == (3, 6, 64)
    scheduler = json.loads((tiny_if / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["beta_schedule"] == "squaredcos_cap_v2" and scheduler["variance_type"] == "learned_range"
    broken = tmp_path / "if-without-unet"
    shutil.copytree(tiny_if, broken, ignore=shutil.ignore_patterns("unet"))
    with pytest.raises(ModelNotFoundError, match="unet/"):
        load_pixel_model(broken)
