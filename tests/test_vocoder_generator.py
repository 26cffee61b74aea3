"""The HiFi-GAN generator: Auffusion's architecture, key layout, files, and the load_vocoder contract."""

from __future__ import annotations

import json

import pytest
import torch
from vocoder_helpers import RefGenerator, one_thread  # noqa: F401  (one_thread: an autouse fixture)

from speakimg.errors import ConfigError, ModelNotFoundError
from speakimg.testing import TINY_VOCODER_CONFIG
from speakimg.vocoder import Generator, GeneratorConfig, GriffinLimVocoder, load_vocoder

TINY = dict(TINY_VOCODER_CONFIG, upsample_initial_channel=16)


def _mel(frames: int = 12, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 256, frames, generator=torch.Generator().manual_seed(seed)) - 4.0


def test_auffusion_configuration_has_the_original_parameter_count():
    generator = Generator()  # defaults = Auffusion's config.json
    assert generator.config.hop_length == 160
    with_weight_norm = sum(p.numel() for p in generator.parameters())
    reference = sum(p.numel() for p in RefGenerator(GeneratorConfig().to_dict()).parameters())
    assert with_weight_norm == reference == 13_682_178  # 13.68 M
    generator.remove_weight_norm()
    assert sum(p.numel() for p in generator.parameters()) == 13_672_065


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"upsample_kernel_sizes": [10, 8, 8, 4]},  # odd k - u: Auffusion's output_padding branch
        {"resblock": "2", "resblock_dilation_sizes": [[1, 3], [1, 3], [1, 3]]},
        {"upsample_rates": [8, 5, 4], "upsample_kernel_sizes": [16, 10, 8], "upsample_initial_channel": 24},
    ],
)
@pytest.mark.parametrize("frames", [1, 7, 33])
def test_output_is_exactly_hop_times_frames_in_range(overrides, frames):
    generator = Generator(TINY, **overrides)
    hop = generator.hop_length
    assert hop == 160
    with torch.no_grad():
        audio = generator(_mel(frames))
        single = generator(_mel(frames)[0])
    assert audio.shape == (2, 1, 160 * frames)
    assert single.shape == (1, 1, 160 * frames)
    assert torch.allclose(single[0], audio[0], atol=1e-6)
    assert audio.abs().max() <= 1.0 and audio.abs().max() > 0


def test_original_key_layout_round_trips_through_files_with_the_same_audio(tmp_path):
    torch.manual_seed(0)
    reference = RefGenerator(TINY).eval()  # legacy weight_norm: the originals' state-dict keys
    with torch.no_grad():  # make g differ from ||v|| as in a trained checkpoint
        for name, p in reference.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.rand_like(p) + 0.5)
    mel = _mel(20)
    with torch.no_grad():
        expected = reference(mel)

    ours = Generator(TINY).eval()
    assert list(ours.legacy_state_dict()) == list(reference.state_dict())  # same keys, same order
    ours.load_legacy_state_dict(reference.state_dict())
    with torch.no_grad():
        assert torch.allclose(ours(mel), expected, atol=1e-6)

    # save in the original layout; the reference loads it strictly and gives the same audio
    ours.save_pretrained(tmp_path / "voc")
    saved = torch.load(tmp_path / "voc" / "vocoder.pt", weights_only=True)
    assert set(saved) == {"generator"}
    fresh = RefGenerator(TINY).eval()
    fresh.load_state_dict(saved["generator"], strict=True)
    with torch.no_grad():
        assert torch.allclose(fresh(mel), expected, atol=1e-6)
    config = json.loads((tmp_path / "voc" / "config.json").read_text())
    assert config == TINY  # every field survives, the training ones included

    # and back through from_pretrained (inference: weight norm folded in)
    loaded = Generator.from_pretrained(tmp_path / "voc")
    assert not loaded.training and not loaded.has_weight_norm
    assert not any("weight_g" in k for k in loaded.state_dict())
    with torch.no_grad():
        assert torch.allclose(loaded(mel), expected, atol=1e-5)


def test_weight_norm_free_state_dicts_load_both_ways(tmp_path):
    torch.manual_seed(1)
    normed = Generator(TINY).eval()
    mel = _mel(9)
    with torch.no_grad():
        expected = normed(mel)
    plain = Generator(TINY).remove_weight_norm().eval()
    plain.load_legacy_state_dict(normed.legacy_state_dict())  # (g, v) folded into weight
    again = Generator(TINY).eval()
    again.load_legacy_state_dict(plain.state_dict())  # plain weights into a weight-normed generator
    plain.save_pretrained(tmp_path / "plain")
    back = Generator.from_pretrained(tmp_path / "plain", remove_weight_norm=False)
    assert back.has_weight_norm
    with torch.no_grad():
        assert torch.allclose(plain(mel), expected, atol=1e-5)
        assert torch.allclose(again(mel), expected, atol=1e-5)
        assert torch.allclose(back(mel), expected, atol=1e-5)


