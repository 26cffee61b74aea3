"""The dataset report: statistics equal to the manifest's, the PNG grid, Whisper WERs on the real code path."""

from __future__ import annotations

import json
import statistics

import pytest
from PIL import Image

from speakimg.data import read_manifest
from speakimg.data.report import dataset_report, format_report, main
from speakimg.metrics import word_error_rate
from speakimg.text import phoneme_coverage


def test_word_error_rate_normalises_like_whisper():
    # word_error_rate(predictions, references), as torchmetrics
    assert word_error_rate(["the cat sat on mat"], ["the cat sat on the mat"]) == pytest.approx(1 / 6)
    assert word_error_rate(["hello world"], ["Hello, World!"]) == 0.0
    assert word_error_rate(["he paid five dollars for it"], ["He paid $5 for it."]) == 0.0
    assert word_error_rate(["a b c", "x"], ["a b c", "d e f g"]) == pytest.approx(4 / 7)  # corpus-level
    with pytest.raises(ValueError, match="as many"):
        word_error_rate([], ["a"])


@pytest.mark.slow
def test_report_of_a_festival_build(festival_dataset, tiny_whisper, tmp_path):
    out = tmp_path / "report"
    report = dataset_report(festival_dataset, whisper=str(tiny_whisper), samples=1, examples=4, out=out, gl_iters=4)
    records = read_manifest(festival_dataset)
    seconds = [r.speech_seconds for r in records]
    assert report["items"] == {"ok": 30, "failed": 0, "train": 28, "val": 2, "failures_by_kind": {}}
    assert report["speech_seconds"]["mean"] == pytest.approx(statistics.fmean(seconds), abs=1e-4)
    assert report["speech_seconds"]["max"] == pytest.approx(max(seconds), abs=1e-4)
    assert report["canvas_fill"]["mean"] == pytest.approx(statistics.fmean(seconds) / 10, abs=1e-4)
    assert report["stretch"]["methods"] == {"none": 30} and report["speech_start_seconds"]["max"] == 0
    coverage = phoneme_coverage(r.phonemes for r in records)
    assert report["phonemes"]["coverage"] == coverage.to_dict()
    assert report["phonemes"]["unknown_ids"] == 0

    grid = Image.open(out / "spectrograms.png")
    assert grid.format == "PNG" and grid.size[0] == 1200 and grid.size[1] == pytest.approx(4 * 160, abs=2)
    assert Image.open(out / "durations.png").format == "PNG"

    intel = report["intelligibility"]
    assert intel["samples"] == 1 and len(intel["transcripts"]) == 1
    by_id = {r.id: r for r in records}
    refs = [by_id[t["id"]].text for t in intel["transcripts"]]
    assert [t["text"] for t in intel["transcripts"]] == refs
    # the reported WERs are the WERs of the reported transcripts (a random tiny Whisper: garbage, real path)
    assert intel["wer_stored_audio"] == pytest.approx(
        word_error_rate([t["stored_audio"] for t in intel["transcripts"]], refs)
    )
    assert intel["wer_griffin_lim"] == pytest.approx(
        word_error_rate([t["griffin_lim"] for t in intel["transcripts"]], refs)
    )
    assert intel["wer_stored_audio"] >= 0.0 and intel["wer_griffin_lim"] >= 0.0

    saved = json.loads((out / "report.json").read_text())
    assert saved["intelligibility"]["wer_stored_audio"] == intel["wer_stored_audio"]
    markdown = (out / "report.md").read_text()
    assert markdown == format_report(saved) and "| stored audio |" in markdown and "Griffin-Lim" in markdown


@pytest.mark.slow
def test_report_cli_without_whisper(festival_dataset, tmp_path, capsys):
    main([str(festival_dataset), "--whisper", "none", "--examples", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "30 ok (28 train, 2 val), 0 failed" in printed and "Phoneme coverage" in printed
    assert "intelligibility" not in json.loads((tmp_path / "report.json").read_text())
