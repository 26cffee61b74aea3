"""Word error rate of Whisper's transcripts of generated speech against the target sentences.

Two backends run the same decoding (greedy: beam 1, temperature 0, no timestamps, English, no
conditioning on previous text) and share one normalisation and one WER computation:

- ``faster`` (the default for model names): faster-whisper / CTranslate2, int8 on CPU and float16 on
  GPU. Takes a model name (``tiny.en`` ... ``large-v3``, ``distil-*``), a CTranslate2 folder
  (``model.bin`` + ``config.json``; ``real:whisper-tiny.en``) or a hub id of a converted model. Clips
  up to 30 s are decoded in batches, each clip its own chunk of faster-whisper's
  ``BatchedInferencePipeline``; longer clips go through ``WhisperModel.transcribe``.
- ``openai``: openai-whisper, a model name or a ``{"dims", "model_state_dict"}`` checkpoint file
  (``tiny:whisper``); clips up to 30 s are batched through ``whisper.decode``, longer ones use
  ``model.transcribe``.

``openai:<name>`` / ``faster:<name>`` force a backend. Transcript and reference both go through
Whisper's ``EnglishTextNormalizer`` before torchmetrics' ``WordErrorRate``. Why ``faster`` is the
default (same WER, several times faster on CPU) is measured in ``benchmarks/whisper_backends.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.text import WordErrorRate

from speakimg.errors import AudioError, ModelNotFoundError, TextError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "WhisperWER",
    "load_whisper",
    "match_error_rate",
    "normalize_transcript",
    "whisper_backend",
    "word_error_rate",
]

WHISPER_SAMPLE_RATE = 16000
MAX_BATCHED_SAMPLES = 30 * WHISPER_SAMPLE_RATE
"""Clips up to Whisper's 30 s window are decoded in batches; longer ones are transcribed one by one."""
BACKENDS = ("faster", "openai")
DEFAULT_BACKEND = "faster"
"""The backend of a plain model name: faster-whisper (same WER as openai-whisper, several times faster on CPU)."""
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>")


def _model_names(backend: str) -> list[str]:
    if backend == "faster":
        from faster_whisper import available_models
    else:
        from whisper import available_models
    return list(available_models())


def whisper_backend(name_or_path: str) -> tuple[str, str]:
    """``(backend, model)`` for a Whisper reference, ``model`` expanded to a local path where it is one.

    ``openai:<x>`` / ``faster:<x>`` force a backend; otherwise a CTranslate2 folder (``model.bin``) is
    ``faster``, a checkpoint file ``openai``, a hub id ``org/name`` ``faster``, and a model name
    :data:`DEFAULT_BACKEND` (or the only backend that knows it).
    """
    from speakimg.hub import expand_reference

    name, forced = str(name_or_path), None
    for backend in BACKENDS:
        if name.startswith(f"{backend}:") and not Path(name).expanduser().exists():
            forced, name = backend, name[len(backend) + 1 :]
    name = expand_reference(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelNotFoundError(
                f"{path}: not a CTranslate2 Whisper folder (no model.bin). Pass a folder with model.bin + "
                "config.json (faster-whisper), an openai-whisper checkpoint file, or a model name"
            )
        backend = "faster"
    elif path.is_file():
        backend = "openai"
    else:
        names = {b: _model_names(b) for b in BACKENDS}
        if forced == "faster" and "/" in name:  # a converted model on the hub (org/name)
            return forced, name
        candidates = [forced] if forced else [DEFAULT_BACKEND, *(b for b in BACKENDS if b != DEFAULT_BACKEND)]
        known = [b for b in candidates if name in names[b]]
        if not known and forced is None and re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            return "faster", name
        if not known:
            listed = "; ".join(f"{b}: {', '.join(names[b])}" for b in candidates)
            raise ModelNotFoundError(
                f"{name_or_path!r} is neither a local Whisper model (a CTranslate2 folder or a checkpoint file) "
                f"nor a model name ({listed}). Offline, real:whisper-tiny.en is a real tiny.en"
            )
        return known[0], name
    if forced is not None and forced != backend:
        kind = "a CTranslate2 folder" if backend == "faster" else "an openai-whisper checkpoint file"
        raise ModelNotFoundError(f"{name_or_path!r}: {path} is {kind}, which the {forced} backend cannot load")
    return backend, str(path)


def load_whisper(name_or_path: str = "base.en", device: str | torch.device | None = None):
    """A Whisper model of either backend (:func:`whisper_backend`) on ``device`` (default: CUDA if available).

    openai: ``whisper.load_model``; faster: ``faster_whisper.WhisperModel`` with int8 on CPU (as many
    threads as torch uses) and float16 on CUDA.
    """
    from speakimg.runtime import select_device

    backend, model = whisper_backend(name_or_path)
    device = select_device(device)
    try:
        if backend == "openai":
            import whisper

            return whisper.load_model(model, device=device)
        from faster_whisper import WhisperModel

        cuda = device.type == "cuda"
        return WhisperModel(
            model,
            device=device.type,
            device_index=device.index or 0,
            compute_type="float16" if cuda else "int8",
            cpu_threads=0 if cuda else torch.get_num_threads(),
        )
    except Exception as error:  # download failure offline, corrupt file
        if backend == "openai" and Path(model).is_file():  # read with torch.load(weights_only=True): say why
            from speakimg.io import torch_load_error

            raise torch_load_error(model, error, "Whisper checkpoint") from None
        where = (
            "the path of a downloaded checkpoint (~/.cache/whisper/<name>.pt)"
            if backend == "openai"
            else "a local CTranslate2 folder (model.bin + config.json), e.g. real:whisper-tiny.en"
        )
        raise ModelNotFoundError(
            f"cannot load Whisper model '{name_or_path}' with the {backend} backend ({type(error).__name__}: "
            f"{error}). Offline, pass {where}."
        ) from error


_NORMALIZER = None


def normalize_transcript(text: str) -> str:
    """Whisper's English normaliser: case, punctuation, numbers and spellings made comparable."""
    global _NORMALIZER
    if _NORMALIZER is None:
        from whisper.normalizers import EnglishTextNormalizer

        _NORMALIZER = EnglishTextNormalizer()
    return " ".join(_NORMALIZER(text).split())


def word_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER after normalisation of both sides (torchmetrics ``WordErrorRate``)."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (> 0), got {len(predictions)} and {len(references)}")
    from torchmetrics.functional.text import word_error_rate as functional_wer

    # the functional form: a local computation (a Metric's compute() would sync across DDP processes)
    return float(functional_wer([normalize_transcript(p) for p in predictions], [_reference(r) for r in references]))


