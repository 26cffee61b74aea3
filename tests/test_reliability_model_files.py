"""Issue 12, model files: hostile pickles refused, truncated or corrupt files named, the original HiFi-GAN's
discriminator numbers from the first step, and the torch floor that makes weights-only loading safe."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from vocoder_helpers import RefMSD, one_thread  # noqa: F401  (one_thread: an autouse fixture)

from speakimg.errors import CheckpointError
from speakimg.testing import TINY_VOCODER_CONFIG

REPO = Path(__file__).resolve().parents[1]
WIDTH = 1 / 16


class _Payload:
    """Unpickling this object would create ``marker`` (what a hostile checkpoint's code could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _vocoder(folder: Path, marker: Path) -> tuple[Path, object]:
    from speakimg.vocoder import load_vocoder

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_VOCODER_CONFIG))
    torch.save({"generator": {"conv_pre.bias": _Payload(marker)}}, folder / "vocoder.pt")
    return folder / "vocoder.pt", lambda: load_vocoder(folder)


def _plbert(folder: Path, marker: Path):
    from speakimg.speech import PLBert
    from speakimg.testing import tiny_plbert

    folder.mkdir()
    shutil.copy(tiny_plbert() / "config.yml", folder / "config.yml")
    torch.save({"net": {"module.encoder.x": _Payload(marker)}, "step": 1}, folder / "step_1.t7")
    return folder / "step_1.t7", lambda: PLBert.from_pretrained(folder)


def _discriminators(folder: Path, marker: Path):
    from speakimg.modules.hifigan import HiFiGANModule

    folder.mkdir()
    path = folder / "do_00000001"
    torch.save({"mpd": _Payload(marker), "msd": {}, "steps": 1, "epoch": 0}, path)
    generator = dict(TINY_VOCODER_CONFIG, upsample_initial_channel=16)
    return path, lambda: HiFiGANModule(
        generator=generator, pretrained_discriminators=str(path), discriminator_width=WIDTH
    )


def _whisper(folder: Path, marker: Path):
    from speakimg.metrics import load_whisper

    folder.mkdir()
    path = folder / "whisper.pt"
    torch.save({"dims": _Payload(marker), "model_state_dict": {}}, path)
    return path, lambda: load_whisper(str(path), device="cpu")


def _diffusers_bin(folder: Path, marker: Path):
    from speakimg.loading import load_vae
    from speakimg.testing import tiny_weights_variant

    shutil.copytree(tiny_weights_variant("stable-diffusion", ["bin"]) / "vae", folder)
    path = folder / "diffusion_pytorch_model.bin"
    torch.save({"encoder.conv_in.weight": _Payload(marker)}, path)
    return path, lambda: load_vae(folder, frozen=True)


def _training_checkpoint(folder: Path, marker: Path):
    from speakimg.vocoder import Generator

    folder.mkdir()
    path = folder / "last.ckpt"
    torch.save({"state_dict": {"generator.conv_pre.bias": _Payload(marker)}, "vocoder_config": {}}, path)
    return path, lambda: Generator.from_pretrained(path)


@pytest.mark.parametrize(
    "make",
    [_vocoder, _plbert, _discriminators, _whisper, _diffusers_bin, _training_checkpoint],
    ids=["vocoder.pt", "plbert.t7", "discriminators", "whisper.pt", "diffusers.bin", "hifigan.ckpt"],
)
def test_a_hostile_pickle_in_any_model_file_is_refused_without_running(make, tmp_path, tiny_root):
    marker = tmp_path / "payload-ran"
    path, load = make(tmp_path / "model", marker)
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(path))}: refused to load this .*weights_only=True.*GLOBAL \w+\.open"
    ):
        load()
    assert not marker.exists()
    # the payload is real: unpickling the file without weights_only would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_truncated_plbert_checkpoint_is_named(tmp_path, tiny_plbert):
    from speakimg.speech import PLBert

    shutil.copytree(tiny_plbert, tmp_path / "plbert")
    step = max((tmp_path / "plbert").glob("step_*.t7"), key=lambda p: int(p.stem.split("_")[1]))
    step.write_bytes(step.read_bytes()[: step.stat().st_size // 2])
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(step))}: cannot read this PL-BERT checkpoint.*truncated"
    ):
        PLBert.from_pretrained(tmp_path / "plbert")


