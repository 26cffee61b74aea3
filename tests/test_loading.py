"""The model-loading layer: which weights file is read, which files are downloaded, and loading .bin safely.

The hub is faked (no network): ``HfApi.list_repo_files`` returns a repository listing and
``snapshot_download`` copies from a local mirror only the files it is asked for, recording the request.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from speakimg import loading
from speakimg.errors import CheckpointError, ModelNotFoundError
from speakimg.testing import VARIANT_MARKS, tiny_weights_variant

# The file list of stable-diffusion-v1-5/stable-diffusion-v1-5 as the hub shows it (every variant).
SD15_LISTING = [
    ".gitattributes",
    "README.md",
    "feature_extractor/preprocessor_config.json",
    "model_index.json",
    "safety_checker/config.json",
    "safety_checker/model.fp16.safetensors",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "safety_checker/pytorch_model.fp16.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/pytorch_model.fp16.bin",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "v1-5-pruned-emaonly.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned.ckpt",
    "v1-5-pruned.safetensors",
    "v1-inference.yaml",
    "vae/config.json",
    "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.fp16.bin",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
]
# auffusion/auffusion-full-no-adapter: .bin weights only, plus the vocoder.
AUFFUSION_LISTING = [
    ".gitattributes",
    "README.md",
    "feature_extractor/preprocessor_config.json",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/pytorch_model.bin",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.bin",
    "vocoder/config.json",
    "vocoder/vocoder.pt",
]
TOKENIZER = {f for f in SD15_LISTING if f.startswith("tokenizer/")}
IMAGE_MODEL_FILES = {  # what the image model reads, besides the tokenizer: one weights file per component
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
}
ALL_KINDS = ["safetensors", "bin", "fp16.safetensors", "fp16.bin", "non_ema.safetensors", "non_ema.bin"]


# ------------------------------------------------------------------------------------ the policy
def test_every_component_of_the_sd15_listing_selects_one_weights_file():
    image = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
    plan = loading.plan_download(SD15_LISTING, image, source="sd15")
    assert set(plan) == IMAGE_MODEL_FILES | TOKENIZER
    fp16 = loading.plan_download(SD15_LISTING, image, {"unet": "fp16", "text_encoder": "fp16"}, "sd15")
    assert {f for f in fp16 if f.rsplit(".", 1)[-1] in ("safetensors", "bin")} == {
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",  # the VAE stays float32
    }
    # the speech model's base needs neither CLIP nor the vocoder
    assert set(loading.plan_download(AUFFUSION_LISTING, ["unet", "vae", "scheduler"], source="auffusion")) == {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
    }
    # a pipeline with its vocoder; a VAE repository (weights at the root)
    audio = loading.plan_download(AUFFUSION_LISTING, [*image, "vocoder"], source="auffusion")
    assert {"text_encoder/pytorch_model.bin", "vocoder/config.json", "vocoder/vocoder.pt"} <= set(audio)
    vae_repo = ["README.md", "config.json", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors"]
    assert loading.plan_download(vae_repo, [""]) == ["README.md", "config.json", "diffusion_pytorch_model.safetensors"]


def test_weights_selection_order_variants_and_shards():
    select = loading.select_weights
    both = ["config.json", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors"]
    assert select(both).files == ("diffusion_pytorch_model.safetensors",) and select(both).safetensors
    assert select(["diffusion_pytorch_model.bin"]).files == ("diffusion_pytorch_model.bin",)
    assert not select(["diffusion_pytorch_model.bin"]).safetensors
    fp16_bin = ["diffusion_pytorch_model.fp16.bin", "diffusion_pytorch_model.safetensors"]
    assert select(fp16_bin, "fp16") == loading.WeightsChoice(("diffusion_pytorch_model.fp16.bin",), "fp16", False)
    no_fp16 = select(["model.safetensors", "pytorch_model.bin"], "fp16")
    assert no_fp16 == loading.WeightsChoice(("model.safetensors",), None, True)  # falls back to full precision
    assert select(["diffusion_pytorch_model.non_ema.safetensors", "diffusion_pytorch_model.fp16.bin"]) is None
    shards = [
        "diffusion_pytorch_model.safetensors.index.json",
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
        "diffusion_pytorch_model.bin",
    ]
    assert select(shards).files == tuple(shards[:3]) and select(shards).safetensors


def test_a_repository_lacking_a_component_or_its_weights_is_named(tmp_path):
    from speakimg.pipeline.loading import load_image_model

    no_weights = [f for f in SD15_LISTING if not f.startswith("unet/diffusion_pytorch_model")]
    with pytest.raises(ModelNotFoundError, match=r"'org/sd' lacks weights \(diffusion_pytorch_model.* in unet/"):
        loading.plan_download(no_weights, ["unet"], source="org/sd")
    with pytest.raises(ModelNotFoundError, match="'org/sd' has no vocoder/ folder"):
        loading.plan_download(SD15_LISTING, ["vocoder"], source="org/sd")
    assert "vocoder/vocoder.pt" not in loading.plan_download(SD15_LISTING, ["vocoder"], optional=["vocoder"])
    with pytest.raises(ModelNotFoundError, match="speech model"):
        loading.plan_download(["speakimg_speech.json", "phoneme_adapter.safetensors"], ["unet"], source="me/speech")
    # a local folder whose unet/ lacks weights
    folder = tmp_path / "sd"
    shutil.copytree(tiny_weights_variant("stable-diffusion", ["safetensors"]), folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"unet lacks weights.*it has: config\.json"):
        load_image_model(folder)


# ------------------------------------------------------------------------------------ a fake hub
@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """``repos[repo_id] = (mirror folder, listing)``; every snapshot request is recorded in ``requests``."""
    import huggingface_hub

    repos: dict[str, tuple[Path, list[str]]] = {}
    requests: list[tuple[str, list[str] | None]] = []

    def list_repo_files(self, repo_id, **kwargs):
        return list(repos[repo_id][1])

    def snapshot_download(repo_id, *, allow_patterns=None, local_files_only=False, **kwargs):
        mirror, _ = repos[repo_id]
        requests.append((repo_id, None if allow_patterns is None else sorted(allow_patterns)))
        out = tmp_path / "hub-cache" / repo_id.replace("/", "--")
        for path in mirror.rglob("*"):
            rel = str(path.relative_to(mirror))
            if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(rel, p) for p in allow_patterns)):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, out / rel)
        out.mkdir(parents=True, exist_ok=True)
        return str(out)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)

    def add(repo_id: str, mirror: Path, extra: list[str] = ()) -> list[str]:
        listing = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file()) + list(extra)
        repos[repo_id] = (mirror, listing)
        return listing

    return add, requests


def _mark(loaded: torch.Tensor, original: torch.Tensor) -> float:
    """Which kind of file a weight came from: the constant the variant writer added to it."""
    return round(float((loaded.detach().float() - original.float()).mean()))


def test_a_hub_repository_with_every_variant_fetches_and_reads_one_file_per_component(
    tiny_sd, fake_hub, caplog, tmp_path
):
    from speakimg.pipeline.loading import load_image_model

    add, requests = fake_hub
    mirror = tiny_weights_variant("stable-diffusion", ALL_KINDS, marked=True)
    add("org/sd15", mirror, extra=["v1-5-pruned.ckpt", "safety_checker/model.safetensors"])
    original_unet = load_file(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors")["conv_in.weight"]
    original_te = load_file(tiny_sd / "text_encoder" / "model.safetensors")
    te_key = next(k for k in original_te if k.endswith("token_embedding.weight"))

    with caplog.at_level(logging.INFO, logger="speakimg.loading"):
        parts = load_image_model("org/sd15")
    tokenizer = {f"tokenizer/{p.name}" for p in (mirror / "tokenizer").iterdir()}
    expected = IMAGE_MODEL_FILES | tokenizer
    assert [set(r[1]) for r in requests] == [expected]  # exactly these files, in one request
    assert _mark(parts.unet.conv_in.weight, original_unet) == VARIANT_MARKS["safetensors"]
    assert _mark(parts.prompt_encoder.text_encoder.get_input_embeddings().weight, original_te[te_key]) == 0
    assert "unet <- " in caplog.text and "diffusion_pytorch_model.safetensors" in caplog.text

    requests.clear()
    half = load_image_model("org/sd15", torch_dtype=torch.float16)  # the fp16 variant: half the download
    assert {f for f in requests[0][1] if f.startswith(("unet/diffusion", "text_encoder/", "vae/diffusion"))} == {
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    }
    assert half.unet.dtype == torch.float16
    assert _mark(half.unet.conv_in.weight, original_unet) == VARIANT_MARKS["fp16.safetensors"]

    requests.clear()
    vae = loading.load_vae("org/sd15", frozen=True)
    assert requests == [
        ("org/sd15", ["model_index.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"])
    ]
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    trainable = loading.load_vae("org/sd15", frozen=False)
    assert all(p.requires_grad for p in trainable.parameters())


def test_the_speech_models_base_fetches_only_the_unet_vae_and_scheduler(fake_hub, tiny_plbert):
    from speakimg.speech import SpeechConfig, SpeechModel

    add, requests = fake_hub
    mirror = tiny_weights_variant("auffusion", ["bin"])
    listing = add("someone/auffusion", mirror)
    assert "vocoder/vocoder.pt" in listing and "text_encoder/pytorch_model.bin" in listing
    model = SpeechModel.from_base(SpeechConfig(base_model="someone/auffusion", plbert=str(tiny_plbert)))
    assert requests == [
        (
            "someone/auffusion",
            [
                "model_index.json",
                "scheduler/scheduler_config.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.bin",
                "vae/config.json",
                "vae/diffusion_pytorch_model.bin",
            ],
        )
    ]
    assert model.vae_scale == pytest.approx(0.18215)
    # its default vocoder (the sampling callback's): only the base model's vocoder/ is fetched
    from speakimg.pipeline.loading import default_vocoder
    from speakimg.vocoder import Generator

    requests.clear()
    vocoder, where = default_vocoder(["someone/auffusion"])
    assert requests == [("someone/auffusion", ["vocoder/*"])]
    assert isinstance(vocoder, Generator) and where.endswith("vocoder")


def test_offline_the_listing_comes_from_the_local_cache(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = tmp_path / "snapshot"
    (snapshot / "unet").mkdir(parents=True)
    for name in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "model_index.json"):
        (snapshot / name).write_text("{}")

    def offline(self, repo_id, **kwargs):
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline")

    def cached(repo_id, *, local_files_only=False, **kwargs):
        if repo_id != "org/cached" or not local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    assert loading.list_model_files("org/cached") == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    ]
    with pytest.raises(ModelNotFoundError, match="'org/missing'.*not in the local hub cache"):
        loading.list_model_files("org/missing")


# ------------------------------------------------------------------------------- local variants
def test_every_variant_in_one_folder_reads_only_the_chosen_file(tiny_sd, caplog):
    from diffusers import UNet2DConditionModel

    folder = tiny_weights_variant("stable-diffusion", ALL_KINDS, marked=True)
    original = load_file(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors")["conv_in.weight"]
    for variant, kind in ((None, "safetensors"), ("fp16", "fp16.safetensors"), ("non_ema", "non_ema.safetensors")):
        with caplog.at_level(logging.INFO, logger="speakimg.loading"):
            unet = loading.load_component(folder, "unet", UNet2DConditionModel, variant=variant)
        assert _mark(unet.conv_in.weight, original) == VARIANT_MARKS[kind], variant
        assert caplog.records[-1].getMessage().endswith(f"diffusion_pytorch_model.{kind}")


@pytest.fixture(scope="module")
def bin_models(tiny_root):
    """Tiny SD and Auffusion whose unet/, vae/ and text_encoder/ hold .bin weights only (as Auffusion's repo)."""
    sd = tiny_weights_variant("stable-diffusion", ["bin"])
    auffusion = tiny_weights_variant("auffusion", ["bin"])
    assert not list(sd.rglob("*.safetensors")) and not list(auffusion.rglob("*.safetensors"))
    return sd, auffusion


def test_bin_only_models_load_through_the_pipeline(bin_models, tiny_pipeline):
    from speakimg.pipeline import ImagesThatSpeakPipeline
    from speakimg.vocoder import GriffinLimVocoder

    sd, auffusion = bin_models
    pipe = ImagesThatSpeakPipeline.from_pretrained(sd, auffusion, GriffinLimVocoder(n_iter=2))
    pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 4, 32, 128, generator=torch.Generator().manual_seed(0))
    args = dict(num_inference_steps=2, latents=latents, output_type="latent")
    out = pipe("a lighthouse", "a dog barking", **args)
    reference = tiny_pipeline("a lighthouse", "a dog barking", **args)  # the same models from safetensors
    assert torch.allclose(out.latents, reference.latents, atol=1e-5)