def match_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus match error rate after the same normalisation (torchmetrics ``MatchErrorRate``): word edits
    divided by the summed ``max(reference words, transcript words)`` of each clip. Unlike WER it stays in
    [0, 1] when a recogniser hallucinates long transcripts of noise (WER's insertions grow without bound)."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (> 0), got {len(predictions)} and {len(references)}")
    from torchmetrics.functional.text import match_error_rate as functional_mer

    return float(functional_mer([normalize_transcript(p) for p in predictions], [_reference(r) for r in references]))


def _reference(text: str) -> str:
    normalized = normalize_transcript(text)
    if not normalized:
        raise TextError(f"reference sentence {text!r} is empty after normalisation: WER is undefined")
    return normalized


def _as_array(audio: np.ndarray | torch.Tensor, index: int) -> np.ndarray:
    x = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float32)
    x = np.squeeze(x).astype(np.float32)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"audio #{index}: expected a mono 16 kHz array [T], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"audio #{index}: NaN or infinite samples")
    return x


def _clean(text: str) -> str:
    return " ".join(_SPECIAL_TOKEN.sub(" ", text).split())


def _transcribe_openai(model, arrays: list[np.ndarray], batch_size: int, language: str) -> list[str]:
    """openai-whisper: clips up to 30 s batched through ``whisper.decode``, longer ones ``model.transcribe``."""
    import whisper

    device = next(model.parameters()).device
    texts: list[str | None] = [None] * len(arrays)
    options = whisper.DecodingOptions(
        language=language, temperature=0.0, without_timestamps=True, fp16=device.type == "cuda"
    )
    short = [i for i, a in enumerate(arrays) if a.shape[0] <= MAX_BATCHED_SAMPLES]
    for start in range(0, len(short), batch_size):
        chunk = short[start : start + batch_size]
        mels = torch.stack(
            [
                whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(arrays[i])), n_mels=model.dims.n_mels)
                for i in chunk
            ]
        ).to(device)
        for i, result in zip(chunk, whisper.decode(model, mels, options), strict=True):
            texts[i] = result.text
    for i, array in enumerate(arrays):
        if texts[i] is None:
            texts[i] = model.transcribe(
                array, language=language, temperature=0.0, fp16=device.type == "cuda", condition_on_previous_text=False
            )["text"]
    return [_clean(t) for t in texts]


