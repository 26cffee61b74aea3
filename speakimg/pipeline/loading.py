"""The combined sampler's two models (and a vocoder), loaded through :mod:`speakimg.loading`.

- An image model is a Stable-Diffusion-1.5-layout folder / hub id (``unet/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``).
- An audio model is either the same layout (Auffusion, text-prompted; usually with ``vocoder/``) or
  an exported speech model: a folder with ``speakimg_speech.json`` at its root, loaded lazily by
  ``speakimg.speech.SpeechModel.from_pretrained``.

Which weights file is read and which files are downloaded is :mod:`speakimg.loading`'s policy
(safetensors preferred, ``.bin`` loaded with ``weights_only=True``, only the chosen files fetched); the
default ids and the speech marker live there too and are re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speakimg.errors import ConfigError, ModelNotFoundError
from speakimg.hub import expand_reference, is_hub_id, resolve_dir
from speakimg.loading import (
    DEFAULT_AUDIO_MODEL,
    DEFAULT_IMAGE_MODEL,
    SPEECH_MARKER,
    is_speech_model,
    load_diffusion_model,
)

__all__ = [
    "DEFAULT_AUDIO_MODEL",
    "DEFAULT_IMAGE_MODEL",
    "SPEECH_MARKER",
    "ModelParts",
    "check_same_schedule",
    "default_vocoder",
    "is_speech_model",
    "load_audio_model",
    "load_image_model",
]

log = logging.getLogger("speakimg.pipeline")


@dataclass
class ModelParts:
    """What the pipeline takes from one diffusion model."""

    unet: nn.Module
    vae: nn.Module
    prompt_encoder: nn.Module
    scheduler_config: dict[str, Any]
    source: str
    kind: str  # "diffusers" (SD / Auffusion layout) or "speech"
    vocoder_candidates: list[Path] = field(default_factory=list)


def _load_diffusers_parts(name: str | Path, torch_dtype: torch.dtype | None, with_vocoder: bool) -> ModelParts:
    from speakimg.conditioning import CLIPPromptEncoder

    parts = load_diffusion_model(name, torch_dtype, extra=("vocoder",) if with_vocoder else ())
    return ModelParts(
        unet=parts.unet.eval().requires_grad_(False),
        vae=parts.vae,
        prompt_encoder=CLIPPromptEncoder(parts.tokenizer, parts.text_encoder).eval().requires_grad_(False),
        scheduler_config=parts.scheduler_config,
        source=str(name),
        kind="diffusers",
        vocoder_candidates=[parts.root],
    )


def load_image_model(name: str | Path = DEFAULT_IMAGE_MODEL, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """UNet, VAE, CLIP prompt encoder and scheduler config of an SD-1.5-layout folder or hub id."""
    if is_speech_model(expand_reference(name)):
        raise ConfigError(f"'{name}' is a speakimg speech model: pass it as audio_model, not image_model")
    return _load_diffusers_parts(name, torch_dtype, with_vocoder=False)


def load_audio_model(name: str | Path = DEFAULT_AUDIO_MODEL, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """An Auffusion-layout model, or an exported speech model (dispatched on its marker file)."""
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotFoundError(f"{local} is a file; pass a model folder (or a hub id)")
        root = local
    else:  # a hub id: look for the speech marker first (two small files), then fetch what the model's kind needs
        root = resolve_dir(str(name), allow_patterns=[SPEECH_MARKER, "model_index.json"])
    if not is_speech_model(root):
        return _load_diffusers_parts(local if local.exists() else name, torch_dtype, with_vocoder=True)

    from diffusers import DDIMScheduler

    try:
        from speakimg.speech import SpeechModel
    except ImportError as error:
        raise ModelNotFoundError(
            f"'{name}' is a speech model ({SPEECH_MARKER}) but speakimg.speech cannot be imported: {error}"
        ) from error
    speech = SpeechModel.from_pretrained(root if local.exists() else str(name))  # it fetches its own files
    for attr in ("unet", "prompt_encoder", "vae", "base_model"):
        if not hasattr(speech, attr):
            raise ConfigError(f"SpeechModel.from_pretrained('{root}') returned an object without .{attr}")
    base = str(speech.base_model)
    scheduler = getattr(speech, "scheduler", None)
    if scheduler is not None:
        scheduler_config = dict(scheduler.config)
    else:  # trained with its base model's noise schedule
        scheduler_config = dict(DDIMScheduler.load_config(resolve_dir(base, subfolder="scheduler")))
    candidates = [root]
    try:
        base_local = Path(base).expanduser()
        candidates.append(base_local if base_local.is_dir() else resolve_dir(base, allow_patterns=["vocoder/*"]))
    except ModelNotFoundError as error:
        log.warning("cannot look for a vocoder in the speech model's base model: %s", error)
    return ModelParts(
        unet=speech.unet.eval().requires_grad_(False),
        vae=speech.vae.eval().requires_grad_(False),
        prompt_encoder=speech.prompt_encoder.eval(),
        scheduler_config=scheduler_config,
        source=str(name),
        kind="speech",
        vocoder_candidates=candidates,
    )


def default_vocoder(candidates: list[Path | str]) -> tuple[nn.Module, str]:
    """The first candidate model's ``vocoder/`` (HiFi-GAN), else Griffin-Lim (with a warning).

    A candidate is a local model folder or a hub id (only its ``vocoder/`` files are fetched). Returns the
    vocoder and a description for provenance records.
    """
    from speakimg.vocoder import load_vocoder

    for candidate in candidates:
        folder = Path(expand_reference(candidate)).expanduser()
        if not folder.exists() and is_hub_id(candidate):
            try:
                folder = resolve_dir(str(candidate), allow_patterns=["vocoder/*"])
            except ModelNotFoundError as error:
                log.warning("cannot look for a vocoder in %s: %s", candidate, error)
                continue
        if (folder / "vocoder").is_dir():
            return load_vocoder(str(folder)), str(folder / "vocoder")
    log.warning(
        "no vocoder/ folder in %s: falling back to Griffin-Lim (weight-free, lower quality). "
        "Pass vocoder=<HiFi-GAN folder or hub id> for the model's own vocoder.",
        ", ".join(str(c) for c in candidates) or "the audio model",
    )
    return load_vocoder("griffin-lim"), "griffin-lim"


_SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")


def check_same_schedule(image_config: dict, audio_config: dict, image_name: str = "image", audio_name: str = "audio"):
    """Raise :class:`ConfigError` unless the two models were trained with the same noise schedule.

    The combined sampler moves one latent with one scheduler, so both models must agree on the betas
    (hence on alpha_bar_t) and predict the same quantity.
    """
    from diffusers import DDIMScheduler

    image = DDIMScheduler.from_config(image_config)
    audio = DDIMScheduler.from_config(audio_config)
    same_betas = image.alphas_cumprod.shape == audio.alphas_cumprod.shape and torch.allclose(
        image.alphas_cumprod, audio.alphas_cumprod, rtol=1e-5, atol=1e-7
    )
    same_prediction = image.config.prediction_type == audio.config.prediction_type
    if same_betas and same_prediction:
        return
    diff = {
        key: (image.config.get(key), audio.config.get(key))
        for key in _SCHEDULE_KEYS
        if image.config.get(key) != audio.config.get(key)
    }
    details = "; ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items()) or "different betas"
    raise ConfigError(
        f"the image model ({image_name}) and the audio model ({audio_name}) use different noise schedules "
        f"({details}). The combined sampler shares one scheduler between them: use two models trained with the "
        "same schedule (SD 1.5's scaled_linear 0.00085..0.012, epsilon prediction, as Auffusion)."
    )
