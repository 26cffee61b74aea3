"""``SpeechModel``: Auffusion's UNet with LoRA + unfrozen blocks, conditioned on PL-BERT phonemes.

A speech model folder (written by :meth:`SpeechModel.save_pretrained` / ``python -m speakimg.export``)::

    OUT/
      speakimg_speech.json               marker + config: base model, PL-BERT, conditioning, LoRA, unfrozen
      pytorch_lora_weights.safetensors   UNet LoRA, diffusers format (pipe.load_lora_weights(OUT))
      unet_unfrozen.safetensors          unfrozen UNet weights under the base model's own names
      phoneme_adapter.safetensors        projection, norm and the learned unconditional embedding
      plbert/config.yml                  PL-BERT config (model_params) ...
      plbert/plbert.safetensors          ... and its (possibly fine-tuned) weights: the folder is standalone

The base model (Auffusion, a diffusers Stable Diffusion folder) is referenced, not copied: the marker
records its hub id (or absolute local path, or ``tiny:auffusion``); ``from_pretrained(OUT,
base_model=...)`` points it elsewhere on another machine. The latents stay in Stable Diffusion's
latent space (same VAE), so the combined sampler can denoise one latent with both models.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speakimg.errors import CheckpointError, ConfigError, ModelNotFoundError
from speakimg.hub import resolve_dir
from speakimg.io import atomic_path, load_safetensors, write_json
from speakimg.loading import DEFAULT_AUDIO_MODEL, SPEECH_MARKER, is_speech_model, load_diffusion_model
from speakimg.speech.adapter import PhonemeAdapter
from speakimg.speech.encoder import MODES, PhonemePromptEncoder
from speakimg.speech.lora import (
    LORA_WEIGHTS,
    LoRASpec,
    add_lora,
    canonical_name,
    is_lora_name,
    load_lora,
    load_unfrozen,
    save_lora,
    unfreeze,
    unfrozen_state_dict,
)
from speakimg.speech.plbert import PLBert
from speakimg.speech.refs import describe_ref

__all__ = [
    "ADAPTER_WEIGHTS",
    "DEFAULT_BASE_MODEL",
    "FORMAT",
    "MARKER",
    "PLBERT_DIR",
    "SpeechConfig",
    "SpeechModel",
    "UNFROZEN_WEIGHTS",
    "is_speech_model",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = DEFAULT_AUDIO_MODEL
MARKER = SPEECH_MARKER
FORMAT = "speakimg-speech"
FORMAT_VERSION = 1
UNFROZEN_WEIGHTS = "unet_unfrozen.safetensors"
ADAPTER_WEIGHTS = "phoneme_adapter.safetensors"
PLBERT_DIR = "plbert"


@dataclass
class SpeechConfig:
    """Everything that defines a speech model besides its trained weights (mirrors the module's options)."""

    base_model: str = DEFAULT_BASE_MODEL
    plbert: str = "checkpoints/PLBERT"
    plbert_subfolder: str | None = None
    mode: str = "replace"
    max_phonemes: int = 128
    lora: LoRASpec = field(default_factory=LoRASpec)
    unfreeze: list[str] = field(default_factory=list)
    plbert_unfreeze: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {MODES}")
        if isinstance(self.lora, dict):
            self.lora = LoRASpec(**self.lora)


class SpeechModel(nn.Module):
    """The speech model: ``.unet`` (with LoRA), ``.prompt_encoder`` (sentence -> embeddings), ``.vae``.

    >>> model = SpeechModel.from_pretrained("outputs/speech_model")            # doctest: +SKIP
    >>> emb = model.prompt_encoder(["", "A small red fox jumped over the wall."])  # [2, L, D]
    >>> eps = model.unet(torch.cat([z, z]), t, encoder_hidden_states=emb).sample
    """

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        prompt_encoder: PhonemePromptEncoder,
        scheduler_config: dict[str, Any],
        config: SpeechConfig,
        unfrozen_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.prompt_encoder = prompt_encoder
        self.scheduler_config = dict(scheduler_config)
        self.config = config
        self.unfrozen_names = list(unfrozen_names or [])

    # ------------------------------------------------------------------------------ properties
    @property
    def base_model(self) -> str:
        return self.config.base_model

    @property
    def vae_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def vae_downsample(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def noise_scheduler(self):
        """The training (DDPM) scheduler built from the base model's own scheduler config (SD 1.5's)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable parameters by optimizer group: ``lora``, ``unfrozen``, ``adapter``, ``plbert``."""
        unet = [(f"unet.{n}", p) for n, p in self.unet.named_parameters() if p.requires_grad]
        encoder = self.prompt_encoder
        return {
            "lora": [(n, p) for n, p in unet if is_lora_name(n)],
            "unfrozen": [(n, p) for n, p in unet if not is_lora_name(n)],
            "adapter": [(f"prompt_encoder.adapter.{n}", p) for n, p in encoder.adapter.named_parameters()],
            "plbert": [
                (f"prompt_encoder.plbert.{n}", p) for n, p in encoder.plbert.named_parameters() if p.requires_grad
            ],
        }

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Spectrogram images in [-1, 1] ``[B, 3, H, W]`` -> scaled latents (a VAE posterior sample)."""
        with torch.no_grad():
            posterior = self.vae.encode(images.to(self.vae.dtype)).latent_dist
            return posterior.sample(generator=generator) * self.vae_scale

    # ---------------------------------------------------------------------------- construction
    @staticmethod
    def _load_base(config: SpeechConfig, torch_dtype: torch.dtype | None):
        """The base model's UNet, frozen VAE, scheduler config (and CLIP in augment mode), through speakimg.loading."""
        from speakimg.conditioning import CLIPPromptEncoder

        augment = config.mode == "augment"
        base = load_diffusion_model(config.base_model, torch_dtype, vae_dtype=torch_dtype, text_encoder=augment)
        text_encoder = CLIPPromptEncoder(base.tokenizer, base.text_encoder) if augment else None
        return base.unet, base.vae, base.scheduler_config, text_encoder

    @staticmethod
    def _encoder(
        config: SpeechConfig, plbert: PLBert, unet: nn.Module, text_encoder: nn.Module | None
    ) -> PhonemePromptEncoder:
        dim = int(unet.config.cross_attention_dim)
        if text_encoder is not None and text_encoder.text_encoder.config.hidden_size != dim:
            raise ConfigError(
                f"augment mode: the CLIP text encoder's hidden size {text_encoder.text_encoder.config.hidden_size} "
                f"differs from the UNet's cross-attention size {dim}"
            )
        adapter = PhonemeAdapter(plbert.hidden_size, dim, config.max_phonemes)
        return PhonemePromptEncoder(plbert, adapter, config.mode, config.max_phonemes, text_encoder)

    @classmethod
    def from_base(cls, config: SpeechConfig, torch_dtype: torch.dtype | None = None) -> SpeechModel:
        """A new trainable speech model: base weights, fresh LoRA (B = 0) and adapter, blocks unfrozen.

        Trainable afterwards: LoRA, the unfrozen UNet parameters, the adapter (incl. the unconditional
        embedding) and the PL-BERT parameters matching ``config.plbert_unfreeze``; the rest is frozen.
        """
        unet, vae, scheduler_config, text_encoder = cls._load_base(config, torch_dtype)
        plbert = PLBert.from_pretrained(config.plbert, config.plbert_subfolder).requires_grad_(False)
        add_lora(unet, config.lora)  # freezes every non-LoRA UNet weight ...
        unfrozen = unfreeze(unet, config.unfreeze)  # ... so unfreeze after it
        if config.plbert_unfreeze:
            unfreeze(plbert, config.plbert_unfreeze)
        encoder = cls._encoder(config, plbert, unet, text_encoder)
        return cls(unet, vae, encoder, scheduler_config, config, unfrozen)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        base_model: str | None = None,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> SpeechModel:
        """Load a speech model folder (local path or hub id) for inference: eval mode, nothing trainable.

        ``base_model`` overrides the base model recorded in the marker (e.g. a local copy of Auffusion).
        """
        folder = resolve_dir(name_or_path)
        marker = folder / MARKER
        if not marker.is_file():
            raise ModelNotFoundError(
                f"{folder}: no {MARKER}; not a speech model folder. Export one from a training checkpoint with "
                "`python -m speakimg.export CKPT OUT_DIR`."
            )
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(
                f"{marker}: not a JSON speech-model marker ({error}); export the model again"
            ) from None
        if meta.get("format") != FORMAT or int(meta.get("version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{marker}: format {meta.get('format')!r} v{meta.get('version')} is not supported")
        cond = meta["conditioning"]
        config = SpeechConfig(
            base_model=base_model or meta["base_model"],
            plbert=meta["plbert"]["source"],
            plbert_subfolder=meta["plbert"].get("subfolder"),
            mode=cond["mode"],
            max_phonemes=int(cond["max_phonemes"]),
            lora=LoRASpec(**meta["lora"]["spec"]),
            unfreeze=list(meta["unfrozen"]["patterns"]),
            plbert_unfreeze=list(meta["plbert"].get("unfreeze", [])),
        )
        unet, vae, scheduler_config, text_encoder = cls._load_base(config, torch_dtype)
        plbert = PLBert.from_pretrained(folder / meta["plbert"]["path"])
        try:
            load_lora(unet, folder)
        except Exception as error:  # a truncated or foreign LoRA file: say which file, not a raw library error
            load_safetensors(folder / LORA_WEIGHTS, what="speech-model LoRA weights")  # names the file if unreadable
            raise CheckpointError(f"{folder / LORA_WEIGHTS}: cannot load the LoRA weights ({error})") from error
        n_lora = sum(1 for n, _ in unet.named_parameters() if is_lora_name(n))
        if n_lora != int(meta["lora"]["num_tensors"]):
            raise CheckpointError(
                f"{folder / LORA_WEIGHTS}: {n_lora} LoRA tensors loaded, the marker records {meta['lora']['num_tensors']}"
            )
        unfrozen_state = load_safetensors(folder / meta["unfrozen"]["file"], what="speech-model UNet weights")
        load_unfrozen(unet, unfrozen_state, folder / meta["unfrozen"]["file"])
        encoder = cls._encoder(config, plbert, unet, text_encoder)
        adapter_state = load_safetensors(folder / meta["adapter"]["file"], what="phoneme adapter weights")
        try:
            encoder.adapter.load_state_dict(adapter_state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{folder / meta['adapter']['file']}: does not fit the adapter ({error})") from error
        by_canonical = {canonical_name(n): n for n, _ in unet.named_parameters() if not is_lora_name(n)}
        model = cls(unet, vae, encoder, scheduler_config, config, [by_canonical[k] for k in unfrozen_state])
        model.requires_grad_(False).eval()
        if torch_dtype is not None:
            model.to(torch_dtype)
        if device is not None:
            model.to(device)
        return model

    def save_pretrained(self, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
        """Write the speech model folder (see the module docstring); the marker is written last."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).unlink(missing_ok=True)  # a half-written folder is never mistaken for a model
        save_lora(self.unet, folder)
        lora_tensors = sum(1 for n, _ in self.unet.named_parameters() if is_lora_name(n))
        unfrozen = unfrozen_state_dict(self.unet, self.unfrozen_names)
        with atomic_path(folder / UNFROZEN_WEIGHTS) as tmp:
            save_file(unfrozen, tmp)
        adapter = {k: v.detach().to("cpu").contiguous() for k, v in self.prompt_encoder.adapter.state_dict().items()}
        with atomic_path(folder / ADAPTER_WEIGHTS) as tmp:
            save_file(adapter, tmp)
        self.prompt_encoder.plbert.save_pretrained(folder / PLBERT_DIR)
        from speakimg import __version__

        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "speakimg_version": __version__,
            "base_model": describe_ref(self.config.base_model),
            "plbert": {
                "source": describe_ref(self.config.plbert),
                "subfolder": self.config.plbert_subfolder,
                "path": PLBERT_DIR,
                "unfreeze": list(self.config.plbert_unfreeze),
                "hidden_size": self.prompt_encoder.plbert.hidden_size,
            },
            "conditioning": {
                "mode": self.config.mode,
                "max_phonemes": self.config.max_phonemes,
                "num_tokens": self.prompt_encoder.num_tokens,
                "cross_attention_dim": int(self.unet.config.cross_attention_dim),
                "unconditional": "learned null_embedding in phoneme_adapter.safetensors"
                + (' after CLIP("")' if self.config.mode == "augment" else ""),
            },
            "lora": {"file": LORA_WEIGHTS, "spec": self.config.lora.to_dict(), "num_tensors": lora_tensors},
            "unfrozen": {
                "file": UNFROZEN_WEIGHTS,
                "patterns": list(self.config.unfreeze),
                "num_tensors": len(unfrozen),
            },
            "adapter": {"file": ADAPTER_WEIGHTS},
            "scheduler_config": {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")},
            **(extra or {}),
        }
        write_json(folder / MARKER, meta)
        log.info("speech model written to %s", folder)
        return folder

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def train(self, mode: bool = True) -> SpeechModel:
        """The frozen VAE stays in eval mode (the prompt encoder keeps its frozen parts in eval too)."""
        super().train(mode)
        self.vae.eval()
        return self
