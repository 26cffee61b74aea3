"""``python -m speakimg.evaluate``: the protocol on the tiny kit (2x2 grid), resuming, references, W&B, errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from speakimg.errors import ConfigError
from speakimg.evaluate import main, run
from speakimg.evaluation import COLUMNS, ResultsCSV, interval, summarize
from speakimg.pipeline import ImagesThatSpeakPipeline

REPO = Path(__file__).resolve().parents[1]
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
IMAGES = (REPO / "configs/data/image_prompts.txt").read_text().splitlines()[:2]
SENTENCES = (REPO / "configs/data/test_sentences.txt").read_text().splitlines()[:2]


def tiny_args(tiny_sd, tiny_auffusion, tiny_clip, out: Path, *extra: str) -> list[str]:
    """The shipped protocol config on the tiny kit: a 2x2 grid, 2 steps, CPU."""
    return [
        "--config", str(REPO / "configs/eval.yaml"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--clip", str(tiny_clip),
        "--limit_image_prompts", "2", "--limit_audio_prompts", "2", "--steps", "2",
        "--device", "cpu", "--dtype", "float32", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    """The shipped configs name their prompt files relative to the repository root, where runs start."""
    monkeypatch.chdir(REPO)


class CallCounter:
    """Counts pipeline calls (each is one batch of samples) while delegating to the real pipeline."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[int] = []
        real = ImagesThatSpeakPipeline.__call__

        def counted(pipe, image_prompt, audio_prompt, **kwargs):
            self.calls.append(len(image_prompt) if isinstance(image_prompt, list) else 1)
            return real(pipe, image_prompt, audio_prompt, **kwargs)

        monkeypatch.setattr(ImagesThatSpeakPipeline, "__call__", counted)