def test_bin_only_base_loads_through_the_speech_model(bin_models, tiny_auffusion, tiny_plbert):
    from speakimg.speech import SpeechConfig, SpeechModel

    _, auffusion = bin_models
    from_bin = SpeechModel.from_base(SpeechConfig(base_model=str(auffusion), plbert=str(tiny_plbert)))
    reference = load_file(tiny_auffusion / "unet" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(from_bin.unet.conv_in.weight.detach(), reference["conv_in.weight"])
    vae = load_file(tiny_auffusion / "vae" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(from_bin.vae.encoder.conv_in.weight, vae["encoder.conv_in.weight"])


def test_bin_only_vae_fills_the_latent_cache(bin_models, tiny_auffusion, tmp_path):
    from speakimg.data.latents import cache_latents
    from speakimg.data.manifest import ManifestRecord, write_records

    data = tmp_path / "data"
    (data / "mels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(2):
        np.save(data / "mels" / f"u{i}.npy", (rng.standard_normal((256, 1000)) - 4).astype(np.float16))
        records.append(ManifestRecord(id=f"u{i}", text="hello", mel=f"mels/u{i}.npy", index=i))
    write_records(data, records)
    _, auffusion = bin_models
    from_bin = cache_latents(data, auffusion, device="cpu", progress=False)
    reference = cache_latents(data, tiny_auffusion, device="cpu", progress=False)
    for i in range(2):
        assert np.array_equal(np.load(from_bin / f"u{i}.npy"), np.load(reference / f"u{i}.npy"))


# ---------------------------------------------------------------------------- unreadable weights
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling this would create the marker file


def test_a_hostile_or_truncated_weights_file_is_one_error_naming_it(bin_models, tmp_path):
    from speakimg.pipeline.loading import load_image_model

    sd, _ = bin_models
    hostile = tmp_path / "hostile"
    shutil.copytree(sd, hostile)
    marker = tmp_path / "pwned"
    weights = hostile / "unet" / "diffusion_pytorch_model.bin"
    torch.save({"conv_in.weight": _Payload(marker)}, weights)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(weights))}: refused to load this UNet weights file"):
        load_image_model(hostile)
    assert not marker.exists()

    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_weights_variant("stable-diffusion", ["safetensors"]), truncated)
    vae = truncated / "vae" / "diffusion_pytorch_model.safetensors"
    vae.write_bytes(vae.read_bytes()[: vae.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(vae))}: cannot read this VAE weights file.*truncated"):
        loading.load_vae(truncated, frozen=True)
