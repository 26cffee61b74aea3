"""The methods of issue 14 (methods-b): reference-anchored denoising, the ControlNet baseline, re-ranking,
the imprint baseline's inverted picture, and every method side by side in ``evaluate``.

Each method's defining property is checked against an independent computation: the reference
denoiser's x0-prediction is z_ref and with weight 1 the sampler returns the DDIM closed form; the
ControlNet residuals at scale 0 leave the UNet alone and the picture is read back as its grey level;
re-ranking orders as a hand computation; the inverted picture is 1 - g.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image

from speakimg.errors import ConfigError
from speakimg.pipeline.reference import ReferenceDenoiser, reference_weights, sample_reference
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
from speakimg.sampling import RerankSettings, SamplerSettings, rank_candidates, sample_batch
from speakimg.testing import SD15_SCHEDULER_CONFIG

REPO = Path(__file__).resolve().parents[1]
requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def sd_alphas_cumprod() -> torch.Tensor:
    """SD 1.5's abar, computed here from its definition (scaled_linear betas 0.00085..0.012, 1000 steps)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


# ------------------------------------------------------------------------------------ reference
def test_the_reference_estimate_predicts_z_ref_exactly():
    abar = sd_alphas_cumprod()
    z_ref, noise = torch.randn(2, 4, 4, 8, dtype=torch.float64).float().unbind(0)
    z_ref, noise = z_ref[None], noise[None]
    for t in (1, 501, 981):
        a = float(abar[t])
        z_t = a**0.5 * z_ref + (1 - a) ** 0.5 * noise
        eps = ReferenceDenoiser(z_ref, abar)(z_t, torch.tensor(t))
        x0 = (z_t - (1 - a) ** 0.5 * eps) / a**0.5
        torch.testing.assert_close(eps, noise, atol=2e-4, rtol=0)
        torch.testing.assert_close(x0, z_ref, atol=1e-5, rtol=0)
        other = ReferenceDenoiser(z_ref + 0.1, abar)(z_t, torch.tensor(t))  # a wrong reference predicts it instead
        assert not torch.allclose((z_t - (1 - a) ** 0.5 * other) / a**0.5, z_ref, atol=1e-3)


def test_reference_weights_share_the_rest_as_combined_denoising():
    timesteps = torch.tensor([991, 801, 501, 201, 1])
    w = reference_weights(timesteps, t_image=0.9, t_audio=1.0, audio_weight=0.5, reference_weight=0.3, t_reference=0.6)
    expected = torch.tensor(
        [[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.35, 0.35, 0.3], [0.35, 0.35, 0.3], [0.35, 0.35, 0.3]], dtype=torch.float64
    )  # 991: audio only (t_image 0.9); 801: both; from 600 down the reference takes 0.3
    torch.testing.assert_close(w, expected)


def test_with_weight_one_the_sampler_returns_z_ref():
    z_ref = torch.randn(1, 4, 4, 8)
    z_T = torch.randn(1, 4, 4, 8)
    exact = DDIMScheduler.from_config({**SD15_SCHEDULER_CONFIG, "set_alpha_to_one": True})
    exact.set_timesteps(5)
    z_0 = combined_denoise([ReferenceDenoiser(z_ref, exact.alphas_cumprod)], exact, z_T, torch.ones(5, 1))
    torch.testing.assert_close(z_0, z_ref, atol=1e-5, rtol=0)
    # SD 1.5's own schedule ends at abar_0 < 1: z_0 = sqrt(abar_0) z_ref + sqrt(1 - abar_0) eps_first
    sd = DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    sd.set_timesteps(5)
    abar = sd_alphas_cumprod()
    first = float(abar[801])
    eps = (z_T.double() - first**0.5 * z_ref.double()) / (1 - first) ** 0.5
    expected = abar[0] ** 0.5 * z_ref.double() + (1 - abar[0]) ** 0.5 * eps
    z_0 = combined_denoise([ReferenceDenoiser(z_ref, sd.alphas_cumprod)], sd, z_T, torch.ones(5, 1))
    torch.testing.assert_close(z_0.double(), expected, atol=1e-5, rtol=0)