@pytest.fixture(scope="module")
def speech_eval(tmp_path_factory, tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper):
    """One speech-protocol run: 2 image prompts x 2 sentences x seed 0, references on, 3 samples per
    pipeline call, media for the first 3 samples of each kind, W&B offline."""
    out = tmp_path_factory.mktemp("eval") / "speech"
    argv = tiny_args(tiny_sd, tiny_auffusion, tiny_clip, out)
    argv += ["--whisper", str(tiny_whisper), "--batch_size", "3", "--save_media", "3", "--video", str(HAVE_FFMPEG)]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        counter = CallCounter(mp)
        result = run(argv)
    return result, counter.calls


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_csv_has_one_row_per_kind_pair_and_seed(speech_eval):
    result, calls = speech_eval
    with result.csv.open(newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    rows = read_csv(result.csv)
    keys = sorted((r["kind"], r["image_prompt"], r["audio_prompt"], r["seed"]) for r in rows)
    kinds = ("combined", "audio_only", "image_only")
    assert keys == sorted((k, i, a, "0") for k in kinds for i in IMAGES for a in SENTENCES)
    # sampled once per unit: 4 combined (batches of 3 + 1), audio-only once per sentence, image-only once per picture
    assert calls == [3, 1, 2, 2] and result.sampled == 8 and result.written == 12
    digest = json.loads((result.out / "eval_settings.json").read_text())["settings_hash"]
    for row in rows:
        assert row["settings_hash"] == digest
        assert IMAGES[int(row["image_index"])] == row["image_prompt"]
        assert SENTENCES[int(row["audio_index"])] == row["audio_prompt"]
        assert 0.0 <= float(row["clip"]) <= 100.0
        assert int(row["wer_words"]) == 9  # the test sentences have nine words
        assert float(row["wer"]) == pytest.approx(100 * int(row["wer_errors"]) / 9)
        assert row["clap"] == "" and float(row["sample_s"]) > 0 and float(row["metrics_s"]) > 0
        assert float(row["vocoder_cycle_error"]) > 0
    # media for the first 3 samples of each kind only (save_media 3): the 4th combined pair has none
    combined = [r for r in rows if r["kind"] == "combined"]
    assert [bool(r["folder"]) for r in combined] == [True, True, True, False]
    assert all(r["image"] == r["spectrogram"] == r["audio"] == r["video"] == "" for r in combined[3:])
    # a reference sample is shared by the rows it is scored for
    audio_only = [r for r in rows if r["kind"] == "audio_only"]
    for sentence in SENTENCES:
        folders = {r["folder"] for r in audio_only if r["audio_prompt"] == sentence}
        transcripts = {r["transcript"] for r in audio_only if r["audio_prompt"] == sentence}
        assert len(folders) == 1 and len(transcripts) == 1
    assert len({r["folder"] for r in audio_only}) == 2


def test_the_summary_equals_an_independent_computation_from_the_csv(speech_eval):
    result, _ = speech_eval
    rows = read_csv(result.csv)
    summary = json.loads((result.out / "summary.json").read_text())
    assert summary["protocol"] == "speech" and summary["run"]["complete"] is True
    assert (summary["run"]["rows_expected"], summary["run"]["rows_done"]) == (12, 12)
    for kind in ("combined", "audio_only", "image_only"):
        group = [r for r in rows if r["kind"] == kind]
        entry = summary["kinds"][kind]
        clip = np.array([float(r["clip"]) for r in group])
        wer = np.array([float(r["wer"]) for r in group])
        assert entry["n"] == 4
        assert entry["clip"]["mean"] == pytest.approx(clip.mean())
        assert entry["clip"]["ci95"] == pytest.approx(1.96 * clip.std(ddof=1) / math.sqrt(4))
        assert entry["wer_mean"]["mean"] == pytest.approx(wer.mean())
        assert entry["wer_mean"]["ci95"] == pytest.approx(1.96 * wer.std(ddof=1) / 2)
        errors = sum(int(r["wer_errors"]) for r in group)
        assert entry["wer_corpus"] == pytest.approx(100 * errors / 36)
    assert summary["kinds"]["combined"]["clip"]["std"] > 0  # the tiny CLIP scores vary over the pictures
    markdown = (result.out / "summary.md").read_text()
    clip = summary["kinds"]["combined"]["clip"]
    assert f"{clip['mean']:.1f} ± {clip['ci95']:.1f}" in markdown
    assert "WER corpus" in markdown and "CLIP 22.3, WER 93.4" in markdown
    assert result.summary == summary


def test_media_have_the_right_sizes_and_give_the_csv_scores(speech_eval, tiny_clip):
    from speakimg.metrics import WindowedCLIPScore

    result, _ = speech_eval
    rows = [r for r in read_csv(result.csv) if r["folder"]]
    assert len({r["folder"] for r in rows}) == 7  # 3 combined + 2 audio-only + 2 image-only
    scorer = WindowedCLIPScore(str(tiny_clip))
    for row in rows:
        folder = result.out / row["folder"]
        with Image.open(result.out / row["image"]) as img:
            assert (img.mode, img.size) == ("RGB", (992, 256))
            picture = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        with Image.open(result.out / row["spectrogram"]) as spec:
            assert (spec.mode, spec.size) == ("L", (992, 256))
        info = sf.info(str(result.out / row["audio"]))
        assert (info.samplerate, info.frames, info.channels) == (16000, 158720, 1)
        assert (folder / "video.mp4").is_file() == HAVE_FFMPEG and bool(row["video"]) == HAVE_FFMPEG
        # the CSV's CLIP score is the score of the written picture (PNG = the metric's own uint8 rounding)
        assert float(scorer(picture[None], row["image_prompt"])[0]) == pytest.approx(float(row["clip"]), abs=1e-4)
        record = json.loads((folder / "sample.json").read_text())
        settings = record["settings"]
        assert settings["seed"] == 0 and settings["steps"] == 2
        if row["kind"] == "combined":
            assert (settings["image_prompt"], settings["audio_prompt"]) == (row["image_prompt"], row["audio_prompt"])
            assert (settings["audio_weight"], settings["t_image"]) == (0.5, 0.9)
        elif row["kind"] == "audio_only":
            assert (settings["image_prompt"], settings["audio_prompt"]) == ("", row["audio_prompt"])
            assert (settings["audio_weight"], settings["t_audio"]) == (1.0, 1.0)
        else:
            assert (settings["image_prompt"], settings["audio_prompt"]) == (row["image_prompt"], "")
            assert (settings["audio_weight"], settings["t_image"]) == (0.0, 1.0)


def test_the_written_audio_and_cycle_error_are_those_of_the_latents(speech_eval, tiny_sd, tiny_auffusion):
    """Decode every kept z_0 again (VAE, HiFi-GAN): the WAV files hold that audio (to 16-bit rounding) and
    the CSV's vocoder cycle error is that audio's (up to the rounding of another batch size)."""
    from speakimg.metrics import vocoder_cycle_error

    result, _ = speech_eval
    rows = list({r["folder"]: r for r in read_csv(result.csv) if r["folder"]}.values())
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tiny_auffusion)  # its own HiFi-GAN, as the run
    z0 = torch.from_numpy(np.stack([np.load(result.out / r["folder"] / "latents.npy") for r in rows]))
    again = pipe.finish(None, pipe.decode_spectrograms(z0), z0, "pt", crop_padding=True)
    cycle = vocoder_cycle_error(again.log_mels, again.audios, pipe.mel_config)
    for i, row in enumerate(rows):
        audio, _ = sf.read(str(result.out / row["audio"]), dtype="float32")
        np.testing.assert_allclose(audio, again.audios[i].clamp(-1, 1).numpy(), atol=1 / 32768 + 1e-6)
        np.testing.assert_allclose(np.load(result.out / row["folder"] / "log_mel.npy"), again.log_mels[i], atol=2e-3)
        assert float(cycle[i]) == pytest.approx(float(row["vocoder_cycle_error"]), abs=1e-3)


