"""The evaluation config: one dataclass whose (flattened) fields are the keys of ``configs/eval*.yaml``.

:class:`EvalConfig` nests the models (:class:`~speakimg.sampling.PipelineModels`) and the sampler
settings (:class:`~speakimg.sampling.SamplerSettings`); the YAML and the command line keep them flat
(``steps: 100``, ``--t_image 0.9``). ``python -m speakimg.evaluate --config configs/eval.yaml --steps 50
--seeds [0,1]``: jsonargparse reads the YAML, every key can be overridden on the command line, and an
unknown key is one error naming it. ``--print_config`` prints the resolved config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from speakimg.errors import ConfigError
from speakimg.sampling.settings import PipelineModels, SamplerSettings, from_flat, to_flat

__all__ = ["EvalConfig", "build_parser", "parse_config"]

PROG = "python -m speakimg.evaluate"


@dataclass
class EvalConfig:
    """Evaluate images that speak (or sound) by a fixed protocol: sample a grid, score it, summarise.

    Args:
        protocol: ``speech`` (images that speak: Whisper WER against the sentence + CLIP) or ``sound``
            (Images that Sound: CLAP against the caption when ``clap`` is set + CLIP).
        models: the models (``image_model``, ``audio_model``, ``vocoder`` in the YAML): an exported
            speech model folder (speech) or Auffusion (sound) as the audio model.
        image_prompts: text file, one image prompt per line (``#`` comments).
        audio_prompts: text file, one sentence (speech) or sound caption (sound) per line.
        limit_image_prompts: use only the first N image prompts (null: all).
        limit_audio_prompts: use only the first N audio prompts (null: all).
        seeds: seeds of every prompt pair; a sample with seed s draws z_T from its own generator.
        sampler: the sampler settings (``steps``, ``t_image``, ... in the YAML; docs/sampling.md).
        methods: more sampling methods to evaluate side by side with ``method`` (e.g. ``[imprint, controlnet,
            reference]``): each adds rows of its own kind (its name) to the same CSV and summary, made with
            the same sampler settings, models, seeds and metrics.
        sweep: lists of values for sampler settings (``{t_image: [0.8, 0.9], audio_weight: [0.3, 0.5]}``):
            evaluate every combination (each in ``out/sweep/<setting>/``, the other settings as above) and
            plot CLIP against WER per setting; null: no sweep.
        batch_size: samples per pipeline call (results do not depend on it); null: from the device's free
            memory (``speakimg.runtime.default_batch_size``: 4 on a CPU).
        whisper: Whisper model name (``large-v3``, ``small.en``...) or checkpoint path (speech protocol).
        whisper_batch_size: clips per Whisper decoding batch.
        clip: CLIP model (hub id or folder) of the windowed CLIP score.
        clap: CLAP model (hub id or folder) for the sound protocol; null: no CLAP score.
        references: also evaluate the audio model alone (``audio_only``) and the image model alone
            (``image_only``) with the same seeds and metrics.
        out: output folder (CSV, summary, media, logger files); a rerun resumes it.
        save_media: sampled items per kind that keep their files (png, wav, mp4, npy, json); null: all, 0: none.
        video: write video.mp4 (spectrogram with a playhead; needs ffmpeg) with the media.
        logger: ``wandb`` (offline by default), ``tensorboard``, ``csv`` or ``none``.
        project: W&B project.
        run_name: W&B run name (null: W&B's).
        wandb_offline: keep the W&B run local (upload later with ``wandb sync``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        compile: torch.compile the UNets (pays off for the full grid on a GPU).
    """

    protocol: Literal["speech", "sound"] = "speech"
    models: PipelineModels = field(default_factory=PipelineModels)
    image_prompts: str = "configs/data/image_prompts.txt"
    audio_prompts: str = "configs/data/test_sentences.txt"
    limit_image_prompts: int | None = None
    limit_audio_prompts: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    methods: list[str] = field(default_factory=list)
    sweep: dict[str, list[Any]] | None = None
    batch_size: int | None = None
    whisper: str = "large-v3"
    whisper_batch_size: int = 16
    clip: str = "openai/clip-vit-base-patch16"
    clap: str | None = None
    references: bool = True
    out: str = "outputs/eval"
    save_media: int | None = None
    video: bool = True
    logger: Literal["wandb", "tensorboard", "csv", "none"] = "wandb"
    project: str = "speakimg"
    run_name: str | None = None
    wandb_offline: bool = True
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False

    def validate(self) -> EvalConfig:
        """Errors for values no run can use (before anything is loaded or written); returns ``self``."""
        self.sampler.validate()
        from speakimg.evaluation.plan import KINDS
        from speakimg.sampling import get_method

        for method in self.methods:
            get_method(method)
            if method in KINDS or method == self.sampler.method or self.methods.count(method) > 1:
                raise ConfigError(
                    f"methods lists {method!r} twice, or the method of the combined rows ({self.sampler.method!r}) or "
                    f"a reference kind ({', '.join(KINDS)}): list each other method once"
                )
        positive = {"whisper_batch_size": self.whisper_batch_size}
        for key in ("batch_size", "limit_image_prompts", "limit_audio_prompts"):
            if getattr(self, key) is not None:
                positive[key] = getattr(self, key)
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        if self.save_media is not None and self.save_media < 0:
            raise ConfigError(f"save_media must be >= 0 (0: no media) or null (all), got {self.save_media}")
        if not self.seeds:
            raise ConfigError("seeds is empty: give at least one seed, e.g. seeds: [0]")
        duplicates = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if duplicates:
            raise ConfigError(f"seeds lists {duplicates} more than once: each seed gives one sample per pair")
        if self.sweep:
            from speakimg.evaluation.sweep import sweep_settings

            sweep_settings(self.sampler, self.sweep)  # every combination is validated before anything runs
        return self

    def result_settings(self, dtype: str) -> dict[str, Any]:
        """Everything that changes the numbers of a row: the models, every sampler setting as used, the
        metric models, the protocol and the dtype.

        Rows made with other result settings are never mixed in one CSV. Prompt files, limits, seeds,
        references, extra ``methods``, batch size, media, logging and device are not part of it: changing them extends
        or narrows a run, it does not change its rows.
        """
        settings = {"protocol": self.protocol, **asdict(self.models), **asdict(self.sampler.resolved())}
        metric = "whisper" if self.protocol == "speech" else "clap"
        settings.update(clip=self.clip, **{metric: getattr(self, metric)}, dtype=dtype)
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The flat dictionary of the YAML (models and sampler settings side by side)."""
        return to_flat(self)

    def make_logger(self, out, job_type: str, **run_config: Any):
        """The run's logger (``logger``, ``project``, ``run_name``, ``wandb_offline``) writing under ``out``, its
        config this YAML plus ``run_config``; ``None`` for ``logger: none``."""
        from speakimg.loggers import make_logger

        return make_logger(self.logger, out, project=self.project, run_name=self.run_name,
                           offline=self.wandb_offline, config={**self.to_dict(), **run_config}, job_type=job_type)  # fmt: skip


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of :meth:`EvalConfig.result_settings`."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build_parser():
    """The jsonargparse parser: ``--config FILE`` plus one option per :class:`EvalConfig` field."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from speakimg.cli import DEBUG_HELP

    parser = ArgumentParser(
        prog=PROG,
        description=(
            "Evaluate images that speak (protocol: speech) or images that sound (protocol: sound): sample "
            "every image prompt x audio prompt x seed, score it (CLIP; Whisper WER or CLAP), write OUT/samples.csv "
            "row by row, OUT/summary.json and OUT/summary.md, media, and log to W&B (offline). A rerun resumes."
        ),
        exit_on_error=False,
    )
    parser.add_argument(
        "--config", action=ActionConfigFile, help="YAML config (configs/eval.yaml, configs/eval_its.yaml)"
    )
    parser.add_class_arguments(EvalConfig, as_group=False, skip={"models", "sampler"})
    parser.add_class_arguments(PipelineModels, None, as_group=True)
    parser.add_class_arguments(SamplerSettings, None, as_group=True)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def parse_config(argv: list[str] | None = None) -> tuple[EvalConfig, str]:
    """``(config, resolved YAML)`` from command-line arguments (default ``sys.argv``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, a missing config file, a bad value.
    """
    from jsonargparse import ArgumentError

    from speakimg.cli import normalize_options

    parser = build_parser()
    try:
        namespace = parser.parse_args(None if argv is None else normalize_options(list(argv)))
    except ArgumentError as error:
        message = " ".join(str(error).split())
        raise ConfigError(f"invalid evaluation config: {message} (see {PROG} --help for the keys)") from None
    values = namespace.as_dict()
    for key in ("config", "__path__", "debug"):
        values.pop(key, None)
    config = from_flat(EvalConfig, values, "evaluation config keys").validate()
    import yaml

    resolved = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
    return config, resolved
