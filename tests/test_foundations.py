"""The shared foundations: atomic writes, device/dtype choice, the canvas geometry, the hub's resolver registry."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

from speakimg import hub, io, runtime
from speakimg.audio import CANVAS, CanvasSpec, MelConfig
from speakimg.errors import ConfigError, ModelNotFoundError

# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "data.json"
    io.write_json(target, {"a": 1})
    io.write_json(target, {"a": 2, "b": [1, 2]})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.json"]


def test_atomic_write_keeps_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "keep.txt"
    io.write_text(target, "old")
    with pytest.raises(RuntimeError), io.atomic_write(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_temp_names_are_unique_hidden_and_keep_the_suffix(tmp_path):
    names = {io.temp_name(tmp_path / "x.npy") for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert name.name.startswith(".x.npy.tmp-") and name.suffix == ".npy"
        assert io.is_temp_file(name)
    assert not io.is_temp_file(tmp_path / "x.npy")
    assert not io.is_temp_file(tmp_path / ".hidden")


def test_save_npy_round_trip_and_no_suffix_added(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = io.save_npy(tmp_path / "mel.data", array)  # np.save would append .npy to a path
    assert path.name == "mel.data" and (tmp_path / "mel.data").is_file()
    np.testing.assert_array_equal(np.load(path), array)


def test_atomic_path_for_libraries_writing_to_a_path(tmp_path):
    from PIL import Image

    target = tmp_path / "img.png"
    with io.atomic_path(target) as tmp:
        assert tmp.suffix == ".png"
        Image.new("L", (4, 2), 7).save(tmp)  # PIL picks the format from the suffix
    assert Image.open(target).size == (4, 2)


def test_atomic_dir_replaces_a_folder(tmp_path):
    target = tmp_path / "model"
    with io.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with io.atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_clean_temp_files_removes_only_temporaries(tmp_path):
    keep = io.write_text(tmp_path / "a.txt", "x")
    stale = io.temp_name(tmp_path / "deep" / "b.npy")
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    stale_dir = io.temp_name(tmp_path / "folder")
    stale_dir.mkdir()
    (tmp_path / ".gitignore").write_text("*")
    removed = io.clean_temp_files(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert keep.is_file() and (tmp_path / ".gitignore").is_file() and not stale.exists()
    # a young temporary (a writer still at work) is spared when asked
    young = io.temp_name(tmp_path / "c.txt")
    young.write_text("y")
    assert io.clean_temp_files(tmp_path, older_than_s=3600) == [] and young.exists()


def test_atomic_write_rejects_append_mode(tmp_path):
    with pytest.raises(ValueError, match="whole files"), io.atomic_write(tmp_path / "x", "a"):
        pass


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_load_torch_reads_tensors_and_refuses_pickles_and_truncated_files(tmp_path):
    from speakimg.errors import CheckpointError

    good = tmp_path / "good.pt"
    torch.save({"generator": {"w": torch.ones(2)}, "steps": 3}, good)
    assert torch.equal(io.load_torch(good)["generator"]["w"], torch.ones(2))
    hostile = tmp_path / "hostile.pt"
    torch.save({"payload": _Hostile()}, hostile)
    with pytest.raises(CheckpointError, match=r"hostile\.pt: refused to load this vocoder"):
        io.load_torch(hostile, what="vocoder")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: cannot read this checkpoint.*truncated"):
        io.load_torch(truncated)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        io.load_torch(tmp_path / "missing.pt")


# ---------------------------------------------------------------- device and dtype


def test_select_device_and_dtype():
    assert runtime.select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.select_device("auto").type == expected and runtime.select_device(None).type == expected
    assert runtime.select_dtype("bf16") is torch.bfloat16 and runtime.select_dtype("float16") is torch.float16
    assert runtime.select_dtype("torch.float32") is torch.float32
    assert runtime.select_dtype("auto", torch.device("cpu")) is torch.float32
    assert runtime.select_dtype(torch.bfloat16) is torch.bfloat16
    assert runtime.dtype_name(torch.bfloat16) == "bfloat16"


def test_select_device_and_dtype_errors():
    with pytest.raises(ConfigError, match="float64"):
        runtime.select_dtype("float64")
    with pytest.raises(ConfigError, match="not a device"):
        runtime.select_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            runtime.select_device("cuda")


# ---------------------------------------------------------------- the canvas


def test_canvas_numbers_match_auffusion():
    # independent arithmetic from docs/method.md sections 1-2 and 5
    assert (CANVAS.sample_rate, CANVAS.hop_length, CANVAS.n_mels) == (16000, 160, 256)
    assert (CANVAS.height, CANVAS.width, CANVAS.cropped_width) == (256, 1024, 992)
    assert CANVAS.num_samples == 163_840 and CANVAS.speech_samples == 160_000 and CANVAS.crop_samples == 5120
    assert CANVAS.duration_s == pytest.approx(10.24)
    assert CANVAS.latent_shape == (4, 32, 128)


def test_canvas_follows_its_mel_config_and_validates():
    small = CanvasSpec(mel=MelConfig(sample_rate=8000, hop_length=80, n_mels=64), frames=256, speech_frames=200)
    assert small.num_samples == 256 * 80 and small.latent_shape == (4, 8, 32) and small.duration_s == 2.56
    with pytest.raises(ValueError, match="crop_columns"):
        CanvasSpec(crop_columns=1024)
    with pytest.raises(ValueError, match="speech_frames"):
        CanvasSpec(speech_frames=2000)


def test_modules_read_the_one_canvas():
    from speakimg.audio import CANVAS_FRAMES
    from speakimg.data.manifest import CANVAS_SAMPLES
    from speakimg.pipeline import CROP_COLUMNS

    assert (CANVAS.frames, CANVAS.num_samples, CANVAS.crop_columns) == (CANVAS_FRAMES, CANVAS_SAMPLES, CROP_COLUMNS)


# ---------------------------------------------------------------- the hub's resolvers


def test_registered_resolver_expands_references(tmp_path):
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.json").write_text("{}")
    hub.register_resolver("unit-test", lambda ref: folder)
    assert hub.is_registered_reference("unit-test:anything")
    assert hub.expand_reference("unit-test:anything") == str(folder)
    assert hub.resolve_dir("unit-test:x", subfolder="sub") == folder / "sub"
    assert hub.resolve_file("unit-test:x", "f.json", subfolder="sub") == folder / "sub" / "f.json"
    # not references: hub ids, URLs, unknown prefixes, existing paths
    for name in ("org/model", "https://example.org/x", "nope:thing", str(folder)):
        assert not hub.is_registered_reference(name)
        assert hub.expand_reference(name) == name


def test_a_failing_resolver_becomes_a_model_not_found_error():
    def broken(ref):
        raise ImportError("package joe-voice is not installed")

    hub.register_resolver("broken-test", broken)
    with pytest.raises(ModelNotFoundError, match="broken-test:x.*joe-voice"):
        hub.resolve_dir("broken-test:x")
    with pytest.raises(ValueError, match="lower-case"):
        hub.register_resolver("Bad Prefix", broken)


def test_tiny_resolver_comes_from_the_entry_point_without_importing_the_kit():
    # a fresh interpreter: `tiny:` must work although nothing imported speakimg.testing
    import subprocess
    import sys

    code = (
        "import sys; from speakimg import hub; assert 'speakimg.testing' not in sys.modules; "
        "print(hub.registered_prefixes()); print(hub.resolve_dir('tiny:vocoder'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert "tiny" in out.stdout
    assert re.search(r"vocoder\s*$", out.stdout.strip())


# ---------------------------------------------------------------- lazy package exports


def test_lazy_exports_import_on_first_use_and_name_the_package():
    import subprocess
    import sys

    from speakimg.lazy import lazy_exports

    namespace: dict = {}
    getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math", "missing": "math"}, namespace)
    assert "sqrt" in dir_() and "sqrt" not in namespace
    import math

    assert getattr_("sqrt") is math.sqrt and namespace["sqrt"] is math.sqrt  # cached for later lookups
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'nope'"):
        getattr_("nope")
    with pytest.raises(AttributeError):  # listed, but the module does not define it
        getattr_("missing")
    # the packages that use it: names resolve, and importing them (or the canvas) loads no torch
    code = (
        "import sys, speakimg, speakimg.audio, speakimg.data, speakimg.modules, speakimg.tts, speakimg.vocoder\n"
        "from speakimg.audio import CANVAS\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert {'CANVAS', 'log_mel'} <= set(dir(speakimg.audio)) and 'build_dataset' in dir(speakimg.data)\n"
        "print(speakimg.audio.log_mel.__module__, speakimg.vocoder.Generator.__module__, speakimg.tts.PiperTTS.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["speakimg.audio.mel", "speakimg.vocoder.generator", "PiperTTS"]


# ---------------------------------------------------------------- the suite's network guard (tests/conftest.py)


def test_the_suite_refuses_connections_beyond_this_machine():
    import socket

    with socket.socket() as sock, pytest.raises(OSError, match=r"tests are offline: .*203\.0\.113\.7"):
        sock.connect(("203.0.113.7", 80))  # TEST-NET-3: never routed
    with socket.socket() as server, socket.socket() as client:  # the loopback stays open (gloo, the app test)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.connect(server.getsockname())
        assert client.getpeername() == server.getsockname()
