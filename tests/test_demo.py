"""The README's demo (``python -m speakimg.demo``) runs the whole chain offline; here with fewer steps."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from conftest import requires_festival
from PIL import Image

from speakimg.media import probe_duration


@requires_festival
@pytest.mark.slow
def test_the_demo_runs_the_whole_chain_offline(tmp_path, tiny_root):
    from speakimg.demo import run

    out = tmp_path / "demo"
    summary = run(out, num_sentences=6, speech_steps=4, vocoder_steps=8, sample_steps=3, workers=1)

    with Image.open(out / "img.png") as img, Image.open(out / "spec.png") as spec:
        assert img.size == spec.size == (992, 256) and img.mode == "RGB"
    info = sf.info(out / "audio.wav")
    assert (info.samplerate, info.frames) == (16000, 158720)
    assert probe_duration(out / "video.mp4") == pytest.approx(9.92, abs=0.05)
    record = json.loads((out / "sample.json").read_text())
    assert record["settings"]["audio_model"] == str(out / "speech_model")
    assert record["settings"]["vocoder"] == str(out / "vocoder_model")
    # the trained speech model was exported and the W&B offline run holds the callback's samples
    assert (out / "speech_model" / "speakimg_speech.json").is_file()
    assert (out / "vocoder_model" / "vocoder.pt").is_file() and (out / "vocoder_model" / "config.json").is_file()
    (run_dir,) = (out / "speech" / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("files/media/images/samples/combined/spectrogram_*.png"))
    assert list(run_dir.glob("files/media/audio/samples/audio_only/audio_*.wav"))
    assert len(list((out / "data" / "mels").glob("*.npy"))) == 6
    text = summary.format()
    assert "vocoder cycle error" in text and "speech val loss" in text and str(run_dir) in text
