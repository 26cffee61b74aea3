"""ImagesThatSpeakPipeline: z_0 against an independent step-by-step computation of the method,
reproducibility, batching, decoding, dtypes and errors (tiny models, a few steps)."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from speakimg.audio import LOG_MEL_MAX, LOG_MEL_MIN
from speakimg.errors import ConfigError
from speakimg.pipeline import ImagesThatSpeakPipeline

# ----------------------------------------------------------------------------------------- reference
# Written from docs/method.md section 5 without the pipeline's code: its own model loading, text
# encoding, alpha-bar schedule, timesteps, guidance, weights and DDIM update (eta 0).

T = 1000


def sd15_alpha_bar() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2  # scaled_linear
    return torch.cumprod(1.0 - betas, dim=0)


class Reference:
    def __init__(self, sd_folder, auffusion_folder):
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        self.models = {}
        for name, folder in (("image", sd_folder), ("audio", auffusion_folder)):
            self.models[name] = (
                UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval(),
                CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
                CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval(),
            )

    @torch.no_grad()
    def embed(self, name: str, texts: list[str]) -> torch.Tensor:
        _, tokenizer, encoder = self.models[name]
        ids = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return encoder(ids).last_hidden_state

    @torch.no_grad()
    def guided(self, name, z, t, negative, prompt, scale):
        unet = self.models[name][0]
        emb = self.embed(name, [negative, prompt])
        out = unet(torch.cat([z, z]).float(), t, encoder_hidden_states=emb).sample.double()
        eps_u, eps_c = out[:1], out[1:]
        return eps_u + scale * (eps_c - eps_u)

    def sample(self, z_T, image_prompt, audio_prompt, *, steps, s_image, s_audio, t_image, t_audio, audio_weight,
               negative_image="", negative_audio=""):  # fmt: skip
        abar = sd15_alpha_bar()
        ratio = T // steps
        timesteps = [k * ratio + 1 for k in reversed(range(steps))]  # "leading" + steps_offset 1
        z = z_T.double()
        for t in timesteps:
            image_on, audio_on = t <= t_image * T, t <= t_audio * T
            eps_v = self.guided("image", z, t, negative_image, image_prompt, s_image) if image_on else None
            eps_a = self.guided("audio", z, t, negative_audio, audio_prompt, s_audio) if audio_on else None
            if image_on and audio_on:
                eps = audio_weight * eps_a + (1 - audio_weight) * eps_v
            else:
                eps = eps_a if audio_on else eps_v
            a_t = abar[t]
            a_prev = abar[t - ratio] if t - ratio >= 0 else abar[0]  # set_alpha_to_one=False
            x0 = (z - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            z = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
        return z.float()


@pytest.fixture(scope="module")
def reference(tiny_sd, tiny_auffusion):
    return Reference(tiny_sd, tiny_auffusion)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------- the method


@pytest.mark.parametrize(
    "setting",
    [
        dict(steps=5, s_image=10.0, s_audio=10.0, t_image=1.0, t_audio=1.0, audio_weight=0.5),
        dict(steps=10, s_image=10.0, s_audio=10.0, t_image=0.9, t_audio=1.0, audio_weight=0.5),
        dict(steps=10, s_image=7.5, s_audio=3.0, t_image=0.9, t_audio=1.0, audio_weight=0.3, negative_image="blurry"),
        dict(steps=5, s_image=5.0, s_audio=12.0, t_image=1.0, t_audio=0.7, audio_weight=0.3),
    ],
    ids=["t_image=1-w=0.5", "t_image=0.9-w=0.5", "t_image=0.9-w=0.3-neg", "t_audio=0.7-w=0.3"],
)
def test_z0_equals_an_independent_computation_of_the_method(tiny_pipeline, reference, setting):
    z_T = torch.randn(1, 4, 32, 128, generator=gen(7))
    expected = reference.sample(z_T, "a castle", "bells ringing", **setting)
    out = tiny_pipeline(
        "a castle",
        "bells ringing",
        num_inference_steps=setting["steps"],
        image_guidance_scale=setting["s_image"],
        audio_guidance_scale=setting["s_audio"],
        t_image=setting["t_image"],
        t_audio=setting["t_audio"],
        audio_weight=setting["audio_weight"],
        negative_image_prompt=setting.get("negative_image", ""),
        latents=z_T,
        output_type="latent",
    )
    assert out.images is None and out.audios is None
    z_0 = out.latents
    assert z_0.shape == (1, 4, 32, 128) and z_0.dtype == torch.float32
    scale = expected.abs().max()
    assert (z_0 - expected).abs().max() <= 1e-4 * scale, (z_0 - expected).abs().max()
    assert not torch.allclose(z_0, z_T, atol=1e-2)  # it did denoise


def test_the_warm_start_skips_the_image_unet_above_the_boundary(tiny_pipeline):
    calls = {"image": [], "audio": []}
    hooks = [
        unet.register_forward_pre_hook(lambda module, args, name=name: calls[name].append(int(args[1])))
        for name, unet in (("image", tiny_pipeline.image_unet), ("audio", tiny_pipeline.audio_unet))
    ]
    try:
        tiny_pipeline("a", "b", num_inference_steps=10, t_image=0.9, generator=gen(3), output_type="latent")
    finally:
        for hook in hooks:
            hook.remove()
    assert calls["image"] == list(range(801, 0, -100))  # t = 901 > 900 skipped: one audio-only step
    assert calls["audio"] == list(range(901, 0, -100))


def test_audio_weight_zero_with_t_image_one_is_stable_diffusion_with_ddim(tiny_pipeline, tiny_sd):
    """With the audio model weighted 0 from the first step, the sampler is plain SD + DDIM (diffusers)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    sd = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    sd.scheduler = DDIMScheduler.from_config(sd.scheduler.config)
    sd.set_progress_bar_config(disable=True)
    z_T = torch.randn(1, 4, 32, 128, generator=gen(11))
    expected = sd(
        "a lighthouse", height=256, width=1024, num_inference_steps=4, guidance_scale=6.0, latents=z_T,
        output_type="latent",
    ).images  # fmt: skip
    ours = tiny_pipeline(
        "a lighthouse", "waves", num_inference_steps=4, image_guidance_scale=6.0, t_image=1.0, audio_weight=0.0,
        latents=z_T, output_type="latent",
    ).latents  # fmt: skip
    assert torch.allclose(ours, expected, atol=1e-4 * expected.abs().max())