def test_a_weight_norm_free_generator_saves_files_the_original_loads_strictly(tmp_path):
    """Issue 12: folding weight norm away and saving used to write plain ``weight`` keys, which Auffusion's
    loader (weight-normed generator, strict load) refuses. The files always hold ``weight_g``/``weight_v``."""
    torch.manual_seed(2)
    plain = Generator(TINY).remove_weight_norm().eval()  # e.g. load_vocoder(...) then fine-tune or re-save
    mel = _mel(11)
    with torch.no_grad():
        expected = plain(mel)
    plain.save_pretrained(tmp_path / "voc")
    saved = torch.load(tmp_path / "voc" / "vocoder.pt", weights_only=True)["generator"]
    assert "conv_pre.weight" not in saved
    # the re-applied weight norm, computed independently: g = ||w|| over every dim but 0, v = w
    for name in ("conv_pre", "ups.1", "resblocks.4.convs1.2", "conv_post"):
        weight = plain.get_submodule(name).weight.detach()
        norms = weight.flatten(1).norm(dim=1)
        assert torch.equal(saved[f"{name}.weight_v"], weight)
        assert torch.allclose(saved[f"{name}.weight_g"].flatten(), norms, rtol=1e-6)
        assert saved[f"{name}.weight_g"].shape == (weight.shape[0],) + (1,) * (weight.ndim - 1)
    reference = RefGenerator(TINY).eval()  # the original layout, legacy torch.nn.utils.weight_norm
    reference.load_state_dict(saved, strict=True)
    assert list(saved) == list(reference.state_dict())  # the original's key order too
    with torch.no_grad():
        assert torch.allclose(reference(mel), expected, atol=1e-5)


def test_tiny_kit_vocoder_loads_from_every_layout(tiny_auffusion):
    from speakimg.testing import tiny_vocoder

    folder = tiny_vocoder()
    assert (tiny_auffusion / "vocoder" / "config.json").is_file()
    raw = torch.load(tiny_auffusion / "vocoder" / "vocoder.pt", weights_only=True)["generator"]
    assert "conv_pre.weight_g" in raw and "resblocks.11.convs2.2.weight_v" in raw  # 4 stages x 3 kernels, flat
    mel = _mel(10)
    outputs = []
    for spec in (tiny_auffusion, str(tiny_auffusion), folder, folder / "vocoder.pt"):
        vocoder = load_vocoder(spec)
        assert isinstance(vocoder, Generator) and not vocoder.training and not vocoder.has_weight_norm
        with torch.no_grad():
            outputs.append(vocoder(mel))
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    # the same numbers as an independent reference loading the same file
    reference = RefGenerator(TINY_VOCODER_CONFIG).eval()
    reference.load_state_dict(raw, strict=True)
    with torch.no_grad():
        assert torch.allclose(outputs[0], reference(mel), atol=1e-5)


def test_griffin_lim_and_hifigan_share_the_contract(tiny_auffusion):
    mel = _mel(16, batch=1)
    for spec in ("griffin-lim", tiny_auffusion):
        vocoder = load_vocoder(spec)
        with torch.no_grad():
            audio = vocoder(mel)
        assert audio.shape == (1, 1, 160 * 16), spec
    assert isinstance(load_vocoder("griffin-lim", n_iter=4), GriffinLimVocoder)
    module = Generator(TINY)
    assert load_vocoder(module) is module


def test_bad_inputs_raise_clear_errors(tmp_path, tiny_auffusion):
    generator = Generator(TINY)
    with pytest.raises(ValueError, match="256 bins"):
        generator(torch.zeros(1, 80, 10))
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        load_vocoder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"config\.json and vocoder\.pt"):
        load_vocoder(tmp_path / "empty")
    # a config that does not match the weights
    bad = tmp_path / "mismatch"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(dict(TINY_VOCODER_CONFIG, upsample_initial_channel=64)))
    (bad / "vocoder.pt").write_bytes((tiny_auffusion / "vocoder" / "vocoder.pt").read_bytes())
    with pytest.raises(ConfigError, match=r"does not fit the generator configuration.*shape mismatch"):
        load_vocoder(bad)
    # a file that is not in the {"generator": ...} format
    torch.save({"model": {}}, bad / "vocoder.pt")
    with pytest.raises(ConfigError, match="'generator'"):
        load_vocoder(bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a JSON"):
        load_vocoder(bad)
    with pytest.raises(ConfigError, match="resblock"):
        GeneratorConfig(resblock="3")
    with pytest.raises(ConfigError, match="kernel 2 must be >= its rate 4"):
        GeneratorConfig(upsample_kernel_sizes=[11, 8, 2, 4])
    with pytest.raises(ConfigError, match="divisible"):
        GeneratorConfig(upsample_initial_channel=20)
