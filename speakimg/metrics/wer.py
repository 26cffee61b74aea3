"""Word error rate of Whisper's transcripts of generated speech against the target sentences.

Batched: clips up to 30 s (ours are 10.24 s) are decoded together with ``whisper.decode`` (greedy,
temperature 0, no timestamps); longer clips fall back to ``model.transcribe``. Both transcript and
reference go through Whisper's ``EnglishTextNormalizer`` before torchmetrics' ``WordErrorRate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.text import WordErrorRate

from speakimg.errors import AudioError, TextError

__all__ = ["WhisperWER", "load_whisper", "normalize_transcript", "word_error_rate"]

WHISPER_SAMPLE_RATE = 16000
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>")


def load_whisper(name_or_path: str = "base.en", device: str | torch.device | None = None):
    """``whisper.load_model`` for a model name (``tiny.en``, ``base.en``, ``large-v3``...), a checkpoint path,
    or ``tiny:whisper`` (the offline tiny-model kit)."""
    import whisper

    from speakimg.errors import ModelNotFoundError
    from speakimg.hub import expand_reference, is_local
    from speakimg.runtime import select_device

    name_or_path = expand_reference(name_or_path)
    device = select_device(device)
    if not is_local(name_or_path) and name_or_path not in whisper.available_models():
        raise ModelNotFoundError(
            f"'{name_or_path}' is neither a Whisper checkpoint file nor one of whisper's model names "
            f"({', '.join(whisper.available_models())})"
        )
    try:
        return whisper.load_model(str(name_or_path), device=device)
    except Exception as error:  # download failure offline, corrupt file
        raise ModelNotFoundError(
            f"cannot load Whisper model '{name_or_path}' ({type(error).__name__}: {error}). Offline, pass the path "
            "of a downloaded checkpoint (~/.cache/whisper/<name>.pt)."
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


class WhisperWER(Metric):
    """Transcribe 16 kHz audio with Whisper and accumulate the word error rate against references.

    >>> wer = WhisperWER("base.en")                         # or a checkpoint path
    >>> wer.update([audio1, audio2], ["first sentence", "second sentence"])
    >>> wer.compute(), wer.transcripts                      # doctest: +SKIP

    Whisper runs on the metric's device (``device=`` or ``.to(...)``; CPU by default). The error counts
    are metric states (summed across DDP processes); the Whisper model is not part of the state dict. ``transcripts`` keeps (reference, transcript) pairs of this process.
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
        if self._whisper is None:
            object.__setattr__(self, "_whisper", load_whisper(self.model_name, self.device))
        return self._whisper

    @torch.no_grad()
    def transcribe(self, audios: Sequence[np.ndarray | torch.Tensor]) -> list[str]:
        """Raw Whisper transcripts of 16 kHz mono clips (batched for clips up to 30 s)."""
        import whisper

        arrays = [_as_array(a, i) for i, a in enumerate(audios)]  # validate before loading the model
        model = self.whisper_model
        device = next(model.parameters()).device
        texts: list[str | None] = [None] * len(arrays)
        options = whisper.DecodingOptions(
            language=self.language,
            temperature=0.0,
            without_timestamps=True,
            fp16=device.type == "cuda",
        )
        short = [i for i, a in enumerate(arrays) if a.shape[0] <= whisper.audio.N_SAMPLES]
        for start in range(0, len(short), self.batch_size):
            chunk = short[start : start + self.batch_size]
            mels = torch.stack(
                [
                    whisper.log_mel_spectrogram(
                        whisper.pad_or_trim(torch.from_numpy(arrays[i])), n_mels=model.dims.n_mels
                    )
                    for i in chunk
                ]
            ).to(device)
            for i, result in zip(chunk, whisper.decode(model, mels, options), strict=True):
                texts[i] = result.text
        for i, array in enumerate(arrays):
            if texts[i] is None:
                texts[i] = model.transcribe(
                    array,
                    language=self.language,
                    temperature=0.0,
                    fp16=device.type == "cuda",
                    condition_on_previous_text=False,
                )["text"]
        return [" ".join(_SPECIAL_TOKEN.sub(" ", t).split()) for t in texts]

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