def test_the_reference_method_with_weight_one_and_an_sdedit_start(tiny_pipeline):
    """Through the pipeline: the image and audio models get weight 0 (never run); the result is the closed form."""
    z_ref = torch.randn(1, 4, 32, 128, generator=torch.Generator().manual_seed(5))
    abar = sd_alphas_cumprod()
    settings = SamplerSettings(method="reference", steps=2, reference_weight=1.0, t_image=1.0)

    def run(**changes):
        s = SamplerSettings(**{**vars(settings), **changes})
        generator = torch.Generator().manual_seed(0)
        out = sample_reference(tiny_pipeline, "a", "b", s, generator=generator, output_type="latent", reference=z_ref)
        return out.latents.double()

    z_T = torch.randn(1, 4, 32, 128, generator=torch.Generator().manual_seed(0)).double()
    eps = (z_T - abar[501] ** 0.5 * z_ref) / (1 - abar[501]) ** 0.5  # steps 2: t = 501, 1
    torch.testing.assert_close(run(), abar[0] ** 0.5 * z_ref + (1 - abar[0]) ** 0.5 * eps, atol=1e-4, rtol=0)
    # reference_start 0.4: starts at t = 1 from z_ref noised with the sample's own noise
    z_1 = abar[1] ** 0.5 * z_ref + (1 - abar[1]) ** 0.5 * z_T
    eps = (z_1 - abar[1] ** 0.5 * z_ref) / (1 - abar[1]) ** 0.5
    torch.testing.assert_close(
        run(reference_start=0.4), abar[0] ** 0.5 * z_ref + (1 - abar[0]) ** 0.5 * eps, atol=1e-4, rtol=0
    )
    with pytest.raises(ConfigError, match="reference_weight"):
        SamplerSettings(method="reference", reference_weight=1.5).validate()
    with pytest.raises(ConfigError, match="reference_start"):
        SamplerSettings(method="reference", reference_start=0.0).validate()


# ------------------------------------------------------------------------------------ controlnet
def test_canny_marks_the_edges_of_a_step_and_follows_its_thresholds():
    from speakimg.pipeline.controlnet import canny_edges

    image = torch.zeros(1, 32, 64)
    image[:, :, 32:] = 0.5  # a vertical step of 128 grey levels between columns 31 and 32
    edges = canny_edges(image, 100, 200)
    assert edges.shape == (1, 3, 32, 64) and set(edges.unique().tolist()) <= {0.0, 1.0}
    columns = edges[0, 0].sum(dim=0).nonzero().flatten().tolist()
    assert columns and all(c in (31, 32) for c in columns)  # only at the step
    faint = image * (10 / 127.5)  # a step of 10 grey levels: Sobel gradient 4 * 10 = 40
    assert canny_edges(faint, 100, 200).sum() == 0 and canny_edges(faint, 20, 30).sum() > 0
    assert canny_edges(torch.zeros(1, 32, 64), 0, 0).sum() == 0  # nothing to find in a flat image
    with pytest.raises(ConfigError, match="canny_low"):
        SamplerSettings(canny_low=200, canny_high=100).validate()


def test_controlnet_residuals_at_scale_zero_leave_the_unet_alone(tiny_pipeline):
    from speakimg.pipeline.controlnet import ControlNetDenoiser, load_controlnet

    controlnet = load_controlnet("tiny:controlnet")
    unet = tiny_pipeline.image_unet
    emb = tiny_pipeline.encode(tiny_pipeline.image_prompt_encoder, unet, ["a cat"], [""])
    z = torch.randn(1, 4, 8, 16, generator=torch.Generator().manual_seed(1))
    edges = torch.zeros(1, 3, 64, 128)
    edges[..., 20:40, :] = 1.0
    t = torch.tensor(501)
    with torch.no_grad():
        plain = GuidedDenoiser(unet, emb, 7.5)(z, t)
        zero = ControlNetDenoiser(unet, emb, 7.5, controlnet, edges, 0.0)(z, t)
        steered = ControlNetDenoiser(unet, emb, 7.5, controlnet, edges, 1.0)(z, t)
    torch.testing.assert_close(zero, plain)
    assert (steered - plain).abs().max() > 1e-4  # the residuals count at scale 1


# ------------------------------------------------------------------------------------ re-ranking
def test_rank_candidates_orders_as_a_hand_computation():
    scores = {"clip": [30.0, 10.0, 25.0, 20.0, 5.0], "wer": [50.0, 0.0, 20.0, 80.0, 10.0]}
    # ranks: clip 1,4,2,3,5; wer (lower is better) 4,1,3,5,2; sums 5,5,5,8,7
    # top 40% = 2 by each: clip {0, 2}, wer {1, 4}: nobody in both -> everyone by rank sum, ties by clip rank
    records = rank_candidates(scores, keep=2, rule="intersection", fraction=0.4)
    assert [r["rank"] for r in records] == [1, 3, 2, 5, 4]
    assert [r["kept"] for r in records] == [True, False, True, False, False]
    assert [r["rank_wer"] for r in records] == [4, 1, 3, 5, 2] and [r["rank_sum"] for r in records] == [5, 5, 5, 8, 7]
    # top 60% = 3: clip {0, 2, 3}, wer {1, 4, 2}: candidate 2 is in both and comes first
    records = rank_candidates(scores, keep=1, rule="intersection", fraction=0.6)
    assert [r["rank"] for r in records] == [2, 3, 1, 5, 4]  # then 0 and 1 (sum 5), 4 (7), 3 (8)
    assert [r["rank"] for r in rank_candidates(scores, keep=1, rule="rank_sum")] == [1, 3, 2, 5, 4]


