"""``python -m speakimg.evaluate --config configs/eval.yaml``: evaluate by a fixed protocol.

    python -m speakimg.evaluate --config configs/eval.yaml --audio_model path/to/speech-model
    python -m speakimg.evaluate --config configs/eval.yaml --limit_image_prompts 2 --limit_audio_prompts 2 --steps 20
    python -m speakimg.evaluate --config configs/eval_its.yaml           # the Images that Sound protocol
    python -m speakimg.evaluate --config configs/eval.yaml --print_config

Samples every image prompt x audio prompt x seed (and, with ``references: true``, the audio model
alone and the image model alone), scores each sample (CLIP; Whisper WER for ``protocol: speech``,
CLAP for ``protocol: sound``), appends one row per sample to ``OUT/samples.csv`` as it goes, and
writes ``OUT/summary.json`` + ``OUT/summary.md``, media under ``OUT/media/`` and a W&B run (offline)
under ``OUT/wandb/``. Rerunning the same command resumes: rows already in the CSV are skipped. The
sampler keys are the fields of ``speakimg.sampling.SamplerSettings``. See docs/evaluation.md.
"""

from __future__ import annotations

import sys

from speakimg import cli
from speakimg.evaluation import EvalResult, evaluate, parse_config

__all__ = ["main", "run"]


def run(argv: list[str] | None = None) -> EvalResult:
    """Parse ``argv`` (default ``sys.argv``) and evaluate; errors are raised (``ConfigError``...)."""
    config, resolved = parse_config(argv)
    return evaluate(config, resolved)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: 0 on success, 2 with one ``error:`` line for a bad config or input
    (``--debug``: with its traceback)."""
    return cli.main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
