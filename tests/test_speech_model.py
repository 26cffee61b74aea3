"""The speech model's parts: phoneme encoder and adapter, LoRA + unfrozen blocks, save/load of the folder."""

from __future__ import annotations

import json

import pytest
import torch

from speakimg.errors import CheckpointError, ConfigError, DataError, ModelNotFoundError, TextError
from speakimg.speech import LoRASpec, PhonemePromptEncoder, SpeechConfig, SpeechModel, is_speech_model
from speakimg.speech.lora import add_lora, load_unfrozen, unfreeze, unfrozen_state_dict
from speakimg.text import prepare_text

SENTENCE = "A small red fox jumped over the quiet garden wall."
UNFREEZE = (r"attn2\.to_k", r"attn2\.to_v", r"conv_out")


def _config(tiny_auffusion, tiny_plbert, **kw) -> SpeechConfig:
    base = dict(
        base_model=str(tiny_auffusion),
        plbert=str(tiny_plbert),
        max_phonemes=64,
        lora=LoRASpec(rank=4, alpha=8),
        unfreeze=list(UNFREEZE),
    )
    return SpeechConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model(tiny_auffusion, tiny_plbert) -> SpeechModel:
    return SpeechModel.from_base(_config(tiny_auffusion, tiny_plbert))


