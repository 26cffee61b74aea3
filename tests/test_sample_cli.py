"""``python -m speakimg.sample``: files, sizes, durations, the sample JSON, regeneration, the grid."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from speakimg.errors import ConfigError, SpeakimgWarning
from speakimg.sample import run
from speakimg.sampling import SampleDirs, SampleSettings, read_prompts, slugify

FAST = ["--steps", "2", "--vocoder", "griffin-lim", "--griffin-lim-iters", "2", "--device", "cpu"]


def models(tiny_sd, tiny_auffusion) -> list[str]:
    return ["--image-model", str(tiny_sd), "--audio-model", str(tiny_auffusion)]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, tiny_sd, tiny_auffusion):
    out = tmp_path_factory.mktemp("samples")
    argv = ["--image-prompt", "A castle, grayscale", "--audio-prompt", "Bells ringing.", "--out", str(out)]
    folders = run([*argv, "--n", "2", "--seed", "3", "--batch-size", "1", *FAST, *models(tiny_sd, tiny_auffusion)])
    return out, folders


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_every_file_has_the_right_size_and_duration(sampled):
    from speakimg.media import probe_duration

    out, folders = sampled
    assert folders == [out / "a-castle-grayscale__bells-ringing" / "3", out / "a-castle-grayscale__bells-ringing" / "4"]
    for folder in folders:
        names = {p.name for p in folder.iterdir()}
        assert names == {"img.png", "spec.png", "spec_color.png", "audio.wav", "video.mp4", "sample.json",
                         "log_mel.npy", "latents.npy"}  # fmt: skip
        with Image.open(folder / "img.png") as img:
            assert (img.mode, img.size) == ("RGB", (992, 256))
        with Image.open(folder / "spec.png") as spec:
            assert (spec.mode, spec.size) == ("L", (992, 256))
        with Image.open(folder / "spec_color.png") as color:
            assert (color.mode, color.size) == ("RGB", (992, 256))
        info = sf.info(str(folder / "audio.wav"))
        assert (info.samplerate, info.frames, info.channels) == (16000, 158720, 1)  # 9.92 s
        for stream in ("format", "v", "a"):
            assert probe_duration(folder / "video.mp4", stream) == pytest.approx(9.92, abs=1 / 25 + 1e-6)
        assert np.load(folder / "log_mel.npy").shape == (256, 992)
        assert np.load(folder / "latents.npy").shape == (4, 32, 128)
    first, second = (np.load(f / "latents.npy") for f in folders)
    assert not np.allclose(first, second, atol=1e-3)  # seeds 3 and 4


def test_the_sample_json_records_everything(sampled, tiny_sd, tiny_auffusion):
    from speakimg.metrics import vocoder_cycle_error

    _, folders = sampled
    record = json.loads((folders[0] / "sample.json").read_text())
    settings = record["settings"]
    assert settings["image_prompt"] == "A castle, grayscale" and settings["audio_prompt"] == "Bells ringing."
    assert settings["seed"] == 3 and settings["steps"] == 2 and settings["t_image"] == 0.9
    assert settings["audio_weight"] == 0.5 and settings["crop_padding"] is True and settings["width"] == 1024
    assert settings["image_model"] == str(tiny_sd) and settings["audio_model"] == str(tiny_auffusion)
    assert record["models"]["vocoder"] == "griffin-lim" and record["models"]["audio_model_kind"] == "diffusers"
    assert record["scheduler"]["steps_offset"] == 1 and record["scheduler"]["beta_schedule"] == "scaled_linear"
    assert (record["device"], record["dtype"], record["sample_rate"]) == ("cpu", "float32", 16000)
    assert record["duration_s"] == pytest.approx(9.92) and record["num_samples"] == 158720
    assert record["timings"]["pipeline_s_per_sample"] > 0
    # the cycle error in the JSON is that of the written files
    audio, _ = sf.read(str(folders[0] / "audio.wav"), dtype="float32")
    mel = np.load(folders[0] / "log_mel.npy")
    assert record["vocoder_cycle_error"] == pytest.approx(float(vocoder_cycle_error(mel, audio)), abs=2e-3)


def test_regenerating_from_the_json_gives_the_same_latents(sampled, tmp_path):
    _, folders = sampled
    again = run(
        ["--from-json", str(folders[1] / "sample.json"), "--out", str(tmp_path), "--no-video", "--device", "cpu"]
    )
    assert again == [tmp_path / "a-castle-grayscale__bells-ringing" / "4"]
    assert np.array_equal(np.load(again[0] / "latents.npy"), np.load(folders[1] / "latents.npy"))
    assert np.array_equal(np.load(again[0] / "log_mel.npy"), np.load(folders[1] / "log_mel.npy"))


def test_grid_samples_every_pair_uncropped(tmp_path, tiny_sd, tiny_auffusion):
    (tmp_path / "images.txt").write_text("# pictures\na cat\n\na lighthouse\n")
    (tmp_path / "audio.txt").write_text("dog barking\nwaves\n")
    argv = ["--grid", str(tmp_path / "images.txt"), str(tmp_path / "audio.txt"), "--out", str(tmp_path / "out")]
    folders = run([*argv, "--no-crop", "--no-video", "--batch-size", "4", *FAST, "--steps", "1",
                   *models(tiny_sd, tiny_auffusion)])  # fmt: skip
    pairs = sorted(f.parent.name for f in folders)
    assert pairs == sorted(f"{i}__{a}" for i in ("a-cat", "a-lighthouse") for a in ("dog-barking", "waves"))
    for folder in folders:
        assert sf.info(str(folder / "audio.wav")).frames == 163840  # 10.24 s
        with Image.open(folder / "img.png") as img:
            assert img.size == (1024, 256)
        assert not (folder / "video.mp4").exists()


def test_imprint_method(tmp_path, tiny_sd, tiny_auffusion):
    argv = ["--image-prompt", "a cat", "--audio-prompt", "meow", "--out", str(tmp_path), "--method", "imprint"]
    (folder,) = run([*argv, "--imprint-image-steps", "1", "--no-video", *FAST, *models(tiny_sd, tiny_auffusion)])
    assert folder == tmp_path / "a-cat__meow" / "0-imprint"
    record = json.loads((folder / "sample.json").read_text())
    assert record["settings"]["method"] == "imprint" and "latents" not in record["files"]
    with Image.open(folder / "img.png") as img:
        pixels = np.asarray(img)
    assert np.array_equal(pixels[..., 0], pixels[..., 1])  # the picture the imprint used is grayscale


def test_command_line_errors(tmp_path):
    with pytest.raises(SystemExit):
        run(["--image-prompt", "only one prompt", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="no such prompt file"):
        run(["--grid", str(tmp_path / "missing.txt"), str(tmp_path / "b.txt"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        run(["--from-json", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="holds no prompts"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="unknown sample settings"):
        SampleSettings.from_dict({"image_prompt": "a", "audio_prompt": "b", "sampler": "euler"})


def test_slugs_are_short_safe_and_distinct(tmp_path):
    assert slugify("A castle, grayscale!") == "a-castle-grayscale"
    assert slugify("¿¡").startswith("prompt-")
    long = slugify("word " * 40)
    assert len(long) <= 48 + 7 and long != slugify("word " * 41)
    dirs = SampleDirs(tmp_path)
    a = dirs(SampleSettings("A cat", "b"))
    b = dirs(SampleSettings("a cat!", "b"))  # same slug, another prompt: another folder
    assert a != b and a.parent.name.startswith("a-cat") and dirs(SampleSettings("A cat", "b")) == a


# ------------------------------------------------------------------------ settings, folders, errors


def _never_load(monkeypatch):
    """Make loading a pipeline fail loudly: the checks under test must come before it."""
    import speakimg.sampling.generation as generation

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(generation, "load_pipeline", refuse)


def test_cli_options_are_generated_from_the_settings_dataclass():
    from dataclasses import dataclass, fields

    from speakimg.sample import build_parser, samples_from_args
    from speakimg.sampling import SamplerSettings

    options = {action.dest for action in build_parser()._actions}
    assert {f.name for f in fields(SamplerSettings)} <= options

    @dataclass
    class Extended(SamplerSettings):
        new_knob: float = 1.5

    from speakimg.cli import normalize_options

    parser = build_parser(Extended)
    argv = normalize_options(["--image-prompt", "a", "--audio-prompt", "b", "--out", "x", "--new-knob", "2.5",
                              "--t-image", "0.7", "--no-crop"])  # fmt: skip
    (sample,) = samples_from_args(parser.parse_args(argv), Extended)
    assert isinstance(sample.sampler, Extended) and sample.sampler.new_knob == 2.5
    assert (sample.sampler.t_image, sample.sampler.crop_padding) == (0.7, False)
    assert "new_knob" not in {action.dest for action in build_parser()._actions}


def test_a_bad_setting_fails_in_one_line_before_any_model_loads(tmp_path, capsys, monkeypatch):
    from speakimg.sample import main

    _never_load(monkeypatch)
    argv = ["--image-prompt", "a", "--audio-prompt", "b", "--out", str(tmp_path / "out"), "--steps", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: steps must be an int >= 1, got 0"]
    assert main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "raise ConfigError" in err
    assert err.strip().splitlines()[-1] == "error: steps must be an int >= 1, got 0"
    # a model that cannot be found offline, and a misspelt option: one line each, nothing written
    assert main([*argv[:-2], "--audio-model", str(tmp_path / "no" / "model"), "--no-video"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: audio_model: ") and "no such model folder" in line
    with pytest.raises(SystemExit) as exit_:
        main([*argv[:-2], "--stepz", "3"])
    assert exit_.value.code == 2 and "stepz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_error_lines_escape_control_characters_and_shorten_long_texts(capsys):
    from speakimg.cli import MAX_MESSAGE, main
    from speakimg.errors import ConfigError, quote

    sentence = "\x1b[31mred\x1b[0m " + "word " * 1000
    shown = quote(sentence)
    assert "\x1b" not in shown and "\\x1b" in shown and shown.endswith(f"... ({len(sentence) - 80} more characters)")
    assert quote("short") == "'short'"

    def fails(argv):
        raise ConfigError(f"bad sentence {sentence}\nsecond line")

    assert main(fails, []) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # the newline is escaped: one line
    assert line.startswith("error: bad sentence \\x1b[31mred") and "\x1b" not in line
    assert len(line) < MAX_MESSAGE + 100 and line.endswith("more characters; --debug prints all)")
    assert main(fails, ["--debug"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: bad sentence") and last.endswith("\\nsecond line")  # in full


def test_an_existing_sample_folder_is_never_written_into_unless_overwrite(tmp_path, tiny_sd, tiny_auffusion,
                                                                          monkeypatch):  # fmt: skip
    out = tmp_path / "out"
    argv = ["--image-prompt", "a lighthouse", "--audio-prompt", "waves", "--out", str(out), *FAST, "--steps", "1",
            *models(tiny_sd, tiny_auffusion)]  # fmt: skip
    video = [] if shutil.which("ffmpeg") else ["--no-video"]
    (folder,) = run([*argv, *video])
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert ("video.mp4" in first) == (not video)
    with pytest.raises(ConfigError, match="1 sample folder.s. exist already .* nothing was written. Pass --overwrite"):
        run([*argv, "--no-video", "--seed", "0"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first  # untouched
    # --overwrite with --no-video replaces the whole folder: no old video beside the new sample.json
    (again,) = run([*argv, "--no-video", "--overwrite", "--t-image", "1.0"])
    assert again == folder and not (folder / "video.mp4").exists()
    record = json.loads((folder / "sample.json").read_text())
    assert record["settings"]["t_image"] == 1.0 and "video" not in record["files"]
    assert not list(out.rglob(".*"))  # no temporary folder left behind
    # a folder whose slug is the same but whose prompts differ is never replaced, even with --overwrite
    _never_load(monkeypatch)
    with pytest.raises(ConfigError, match="holds the sample of other prompts"):
        run([*argv[:1], "A lighthouse!", *argv[2:], "--no-video", "--overwrite"])
    with pytest.raises(ConfigError, match="asked for twice"):
        (tmp_path / "dupes.txt").write_text("a cat\na cat\n")
        run(["--grid", str(tmp_path / "dupes.txt"), str(tmp_path / "dupes.txt"), "--out", str(tmp_path / "o2"),
             "--no-video"])  # fmt: skip


def test_the_sample_json_holds_the_values_used_and_lists_exactly_its_files(sampled, tiny_sd):
    _, folders = sampled
    for folder in folders:
        record = json.loads((folder / "sample.json").read_text())
        settings = record["settings"]
        assert settings["image_guidance_scale"] == settings["audio_guidance_scale"] == 10.0  # the default used
        assert None not in (settings["image_guidance_scale"], settings["image_model"], settings["audio_model"])
        listed = record["files"]
        assert sorted(listed.values()) == sorted(p.name for p in folder.iterdir() if p.name != "sample.json")
        assert all((folder / name).is_file() for name in listed.values())
        assert record["regenerate"].split("--from-json ")[1].startswith(str(folder / "sample.json"))


def test_a_prompt_longer_than_clip_reads_is_warned_about_with_the_part_cut_off(tiny_sd):
    from speakimg.conditioning import CLIPPromptEncoder

    encoder = CLIPPromptEncoder.from_pretrained(str(tiny_sd))
    fits = " ".join(["a"] * 75)  # "a" is one token in the tiny vocabulary: 75 + start + end = 77
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder([fits, ""])
    with pytest.warns(SpeakimgWarning, match=r"78 tokens long, more than the 77 CLIP reads.*: 'b'$"):
        encoder([fits + " b"])
    with pytest.warns(SpeakimgWarning, match=r"the end is cut off and plays no part: 'b c d'"):
        long = encoder([fits + " b c d"])
    with pytest.warns(SpeakimgWarning, match="'x y z'"):
        other = encoder([fits + " x y z"])
    assert torch.equal(long, other)  # what is cut off indeed plays no part
