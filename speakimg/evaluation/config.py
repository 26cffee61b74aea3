"""The evaluation config: one dataclass whose fields are the keys of ``configs/eval*.yaml``.

``python -m speakimg.evaluate --config configs/eval.yaml --steps 50 --seeds [0,1]``: jsonargparse
reads the YAML, every key can be overridden on the command line, and an unknown key is one error
naming it. ``--print_config`` prints the resolved config.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from speakimg.errors import ConfigError

__all__ = ["EvalConfig", "build_parser", "parse_config"]

PROG = "python -m speakimg.evaluate"


@dataclass
class EvalConfig:
    """Evaluate images that speak (or sound) by a fixed protocol: sample a grid, score it, summarise.

    Args:
        protocol: ``speech`` (images that speak: Whisper WER against the sentence + CLIP) or ``sound``
            (Images that Sound: CLAP against the caption when ``clap`` is set + CLIP).
        image_model: SD-1.5-layout folder or hub id (null: Stable Diffusion 1.5).
        audio_model: audio model: an exported speech model folder (speech) or Auffusion (sound);
            null: Auffusion.
        vocoder: HiFi-GAN folder / hub id, or ``griffin-lim`` (null: the audio model's vocoder/).
        griffin_lim_iters: iterations when the vocoder is Griffin-Lim.
        image_prompts: text file, one image prompt per line (``#`` comments).
        audio_prompts: text file, one sentence (speech) or sound caption (sound) per line.
        limit_image_prompts: use only the first N image prompts (null: all).
        limit_audio_prompts: use only the first N audio prompts (null: all).
        seeds: seeds of every prompt pair; a sample with seed s draws z_T from its own generator.
        steps: DDIM steps (100 in the protocols).
        image_guidance_scale: classifier-free guidance scale of the image model.
        audio_guidance_scale: classifier-free guidance scale of the audio model.
        t_image: fraction of the reverse process in which the image model takes part (0.9: 10% audio-only warm start).
        t_audio: fraction of the reverse process in which the audio model takes part.
        audio_weight: weight of the audio noise estimate once both models take part.
        negative_image_prompt: unconditional side of the image model's guidance.
        negative_audio_prompt: unconditional side of the audio model's guidance.
        crop_padding: crop the 32-column padding band (pictures 992 wide, 9.92 s audio), as Images that Sound.
        batch_size: samples per pipeline call (results do not depend on it).
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
    image_model: str | None = None
    audio_model: str | None = None
    vocoder: str | None = None
    griffin_lim_iters: int = 64
    image_prompts: str = "configs/data/image_prompts.txt"
    audio_prompts: str = "configs/data/test_sentences.txt"
    limit_image_prompts: int | None = None
    limit_audio_prompts: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 100
    image_guidance_scale: float = 10.0
    audio_guidance_scale: float = 10.0
    t_image: float = 0.9
    t_audio: float = 1.0
    audio_weight: float = 0.5
    negative_image_prompt: str = ""
    negative_audio_prompt: str = ""
    crop_padding: bool = True
    batch_size: int = 4
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
        from speakimg.pipeline.weights import check_fraction

        positive = {"steps": self.steps, "batch_size": self.batch_size, "whisper_batch_size": self.whisper_batch_size}
        positive["griffin_lim_iters"] = self.griffin_lim_iters
        for key in ("limit_image_prompts", "limit_audio_prompts"):
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
        check_fraction("t_image", self.t_image)
        check_fraction("t_audio", self.t_audio)
        if not 0.0 <= self.audio_weight <= 1.0:
            raise ConfigError(f"audio_weight must be in [0, 1], got {self.audio_weight}")
        for key in ("image_guidance_scale", "audio_guidance_scale"):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{key} must be a finite number, got {getattr(self, key)}")
        return self

    def result_settings(self, dtype: str) -> dict[str, Any]:
        """Everything that changes the numbers of a row (models, sampler, metrics, dtype).

        Rows made with other result settings are never mixed in one CSV. Prompt files, limits, seeds,
        references, batch size, media, logging and device are not part of it: changing them extends
        or narrows a run, it does not change its rows.
        """
        keys = [
            "protocol",
            "image_model",
            "audio_model",
            "vocoder",
            "griffin_lim_iters",  # also used when the audio model has no vocoder/ (Griffin-Lim fallback)
            "steps",
            "image_guidance_scale",
            "audio_guidance_scale",
            "t_image",
            "t_audio",
            "audio_weight",
            "negative_image_prompt",
            "negative_audio_prompt",
            "crop_padding",
            "clip",
        ]
        keys.append("whisper" if self.protocol == "speech" else "clap")
        settings = {key: getattr(self, key) for key in keys}
        for key in ("image_guidance_scale", "audio_guidance_scale", "t_image", "t_audio", "audio_weight"):
            settings[key] = float(settings[key])
        settings["dtype"] = dtype
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of :meth:`EvalConfig.result_settings`."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build_parser():
    """The jsonargparse parser: ``--config FILE`` plus one option per :class:`EvalConfig` field."""
    from jsonargparse import ActionConfigFile, ArgumentParser

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
    parser.add_class_arguments(EvalConfig, as_group=False)
    return parser


def parse_config(argv: list[str] | None = None) -> tuple[EvalConfig, str]:
    """``(config, resolved YAML)`` from command-line arguments (default ``sys.argv``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, a missing config file, a bad value.
    """
    from jsonargparse import ArgumentError

    parser = build_parser()
    try:
        namespace = parser.parse_args(argv)
    except ArgumentError as error:
        message = " ".join(str(error).split())
        raise ConfigError(f"invalid evaluation config: {message} (see {PROG} --help for the keys)") from None
    values = namespace.as_dict()
    values.pop("config", None)
    values.pop("__path__", None)
    config = EvalConfig(**values).validate()
    import yaml

    resolved = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
    return config, resolved