def test_references_are_each_model_alone_from_the_same_noise(speech_eval, tiny_pipeline):
    """audio_only / image_only latents equal a single-model DDIM run (no weighting code involved) from
    the seed's z_T; the combined sample differs from both."""
    from diffusers import DDIMScheduler

    from speakimg.pipeline import GuidedDenoiser, combined_denoise

    result, _ = speech_eval
    rows = read_csv(result.csv)
    pipe = tiny_pipeline
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(2)
    z_t = pipe.prepare_latents(1, 256, 1024, torch.Generator("cpu").manual_seed(0))

    def alone(unet, encoder, prompt: str) -> np.ndarray:
        embeddings = pipe.encode(encoder, unet, [prompt], [""])
        return combined_denoise([GuidedDenoiser(unet, embeddings, 10.0)], scheduler, z_t, torch.ones(2, 1))[0].numpy()

    def latents(kind: str, **match: str) -> np.ndarray:
        row = next(r for r in rows if r["kind"] == kind and all(r[k] == v for k, v in match.items()) and r["folder"])
        return np.load(result.out / row["folder"] / "latents.npy")

    audio_alone = alone(pipe.audio_unet, pipe.audio_prompt_encoder, SENTENCES[1])
    image_alone = alone(pipe.image_unet, pipe.image_prompt_encoder, IMAGES[0])
    np.testing.assert_allclose(latents("audio_only", audio_prompt=SENTENCES[1]), audio_alone, atol=1e-4)
    np.testing.assert_allclose(latents("image_only", image_prompt=IMAGES[0]), image_alone, atol=1e-4)
    both = latents("combined", image_prompt=IMAGES[0], audio_prompt=SENTENCES[1])
    assert np.abs(both - audio_alone).max() > 1e-2 and np.abs(both - image_alone).max() > 1e-2


def test_the_wandb_offline_run_holds_the_config_the_table_and_media(speech_eval):
    result, _ = speech_eval
    (run_dir,) = result.out.glob("wandb/offline-run-*")
    (table_file,) = run_dir.glob("files/media/table/samples_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"][:7] == ["kind", "image_prompt", "audio_prompt", "seed", "image", "spectrogram", "audio"]
    assert len(table["data"]) == 12
    csv_rows = read_csv(result.csv)
    for cells, row in zip(table["data"], csv_rows, strict=True):
        assert cells[:3] == [row["kind"], row["image_prompt"], row["audio_prompt"]]
        assert cells[8] == pytest.approx(float(row["clip"]))
        assert (cells[4] is None) == (row["image"] == "")  # media cells only where media were kept
    images = sorted(run_dir.glob("files/media/images/gallery/*/*.png"))
    audios = sorted(run_dir.glob("files/media/audio/gallery/*/*.wav"))
    assert len(images) == 2 * 7 and len(audios) == 7  # picture + spectrogram + audio per sample with media
    with Image.open(images[0]) as img:
        assert img.size == (992, 256)
    assert list((result.out / "wandb" / "data" / "artifacts" / "staging").iterdir())  # the table's media
    record = next(run_dir.glob("run-*.wandb")).read_bytes()
    digest = json.loads((result.out / "eval_settings.json").read_text())["settings_hash"]
    assert b"settings_hash" in record and digest.encode() in record  # the config
    assert b"combined/wer_corpus" in record  # the summary numbers


