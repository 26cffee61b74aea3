"""The tiny-model kit: each model loads through the public loaders users call, and runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import torch

from speakimg.testing import SD15_SCHEDULER_CONFIG, tiny_stable_diffusion


def _digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_stable_diffusion_folder_loads_with_diffusers(tiny_sd):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_sd / sub).is_dir()
    assert {p.name for p in (tiny_sd / "tokenizer").iterdir()} >= {"vocab.json", "merges.txt", "tokenizer_config.json"}
    scheduler_config = json.loads((tiny_sd / "scheduler" / "scheduler_config.json").read_text())
    assert {k: scheduler_config[k] for k in SD15_SCHEDULER_CONFIG if k != "_class_name"} == {
        k: v for k, v in SD15_SCHEDULER_CONFIG.items() if k != "_class_name"
    }
    assert pipe.vae.config.scaling_factor == 0.18215
    # the real method's shapes: 256 x 1024 image <-> 4 x 32 x 128 latent
    image = torch.rand(1, 3, 256, 1024) * 2 - 1
    with torch.no_grad():
        latent = pipe.vae.encode(image).latent_dist.mean
        assert latent.shape == (1, 4, 32, 128)
        ids = pipe.tokenizer(
            ["", "a photo of a cat"], padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids
        emb = pipe.text_encoder(ids)[0]
        assert emb.shape == (2, 77, pipe.unet.config.cross_attention_dim)
        eps = pipe.unet(latent.repeat(2, 1, 1, 1), 500, encoder_hidden_states=emb).sample
        assert eps.shape == (2, 4, 32, 128) and torch.isfinite(eps).all()
        assert not torch.allclose(eps[0], eps[1])  # the conditioning reaches the UNet
        decoded = pipe.vae.decode(latent / pipe.vae.config.scaling_factor).sample
        assert decoded.shape == (1, 3, 256, 1024)
    out = pipe("a cat", height=256, width=1024, num_inference_steps=2, output_type="np")
    assert out.images.shape == (1, 256, 1024, 3)


def test_auffusion_folder_has_the_pipeline_layout_and_other_weights(tiny_sd, tiny_auffusion):
    from diffusers import UNet2DConditionModel

    a = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
    b = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    assert a.config.cross_attention_dim == b.config.cross_attention_dim
    assert not torch.equal(a.conv_in.weight, b.conv_in.weight)


def test_builds_are_deterministic_and_cached(tmp_path):
    first = tiny_stable_diffusion(tmp_path / "a")
    second = tiny_stable_diffusion(tmp_path / "b")
    digest = _digest(first)
    assert digest == _digest(second)
    mtime = (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert tiny_stable_diffusion(tmp_path / "a") == first  # cached: not rebuilt
    assert (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == mtime
    (first / ".speakimg-tiny").write_text("stale\n")  # a stale stamp triggers a rebuild
    tiny_stable_diffusion(tmp_path / "a")
    assert _digest(first) == digest


def test_tiny_whisper_loads_and_transcribes(tiny_whisper):
    import whisper

    model = whisper.load_model(str(tiny_whisper), device="cpu")
    assert model.dims.n_mels == 80 and not model.is_multilingual
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    result = model.transcribe(audio, temperature=0.0, fp16=False, condition_on_previous_text=False)
    assert isinstance(result["text"], str)
    # deterministic: same weights and input -> same (garbage) transcript
    again = model.transcribe(audio, temperature=0.0, fp16=False, condition_on_previous_text=False)
    assert again["text"] == result["text"]


def test_tiny_clip_loads_and_scores(tiny_clip):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip)
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    images = [np.zeros((256, 256, 3), np.uint8), np.full((256, 256, 3), 255, np.uint8)]
    inputs = processor(text=["a cat", "a dog"], images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_cli_writes_every_model(tmp_path):
    from speakimg.testing import BUILDERS

    out = tmp_path / "kit"
    proc = subprocess.run(
        [sys.executable, "-m", "speakimg.testing", "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    for name in BUILDERS:
        assert (out / name / ".speakimg-tiny").is_file(), name
