"""Automatic re-ranking: sample N candidates of a prompt pair, score them, keep the best K.

Images that Sound's code (``select_top_k_ranking``) keeps the candidates that are in the top 20 % by
CLIP **and** in the top 20 % by CLAP. Two rules are offered (``rule``):

- ``intersection`` (Images that Sound): the candidates in the top ``fraction`` (rounded up, at least
  one) by every metric come first; the others follow. Within each part, candidates are ordered by
  their rank sum.
- ``rank_sum``: candidates ordered by the sum of their ranks under each metric.

Ties are broken by the first metric's rank, then by the candidate's index (its seed order). Ranks
are 1-based (1 = best): higher is better for ``clip`` and ``clap``, lower for ``wer``. The best
``keep`` are kept; every score and rank is recorded in each kept sample's ``sample.json``
(``ranking``). Scoring uses :mod:`speakimg.metrics` (windowed CLIP; Whisper WER against the
sentence; CLAP against the sound caption).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from speakimg.errors import ConfigError

__all__ = ["HIGHER_IS_BETTER", "RULES", "RerankSettings", "Scorer", "metric_ranks", "rank_candidates"]

HIGHER_IS_BETTER = {"clip": True, "clap": True, "wer": False}
"""The metrics re-ranking can use, and their direction."""
RULES = ("intersection", "rank_sum")


@dataclass
class RerankSettings:
    """How candidates are re-ranked (``sample --n N --keep K --rank clip,wer``).

    Args:
        keep: candidates kept per prompt pair (K <= N).
        metrics: metrics to rank by: ``clip`` and ``wer`` (sentences) or ``clap`` (sound captions).
        rule: ``intersection`` (Images that Sound: the top ``fraction`` by every metric first) or ``rank_sum``.
        fraction: the top fraction of the ``intersection`` rule (0.2 in Images that Sound).
        clip: CLIP model (hub id or folder) of the windowed CLIP score.
        whisper: Whisper model (name, folder or checkpoint) of the WER.
        clap: CLAP model (hub id or folder).
    """

    keep: int
    metrics: tuple[str, ...] = ("clip", "wer")
    rule: str = "intersection"
    fraction: float = 0.2
    clip: str = "openai/clip-vit-base-patch16"
    whisper: str = "base.en"
    clap: str = "laion/clap-htsat-unfused"

    def validate(self, n: int | None = None) -> RerankSettings:
        """One :class:`ConfigError` for a bad value (``n``: candidates per pair); returns ``self``."""
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1:
            raise ConfigError(f"keep must be an int >= 1, got {self.keep!r}")
        if n is not None and self.keep > n:
            raise ConfigError(f"keep={self.keep} is more than the {n} candidates per pair (--n): keep <= n")
        self.metrics = tuple(self.metrics)
        unknown = [m for m in self.metrics if m not in HIGHER_IS_BETTER]
        if not self.metrics or unknown or len(set(self.metrics)) != len(self.metrics):
            raise ConfigError(
                f"rank metrics must be distinct names among {sorted(HIGHER_IS_BETTER)} (e.g. clip,wer; clip,clap "
                f"for sound captions), got {','.join(self.metrics)!r}"
            )
        if self.rule not in RULES:
            raise ConfigError(f"rank rule must be one of {RULES}, got {self.rule!r}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not 0 < self.fraction <= 1:
            raise ConfigError(f"rank fraction must be in (0, 1], got {self.fraction!r}")
        return self


def metric_ranks(values: Sequence[float], higher_is_better: bool) -> list[int]:
    """1-based ranks (1 = best); equal values rank by index."""
    order = sorted(range(len(values)), key=lambda i: (-values[i] if higher_is_better else values[i], i))
    ranks = [0] * len(values)
    for position, i in enumerate(order):
        ranks[i] = position + 1
    return ranks


def rank_candidates(
    scores: dict[str, Sequence[float]], keep: int, rule: str = "intersection", fraction: float = 0.2
) -> list[dict[str, Any]]:
    """Rank candidates by ``scores`` (metric -> one value per candidate); one record per candidate.

    Each record: the scores, ``rank_<metric>``, ``rank_sum``, ``top_<metric>`` (in the top ``fraction``),
    ``rank`` (1-based final rank under ``rule``) and ``kept`` (``rank <= keep``).
    """
    if not scores:
        raise ConfigError("re-ranking needs at least one metric")
    sizes = {len(v) for v in scores.values()}
    if len(sizes) != 1:
        raise ConfigError(
            f"every metric needs one score per candidate, got { ({k: len(v) for k, v in scores.items()}) }"
        )
    if rule not in RULES:
        raise ConfigError(f"rank rule must be one of {RULES}, got {rule!r}")
    (n,) = sizes
    top = max(1, math.ceil(fraction * n))
    metrics = list(scores)
    ranks = {m: metric_ranks([float(v) for v in scores[m]], HIGHER_IS_BETTER[m]) for m in metrics}
    records = []
    for i in range(n):
        record: dict[str, Any] = {m: float(scores[m][i]) for m in metrics}
        record.update({f"rank_{m}": ranks[m][i] for m in metrics})
        record["rank_sum"] = sum(ranks[m][i] for m in metrics)
        record.update({f"top_{m}": ranks[m][i] <= top for m in metrics})
        records.append(record)

    def key(i: int) -> tuple:
        first = 0 if rule == "rank_sum" or all(records[i][f"top_{m}"] for m in metrics) else 1
        return (first, records[i]["rank_sum"], ranks[metrics[0]][i], i)

    for position, i in enumerate(sorted(range(n), key=key)):
        records[i]["rank"] = position + 1
        records[i]["kept"] = position < keep
    return records


class Scorer:
    """The metric models of a re-ranking, loaded once on ``device``; :meth:`__call__` scores candidates."""

    def __init__(self, settings: RerankSettings, device: Any = "cpu") -> None:
        from speakimg.metrics import CLAPScore, WhisperWER, WindowedCLIPScore

        self.metrics = settings.metrics
        self.clip = WindowedCLIPScore(settings.clip).to(device) if "clip" in self.metrics else None
        self.whisper = WhisperWER(settings.whisper, device=device) if "wer" in self.metrics else None
        self.clap = CLAPScore(settings.clap).to(device) if "clap" in self.metrics else None

    def __call__(self, images: Any, audios: Sequence[Any], image_prompt: str, audio_prompt: str) -> dict[str, list]:
        """Scores of each candidate (``images`` ``[N, 3, H, W]`` in [0, 1], 16 kHz ``audios``), by metric."""
        from speakimg.metrics import word_error_rate

        scores: dict[str, list[float]] = {}
        for metric in self.metrics:
            if metric == "clip":
                scores["clip"] = self.clip(images, [image_prompt] * len(images)).tolist()
            elif metric == "wer":
                heard = self.whisper.transcribe(list(audios))
                scores["wer"] = [100.0 * word_error_rate([h], [audio_prompt]) for h in heard]
            else:
                scores["clap"] = self.clap(list(audios), [audio_prompt] * len(audios)).tolist()
        return scores