def _perturb(model: SpeechModel, seed: int = 0) -> None:
    """Give every trainable weight a non-trivial value (as after training)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for params in model.parameter_groups().values():
            for _, p in params:
                p.add_(0.05 * torch.randn(p.shape, generator=generator))


def _fixed_inputs(model: SpeechModel, batch: int = 2):
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(batch, 4, 32, 128, generator=generator)
    t = torch.tensor([999, 17][:batch])
    return z, t


# ------------------------------------------------------------------------------------ encoder
def test_encoder_matches_an_independent_computation(model):
    encoder = model.prompt_encoder
    emb = encoder(["", SENTENCE])
    assert emb.shape == (2, 64, model.unet.config.cross_attention_dim) == (2, encoder.num_tokens, 32)
    # "" is the learned unconditional embedding (zeros at initialisation: cross-attention reads nothing)
    torch.testing.assert_close(emb[0], encoder.adapter.null_embedding, rtol=0, atol=0)
    ids = list(prepare_text(SENTENCE).ids)
    padded = torch.tensor([ids + [0] * (64 - len(ids))])
    mask = torch.tensor([[1] * len(ids) + [0] * (64 - len(ids))])
    with torch.no_grad():
        hidden = encoder.plbert.albert(input_ids=padded, attention_mask=mask).last_hidden_state
        proj = hidden @ encoder.adapter.proj.weight.T + encoder.adapter.proj.bias
        expected = torch.nn.functional.layer_norm(
            proj, (32,), encoder.adapter.norm.weight, encoder.adapter.norm.bias, eps=encoder.adapter.norm.eps
        )
    torch.testing.assert_close(emb[1:], expected, rtol=1e-5, atol=1e-5)
    assert float(emb[1].detach().std()) > 0.5  # layer-normed tokens, not a constant


def test_batch_ids_take_the_same_path_as_sentences(model):
    encoder = model.prompt_encoder
    sentences = [SENTENCE, "The old clock struck nine."]
    ids = [prepare_text(s).ids for s in sentences]
    length = max(map(len, ids))  # a data batch pads to its own maximum, not to max_phonemes
    batch_ids = torch.tensor([list(i) + [0] * (length - len(i)) for i in ids])
    batch_mask = (batch_ids != 0).long()
    batch_mask[:, 0] = 1  # the leading 0 is a real token
    with torch.no_grad():
        from_batch = encoder.encode_ids(batch_ids, batch_mask, sentences)
        from_text = encoder(sentences)
        # ids longer than max_phonemes that are only padding are trimmed, not an error
        wide = torch.nn.functional.pad(batch_ids, (0, 100)), torch.nn.functional.pad(batch_mask, (0, 100))
        torch.testing.assert_close(encoder.encode_ids(*wide, sentences), from_text, rtol=0, atol=0)
    torch.testing.assert_close(from_batch, from_text, rtol=0, atol=0)


def test_too_long_is_one_clear_error(model):
    encoder = model.prompt_encoder
    long_sentence = " ".join(["wonderful"] * 12)
    with pytest.raises(TextError, match="wonderful wonderful.*at most 64"):
        encoder([long_sentence])
    ids = torch.ones(1, 70, dtype=torch.long)
    with pytest.raises(DataError, match="'some text' has 70 phoneme ids"):
        encoder.encode_ids(ids, torch.ones_like(ids), ["some text"])


def test_frozen_parts_stay_frozen_and_in_eval(model):
    encoder = model.prompt_encoder
    encoder.train()
    assert not encoder.plbert.training and encoder.adapter.training
    assert not any(p.requires_grad for p in encoder.plbert.parameters())
    assert not any(p.requires_grad for p in model.vae.parameters())
    groups = model.parameter_groups()
    assert groups["plbert"] == [] and {n.split(".")[-1] for n, _ in groups["adapter"]} >= {"null_embedding"}
    encoder.eval()


def test_augment_mode_prepends_clip(tiny_auffusion, tiny_plbert):
    from speakimg.conditioning import CLIPPromptEncoder

    model = SpeechModel.from_base(_config(tiny_auffusion, tiny_plbert, mode="augment", plbert_unfreeze=[r"\.ffn\."]))
    encoder: PhonemePromptEncoder = model.prompt_encoder
    emb = encoder(["", SENTENCE])
    assert emb.shape == (2, 77 + 64, 32) and encoder.num_tokens == 141
    clip = CLIPPromptEncoder.from_pretrained(str(tiny_auffusion))
    with torch.no_grad():
        torch.testing.assert_close(emb[:, :77], clip(["", SENTENCE]), rtol=0, atol=0)
        torch.testing.assert_close(emb[0, 77:], encoder.adapter.null_embedding, rtol=0, atol=0)
        torch.testing.assert_close(emb[1:, 77:], encoder.encode_ids(*encoder.tokenize([SENTENCE]), [SENTENCE])[:, 77:])
    assert {n.rsplit(".", 1)[0].split(".")[-1] for n, _ in model.parameter_groups()["plbert"]} == {"ffn"}
    encoder.train()
    assert encoder.plbert.training and not encoder.text_encoder.training  # partly trained PL-BERT trains
    with pytest.raises(DataError, match="'text'"):
        encoder.encode_ids(*encoder.tokenize([SENTENCE]))


# --------------------------------------------------------------------------------------- LoRA
def test_lora_freezes_then_unfreeze_turns_blocks_back_on(tiny_auffusion):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
    lora = add_lora(unet, LoRASpec(rank=4))
    assert lora and all(".lora_" in n for n in lora)
    assert {n for n, p in unet.named_parameters() if p.requires_grad} == set(lora)
    names = unfreeze(unet, [r"attn2\.to_k", "conv_out"])
    # a LoRA-wrapped layer's own weight is renamed base_layer.weight by peft and is unfrozen too
    assert "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.base_layer.weight" in names
    assert {"conv_out.weight", "conv_out.bias"} <= set(names)
    assert {n for n, p in unet.named_parameters() if p.requires_grad} == set(lora) | set(names)
    with pytest.raises(ConfigError, match=r"'attn9' matches no parameter"):
        unfreeze(unet, ["attn9"])
    with pytest.raises(ConfigError, match="not a regular expression"):
        unfreeze(unet, ["(("])


def test_unfrozen_weights_use_plain_names_and_load_strictly(tiny_auffusion, model):
    from diffusers import UNet2DConditionModel

    _perturb(model, seed=1)
    state = unfrozen_state_dict(model.unet, model.unfrozen_names)
    assert state and not any("base_layer" in k for k in state)
    plain = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
    result = plain.load_state_dict(state, strict=False)  # the base model's own names: nothing unexpected
    assert result.unexpected_keys == []
    wrapped = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
    add_lora(wrapped, LoRASpec(rank=2))
    load_unfrozen(wrapped, state)
    key = "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    torch.testing.assert_close(
        dict(wrapped.named_parameters())[key.replace("to_k.", "to_k.base_layer.")], state[key], rtol=0, atol=0
    )
    with pytest.raises(CheckpointError, match="no place in the UNet"):
        load_unfrozen(wrapped, {"mid_block.nothing.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="has shape"):
        load_unfrozen(wrapped, {key: torch.zeros(3, 3)})


# ------------------------------------------------------------------------------ save / load
def test_save_and_load_round_trip(tmp_path, model, tiny_auffusion):
    from diffusers import UNet2DConditionModel
    from safetensors import safe_open

    _perturb(model, seed=2)
    out = model.save_pretrained(tmp_path / "speech")
    assert is_speech_model(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "phoneme_adapter.safetensors",
        "plbert",
        "pytorch_lora_weights.safetensors",
        "speakimg_speech.json",
        "unet_unfrozen.safetensors",
    ]
    meta = json.loads((out / "speakimg_speech.json").read_text())
    assert meta["base_model"] == str(tiny_auffusion.resolve()) and meta["conditioning"]["mode"] == "replace"
    assert meta["lora"]["spec"] == {
        "rank": 4,
        "alpha": 8,
        "targets": ["to_q", "to_k", "to_v", "to_out.0"],
        "dropout": 0.0,
    }
    with safe_open(out / "pytorch_lora_weights.safetensors", "pt") as handle:
        assert all(k.startswith("unet.") for k in handle.keys())  # noqa: SIM118 (safe_open is not a dict)

    loaded = SpeechModel.from_pretrained(out)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    z, t = _fixed_inputs(model)
    with torch.no_grad():
        emb, emb2 = model.prompt_encoder(["", SENTENCE]), loaded.prompt_encoder(["", SENTENCE])
        torch.testing.assert_close(emb2, emb, rtol=0, atol=0)
        expected = model.unet(z, t, encoder_hidden_states=emb).sample
        torch.testing.assert_close(loaded.unet(z, t, encoder_hidden_states=emb).sample, expected, rtol=1e-5, atol=1e-5)
        # diffusers alone (no speakimg loader) reproduces the UNet from the files: plain names + LoRA file
        from safetensors.torch import load_file

        unet = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
        assert unet.load_state_dict(load_file(out / "unet_unfrozen.safetensors"), strict=False).unexpected_keys == []
        unet.load_lora_adapter(str(out), prefix="unet", weight_name="pytorch_lora_weights.safetensors")
        torch.testing.assert_close(unet(z, t, encoder_hidden_states=emb).sample, expected, rtol=1e-5, atol=1e-5)
        base = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
        assert not torch.allclose(base(z, t, encoder_hidden_states=emb).sample, expected, atol=1e-3)


def test_fresh_lora_is_the_base_model(tiny_auffusion, tiny_plbert):
    from diffusers import UNet2DConditionModel

    fresh = SpeechModel.from_base(_config(tiny_auffusion, tiny_plbert, unfreeze=[]))
    base = UNet2DConditionModel.from_pretrained(tiny_auffusion, subfolder="unet")
    z, t = _fixed_inputs(fresh, 1)
    emb = torch.randn(1, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh.unet(z, t, emb).sample, base(z, t, emb).sample, rtol=1e-6, atol=1e-6)


def test_tiny_references_resolve_through_the_hub_helpers(tiny_auffusion, tiny_plbert):
    from speakimg.hub import resolve_dir, resolve_file

    assert resolve_dir("tiny:auffusion", "unet") == tiny_auffusion / "unet"
    assert resolve_file("tiny:plbert", "config.yml") == tiny_plbert / "config.yml"
    with pytest.raises(ModelNotFoundError, match="tiny-model kit has no 'nothing'"):
        resolve_dir("tiny:nothing")


def test_load_errors(tmp_path, tiny_auffusion, tiny_plbert):
    with pytest.raises(ModelNotFoundError, match="speakimg_speech.json"):
        SpeechModel.from_pretrained(tiny_auffusion)
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        SpeechModel.from_base(_config(tmp_path / "no-such-auffusion", tiny_plbert))
    with pytest.raises(ModelNotFoundError, match="no 'unet/' folder"):
        SpeechModel.from_base(_config(tiny_plbert, tiny_plbert))
    with pytest.raises(ConfigError, match="mode 'both'"):
        _config(tiny_auffusion, tiny_plbert, mode="both")
