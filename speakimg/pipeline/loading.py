"""Loading the combined sampler's two models (and a vocoder) from folders or hub ids.

- An image model is a Stable-Diffusion-1.5-layout folder / hub id (``unet/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``).
- An audio model is either the same layout (Auffusion, text-prompted; usually with ``vocoder/``) or
  an exported speech model: a folder with ``speakimg_speech.json`` at its root, loaded lazily by
  ``speakimg.speech.SpeechModel.from_pretrained``.

Only safetensors weights are loaded (pickle checkpoints can run code when loaded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speakimg.errors import ConfigError, ModelNotFoundError
from speakimg.hub import resolve_dir

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

DEFAULT_IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Stable Diffusion 1.5 (the maintained mirror of the deleted ``runwayml/stable-diffusion-v1-5``)."""
DEFAULT_AUDIO_MODEL = "auffusion/auffusion-full-no-adapter"
"""Auffusion, text-to-audio in SD 1.5's latent space (reproduces Images that Sound)."""
SPEECH_MARKER = "speakimg_speech.json"
"""Marker file at the root of an exported speech model folder."""

_WEIGHTS = {
    "unet": "diffusion_pytorch_model.safetensors",
    "vae": "diffusion_pytorch_model.safetensors",
    "text_encoder": "model.safetensors",
}


def _hub_patterns(with_vocoder: bool) -> list[str]:
    patterns = ["model_index.json", SPEECH_MARKER, "tokenizer/*", "scheduler/*"]
    for sub, weights in _WEIGHTS.items():
        patterns += [f"{sub}/config.json", f"{sub}/{weights}"]
    if with_vocoder:
        patterns.append("vocoder/*")
    return patterns


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


def _load_diffusers_parts(root: Path, source: str, torch_dtype: torch.dtype | None) -> ModelParts:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from speakimg.conditioning import CLIPPromptEncoder

    missing = [sub for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if not (root / sub).is_dir()]
    if missing:
        raise ModelNotFoundError(
            f"'{source}' ({root}) is not a Stable-Diffusion-layout model folder: missing "
            f"{', '.join(m + '/' for m in missing)}. "
            "Pass a diffusers pipeline folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or, for the "
            f"speech model, a folder exported by speakimg (with {SPEECH_MARKER})."
        )
    try:
        unet = UNet2DConditionModel.from_pretrained(
            root, subfolder="unet", torch_dtype=torch_dtype, use_safetensors=True
        )
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", use_safetensors=True)
    except OSError as error:
        raise ModelNotFoundError(
            f"'{source}': cannot load the UNet/VAE from {root} ({error}). speakimg loads safetensors weights only "
            "(diffusion_pytorch_model.safetensors); convert .bin checkpoints with diffusers' save_pretrained "
            "(safe_serialization=True)."
        ) from error
    encoder = CLIPPromptEncoder.from_pretrained(str(root), torch_dtype=torch_dtype)
    scheduler_config = dict(DDIMScheduler.load_config(root, subfolder="scheduler"))
    return ModelParts(
        unet=unet.eval().requires_grad_(False),
        vae=vae.eval().requires_grad_(False),
        prompt_encoder=encoder.eval().requires_grad_(False),
        scheduler_config=scheduler_config,
        source=source,
        kind="diffusers",
        vocoder_candidates=[root],
    )


def _resolve(name: str | Path, with_vocoder: bool) -> Path:
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotFoundError(f"{local} is a file; pass a model folder (or a hub id)")
        return local
    return resolve_dir(str(name), allow_patterns=_hub_patterns(with_vocoder))


def load_image_model(name: str | Path = DEFAULT_IMAGE_MODEL, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """UNet, VAE, CLIP prompt encoder and scheduler config of an SD-1.5-layout folder or hub id."""
    root = _resolve(name, with_vocoder=False)
    if is_speech_model(root):
        raise ConfigError(f"'{name}' is a speakimg speech model: pass it as audio_model, not image_model")
    return _load_diffusers_parts(root, str(name), torch_dtype)


def is_speech_model(root: str | Path) -> bool:
    """True if ``root`` is a local folder holding an exported speech model (its marker file)."""
    return (Path(root).expanduser() / SPEECH_MARKER).is_file()


def load_audio_model(name: str | Path = DEFAULT_AUDIO_MODEL, torch_dtype: torch.dtype | None = None) -> ModelParts:
    """An Auffusion-layout model, or an exported speech model (dispatched on its marker file)."""
    local = Path(name).expanduser()
    if local.exists():
        root = _resolve(local, with_vocoder=True)
    else:  # a hub id: look for the speech marker first, then fetch what the model's kind needs
        root = resolve_dir(str(name), allow_patterns=[SPEECH_MARKER, "model_index.json", "vocoder/*"])
        if not is_speech_model(root):
            root = _resolve(name, with_vocoder=True)
    if not is_speech_model(root):
        return _load_diffusers_parts(root, str(name), torch_dtype)

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


def default_vocoder(candidates: list[Path]) -> tuple[nn.Module, str]:
    """The first candidate folder's ``vocoder/`` (HiFi-GAN), else Griffin-Lim (with a warning).

    Returns the vocoder and a description for provenance records.
    """
    from speakimg.vocoder import load_vocoder

    for folder in candidates:
        if (Path(folder) / "vocoder").is_dir():
            return load_vocoder(str(folder)), str(Path(folder) / "vocoder")
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