def test_rank_sum_agrees_with_an_independent_numpy_ranking():
    rng = np.random.default_rng(0)
    clip, clap = rng.normal(size=12), rng.normal(size=12)
    records = rank_candidates({"clip": clip, "clap": clap}, keep=3, rule="rank_sum")
    rank_sum = np.argsort(np.argsort(-clip)) + np.argsort(np.argsort(-clap)) + 2
    expected = np.lexsort((np.arange(12), np.argsort(np.argsort(-clip)), rank_sum))  # last key first
    assert sorted(range(12), key=lambda i: records[i]["rank"]) == expected.tolist()
    with pytest.raises(ConfigError, match="rank metrics"):
        RerankSettings(keep=1, metrics=("clip", "mos")).validate()
    with pytest.raises(ConfigError, match="keep=3"):
        RerankSettings(keep=3).validate(n=2)


# ------------------------------------------------------------------------------------ imprint
def test_the_imprint_inverse_image_is_one_minus_the_grey_picture(tiny_pipeline):
    quick = SamplerSettings(method="imprint", steps=1, imprint_image_steps=1, crop_padding=False, width=64)

    def run(inverse: bool):
        generator = [torch.Generator().manual_seed(3)]
        s = SamplerSettings(**{**vars(quick), "imprint_inverse_image": inverse})
        return sample_batch(tiny_pipeline, s, ["a cat"], ["bells"], generator)

    plain, inverted = run(False), run(True)
    torch.testing.assert_close(inverted.images, 1.0 - plain.images)
    torch.testing.assert_close(inverted.spectrograms, plain.spectrograms)  # what is heard does not change


# ------------------------------------------------------------------------------------ end to end
@requires_espeak
def test_sample_controlnet_and_reference_from_the_command_line(tmp_path, tiny_sd, tiny_auffusion):
    from speakimg.sample import run

    common = ["--image-prompt", "a red cat", "--audio-prompt", "The sea was calm.", "--steps", "1", "--tts", "espeak",
              "--image-model", str(tiny_sd), "--audio-model", str(tiny_auffusion), "--vocoder", "griffin-lim",
              "--griffin-lim-iters", "2", "--no-video", "--device", "cpu", "--width", "256", "--no-crop"]  # fmt: skip
    (folder,) = run(
        [*common, "--method", "controlnet", "--controlnet-model", "tiny:controlnet", "--out", str(tmp_path)]
    )
    assert folder.name == "0-controlnet"
    record = json.loads((folder / "sample.json").read_text())
    assert record["settings"]["method"] == "controlnet" and record["models"]["controlnet"] == "tiny:controlnet"
    picture = np.asarray(Image.open(folder / "img.png").convert("RGB"), dtype=np.float64)
    heard = np.asarray(Image.open(folder / "spec.png"), dtype=np.float64)
    assert np.abs(picture.mean(axis=-1) - heard).max() <= 1.0  # the picture is read back as its grey level
    (folder,) = run([*common, "--method", "reference", "--reference-weight", "1.0", "--out", str(tmp_path)])
    assert folder.name == "0-reference" and (folder / "latents.npy").is_file()


def test_sample_keeps_the_best_candidates_and_records_every_rank(tmp_path, tiny_sd, tiny_auffusion, tiny_clip,
                                                                 tiny_clap):  # fmt: skip
    """CLIP and CLAP (the sound-caption pair; the random tiny Whisper takes ~10 s a clip on CPU)."""
    from speakimg.sample import run

    folders = run(["--image-prompt", "a red cat", "--audio-prompt", "The sea was calm.", "--steps", "1",
                   "--n", "2", "--keep", "1", "--rank", "clip,clap", "--rank-rule", "rank_sum",
                   "--clip", str(tiny_clip), "--clap", str(tiny_clap), "--image-model", str(tiny_sd),
                   "--audio-model", str(tiny_auffusion), "--vocoder", "griffin-lim", "--griffin-lim-iters", "2",
                   "--no-video", "--device", "cpu", "--width", "256", "--no-crop", "--out", str(tmp_path)])  # fmt: skip
    (folder,) = folders
    ranking = json.loads((folder / "sample.json").read_text())["ranking"]
    table = ranking["candidates"]
    assert [c["seed"] for c in table] == [0, 1] and ranking["rank"] == 1 and ranking["seed"] == int(folder.name)
    # the recorded scores, ranked independently: both descending, rank sum, ties by the CLIP rank
    clip_rank = {c["seed"]: r for r, c in enumerate(sorted(table, key=lambda c: (-c["clip"], c["seed"])), 1)}
    clap_rank = {c["seed"]: r for r, c in enumerate(sorted(table, key=lambda c: (-c["clap"], c["seed"])), 1)}
    best = min(table, key=lambda c: (clip_rank[c["seed"]] + clap_rank[c["seed"]], clip_rank[c["seed"]], c["seed"]))
    assert best["seed"] == int(folder.name) and best["kept"]
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # the others are not written


