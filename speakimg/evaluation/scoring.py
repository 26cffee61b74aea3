"""Scoring a batch of samples with the protocol's metrics (``speakimg.metrics``), batched.

Each distinct (sample, image prompt) is CLIP-scored once, each sample transcribed once (one batched
Whisper call per pipeline batch), each distinct (sample, caption) CLAP-scored once; rows then take
their scores from these tables.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from speakimg.evaluation.plan import Unit

__all__ = ["Scorers"]

log = logging.getLogger("speakimg.evaluate")


class Scorers:
    """The protocol's metric models, loaded once, on ``device``.

    Args:
        protocol: ``speech`` (CLIP + Whisper WER) or ``sound`` (CLIP + CLAP when ``clap`` is set).
        clip: CLIP hub id or folder.
        whisper: Whisper name or checkpoint (speech).
        clap: CLAP hub id or folder, or ``None`` (sound).
        whisper_batch_size: clips per Whisper decoding batch.
        device: where the metric models run.
    """

    def __init__(
        self,
        protocol: str,
        clip: str,
        whisper: str | None = None,
        clap: str | None = None,
        whisper_batch_size: int = 16,
        device: torch.device | str = "cpu",
    ) -> None:
        from speakimg.metrics import CLAPScore, WhisperWER, WindowedCLIPScore

        self.protocol = protocol
        self.device = torch.device(device)
        log.info("loading CLIP %s", clip)
        self.clip = WindowedCLIPScore(clip).to(self.device)
        self.whisper = None
        self.clap = None
        if protocol == "speech":
            log.info("loading Whisper %s", whisper)
            self.whisper = WhisperWER(str(whisper), batch_size=whisper_batch_size, device=self.device)
            self.whisper.whisper_model  # noqa: B018  (load now: a bad name fails before any sampling)
        elif clap is not None:
            log.info("loading CLAP %s", clap)
            self.clap = CLAPScore(clap).to(self.device)

    def score(self, units: list[Unit], output) -> list[list[dict[str, Any]]]:
        """Scores of every row of ``units`` (the samples of ``output``, in order), per unit."""
        from speakimg.metrics import normalize_transcript, word_error_rate

        images = output.images  # [B, 3, H, W] in [0, 1]
        audios = [a.float().cpu() for a in output.audios]
        clip_pairs = list(dict.fromkeys((u, row.image_prompt) for u, unit in enumerate(units) for row in unit.rows))
        clip_scores = self.clip(images[[u for u, _ in clip_pairs]], [p for _, p in clip_pairs])
        clip_table = {pair: float(s) for pair, s in zip(clip_pairs, clip_scores.tolist(), strict=True)}
        transcripts = self.whisper.transcribe(audios) if self.whisper is not None else None
        clap_table: dict[tuple[int, str], float] = {}
        if self.clap is not None:
            pairs = list(dict.fromkeys((u, row.audio_prompt) for u, unit in enumerate(units) for row in unit.rows))
            scores = self.clap([audios[u] for u, _ in pairs], [p for _, p in pairs])
            clap_table = {pair: float(s) for pair, s in zip(pairs, scores.tolist(), strict=True)}
        results = []
        for u, unit in enumerate(units):
            unit_rows = []
            for row in unit.rows:
                scores: dict[str, Any] = {"clip": clip_table[(u, row.image_prompt)]}
                if transcripts is not None:
                    wer = word_error_rate([transcripts[u]], [row.audio_prompt])
                    words = len(normalize_transcript(row.audio_prompt).split())
                    scores.update(
                        transcript=transcripts[u],
                        wer=100.0 * wer,
                        wer_errors=round(wer * words),  # wer = errors / words exactly
                        wer_words=words,
                    )
                if self.clap is not None:
                    scores["clap"] = clap_table[(u, row.audio_prompt)]
                unit_rows.append(scores)
            results.append(unit_rows)
        return results