# ----------------------------------------------------------------------------------------- reproducibility


def test_latents_reproduce_a_generator_run_exactly(tiny_pipeline):
    kwargs = dict(num_inference_steps=2, output_type="latent")
    seeded = tiny_pipeline("a cat", "a dog barking", generator=gen(5), **kwargs).latents
    z_T = torch.randn(1, 4, 32, 128, generator=gen(5))  # what the generator draws: N(0, I) of the latent shape
    again = tiny_pipeline("a cat", "a dog barking", latents=z_T, **kwargs).latents
    twice = tiny_pipeline("a cat", "a dog barking", latents=z_T.clone(), **kwargs).latents
    assert torch.equal(seeded, again) and torch.equal(again, twice)
    other = tiny_pipeline("a cat", "a dog barking", generator=gen(6), **kwargs).latents
    assert not torch.allclose(seeded, other, atol=1e-3)


def test_a_batch_equals_single_runs(tiny_pipeline):
    kwargs = dict(num_inference_steps=2, output_type="latent", t_image=0.9)
    pairs = [("a cat", "bells"), ("a ship", "wind")]
    batch = tiny_pipeline([p[0] for p in pairs], [p[1] for p in pairs], generator=[gen(1), gen(2)], **kwargs).latents
    assert batch.shape == (2, 4, 32, 128)
    for i, (image, audio) in enumerate(pairs):
        single = tiny_pipeline(image, audio, generator=[gen(i + 1)], **kwargs).latents
        # equal up to float rounding: batched convolutions may sum in another order
        assert torch.allclose(batch[i], single[0], atol=1e-4), (batch[i] - single[0]).abs().max()
    assert not torch.allclose(batch[0], batch[1], atol=1e-2)