def _transcribe_faster(model, arrays: list[np.ndarray], batch_size: int, language: str) -> list[str]:
    """faster-whisper: clips up to 30 s batched by ``BatchedInferencePipeline``, longer ones ``model.transcribe``.

    The pipeline batches the chunks of one recording; a batch of clips is laid out as one recording, each
    clip at its own whole second and named as a chunk by ``clip_timestamps`` (no voice detection), so
    every clip is decoded exactly as ``model.transcribe`` decodes it alone.
    """
    from faster_whisper import BatchedInferencePipeline

    language = language if model.model.is_multilingual else "en"
    options = {"language": language, "beam_size": 1, "temperature": 0.0, "without_timestamps": True}
    sr = WHISPER_SAMPLE_RATE
    texts: list[str | None] = [None] * len(arrays)
    pipeline = BatchedInferencePipeline(model)
    short = [i for i, a in enumerate(arrays) if a.shape[0] <= MAX_BATCHED_SAMPLES]
    for first in range(0, len(short), batch_size):
        chunk = short[first : first + batch_size]
        seconds = [-(-arrays[i].shape[0] // sr) + 1 for i in chunk]  # each clip rounded up, plus 1 s of silence
        offsets = np.cumsum([0, *seconds[:-1]])
        audio = np.zeros(sum(seconds) * sr, np.float32)
        stamps = []
        for i, offset in zip(chunk, offsets, strict=True):
            start = int(offset) * sr
            audio[start : start + arrays[i].shape[0]] = arrays[i]
            # half a sample past each edge: faster-whisper floors seconds * 16000 to sample indices
            stamps.append({"start": (start + 0.5) / sr, "end": (start + arrays[i].shape[0] + 0.5) / sr})
        segments, _ = pipeline.transcribe(audio, clip_timestamps=stamps, batch_size=batch_size, **options)
        by_second: dict[int, list[str]] = {}
        for segment in segments:  # a chunk's segments carry its offset in 10 ms frames
            by_second.setdefault(round(segment.seek / model.frames_per_second), []).append(segment.text)
        for i, offset in zip(chunk, offsets, strict=True):
            texts[i] = "".join(by_second.get(int(offset), []))
    for i, array in enumerate(arrays):
        if texts[i] is None:
            segments, _ = model.transcribe(array, vad_filter=False, condition_on_previous_text=False, **options)
            texts[i] = "".join(segment.text for segment in segments)
    return [_clean(t) for t in texts]


class WhisperWER(Metric):
    """Transcribe 16 kHz audio with Whisper and accumulate the word error rate against references.

    >>> wer = WhisperWER("real:whisper-tiny.en")            # a name, a CTranslate2 folder, a checkpoint...
    >>> wer.update([audio1, audio2], ["first sentence", "second sentence"])
    >>> wer.compute(), wer.transcripts                      # doctest: +SKIP

    ``model`` is anything :func:`whisper_backend` accepts (``openai:<name>`` / ``faster:<name>`` force
    a backend). Whisper runs on the metric's device (``device=`` or ``.to(...)``; CPU by default). The
    error counts are metric states (summed across DDP processes); the Whisper model is not part of the
    state dict. ``transcripts`` keeps (reference, transcript) pairs of this process.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        model: str = "base.en",
        batch_size: int = 16,
        language: str = "en",
        device: str | torch.device | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = str(model)
        self.batch_size = batch_size
        self.language = language
        self._whisper = None  # loaded lazily, kept out of the state dict
        self._wer = WordErrorRate(sync_on_compute=False)  # per-batch counter; the states below are synced
        self.add_state("errors", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.transcripts: list[tuple[str, str]] = []
        if device is not None:
            self.to(device)

    @property
    def whisper_model(self):
        """The loaded model: ``whisper.model.Whisper`` (openai) or ``faster_whisper.WhisperModel`` (faster)."""
        if self._whisper is None:
            object.__setattr__(self, "_whisper", load_whisper(self.model_name, self.device))
        return self._whisper

    @property
    def backend(self) -> str:
        """``faster`` or ``openai``: which library transcribes (:func:`whisper_backend`)."""
        return whisper_backend(self.model_name)[0]

    @torch.no_grad()
    def transcribe(self, audios: Sequence[np.ndarray | torch.Tensor]) -> list[str]:
        """Raw Whisper transcripts of 16 kHz mono clips (batched for clips up to 30 s)."""
        arrays = [_as_array(a, i) for i, a in enumerate(audios)]  # validate before loading the model
        model = self.whisper_model
        if isinstance(model, torch.nn.Module):
            return _transcribe_openai(model, arrays, self.batch_size, self.language)
        return _transcribe_faster(model, arrays, self.batch_size, self.language)

    def update(self, audios: Sequence[np.ndarray | torch.Tensor], references: Sequence[str]) -> None:
        if len(audios) != len(references):
            raise ValueError(f"got {len(audios)} audio clips but {len(references)} reference sentences")
        refs = [_reference(r) for r in references]
        hyps = self.transcribe(audios)
        self._wer.reset()
        self._wer.update([normalize_transcript(h) for h in hyps], refs)
        self.errors += self._wer.errors.to(self.errors.device)
        self.total += self._wer.total.to(self.total.device)
        self.transcripts.extend(zip(references, hyps, strict=True))

    def compute(self) -> torch.Tensor:
        return self.errors / self.total if self.total > 0 else torch.tensor(float("nan"))

    def reset(self) -> None:
        super().reset()
        self.transcripts = []
