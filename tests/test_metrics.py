"""Whisper WER and windowed CLIP score against independent computations, offline on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.text import WordErrorRate

from speakimg.errors import AudioError, ModelNotFoundError, TextError
from speakimg.metrics import WhisperWER, WindowedCLIPScore, image_windows, normalize_transcript, word_error_rate

REFS = ["The quick brown fox jumps over 2 lazy dogs.", "Seven bright kites float above the harbor!"]
HYPS = ["the quick brown fox jumped over two lazy dogs", "seven bright kites flowed above a harbour"]


def test_normalisation_makes_case_punctuation_numbers_and_spelling_comparable():
    assert normalize_transcript("The Fox, jumps!") == normalize_transcript("the fox jumps")
    assert normalize_transcript("harbour") == normalize_transcript("harbor")
    assert normalize_transcript("2 dogs") == normalize_transcript("two dogs")


def test_word_error_rate_equals_torchmetrics_after_normalisation():
    expected = WordErrorRate()([normalize_transcript(h) for h in HYPS], [normalize_transcript(r) for r in REFS])
    assert word_error_rate(HYPS, REFS) == pytest.approx(float(expected))
    # by hand: "jumps"->"jumped" (1 of 9 words); "float"->"flowed", "the"->"a" (2 of 7) => 3 / 16
    assert word_error_rate(HYPS, REFS) == pytest.approx(3 / 16)
    assert word_error_rate(REFS, REFS) == 0.0


def test_match_error_rate_by_hand_and_bounded_under_hallucination():
    from speakimg.metrics import match_error_rate

    # the same 3 substitutions as above, no insertions or deletions: 3 errors / (13 hits + 3) aligned words
    assert match_error_rate(HYPS, REFS) == pytest.approx(3 / 16)
    assert match_error_rate(REFS, REFS) == 0.0
    # a hallucinated tail: 2 words right, 40 insertions: WER = 40 / 2, MER = 40 / max(2, 42) (by hand)
    hallucinated, reference = ["the fox" + " you" * 40], ["The fox."]
    assert word_error_rate(hallucinated, reference) == pytest.approx(20.0)
    assert match_error_rate(hallucinated, reference) == pytest.approx(40 / 42)
    # corpus-level: edits summed over clips (0 + 40) over the summed max lengths (2 + 42) of the clips
    assert match_error_rate([*hallucinated, "a dog"], [*reference, "A dog!"]) == pytest.approx(40 / 44)
    with pytest.raises(ValueError, match="as many predictions"):
        match_error_rate(["a"], [])


def test_whisper_wer_accumulates_corpus_level_wer(monkeypatch):
    metric = WhisperWER("unused-model-name")
    queue = list(HYPS)
    monkeypatch.setattr(metric, "transcribe", lambda audios: [queue.pop(0) for _ in audios])
    audio = np.zeros(16000, np.float32)
    metric.update([audio], REFS[:1])
    metric.update([audio], REFS[1:])
    assert float(metric.compute()) == pytest.approx(3 / 16)  # errors and words summed, not WERs averaged
    assert metric.transcripts == list(zip(REFS, HYPS, strict=True))
    metric.reset()
    assert metric.transcripts == [] and float(metric.total) == 0


def test_whisper_wer_transcribes_offline_with_the_tiny_checkpoint(tiny_whisper):
    metric = WhisperWER(str(tiny_whisper), batch_size=2)
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(16000 * s).astype(np.float32) for s in (2, 10)]
    audios.append(torch.from_numpy(0.1 * rng.standard_normal(16000 * 31).astype(np.float32)))  # > 30 s path
    metric.update(audios, ["one two three", "four five six seven", "eight nine"])
    hyps = [h for _, h in metric.transcripts]
    assert len(hyps) == 3 and all(isinstance(h, str) and "<|" not in h for h in hyps)
    refs = [normalize_transcript(r) for r in ["one two three", "four five six seven", "eight nine"]]
    expected = WordErrorRate()([normalize_transcript(h) for h in hyps], refs)
    assert float(metric.compute()) == pytest.approx(float(expected))
    # deterministic: the same audio gives the same transcripts
    assert metric.transcribe(audios[:2]) == hyps[:2]
    # batched decoding equals one-at-a-time decoding
    single = WhisperWER(str(tiny_whisper), batch_size=1)
    assert single.transcribe(audios[:2]) == hyps[:2]


def test_whisper_wer_errors():
    metric = WhisperWER("not-a-whisper-model")
    with pytest.raises(ValueError, match="2 audio clips but 1 reference"):
        metric.update([np.zeros(10), np.zeros(10)], ["a"])
    with pytest.raises(TextError, match="empty after normalisation"):
        metric.update([np.zeros(10)], ["?!"])
    with pytest.raises(ModelNotFoundError, match="not-a-whisper-model"):
        metric.transcribe([np.zeros(1600, np.float32)])
    with pytest.raises(AudioError, match="NaN"):
        WhisperWER("x").transcribe([np.full(100, np.nan, np.float32)])


def test_image_windows_match_the_its_protocol():
    image = torch.arange(3 * 256 * 1024, dtype=torch.float32).reshape(3, 256, 1024)
    windows = image_windows(image)
    assert windows.shape == (25, 3, 256, 256)
    assert torch.equal(windows[3], image[:, :, 96:352])
    assert image_windows(image[:, :, :992]).shape[0] == 24
    with pytest.raises(ValueError, match="smaller than"):
        image_windows(image[:, :, :100])


def _independent_windowed_clip(model, processor, image_uint8, prompt):
    scores = []
    text = processor(text=[prompt], return_tensors="pt", padding=True)
    with torch.no_grad():
        t = model.text_projection(model.text_model(**text).pooler_output)
        for start in range(0, image_uint8.shape[-1] - 256 + 1, 32):
            window = image_uint8[:, :, start : start + 256]
            pixels = processor(images=[window], return_tensors="pt")["pixel_values"]
            v = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
            scores.append(100 * torch.nn.functional.cosine_similarity(v, t).item())
    return max(float(np.mean(scores)), 0.0)


def test_windowed_clip_score_equals_an_independent_window_loop(tiny_clip):
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    torch.manual_seed(0)
    images = torch.rand(3, 3, 256, 1024)
    prompts = ["a painting of castle towers", "a kitten", "a tiger, grayscale"]
    metric = WindowedCLIPScore(str(tiny_clip))
    scores = metric(images, prompts)
    assert scores.shape == (3,)
    uint8 = (images * 255 + 0.5).to(torch.uint8)
    expected = [_independent_windowed_clip(model, processor, uint8[i], prompts[i]) for i in range(3)]
    assert scores.tolist() == pytest.approx(expected, abs=1e-3)
    assert (scores >= 0).all() and len({round(s, 4) for s in scores.tolist()}) > 1
    # channels-last numpy input gives the same scores
    np_scores = metric(uint8.permute(0, 2, 3, 1).numpy(), prompts)
    assert np_scores.tolist() == pytest.approx(scores.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="3 images but 2 prompts"):
        metric(images, prompts[:2])


def test_clap_score_equals_an_independent_computation(tiny_clap):
    import librosa
    from transformers import ClapModel, ClapProcessor

    from speakimg.metrics import CLAPScore

    rng = np.random.default_rng(1)
    audios = [0.3 * rng.standard_normal(163840).astype(np.float32), 0.1 * rng.standard_normal(16000).astype(np.float32)]
    prompts = ["a dog barking", "church bells ringing"]
    scores = CLAPScore(str(tiny_clap))(audios, prompts)
    assert scores.shape == (2,) and (scores > 0).all() and (scores <= 100).all()  # tiny model: 17.6, 2.3

    model, processor = ClapModel.from_pretrained(tiny_clap).eval(), ClapProcessor.from_pretrained(tiny_clap)
    expected = []
    for audio, prompt in zip(audios, prompts, strict=True):
        x = librosa.util.normalize(librosa.resample(audio, orig_sr=16000, target_sr=48000))[:480000]
        inputs = processor(text=[prompt], audio=[x], sampling_rate=48000, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model(**inputs)
        expected.append(max(100 * float(out.logits_per_audio[0, 0] / model.logit_scale_a.exp()), 0.0))
    assert scores.tolist() == pytest.approx(expected, abs=1e-3)
