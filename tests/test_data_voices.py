"""Multi-voice datasets, validation among built items, short clips: the builder, the report, the vocoder data."""

from __future__ import annotations

import statistics
import warnings

import pytest
from conftest import requires_festival
from test_data_build import digest

from speakimg.data import BuildConfig, build_dataset, plan_items, read_manifest
from speakimg.data.build import main
from speakimg.data.report import dataset_report, format_report
from speakimg.errors import ConfigError
from speakimg.metrics import word_error_rate
from speakimg.tts import EspeakTTS, PiperTTS, VoiceSpec, get_voice, parse_voices

VOICES = "festival,piper:joe,espeak"
SENTENCES = [
    "A tired boy chewed cheese while the choir sang.",
    "Thin wet leaves fell softly on the quiet path.",
    "Seven bright kites float above the harbor today.",
    "The old clock in the hall struck nine at last.",
    "Please bring the red cup from the kitchen shelf.",
    "My sister plays the violin every single evening.",
]


# ----------------------------------------------------------------------------- voice specs


def test_voice_specs_parse_with_the_engine_factory():
    assert parse_voices("festival, espeak:en-gb") == [VoiceSpec("festival"), VoiceSpec("espeak", "en-gb")]
    assert [str(v) for v in parse_voices(["transformers:facebook/mms-tts-eng"])] == [
        "transformers:facebook/mms-tts-eng"
    ]
    assert [str(v) for v in parse_voices("festival,piper:joe,espeak")] == ["festival", "piper:joe", "espeak"]
    assert parse_voices("piper:real:piper-joe") == [VoiceSpec("piper", "real:piper-joe")]  # split at the first ':'
    piper = get_voice("piper:joe", model="dropped: piper takes no model", device="cpu")
    assert isinstance(piper, PiperTTS) and piper.voice == "joe" and piper.settings["noise_scale"] == 0.0
    espeak = get_voice("espeak:en-gb", model="dropped")  # options an engine does not take are dropped
    assert isinstance(espeak, EspeakTTS) and espeak.voice == "en-gb"
    for bad, message in [("", "no voice"), ("festival,,espeak", "empty entry"), ("festival,festival", "twice"),
                         ("espeak:", "empty voice"), (":joe", "names no engine"),
                         ("festival,nope:x", "unknown TTS engine 'nope' in voice spec 'nope:x'")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse_voices(bad)
    with pytest.raises(ValueError, match="unknown TTS engine"):
        BuildConfig(tts="festival,nope")


def test_voices_are_dealt_evenly_and_deterministically():
    lines = [f"Sentence number {i} is spoken here." for i in range(30)]
    voices = ["festival", "espeak", "espeak:en-gb"]
    items, _ = plan_items(lines, seed=0, voices=voices)
    counts = [sum(i.voice == v for i in items) for v in voices]
    assert counts == [10, 10, 10]
    again, _ = plan_items(list(reversed(lines)), seed=0, voices=voices)  # input order does not matter
    assert {i.id: i.voice for i in again} == {i.id: i.voice for i in items}
    other, _ = plan_items(lines, seed=1, voices=voices)
    assert [i.voice for i in other] != [i.voice for i in items]
    assert {i.voice for i in plan_items(lines)[0]} == {"festival"}


# ----------------------------------------------------------------------------- builds


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory) -> tuple:
    """SENTENCES spoken by festival, Piper's joe and espeak, built with 2 workers and in-process (CLI and library)."""
    root = tmp_path_factory.mktemp("voices")
    texts = root / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n", "utf-8")
    assert main(["--texts", str(texts), "--out", str(root / "a"), "--tts", VOICES, "--workers", "2",
                 "--val-fraction", "0.2", "--quiet"]) == 0  # fmt: skip
    config = BuildConfig(tts=VOICES, val_fraction=0.2)
    summary = build_dataset(SENTENCES, root / "b", config, workers=0, progress=False)
    return root / "a", root / "b", summary


@requires_festival
@pytest.mark.slow
def test_a_multi_voice_build_records_each_voice(two_voices):
    a, b, summary = two_voices
    assert summary.built == 6 and digest(a) == digest(b)  # 1 or 2 workers: byte-identical
    records = read_manifest(a)
    planned = {i.id: i.voice for i in plan_items(SENTENCES, 0, 0.2, VOICES.split(","))[0]}
    assert {r.id: r.voice for r in records} == planned
    assert sorted(r.voice for r in records) == ["espeak"] * 2 + ["festival"] * 2 + ["piper:joe"] * 2
    engines = {r.voice: r.tts for r in records}  # the engine that spoke it, and what decided its audio
    assert engines == {"festival": "festival", "espeak": "espeak", "piper:joe": "piper:en_US-joe-medium"}
    for record in records:
        assert record.tts_settings["engine"] == record.tts
        if record.voice == "piper:joe":
            assert record.tts_settings["noise_scale"] == 0.0 and record.tts_settings["voice_file"].endswith(".onnx")
    # the voices really differ: the same words at another pace
    seconds = {v: sorted(r.speech_seconds for r in records if r.voice == v) for v in engines}
    assert len({tuple(s) for s in seconds.values()}) == 3
    assert sum(r.split == "val" for r in records) == 1