def test_a_rerun_resumes_without_sampling(speech_eval, tmp_path, monkeypatch):
    from speakimg.evaluation import scoring

    result, _ = speech_eval
    out = tmp_path / "again"
    shutil.copytree(result.out, out)
    before = (out / "samples.csv").read_bytes()
    counter = CallCounter(monkeypatch)
    monkeypatch.setattr(scoring.Scorers, "__init__", lambda *a, **k: pytest.fail("loaded metric models"))
    again = run([*tiny_args(*_models(result), out), "--logger", "tensorboard", "--whisper", _whisper(result)])
    assert counter.calls == [] and again.sampled == 0 and again.written == 0
    assert (out / "samples.csv").read_bytes() == before
    assert again.summary["kinds"] == result.summary["kinds"]
    # the TensorBoard logger got the summary numbers, the summary text and every kept sample's media
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = out.glob("tensorboard/version_0/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert len(tags["images"]) == 2 * 7 and len(tags["audio"]) == 7
    (clip,) = accumulator.Scalars("combined/clip")
    assert clip.value == pytest.approx(again.summary["kinds"]["combined"]["clip"]["mean"], rel=1e-6)
    assert "summary/text_summary" in tags["tensors"]


def _models(result) -> tuple[str, str, str]:
    config = json.loads((result.out / "eval_settings.json").read_text())["settings"]
    return config["image_model"], config["audio_model"], config["clip"]


def test_a_killed_run_completes_only_the_missing_rows(speech_eval, tmp_path, monkeypatch, tiny_whisper):
    result, _ = speech_eval
    out = tmp_path / "killed"
    shutil.copytree(result.out, out)
    lines = (out / "samples.csv").read_text().splitlines(keepends=True)
    kept, lost = lines[:-3], lines[-3:]  # the last 3 rows: image-only rows of both pictures
    (out / "samples.csv").write_text("".join(kept) + lost[0][:25])  # + a row cut short mid-write
    counter = CallCounter(monkeypatch)
    again = run([*tiny_args(*_models(result), out), "--logger", "none", "--whisper", str(tiny_whisper),
                 "--batch_size", "3", "--save_media", "3", "--video", "false"])  # fmt: skip
    assert counter.calls == [2] and again.sampled == 2 and again.written == 3  # both image-only samples, once
    text = (out / "samples.csv").read_text()
    assert text.startswith("".join(kept)) and len(text.splitlines()) == 13
    old = {(r["kind"], r["image_prompt"], r["audio_prompt"]): r for r in read_csv(result.csv)}
    for row in read_csv(out / "samples.csv")[-3:]:
        before = old[(row["kind"], row["image_prompt"], row["audio_prompt"])]
        assert row["kind"] == "image_only"
        for column in ("clip", "wer", "vocoder_cycle_error"):
            assert float(row[column]) == pytest.approx(float(before[column]), abs=1e-3)
        assert row["transcript"] == before["transcript"]
    assert again.summary["run"]["complete"] and again.summary["kinds"]["image_only"]["n"] == 4


def test_other_settings_are_refused_and_a_narrower_grid_is_summarised(speech_eval, tmp_path):
    result, _ = speech_eval
    out = tmp_path / "changed"
    shutil.copytree(result.out, out)
    before = (out / "samples.csv").read_bytes()
    args = [*tiny_args(*_models(result), out), "--logger", "none", "--whisper", str(_whisper(result))]
    with pytest.raises(ConfigError, match=r"steps: 2 -> 3.*another `out` folder"):
        run([*args, "--steps", "3"])
    assert (out / "samples.csv").read_bytes() == before
    narrow = run([*args, "--limit_audio_prompts", "1", "--references", "false"])
    assert narrow.sampled == 0 and set(narrow.summary["kinds"]) == {"combined"}
    assert narrow.summary["kinds"]["combined"]["n"] == 2 and narrow.summary["run"]["rows_expected"] == 2
    clips = [float(r["clip"]) for r in read_csv(out / "samples.csv") if r["kind"] == "combined"]
    assert narrow.summary["kinds"]["combined"]["clip"]["mean"] == pytest.approx(np.mean([clips[0], clips[2]]))
    assert (out / "samples.csv").read_bytes() == before  # rows outside the grid are kept


def _whisper(result) -> str:
    return json.loads((result.out / "eval_settings.json").read_text())["settings"]["whisper"]


def test_the_sound_protocol_scores_clap_and_logs_to_csv(tmp_path, tiny_sd, tiny_auffusion, tiny_clip, tiny_clap):
    out = tmp_path / "its"
    argv = [
        "--config", str(REPO / "configs/eval_its.yaml"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--clip", str(tiny_clip),
        "--clap", str(tiny_clap), "--limit_image_prompts", "2", "--limit_audio_prompts", "2", "--steps", "1",
        "--references", "false", "--save_media", "0", "--logger", "csv", "--vocoder", "griffin-lim",
        "--griffin_lim_iters", "2", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    result = run(argv)
    rows = read_csv(out / "samples.csv")
    captions = (REPO / "configs/data/sound_prompts.txt").read_text().splitlines()
    captions = [c for c in captions if c and not c.startswith("#")][:2]
    assert sorted((r["image_prompt"], r["audio_prompt"]) for r in rows) == sorted(
        (i, c) for i in IMAGES for c in captions
    )
    for row in rows:
        assert row["kind"] == "combined" and 0.0 <= float(row["clap"]) <= 100.0
        assert row["wer"] == row["transcript"] == row["folder"] == ""
    entry = result.summary["kinds"]["combined"]
    assert entry["clap"]["mean"] == pytest.approx(np.mean([float(r["clap"]) for r in rows]))
    assert "wer_corpus" not in entry and not (out / "media").exists()
    assert result.summary["anchors"]["combined"] == {"clip": 28.2, "clap": 33.5}
    assert "CLAP" in (out / "summary.md").read_text()
    (metrics,) = out.glob("csv_logs/version_*/metrics.csv")
    logged = read_csv(metrics)[-1]
    assert float(logged["combined/clap"]) == pytest.approx(entry["clap"]["mean"])
    assert "protocol: sound" in next(out.glob("csv_logs/version_*/hparams.yaml")).read_text()


def test_wer_columns_and_corpus_wer_equal_torchmetrics(tiny_clip, monkeypatch):
    """Per-row WER, errors and words against torchmetrics on varied transcripts; corpus WER from the rows."""
    from torchmetrics.text import WordErrorRate

    from speakimg.evaluation.plan import Row, Unit
    from speakimg.evaluation.scoring import Scorers
    from speakimg.metrics import WhisperWER, normalize_transcript, word_error_rate
    from speakimg.pipeline import ImagesThatSpeakOutput
    from speakimg.sampling import SampleSettings

    refs = ["The quiet fisherman mended his nets beside the harbor.", "Seven kites."]  # 9 and 2 words
    hyps = ["the quiet fisherman mended nets beside a harbour", "", "seven bright kites"]
    monkeypatch.setattr(WhisperWER, "whisper_model", property(lambda self: None))
    monkeypatch.setattr(WhisperWER, "transcribe", lambda self, audios: hyps[: len(audios)])
    scorers = Scorers("speech", str(tiny_clip), whisper="unused")
    units = [
        Unit("combined", SampleSettings(IMAGES[0], refs[0]), [Row("combined", 0, 0, IMAGES[0], refs[0], 0)]),
        Unit("image_only", SampleSettings(IMAGES[1], ""), [Row("image_only", 1, a, IMAGES[1], r, 0) for a, r in
                                                          enumerate(refs)]),
        Unit("combined", SampleSettings(IMAGES[1], refs[1]), [Row("combined", 1, 1, IMAGES[1], refs[1], 0)]),
    ]  # fmt: skip
    output = ImagesThatSpeakOutput(images=torch.rand(3, 3, 256, 288), audios=torch.zeros(3, 16000))
    scores = scorers.score(units, output)
    pairs = [(hyps[u], row.audio_prompt) for u, unit in enumerate(units) for row in unit.rows]
    flat = [s for unit_scores in scores for s in unit_scores]
    for (hyp, ref), s in zip(pairs, flat, strict=True):
        metric = WordErrorRate()
        metric.update([normalize_transcript(hyp)], [normalize_transcript(ref)])
        assert (s["wer_errors"], s["wer_words"]) == (int(metric.errors), int(metric.total))
        assert s["wer"] == pytest.approx(100 * float(metric.compute())) and s["transcript"] == hyp
    assert [round(s["wer"], 2) for s in flat] == [22.22, 100.0, 100.0, 50.0]  # 2/9, empty transcript x2, 1/2
    rows = [{"kind": "combined", "clip": s["clip"], "clap": None, "vocoder_cycle_error": None, **s} for s in flat]
    summary = summarize(rows, "speech")["kinds"]["combined"]
    assert summary["wer_corpus"] == pytest.approx(100 * word_error_rate([h for h, _ in pairs], [r for _, r in pairs]))
    assert summary["wer_corpus"] != pytest.approx(summary["wer_mean"]["mean"])  # they answer different questions


def test_interval_is_the_normal_95_percent_interval_of_the_mean():
    values = [10.0, 12.0, 9.0, 15.0, 11.0]
    stat = interval(values)
    assert stat["mean"] == pytest.approx(11.4) and stat["n"] == 5
    assert stat["ci95"] == pytest.approx(1.96 * np.std(values, ddof=1) / math.sqrt(5))
    assert interval([3.0]) == {"mean": 3.0, "ci95": None, "std": None, "n": 1}
    assert interval([])["mean"] is None


def test_the_csv_store_appends_reads_back_and_names_bad_lines(tmp_path):
    store = ResultsCSV(tmp_path / "samples.csv")
    row = dict.fromkeys(COLUMNS, "") | {"kind": "combined", "image_prompt": 'a "quoted", prompt', "audio_prompt": "x\ny",
                                      "seed": 3, "clip": 0.1 + 0.2, "image_index": 0, "audio_index": 1}  # fmt: skip
    store.append([row, {**row, "seed": 4}])
    back = store.load()
    assert [r["seed"] for r in back] == [3, 4] and back[0]["clip"] == 0.1 + 0.2  # exact float round trip
    assert back[0]["image_prompt"] == 'a "quoted", prompt' and back[0]["audio_prompt"] == "x\ny"
    lines = store.path.read_text().splitlines(keepends=True)
    store.path.write_text(lines[0] + "combined,0,0,only a few cells\n" + "".join(lines[1:]))
    with pytest.raises(ConfigError, match="line 2 is malformed"):
        store.load()
    store.path.write_text("kind,seed\ncombined,0\n")
    with pytest.raises(ConfigError, match="columns"):
        store.load()
    with pytest.raises(ValueError, match="unknown CSV columns"):
        ResultsCSV(tmp_path / "other.csv").append([{"kind": "combined", "bogus": 1}])


def test_bad_config_and_inputs_give_one_clear_error(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text("protocol: speech\nsteps: 3\nwhisper_model: small.en\n")
    with pytest.raises(ConfigError, match="whisper_model"):
        run(["--config", str(config), "--out", str(tmp_path / "out")])
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "whisper_model" in err[0]
    with pytest.raises(ConfigError, match="unrecognized arguments: --stepz"):
        run(["--stepz", "3"])
    with pytest.raises(ConfigError, match="protocol"):
        run(["--protocol", "speak"])
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(ConfigError, match=f"{missing}: no such prompt file"):
        run(["--image_prompts", str(missing), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are known to be good
    (tmp_path / "dupes.txt").write_text("a cat\na dog\na cat\n")
    with pytest.raises(ConfigError, match="listed twice"):
        run(["--image_prompts", str(tmp_path / "dupes.txt"), "--out", str(tmp_path / "out")])
    for bad, match in (
        (["--seeds", "[]"], "seeds is empty"),
        (["--seeds", "[1,1]"], "more than once"),
        (["--batch_size", "0"], "batch_size must be >= 1"),
        (["--t_image", "1.5"], "t_image"),
        (["--save_media", "-1"], "save_media"),
    ):
        with pytest.raises(ConfigError, match=match):
            run([*bad, "--out", str(tmp_path / "out")])


def test_make_logger_gives_each_backend(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    from speakimg.loggers import finish_logger, make_logger

    assert make_logger("none", tmp_path) is None
    tb = make_logger("tensorboard", tmp_path, config={"steps": 3})
    assert isinstance(tb, TensorBoardLogger)
    tb.log_metrics({"combined/clip": 1.0})
    finish_logger(tb)
    assert list((tmp_path / "tensorboard").glob("version_0/events.out.tfevents.*"))
    assert isinstance(make_logger("csv", tmp_path), CSVLogger)
    wandb_logger = make_logger("wandb", tmp_path, project="p", run_name="r", config={"steps": 3})
    assert isinstance(wandb_logger, WandbLogger)
    finish_logger(wandb_logger)
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    with pytest.raises(ConfigError, match="logger must be one of"):
        make_logger("mlflow", tmp_path)