@pytest.mark.parametrize(
    "name",
    [
        "pytorch_lora_weights.safetensors",
        "unet_unfrozen.safetensors",
        "phoneme_adapter.safetensors",
        "plbert/plbert.safetensors",
    ],
)
def test_a_truncated_speech_model_file_is_named(name, tmp_path, tiny_root):
    from speakimg.speech import SpeechModel
    from speakimg.testing import tiny_speech_model

    folder = tmp_path / "speech"
    shutil.copytree(tiny_speech_model(), folder)
    SpeechModel.from_pretrained(folder)  # loads as it is
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: cannot read this .*truncated"):
        SpeechModel.from_pretrained(folder)


def test_a_corrupt_discriminator_file_is_named_by_the_module(tmp_path):
    from speakimg.modules.hifigan import HiFiGANModule

    path = tmp_path / "do_00001000"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    generator = dict(TINY_VOCODER_CONFIG, upsample_initial_channel=16)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: cannot read this discriminator checkpoint"):
        HiFiGANModule(generator=generator, pretrained_discriminators=str(path), discriminator_width=WIDTH)


def test_the_scale_discriminator_trains_as_the_original_from_the_first_step():
    """jik876's MSD: legacy spectral norm on the raw-audio scale, real and generated audio in two calls. Each
    training-mode call moves the power iteration on; a batched call or the parametrized spectral norm gives
    another sigma, hence other scores and losses, until it converges."""
    from speakimg.vocoder import MultiScaleDiscriminator, discriminator_loss
    from speakimg.vocoder.norms import from_legacy_state_dict

    torch.manual_seed(0)
    reference = RefMSD().train()  # written from docs/method.md with torch.nn.utils.spectral_norm, separate calls
    ours = MultiScaleDiscriminator().train()
    ours.load_state_dict(from_legacy_state_dict(ours, reference.state_dict()), strict=True)
    g = torch.Generator().manual_seed(1)
    y = 0.5 * torch.tanh(torch.randn(2, 1, 1203, generator=g))
    y_hat = 0.5 * torch.tanh(torch.randn(2, 1, 1203, generator=g))
    with torch.no_grad():
        for _ in range(2):  # the D step and the G step of one batch: four power iterations on scale 0
            got, want = ours(y, y_hat), reference(y, y_hat)
            for mine, theirs in zip(got[0] + got[1], want[0] + want[1], strict=True):
                assert torch.allclose(mine, theirs, atol=1e-5, rtol=1e-4)
            for mine, theirs in zip(got[2] + got[3], want[2] + want[3], strict=True):
                assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(mine, theirs, strict=True))
            loss, loss_ref = discriminator_loss(got[0], got[1])[0], discriminator_loss(want[0], want[1])[0]
            assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
    state, ref_state = ours.state_dict(), reference.state_dict()
    assert torch.allclose(state["discriminators.0.convs.3.weight_u"], ref_state["discriminators.0.convs.3.weight_u"])


def test_old_checkpoints_with_parametrized_spectral_norm_keys_still_load():
    from torch.nn.utils.parametrizations import spectral_norm

    from speakimg.vocoder import MultiScaleDiscriminator

    torch.manual_seed(0)
    old = MultiScaleDiscriminator(width=WIDTH)  # rebuilt as earlier versions were: parametrized spectral norm
    for conv in [*old.discriminators[0].convs, old.discriminators[0].conv_post]:
        torch.nn.utils.remove_spectral_norm(conv)
        spectral_norm(conv)
    assert "discriminators.0.convs.0.parametrizations.weight.original" in old.state_dict()
    ours = MultiScaleDiscriminator(width=WIDTH)
    ours.load_state_dict(old.state_dict(), strict=True)
    expected = old.discriminators[0].convs[0].parametrizations.weight.original
    assert torch.equal(ours.discriminators[0].convs[0].weight_orig, expected)


def test_torch_floor_is_the_first_safe_weights_only_release():
    floors = re.findall(r'^\s*"torch>=([\d.]+)"', (REPO / "pyproject.toml").read_text(), flags=re.M)
    assert floors == ["2.6"]  # CVE-2025-32434: torch.load(weights_only=True) is bypassable in <= 2.5.1
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)