@requires_festival
@pytest.mark.slow
def test_the_report_breaks_durations_and_wer_down_by_voice(two_voices, tiny_whisper, tmp_path):
    a, _, _ = two_voices
    report = dataset_report(a, whisper=str(tiny_whisper), samples=3, examples=2, out=tmp_path, gl_iters=2)
    records = read_manifest(a)
    for voice in VOICES.split(","):
        seconds = [r.speech_seconds for r in records if r.voice == voice]
        row = report["voices"][voice]
        assert row["ok"] == 2 and row["failed"] == 0
        assert row["speech_seconds"]["mean"] == pytest.approx(statistics.fmean(seconds), abs=1e-4)
        assert row["speech_seconds"]["max"] == pytest.approx(max(seconds), abs=1e-4)
    intel = report["intelligibility"]
    heard = [t["voice"] for t in intel["transcripts"]]
    assert sorted(heard) == ["espeak", "festival", "piper:joe"]  # the voices take turns: every voice is heard
    for voice, row in intel["by_voice"].items():
        rows = [t for t in intel["transcripts"] if t["voice"] == voice]
        assert row["samples"] == len(rows) == 1
        refs = [t["text"] for t in rows]
        assert row["wer_stored_audio"] == pytest.approx(word_error_rate([t["stored_audio"] for t in rows], refs))
        assert row["wer_griffin_lim"] == pytest.approx(word_error_rate([t["griffin_lim"] for t in rows], refs))
    markdown = format_report(report)
    assert "**By voice**" in markdown and "| piper:joe | 2 | 0 |" in markdown


# ----------------------------------------------------------------------------- validation among built items


def test_failed_sentences_never_take_validation_slots(tmp_path):
    good = SENTENCES[:4]
    bad = ["Привет, как дела у тебя сегодня?", "Добрый вечер, друзья мои.", "...", "Ещё одна строка здесь."]
    lines = good + bad
    bad_ids = {i.id for i in plan_items(bad)[0]}
    seed = next(s for s in range(200) if {i.id for i in plan_items(lines, s, 0.25)[0] if i.split == "val"} <= bad_ids)
    # the planned split (what the builder used to write) gives both val slots to sentences that fail
    config = BuildConfig(tts="espeak", val_fraction=0.25, seed=seed)
    summary = build_dataset(lines, tmp_path / "d", config, workers=0, progress=False)
    assert summary.built == 4 and summary.failed == 4
    records = read_manifest(tmp_path / "d", status=None)
    ok = [r for r in records if r.status == "ok"]
    assert [r.split for r in records if r.status != "ok"] == [""] * 4
    assert sum(r.split == "val" for r in ok) == 1  # round(0.25 x 4 built items), chosen among them


# ----------------------------------------------------------------------------- short clips


@requires_festival
@pytest.mark.slow
def test_short_clips_are_flagged_by_the_report_and_the_vocoder_data(tmp_path):
    from vocoder_helpers import write_speech_dataset

    from speakimg.data.vocoder import VocoderDataModule

    data = write_speech_dataset(tmp_path / "short", [SENTENCES[0], "Yes.", SENTENCES[1]])
    seconds = {r.text: r.speech_seconds for r in read_manifest(data)}
    yes = next(r for r in read_manifest(data) if r.text == "Yes.")
    assert seconds["Yes."] < 1.0 < 2.0 < seconds[SENTENCES[0]]  # about 0.6 s against 3 s
    report = dataset_report(data, whisper=None, examples=1, out=tmp_path / "report")
    assert [i["id"] for i in report["short_items"]["items"]] == [yes.id]
    assert f"`{yes.id}`" in format_report(report) and "**Warning**: 1 item(s)" in format_report(report)
    # the vocoder data: 1 s segments, the last clip by id held out: "Yes." is one of 2 training clips
    dm = VocoderDataModule(str(data), segment_size=16000, batch_size=1, num_workers=0, num_val=1)
    message = rf"1 of 2 training clips hold less speech than one segment \(1.00 s\), e.g. {yes.id}"
    with pytest.warns(UserWarning, match=message):
        dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["audio"].shape == (1, 1, 16000)  # used: padded, not dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # segments shorter than every clip: no warning
        VocoderDataModule(str(data), segment_size=8000, batch_size=1, num_workers=0, num_val=1).setup("fit")