def test_prompts_broadcast_and_repeat_per_prompt(tiny_pipeline):
    image, audio, neg_image, neg_audio = tiny_pipeline.batch_prompts("a cat", ["bells", "rain"], "", ["x", "y"], 2)
    assert image == ["a cat"] * 4
    assert audio == ["bells", "bells", "rain", "rain"]
    assert neg_image == [""] * 4 and neg_audio == ["x", "x", "y", "y"]
    out = tiny_pipeline("a cat", ["bells", "rain"], num_images_per_prompt=2, num_inference_steps=1,
                        generator=gen(0), output_type="latent")  # fmt: skip
    assert out.latents.shape == (4, 4, 32, 128)


def test_embeddings_put_the_unconditional_rows_first(tiny_pipeline, reference):
    emb = tiny_pipeline.encode(
        tiny_pipeline.image_prompt_encoder, tiny_pipeline.image_unet, ["a cat", "a dog", "a cat"], ["", "", "blurry"]
    )
    expected = reference.embed("image", ["", "", "blurry", "a cat", "a dog", "a cat"])
    assert emb.shape == (6, 77, 32)
    assert torch.allclose(emb, expected, atol=1e-6)


# ----------------------------------------------------------------------------------------- decoding


def test_decoding_shapes_values_and_crop(tiny_pipeline, tiny_sd, tiny_auffusion):
    from diffusers import AutoencoderKL

    z_T = torch.randn(1, 4, 32, 128, generator=gen(9))
    full = tiny_pipeline("a", "c", num_inference_steps=1, latents=z_T, output_type="pt", crop_padding=False)
    assert full.images.shape == (1, 3, 256, 1024) and full.spectrograms.shape == (1, 256, 1024)
    assert full.log_mels.shape == (1, 256, 1024) and full.audios.shape == (1, 163840)  # 10.24 s at 16 kHz
    assert full.sample_rate == 16000

    # independent decode: each model's own VAE, (x / 2 + 0.5).clamp(0, 1), channel mean, docs/method.md section 2
    z_0 = full.latents
    image_vae = AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae")
    audio_vae = AutoencoderKL.from_pretrained(tiny_auffusion, subfolder="vae")
    with torch.no_grad():
        image = (image_vae.decode(z_0 / image_vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        spec = (audio_vae.decode(z_0 / audio_vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1).mean(dim=1)
    assert torch.allclose(full.images, image, atol=1e-5)
    assert not torch.allclose(full.images.mean(dim=1), full.spectrograms, atol=1e-2)  # two different VAEs
    assert torch.allclose(full.spectrograms, spec, atol=1e-5)
    log_mel = spec.flip(-2) * (LOG_MEL_MAX - LOG_MEL_MIN) + LOG_MEL_MIN
    assert torch.allclose(full.log_mels, log_mel, atol=1e-4)
    assert full.log_mels.min() >= LOG_MEL_MIN - 1e-4 and full.log_mels.max() <= LOG_MEL_MAX + 1e-4
    assert torch.allclose(full.audios, tiny_pipeline.vocoder(full.log_mels)[:, 0], atol=1e-6)
    assert full.audios.abs().max() > 0

    # crop_padding: the last 32 columns and 5120 samples go (the vocoder still sees the whole canvas)
    crop = tiny_pipeline.finish(image, spec, z_0, "pt", crop_padding=True)
    assert crop.images.shape == (1, 3, 256, 992) and crop.audios.shape == (1, 158720)  # 9.92 s
    assert torch.equal(crop.images, image[..., :992])
    assert torch.equal(crop.spectrograms, spec[..., :992])
    assert torch.allclose(crop.log_mels, full.log_mels[..., :992], atol=1e-4)
    assert torch.allclose(crop.audios, full.audios[:, :158720], atol=1e-5)


def test_numpy_output_layout(tiny_pipeline):
    out = tiny_pipeline("a", "b", num_inference_steps=1, generator=gen(0))  # output_type="np", crop_padding=True
    assert out.images.shape == (1, 256, 992, 3) and out.images.dtype.name == "float32"
    assert out.images.min() >= 0.0 and out.images.max() <= 1.0
    assert out.spectrograms.shape == (1, 256, 992) and out.audios.shape == (1, 158720)
    assert isinstance(out.latents, torch.Tensor)
    images, *_ = tiny_pipeline("a", "b", num_inference_steps=1, generator=gen(0), return_dict=False)
    assert (images == out.images).all()


# ----------------------------------------------------------------------------------------- construction


def test_the_shared_scheduler_is_ddim_from_the_image_models_config(tiny_pipeline):
    from diffusers import DDIMScheduler

    config = tiny_pipeline.scheduler.config
    assert isinstance(tiny_pipeline.scheduler, DDIMScheduler)
    assert (config.beta_schedule, config.beta_start, config.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert (config.steps_offset, config.set_alpha_to_one, config.clip_sample) == (1, False, False)
    assert config.timestep_spacing == "leading" and config.prediction_type == "epsilon"
    assert tiny_pipeline.sources["audio_model_kind"] == "diffusers"


@pytest.mark.parametrize(
    ("change", "match"),
    [({"beta_end": 0.02}, "beta_end: 0.012 vs 0.02"), ({"prediction_type": "v_prediction"}, "prediction_type")],
)
def test_models_with_different_noise_schedules_are_refused(tiny_pipeline, change, match):
    components = tiny_pipeline.components
    audio_config = {**dict(tiny_pipeline.scheduler.config), **change}
    with pytest.raises(ConfigError, match=match):
        ImagesThatSpeakPipeline(**components, audio_scheduler_config=audio_config)


def test_constructor_turns_any_scheduler_into_ddim(tiny_pipeline):
    from diffusers import DDIMScheduler, PNDMScheduler

    components = {**tiny_pipeline.components, "scheduler": PNDMScheduler.from_config(tiny_pipeline.scheduler.config)}
    pipe = ImagesThatSpeakPipeline(**components)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.steps_offset == 1


def test_bf16_unets_with_fp32_vaes(tiny_sd, tiny_auffusion):
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tiny_auffusion, "griffin-lim", torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.vocoder.n_iter = 1
    assert pipe.dtype == torch.bfloat16 and pipe.audio_unet.dtype == torch.bfloat16
    assert pipe.image_vae.dtype == torch.float32 and pipe.audio_vae.dtype == torch.float32  # force_upcast
    out = pipe("a", "b", num_inference_steps=2, generator=gen(0), output_type="pt")
    assert out.latents.dtype == torch.float32 and out.images.dtype == torch.float32
    assert torch.isfinite(out.latents).all() and torch.isfinite(out.audios).all()


@pytest.mark.slow
def test_compile_gives_the_same_samples(tiny_sd, tiny_auffusion):
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tiny_auffusion, "griffin-lim")
    pipe.set_progress_bar_config(disable=True)
    z_T = torch.randn(1, 4, 32, 128, generator=gen(0))
    eager = pipe("a", "b", num_inference_steps=2, latents=z_T, output_type="latent").latents
    pipe.compile(backend="eager")  # dynamo capture without a C++ toolchain
    assert pipe.image_unet.down_blocks[1].attentions[0].transformer_blocks[0]._compiled_call_impl is not None
    compiled = pipe("a", "b", num_inference_steps=2, latents=z_T, output_type="latent").latents
    assert torch.allclose(compiled, eager, atol=1e-4)


def test_default_vocoder_is_the_audio_models_hifigan(tiny_sd, tiny_auffusion):
    from speakimg.vocoder import Generator

    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tiny_auffusion)
    assert isinstance(pipe.vocoder, Generator)
    assert pipe.sources["vocoder"] == str(tiny_auffusion / "vocoder")


def test_default_vocoder_uses_the_audio_models_vocoder_folder(tmp_path, monkeypatch, caplog):
    import speakimg.vocoder
    from speakimg.pipeline.loading import default_vocoder
    from speakimg.vocoder import GriffinLimVocoder

    (tmp_path / "plain").mkdir()
    (tmp_path / "with" / "vocoder").mkdir(parents=True)
    sentinel = torch.nn.Identity()
    seen = []

    def fake_load(spec, **kwargs):
        seen.append(spec)
        return sentinel if spec != "griffin-lim" else GriffinLimVocoder()

    monkeypatch.setattr(speakimg.vocoder, "load_vocoder", fake_load)
    module, name = default_vocoder([tmp_path / "plain", tmp_path / "with"])
    assert module is sentinel and seen == [str(tmp_path / "with")] and name.endswith("vocoder")

    with caplog.at_level(logging.WARNING, logger="speakimg.pipeline"):
        module, name = default_vocoder([tmp_path / "plain"])
    assert isinstance(module, GriffinLimVocoder) and name == "griffin-lim"
    assert "no vocoder/ folder" in caplog.text


def test_default_vocoder_loads_the_tiny_auffusion_hifigan(tiny_auffusion):
    from speakimg.pipeline.loading import default_vocoder
    from speakimg.vocoder import Generator

    module, name = default_vocoder([tiny_auffusion])
    assert isinstance(module, Generator) and not module.training and name == str(tiny_auffusion / "vocoder")
    mel = torch.full((1, 256, 10), -5.0)
    assert module(mel).shape == (1, 1, 1600)


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(t_image=0.0), "t_image=0.0 is outside"),
        (dict(t_image=1.1), "t_image=1.1 is outside"),
        (dict(t_audio=0.5, t_image=0.5), "no model takes part"),
        (dict(audio_weight=2.0), "audio_weight"),
        (dict(height=250), "height must be a positive multiple of 8"),
        (dict(width=1020), "width must be a positive multiple of 8"),
        (dict(height=512), "height=512 but the spectrogram has 256 mel bins"),
        (dict(width=32), "too small to crop"),
        (dict(latents=torch.zeros(1, 4, 32, 64)), r"latents must have shape \(1, 4, 32, 128\)"),
        (dict(latents=torch.zeros(2, 4, 32, 128)), r"latents must have shape \(1, 4, 32, 128\)"),
        (dict(output_type="pil"), "output_type must be 'np', 'pt' or 'latent'"),
        (dict(num_inference_steps=0), "num_inference_steps must be in"),
        (dict(num_inference_steps=2.5), "num_inference_steps must be an int"),
        (dict(image_guidance_scale=float("inf")), "image_guidance_scale must be a finite number"),
        (dict(num_images_per_prompt=0), "num_images_per_prompt must be >= 1"),
        (dict(generator=[torch.Generator(), torch.Generator()]), "got 2 generators for a batch of 1"),
        (dict(negative_audio_prompt=["x", "y"]), "negative_audio_prompt has 2 prompts but the batch has 1"),
        (dict(negative_image_prompt=[]), "negative_image_prompt is an empty list"),
    ],
)
def test_bad_arguments_raise_one_clear_error(tiny_pipeline, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tiny_pipeline("a", "b", **{"num_inference_steps": 2, **kwargs})


@pytest.mark.parametrize(
    ("image", "audio", "match"),
    [
        ([], "b", "image_prompt is an empty list"),
        ("a", [], "audio_prompt is an empty list"),
        (["a", "b"], ["c", "d", "e"], "image_prompt has 2 prompts but the batch has 3"),
        (["a", 3], "b", "image_prompt must hold strings only"),
        (None, "b", "image_prompt must be a string or a list"),
    ],
)
def test_bad_prompts_raise_one_clear_error(tiny_pipeline, image, audio, match):
    with pytest.raises(ConfigError, match=match):
        tiny_pipeline(image, audio, num_inference_steps=1)


def test_a_speech_model_passed_as_image_model_is_refused(tmp_path, tiny_auffusion):
    from speakimg.pipeline.loading import SPEECH_MARKER, load_image_model

    (tmp_path / SPEECH_MARKER).write_text("{}")
    with pytest.raises(ConfigError, match="pass it as audio_model"):
        load_image_model(tmp_path)


def test_a_folder_that_is_not_a_model_is_named(tmp_path, tiny_sd):
    from speakimg.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="missing unet/, vae/"):
        ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tmp_path)
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tmp_path / "nowhere" / "model")
