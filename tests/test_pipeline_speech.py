"""Dispatch of an exported speech model as the audio model, through a stand-in for SpeechModel.

The stand-in satisfies the SpeechModel contract (``.unet``, ``.prompt_encoder``, ``.vae``,
``.base_model``) with a real tiny UNet and a tiny PromptEncoder; the end-to-end test with the real
SpeechModel lives with it.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from speakimg.conditioning import PromptEncoder
from speakimg.pipeline import SPEECH_MARKER, ImagesThatSpeakPipeline


class CharPromptEncoder(PromptEncoder):
    """Sentences -> [B, 16, 32] character embeddings; "" -> a learned unconditional embedding."""

    length = 16

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.chars = nn.Embedding(128, 32)
        self.uncond = nn.Parameter(torch.randn(self.length, 32))
        self.calls: list[list[str]] = []

    def forward(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append(list(prompts))
        rows = []
        for text in prompts:
            if text == "":
                rows.append(self.uncond)
                continue
            ids = torch.tensor([min(ord(c), 127) for c in text[: self.length].ljust(self.length)])
            rows.append(self.chars(ids))
        return torch.stack(rows)


@dataclass
class StandInSpeechModel:
    unet: nn.Module
    prompt_encoder: PromptEncoder
    vae: nn.Module
    base_model: str


@pytest.fixture()
def speech_folder(tmp_path, tiny_auffusion, monkeypatch):
    """A folder with the speech marker, and a fake ``speakimg.speech`` whose SpeechModel loads the stand-in."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = tmp_path / "speech-model"
    folder.mkdir()
    (folder / SPEECH_MARKER).write_text(json.dumps({"base_model": str(tiny_auffusion)}))
    stand_in = StandInSpeechModel(
        unet=UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet"),
        prompt_encoder=CharPromptEncoder(),
        vae=AutoencoderKL.from_pretrained(tiny_auffusion, subfolder="vae"),
        base_model=str(tiny_auffusion),
    )
    loaded = []

    class SpeechModel:
        @staticmethod
        def from_pretrained(path):
            loaded.append(path)
            return stand_in

    module = types.ModuleType("speakimg.speech")
    module.SpeechModel = SpeechModel
    monkeypatch.setitem(sys.modules, "speakimg.speech", module)
    return folder, stand_in, loaded


def test_a_speech_model_folder_is_dispatched_to_speech_model(tiny_sd, speech_folder):
    folder, stand_in, loaded = speech_folder
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, folder, "griffin-lim")
    pipe.set_progress_bar_config(disable=True)
    assert loaded == [folder]
    assert pipe.audio_unet is stand_in.unet and pipe.audio_prompt_encoder is stand_in.prompt_encoder
    assert pipe.audio_vae is stand_in.vae
    assert pipe.sources["audio_model_kind"] == "speech" and pipe.sources["audio_model"] == str(folder)

    sentence = "The sea was calm."
    z_T = torch.randn(1, 4, 32, 128, generator=torch.Generator().manual_seed(0))
    out = pipe("a lighthouse", sentence, num_inference_steps=2, latents=z_T, output_type="latent")
    # the sentence and the unconditional "" went through the speech model's own encoder, in one call
    assert stand_in.prompt_encoder.calls == [["", sentence]]

    direct = ImagesThatSpeakPipeline(**pipe.components)
    direct.set_progress_bar_config(disable=True)
    again = direct("a lighthouse", sentence, num_inference_steps=2, latents=z_T, output_type="latent")
    assert torch.equal(out.latents, again.latents)
    other = pipe("a lighthouse", "Another sentence entirely.", num_inference_steps=2, latents=z_T, output_type="latent")
    assert not torch.allclose(out.latents, other.latents, atol=1e-4)  # the sentence conditions the sample


def test_speech_model_embeddings_reach_the_audio_unet(tiny_sd, speech_folder):
    folder, stand_in, _ = speech_folder
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, folder, "griffin-lim")
    emb = pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, ["Hello there.", "Hello there."], ["", ""])
    assert emb.shape == (4, 16, 32)
    assert torch.equal(emb[0], stand_in.prompt_encoder.uncond) and torch.equal(emb[1], emb[0])
    assert stand_in.prompt_encoder.calls[-1] == ["", "Hello there."]  # each distinct prompt encoded once


def test_the_default_vocoder_of_a_speech_model_is_looked_for_in_its_base_model(tiny_sd, speech_folder):
    from speakimg.vocoder import Generator

    folder, _, _ = speech_folder
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, folder)
    # the speech folder has no vocoder/: the one of its base model (the tiny Auffusion) is used
    assert not (folder / "vocoder").exists()
    assert isinstance(pipe.vocoder, Generator)
    assert pipe.sources["vocoder"].endswith("auffusion/vocoder")


def test_a_speech_model_hub_id_is_handed_to_speech_model_by_id(tiny_sd, speech_folder, monkeypatch):
    import speakimg.pipeline.loading as loading

    folder, stand_in, loaded = speech_folder
    asked = []

    def fake_hub(name, subfolder=None, allow_patterns=None):  # the hub snapshot of a speech model repo
        asked.append((name, subfolder, allow_patterns))
        if name == "someone/speech-model":
            return folder
        return loading.Path(name) / subfolder if subfolder else loading.Path(name)

    monkeypatch.setattr(loading, "resolve_dir", fake_hub)
    parts = loading.load_audio_model("someone/speech-model")
    assert loaded == ["someone/speech-model"]  # SpeechModel fetches its own files
    assert asked[0][0] == "someone/speech-model" and loading.SPEECH_MARKER in asked[0][2]
    assert parts.kind == "speech" and parts.unet is stand_in.unet
    assert parts.scheduler_config["beta_schedule"] == "scaled_linear"  # the base model's schedule


def test_the_package_exports_the_pipeline_lazily():
    import speakimg

    assert speakimg.ImagesThatSpeakPipeline is ImagesThatSpeakPipeline
