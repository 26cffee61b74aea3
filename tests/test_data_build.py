"""The dataset builder: real festival builds, determinism, kill + resume, shards + merge, error records."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from speakimg.audio import load_audio, log_mel
from speakimg.data import (
    BUILD_CONFIG,
    CANVAS_SAMPLES,
    MANIFEST,
    BuildConfig,
    build_dataset,
    load_mel,
    load_record_audio,
    plan_items,
    read_manifest,
)
from speakimg.data.build import main
from speakimg.data.canvas import SPEECH_SAMPLES, CanvasFit
from speakimg.data.plan import item_id
from speakimg.data.store import TEXTS
from speakimg.text import ids_to_phonemes, normalize_text, phonemes_to_ids, prepare_text

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every dataset file (hidden temporary files excluded)."""
    files = [folder / MANIFEST, folder / BUILD_CONFIG, folder / TEXTS]
    for sub in ("audio", "mels", "records"):
        files += sorted(p for p in (folder / sub).iterdir() if not p.name.startswith("."))
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# ---------------------------------------------------------------- the 30-sentence festival build


def test_festival_build_with_two_workers(festival_dataset, sentences_file):
    lines = sentences_file.read_text("utf-8").splitlines()
    records = read_manifest(festival_dataset, status=None)
    assert [r.index for r in records] == list(range(30)) and all(r.status == "ok" for r in records)
    assert [r.text for r in records] == lines
    assert [r.id for r in records] == [item_id(line) for line in lines]
    assert sum(r.split == "val" for r in records) == 2  # round(0.05 * 30)
    for r in records:
        assert r.audio == f"audio/{r.id}.wav" and r.mel == f"mels/{r.id}.npy"  # relative to DATA_DIR
        assert r.tts == "festival" and r.fit == "pad" and r.stretch == 1.0 and r.speech_start == 0
        assert 1.5 < r.speech_seconds < 5.0 and r.num_samples == CANVAS_SAMPLES
    config = json.loads((festival_dataset / BUILD_CONFIG).read_text())
    assert config["tts"] == "festival" and config["fit"]["mode"] == "pad" and config["num_items"] == 30
    assert config["mel"]["n_mels"] == 256 and config["canvas_samples"] == CANVAS_SAMPLES
    assert (festival_dataset / TEXTS).read_text("utf-8").splitlines() == lines
    assert sorted(p.name for p in (festival_dataset / "mels").iterdir()) == sorted(f"{r.id}.npy" for r in records)


