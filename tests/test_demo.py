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
    assert (out / "summary.txt").read_text() == text + "\n"

    # the real part: the TTS sentence, its spectrogram, the imprint, heard by the real Whisper tiny.en
    real = json.loads((out / "real" / "real.json").read_text())
    for name in ("tts.wav", "imprint.wav"):
        info = sf.info(out / "real" / name)
        assert (info.samplerate, info.frames) == (16000, 158720)
    for name in ("tts_spec.png", "imprint_spec.png"):
        with Image.open(out / "real" / name) as image:
            assert image.size == (992, 256)
    # the imprint darkens the real spectrogram where the picture is dark, never brightens it
    with Image.open(out / "real" / "tts_spec.png") as a, Image.open(out / "real" / "imprint_spec.png") as b:
        assert a.tobytes() != b.tobytes()
    sentence = real["sentence"]
    assert real["tts"]["transcript"] == _independent_transcript(out / "real" / "tts.wav")
    assert real["tts"]["wer"] <= 0.35, real["tts"]  # festival, one sentence: measured 0 to 11 %
    # the random-weight sample is noise: the same ears must reject it (the metric can fail)
    assert real["sample"]["wer"] >= max(0.8, real["tts"]["wer"] + 0.5), real["sample"]
    assert set(real["dataset"]) == {"samples", "wer_stored_audio", "wer_griffin_lim"}
    assert real["dataset"]["samples"] == 6 and real["dataset"]["wer_stored_audio"] <= 0.25
    assert "WER tts (tiny.en)" in text and sentence in text


def _independent_transcript(path) -> str:
    """faster-whisper's own loop on the real tiny.en (no speakimg.metrics code)."""
    from faster_whisper import WhisperModel

    from speakimg.testing.real import real_whisper_tiny_en

    model = WhisperModel(str(real_whisper_tiny_en()), device="cpu", compute_type="int8")
    audio, _ = sf.read(path, dtype="float32")
    segments, _ = model.transcribe(audio, language="en", beam_size=1, temperature=0.0, without_timestamps=True,
                                   condition_on_previous_text=False, vad_filter=False)  # fmt: skip
    return "".join(s.text for s in segments).strip()