@requires_espeak
def test_evaluate_reports_every_method_side_by_side(tmp_path, tiny_sd, tiny_auffusion, tiny_clip, tiny_clap,
                                                    monkeypatch):  # fmt: skip
    """The sound protocol (CLIP + CLAP) keeps it fast; the TTS of controlnet/reference speaks the captions."""
    from speakimg.evaluate import run

    monkeypatch.chdir(REPO)
    out = tmp_path / "methods"
    methods = ["imprint", "controlnet", "reference"]
    result = run(["--config", str(REPO / "configs/eval_its.yaml"), "--image_model", str(tiny_sd),
                  "--audio_model", str(tiny_auffusion), "--clip", str(tiny_clip), "--clap", str(tiny_clap),
                  "--limit_image_prompts", "2", "--limit_audio_prompts", "2", "--steps", "1",
                  "--imprint_image_steps", "1", "--methods", json.dumps(methods), "--tts", "espeak",
                  "--controlnet_model", "tiny:controlnet", "--references", "false", "--save_media", "0",
                  "--logger", "csv", "--vocoder", "griffin-lim", "--griffin_lim_iters", "2", "--batch_size", "4",
                  "--device", "cpu", "--width", "256", "--crop_padding", "false", "--out", str(out)])  # fmt: skip
    with open(out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    kinds = ["combined", *methods]
    assert sorted({r["kind"] for r in rows}) == sorted(kinds) and len(rows) == 4 * len(kinds)
    for kind in kinds:  # each method: the same 2x2 grid, its own summary line = the mean of its CSV rows
        group = [r for r in rows if r["kind"] == kind]
        assert sorted((r["image_prompt"], r["audio_prompt"]) for r in group) == sorted(
            {(r["image_prompt"], r["audio_prompt"]) for r in rows}
        )
        entry = result.summary["kinds"][kind]
        assert entry["n"] == 4
        assert entry["clip"]["mean"] == pytest.approx(np.mean([float(r["clip"]) for r in group]))
        assert entry["clap"]["mean"] == pytest.approx(np.mean([float(r["clap"]) for r in group]))
    assert all(k in (out / "summary.md").read_text() for k in methods)
    with pytest.raises(ConfigError, match="methods"):
        run(["--config", str(REPO / "configs/eval.yaml"), "--methods", '["denoise"]', "--out", str(out)])


def test_the_wer_score_of_a_candidate_is_its_word_error_rate(monkeypatch):
    """The Scorer's WER column, against a hand count (Whisper's transcripts stubbed: the random tiny one says nothing)."""
    from speakimg.metrics import WhisperWER
    from speakimg.sampling.rerank import Scorer

    heard = ["the sea is calm", "The sea was calm.", "sea"]
    monkeypatch.setattr(WhisperWER, "transcribe", lambda self, audios: heard[: len(audios)])
    scorer = Scorer(RerankSettings(keep=1, metrics=("wer",), whisper="base.en"))
    scores = scorer(torch.zeros(3, 3, 256, 256), [torch.zeros(16000)] * 3, "a picture", "The sea was calm.")
    assert scores == {"wer": [25.0, 0.0, 75.0]}  # 1 substitution, none, 3 deletions of 4 words
    records = rank_candidates(scores, keep=1)
    assert [r["rank"] for r in records] == [2, 1, 3]


def test_a_controlnet_missing_offline_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from speakimg.errors import ModelNotFoundError
    from speakimg.sampling import PipelineModels, SampleSettings, generate

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr("speakimg.sampling.generation.load_pipeline", lambda *a, **k: pytest.fail("a model loaded"))
    models = PipelineModels("tiny:stable-diffusion", "tiny:auffusion", "griffin-lim")
    sampler = SamplerSettings(method="controlnet", controlnet_model="nobody/no-such-controlnet")
    with pytest.raises(ModelNotFoundError, match="controlnet_model"):
        generate([SampleSettings("a", "b", sampler=sampler, models=models)], tmp_path / "out", video=False)
    assert not (tmp_path / "out").exists()