def test_stored_mels_are_the_log_mel_of_the_stored_audio(festival_dataset):
    torch.set_num_threads(1)  # the builder's workers compute single-threaded
    try:
        for record in read_manifest(festival_dataset):
            stored = np.load(festival_dataset / record.mel, allow_pickle=False)
            assert stored.dtype == np.float16 and stored.shape == (256, 1024)
            audio = load_audio(festival_dataset / record.audio)
            assert audio.shape == (CANVAS_SAMPLES,)
            expected = log_mel(audio).numpy().astype(np.float16)
            assert np.array_equal(stored, expected), record.id
            # speech sits at the start of the canvas; the rest is digital silence, the peak 0.95
            n = round(record.speech_seconds * 16000)
            assert audio[n + 1 :].abs().max() == 0 and audio[: n // 2].abs().max() > 0.1
            assert audio.abs().max() == pytest.approx(0.95, abs=1e-3)
            assert torch.equal(load_mel(festival_dataset, record), torch.from_numpy(stored.astype(np.float32)))
            assert torch.equal(load_record_audio(festival_dataset, record), audio)
    finally:
        torch.set_num_threads(min(2, os.cpu_count() or 1))


def test_phonemes_and_ids_round_trip(festival_dataset):
    for record in read_manifest(festival_dataset):
        assert record.normalized == normalize_text(record.text)
        assert record.phonemes == prepare_text(record.text).phonemes
        assert record.phoneme_ids == phonemes_to_ids(record.phonemes) and record.phoneme_ids[0] == 0
        assert ids_to_phonemes(record.phoneme_ids) == record.phonemes


def test_rerun_skips_finished_items(festival_dataset, sentences_file, capsys):
    before = digest(festival_dataset)
    assert main(["--texts", str(sentences_file), "--out", str(festival_dataset), "--workers", "2", "--quiet"]) == 0
    assert "built 0, skipped 30 (already there), failed 0" in capsys.readouterr().out
    assert digest(festival_dataset) == before


def test_a_folder_built_with_other_settings_is_refused(festival_dataset, sentences_file, capsys):
    before = digest(festival_dataset)
    args = ["--texts", str(sentences_file), "--out", str(festival_dataset), "--seed", "1", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "seed: 0 there, 1 now" in err
    assert digest(festival_dataset) == before


# ---------------------------------------------------------------- interrupted and sharded builds


def test_killed_build_resumes_to_the_same_dataset(festival_dataset, sentences_file, tmp_path):
    out = tmp_path / "killed"
    args = ["--texts", str(sentences_file), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "speakimg.data.build", *args], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list((out / "records").glob("*.json")) if (out / "records").is_dir() else []
            if len(done) >= 5:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = list((out / "records").glob("*.json"))
    assert 5 <= len(done) < 30, "the build was not interrupted mid-way"
    # nothing half-written: every file under its final name is complete
    for wav in (out / "audio").glob("*.wav"):
        assert load_audio(wav).shape == (CANVAS_SAMPLES,)
    for mel in (out / "mels").glob("*.npy"):
        assert np.load(mel, allow_pickle=False).shape == (256, 1024)
    assert main(args) == 0  # resume (1 worker; the reference used 2)
    assert digest(out) == digest(festival_dataset)


def test_shards_merge_into_the_unsharded_dataset(festival_dataset, sentences_file, tmp_path, capsys):
    cmd = [sys.executable, "-m", "speakimg.data.build", "--texts", str(sentences_file), "--workers", "1", "--quiet"]
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    procs = [subprocess.Popen([*cmd, "--out", str(d), "--shard", f"{i}/2"], stdout=subprocess.PIPE, text=True)
             for i, d in enumerate(shards)]  # fmt: skip
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert "built 15" in outputs[0] and "15 item(s) not built yet" in outputs[0]
    assert len(read_manifest(shards[0])) == 15 and len(read_manifest(shards[1])) == 15
    merged = tmp_path / "merged"
    assert main(["--merge", str(shards[0]), str(shards[1]), "--out", str(merged)]) == 0
    assert "copied 30, skipped 0 (already there), failed 0" in capsys.readouterr().out
    assert digest(merged) == digest(festival_dataset)
    assert main(["--merge", "--out", str(merged)]) == 0  # re-indexing a complete folder changes nothing
    assert "copied 0, skipped 30 (already there)" in capsys.readouterr().out
    assert digest(merged) == digest(festival_dataset)


def test_random_placement_is_deterministic_across_workers(tmp_path):
    sentences = ["A tired boy chewed cheese while the choir sang.", "Thin wet leaves fell softly on the path."]
    config = BuildConfig(tts="espeak", fit=CanvasFit(placement="random"), seed=3)
    a = build_dataset(sentences, tmp_path / "a", config, workers=0, progress=False)
    b = build_dataset(sentences, tmp_path / "b", config, workers=2, progress=False)
    assert a.built == b.built == 2
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    starts = [r.speech_start for r in read_manifest(tmp_path / "a")]
    assert all(0 < s < SPEECH_SAMPLES // 2 for s in starts) and starts[0] != starts[1]
    other = build_dataset(
        sentences, tmp_path / "c", BuildConfig(tts="espeak", fit=config.fit, seed=4), 0, progress=False
    )
    assert other.built == 2 and [r.speech_start for r in read_manifest(tmp_path / "c")] != starts


# ---------------------------------------------------------------- bad input


def test_bad_sentences_become_error_records(tmp_path, capsys):
    texts = tmp_path / "bad.txt"
    long = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 3)
    texts.write_text(
        "A tired boy chewed cheese while the choir sang.\n"
        "\n"
        "Привет, как дела у тебя сегодня?\n"
        "...\n"
        f"{long}\n"
        "A tired boy chewed cheese while the choir sang.\n",
        "utf-8",
    )
    out = tmp_path / "bad"
    assert main(["--texts", str(texts), "--out", str(out), "--workers", "0", "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "built 1, skipped 0 (already there), failed 4" in summary and "1 duplicate" in summary
    records = read_manifest(out, status=None)
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert [r.status for r in records] == ["ok", "error", "error", "error", "error"]
    errors = [r.error for r in records[1:]]
    assert "line 2 is empty" in errors[0]
    assert "not English" in errors[1] and "Привет" in errors[1]
    assert "no phonemes" in errors[2] and "'...'" in errors[2]
    assert "s of speech at natural speed; the canvas holds 10 s" in errors[3] and "quick brown fox" in errors[3]
    assert records[4].phonemes  # the too-long sentence kept its phonemes for inspection
    for line in ("line 2:", "line 3:", "line 4:", "line 5:"):
        assert line in summary
    assert not any((out / "audio").glob("*.wav.*")) and len(list((out / "mels").glob("*.npy"))) == 1
    # a rerun skips the finished item and retries the failed ones (e.g. after installing an engine)
    assert main(["--texts", str(texts), "--out", str(out), "--workers", "0", "--quiet"]) == 0
    assert "built 0, skipped 1 (already there), failed 4" in capsys.readouterr().out


def test_a_missing_engine_gives_error_records_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # import torchaudio -> ImportError (also in workers)
    texts = tmp_path / "t.txt"
    texts.write_text("One small sentence here.\nAnother small sentence there.\n", "utf-8")
    out = tmp_path / "taco"
    assert main(["--texts", str(texts), "--out", str(out), "--tts", "tacotron2", "--workers", "1", "--quiet"]) == 1
    summary = capsys.readouterr().out
    assert "built 0, skipped 0 (already there), failed 2" in summary
    assert "MissingDependencyError x2" in summary and "pip install 'speakimg[tacotron2]'" in summary
    records = read_manifest(out, status=None)
    assert len(records) == 2 and all(r.status == "error" and "speakimg[tacotron2]" in r.error for r in records)
    assert records[0].phonemes  # the text was prepared before the engine was needed
    assert not list((out / "mels").iterdir())


def test_unknown_engine_and_bad_shard_are_usage_errors(tmp_path, capsys):
    texts = tmp_path / "t.txt"
    texts.write_text("Hello there.\n", "utf-8")
    with pytest.raises(SystemExit):
        main(["--texts", str(texts), "--out", str(tmp_path / "x"), "--tts", "nope"])
    with pytest.raises(SystemExit):
        main(["--texts", str(texts), "--out", str(tmp_path / "x"), "--shard", "2/2"])
    assert main(["--texts", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "no such sentence file" in capsys.readouterr().err


def test_transformers_engine_build_with_native_stretch(tmp_path, tiny_vits):
    out = tmp_path / "vits"
    args = ["--texts", str(tmp_path / "t.txt"), "--out", str(out), "--tts", "transformers", "--tts-model",
            str(tiny_vits), "--fit", "stretch", "--target-fill", "0.5", "--workers", "0", "--quiet"]  # fmt: skip
    (tmp_path / "t.txt").write_text("Seven bright kites float above the quiet harbor.\n", "utf-8")
    assert main(args) == 0
    (record,) = read_manifest(out)
    assert record.tts == f"transformers:{tiny_vits}" and record.fit == "stretch"
    assert record.stretch_method in ("native", "none") and record.num_samples == CANVAS_SAMPLES
    config = json.loads((out / BUILD_CONFIG).read_text())
    assert config["tts_options"] == {"model": str(tiny_vits)}


# ---------------------------------------------------------------- planning


def test_plan_items_ids_split_and_duplicates():
    lines = [f"Sentence number {i} is here." for i in range(40)] + ["", "Sentence number 3 is here."]
    items, duplicates = plan_items(lines, seed=0, val_fraction=0.1)
    assert duplicates == 1 and len(items) == 41
    assert items[40].id == "empty-line-000041" and items[40].error
    assert [i.id for i in items[:40]] == [hashlib.sha256(line.encode()).hexdigest()[:16] for line in lines[:40]]
    assert sum(i.split == "val" for i in items) == 4
    again, _ = plan_items(list(reversed(lines[:40])), seed=0, val_fraction=0.1)  # order does not matter
    assert {i.id for i in again if i.split == "val"} == {i.id for i in items if i.split == "val"}
    other, _ = plan_items(lines, seed=1, val_fraction=0.1)
    assert {i.id for i in other if i.split == "val"} != {i.id for i in items if i.split == "val"}
    assert sum(i.split == "val" for i in plan_items(lines[:3], val_fraction=0.01)[0]) == 1  # at least one
    assert sum(i.split == "val" for i in plan_items(lines[:3], val_fraction=0.0)[0]) == 0
