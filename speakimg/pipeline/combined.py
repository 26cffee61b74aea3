"""``ImagesThatSpeakPipeline``: one latent denoised by an image model and an audio model at once.

The pipeline is a thin shell around :func:`speakimg.pipeline.sampler.combined_denoise`: it encodes
the prompts, draws z_T, builds the per-step weights of Images that Sound (docs/sampling.md,
:mod:`speakimg.pipeline.weights`), runs the sampler with one shared DDIM scheduler (eta 0), and
decodes z_0 twice: with the image model's VAE into the picture, and with the audio model's VAE into
the spectrogram, which the vocoder turns into 16 kHz audio.

>>> pipe = ImagesThatSpeakPipeline.from_pretrained(audio_model="path/to/speech-model").to("cuda", torch.bfloat16)
>>> out = pipe("a painting of a lighthouse, grayscale", "The sea was calm and the night was clear.")
>>> out.images.shape, out.audios.shape    # (1, 256, 992, 3), (1, 158720)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor
from torch import nn
from tqdm.auto import tqdm

from speakimg.audio import CANVAS, MelConfig, from_vae_range, image_to_mel
from speakimg.errors import ConfigError
from speakimg.pipeline.imprint import sample_imprint
from speakimg.pipeline.loading import (
    DEFAULT_AUDIO_MODEL,
    DEFAULT_IMAGE_MODEL,
    check_same_schedule,
    default_vocoder,
    load_audio_model,
    load_image_model,
)
from speakimg.pipeline.output import ImagesThatSpeakOutput, OutputType, Prompts
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
from speakimg.pipeline.weights import combination_weights
from speakimg.sampling.settings import SamplerSettings, check_guidance

__all__ = ["CROP_COLUMNS", "DEFAULTS", "ImagesThatSpeakOutput", "ImagesThatSpeakPipeline"]

log = logging.getLogger("speakimg.pipeline")

CROP_COLUMNS = CANVAS.crop_columns
"""Columns (frames) cropped off the right edge by ``crop_padding``: the band that is padding (silence)
in the audio model's 10 s training clips. 32 columns = 4 latent columns = 5120 samples = 0.32 s."""

DEFAULTS = SamplerSettings(method="denoise").resolved()
"""The keyword defaults of :meth:`ImagesThatSpeakPipeline.__call__` (the papers': see ``SamplerSettings``)."""


def _device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in module.parameters():
        return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _vae_factor(vae: nn.Module) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _as_prompt_list(name: str, prompts: Prompts) -> list[str]:
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, Sequence) or isinstance(prompts, bytes):
        raise ConfigError(f"{name} must be a string or a list of strings, got {type(prompts).__name__}")
    prompts = list(prompts)
    if not prompts:
        raise ConfigError(f"{name} is an empty list: pass at least one prompt")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise ConfigError(f"{name} must hold strings only, got {type(bad[0]).__name__} ({bad[0]!r})")
    return prompts


class ImagesThatSpeakPipeline:
    """Images that Sound / images that speak: a picture that is also a spectrogram.

    Components (all may be passed directly; :meth:`from_pretrained` loads them):
        image_unet, image_vae, image_prompt_encoder: the image model (Stable Diffusion 1.5).
        audio_unet, audio_vae, audio_prompt_encoder: the audio model (Auffusion, or the speech model).
        scheduler: the ONE scheduler both models share; any diffusers scheduler or config dict is
            turned into a ``DDIMScheduler`` from its config (the method's deterministic DDIM, eta 0).
        vocoder: a module mapping ``[B, n_mels, T]`` log-mel to ``[B, 1, hop * T]`` audio, or a spec
            for :func:`speakimg.vocoder.load_vocoder` (``"griffin-lim"``, a HiFi-GAN folder / hub id).
        audio_scheduler_config: the audio model's scheduler config; if given, it must define the same
            noise schedule as ``scheduler`` (:func:`check_same_schedule`).
        mel_config: the mel front end of the spectrograms (Auffusion's by default).
        sources: provenance (model ids, vocoder) recorded with samples.
    """

    def __init__(
        self,
        image_unet: nn.Module,
        image_vae: nn.Module,
        image_prompt_encoder: nn.Module,
        audio_unet: nn.Module,
        audio_vae: nn.Module,
        audio_prompt_encoder: nn.Module,
        scheduler: Any,
        vocoder: nn.Module | str = "griffin-lim",
        *,
        audio_scheduler_config: dict | None = None,
        mel_config: MelConfig = MelConfig(),
        sources: dict[str, Any] | None = None,
    ) -> None:
        from speakimg.vocoder import load_vocoder

        config = dict(scheduler) if isinstance(scheduler, dict) else dict(scheduler.config)
        self.scheduler = scheduler if isinstance(scheduler, DDIMScheduler) else DDIMScheduler.from_config(config)
        if self.scheduler.config.clip_sample or self.scheduler.config.thresholding:
            log.warning(
                "the scheduler config clips/thresholds x0 (clip_sample=%s, thresholding=%s): Stable Diffusion 1.5 "
                "and the method do not; did you build the scheduler with DDIMScheduler() defaults?",
                self.scheduler.config.clip_sample,
                self.scheduler.config.thresholding,
            )
        if audio_scheduler_config is not None:
            check_same_schedule(dict(self.scheduler.config), dict(audio_scheduler_config))
        self.image_unet = image_unet
        self.image_vae = image_vae
        self.image_prompt_encoder = image_prompt_encoder
        self.audio_unet = audio_unet
        self.audio_vae = audio_vae
        self.audio_prompt_encoder = audio_prompt_encoder
        self.vocoder = load_vocoder(vocoder)
        self.mel_config = mel_config
        self.sources = dict(sources or {})
        self.sources.setdefault("vocoder", vocoder if isinstance(vocoder, str) else type(vocoder).__name__)
        self._progress_bar_config: dict[str, Any] = {}
        self._check_components()

    pixel_model: Any = None
    """An optional DeepFloyd IF stage-I :class:`~speakimg.pipeline.deepfloyd.PixelModel` (the SDS baseline's
    image side, colorization); :func:`speakimg.sampling.load_pipeline` sets it from ``pixel_model``."""

    def _check_components(self) -> None:
        channels = {
            "image_unet.in_channels": self.image_unet.config.in_channels,
            "audio_unet.in_channels": self.audio_unet.config.in_channels,
            "image_vae.latent_channels": self.image_vae.config.latent_channels,
            "audio_vae.latent_channels": self.audio_vae.config.latent_channels,
        }
        if len(set(channels.values())) != 1:
            raise ConfigError(f"the two models do not share one latent space: {channels}")
        if _vae_factor(self.image_vae) != _vae_factor(self.audio_vae):
            raise ConfigError(
                f"the two VAEs downsample differently ({_vae_factor(self.image_vae)}x vs "
                f"{_vae_factor(self.audio_vae)}x): they must share one latent space"
            )
        if self.image_vae.config.scaling_factor != self.audio_vae.config.scaling_factor:
            log.warning(
                "the VAEs' scaling factors differ (%s vs %s); each decode uses its own",
                self.image_vae.config.scaling_factor,
                self.audio_vae.config.scaling_factor,
            )

    # ------------------------------------------------------------------ loading, devices
    @classmethod
    def from_pretrained(
        cls,
        image_model: str | Path = DEFAULT_IMAGE_MODEL,
        audio_model: str | Path = DEFAULT_AUDIO_MODEL,
        vocoder: str | nn.Module | None = None,
        *,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> ImagesThatSpeakPipeline:
        """Load both models (folders or hub ids) and a vocoder.

        Args:
            image_model: an SD-1.5-layout folder or hub id.
            audio_model: an Auffusion-layout folder / hub id (text-prompted: "Images that Sound"), or a
                speech model folder exported by speakimg (``speakimg_speech.json``; prompted by sentences).
            vocoder: ``None`` = the audio model's ``vocoder/`` (HiFi-GAN) when it has one, else Griffin-Lim
                with a warning; ``"griffin-lim"``; a HiFi-GAN folder / hub id; or a module.
            torch_dtype: dtype of the UNets and prompt encoders (e.g. ``torch.bfloat16`` on GPU); the VAEs
                stay float32 when their config asks for it (``force_upcast``), the vocoder float32.
            device: where to put everything.
        """
        image = load_image_model(image_model, torch_dtype)
        audio = load_audio_model(audio_model, torch_dtype)
        if vocoder is None:
            vocoder_module, vocoder_name = default_vocoder(audio.vocoder_candidates)
        else:
            from speakimg.vocoder import load_vocoder

            vocoder_module = load_vocoder(vocoder)
            vocoder_name = str(vocoder) if isinstance(vocoder, (str, Path)) else type(vocoder).__name__
        pipe = cls(
            image.unet,
            image.vae,
            image.prompt_encoder,
            audio.unet,
            audio.vae,
            audio.prompt_encoder,
            DDIMScheduler.from_config(image.scheduler_config),
            vocoder_module,
            audio_scheduler_config=audio.scheduler_config,
            sources={
                "image_model": image.source,
                "audio_model": audio.source,
                "audio_model_kind": audio.kind,
                "vocoder": vocoder_name,
            },
        )
        return pipe.to(device, torch_dtype)

    @property
    def components(self) -> dict[str, Any]:
        """Every component by name (as the constructor takes them)."""
        return {
            "image_unet": self.image_unet,
            "image_vae": self.image_vae,
            "image_prompt_encoder": self.image_prompt_encoder,
            "audio_unet": self.audio_unet,
            "audio_vae": self.audio_vae,
            "audio_prompt_encoder": self.audio_prompt_encoder,
            "scheduler": self.scheduler,
            "vocoder": self.vocoder,
        }

    @property
    def device(self) -> torch.device:
        return _device_dtype(self.image_unet)[0]

    @property
    def dtype(self) -> torch.dtype:
        return _device_dtype(self.image_unet)[1]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> ImagesThatSpeakPipeline:
        """Move the models; ``dtype`` applies to the UNets and prompt encoders.

        VAEs whose config sets ``force_upcast`` (SD's) stay float32 and decode in float32; the vocoder
        stays float32. Returns ``self``.
        """
        if device is None and dtype is None:
            return self

        def move(module: nn.Module, dtype: torch.dtype | None) -> None:
            kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
            if kwargs:
                module.to(**kwargs)

        # diffusers warns on every dtype cast of a model, even one without fp32-only modules
        quiet = logging.getLogger("diffusers.models.modeling_utils")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            for module in (self.image_unet, self.audio_unet, self.image_prompt_encoder, self.audio_prompt_encoder):
                move(module, dtype)
            for vae in (self.image_vae, self.audio_vae):
                move(vae, torch.float32 if getattr(vae.config, "force_upcast", False) else dtype)
        finally:
            quiet.setLevel(level)
        move(self.vocoder, None)
        return self

    def compile(self, *, repeated_blocks: bool = True, **compile_kwargs: Any) -> ImagesThatSpeakPipeline:
        """``torch.compile`` both UNets in place (channels_last).

        With ``repeated_blocks`` (default) only the UNets' transformer blocks are compiled
        (``compile_repeated_blocks``: most of the speed-up, compiles several times faster); otherwise
        the whole UNet. ``compile_kwargs`` go to ``torch.compile`` (``mode``, ``fullgraph``, ``backend``).
        """
        unets = [self.image_unet] + ([self.audio_unet] if self.audio_unet is not self.image_unet else [])
        for unet in unets:
            unet.to(memory_format=torch.channels_last)
            if repeated_blocks and getattr(unet, "_repeated_blocks", None) and hasattr(unet, "compile_repeated_blocks"):
                unet.compile_repeated_blocks(**compile_kwargs)
            else:
                unet.compile(**compile_kwargs)
        return self

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """Options for the tqdm progress bar (e.g. ``disable=True``), as in diffusers."""
        self._progress_bar_config = kwargs

    def progress_bar(self, total: int, desc: str = "denoising") -> tqdm:
        options = {"desc": desc, "unit": "step", "leave": False, **self._progress_bar_config}
        return tqdm(total=total, **options)

    # ------------------------------------------------------------------ building blocks
    def batch_prompts(
        self,
        image_prompt: Prompts,
        audio_prompt: Prompts,
        negative_image_prompt: Prompts = "",
        negative_audio_prompt: Prompts = "",
        num_images_per_prompt: int = 1,
    ) -> tuple[list[str], list[str], list[str], list[str]]:
        """Broadcast prompts and negatives to one batch; each pair repeated ``num_images_per_prompt`` times."""
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int):
            raise ConfigError(f"num_images_per_prompt must be an int >= 1, got {num_images_per_prompt!r}")
        if num_images_per_prompt < 1:
            raise ConfigError(f"num_images_per_prompt must be >= 1, got {num_images_per_prompt}")
        lists = {
            "image_prompt": _as_prompt_list("image_prompt", image_prompt),
            "audio_prompt": _as_prompt_list("audio_prompt", audio_prompt),
            "negative_image_prompt": _as_prompt_list("negative_image_prompt", negative_image_prompt),
            "negative_audio_prompt": _as_prompt_list("negative_audio_prompt", negative_audio_prompt),
        }
        size = max(len(lists["image_prompt"]), len(lists["audio_prompt"]))  # the prompts set the batch
        for name, values in lists.items():
            if len(values) == 1:
                lists[name] = values * size
            elif len(values) != size:
                sizes = {k: len(v) for k, v in lists.items()}
                raise ConfigError(
                    f"{name} has {len(values)} prompts but the batch has {size} ({sizes}); pass lists of equal "
                    "length, or a single string to use for every sample"
                )
        n = num_images_per_prompt
        image, audio, neg_image, neg_audio = ([p for p in values for _ in range(n)] for values in lists.values())
        return image, audio, neg_image, neg_audio

    @staticmethod
    def encode(encoder: nn.Module, unet: nn.Module, prompts: list[str], negatives: list[str]) -> torch.Tensor:
        """``[2B, L, D]`` embeddings (negatives first) on the UNet's device and dtype; each distinct
        prompt is encoded once."""
        unique = list(dict.fromkeys([*negatives, *prompts]))
        table = encoder(unique)
        if table.ndim != 3 or table.shape[0] != len(unique):
            raise ConfigError(
                f"{type(encoder).__name__} returned {tuple(table.shape)} for {len(unique)} prompts; "
                "a PromptEncoder returns [B, L, D]"
            )
        expected = getattr(unet.config, "cross_attention_dim", table.shape[-1])
        if table.shape[-1] != expected:
            raise ConfigError(
                f"{type(encoder).__name__} gives {table.shape[-1]}-dim embeddings but the UNet's cross-attention "
                f"expects {expected}: the prompt encoder does not belong to this UNet"
            )
        index = {prompt: i for i, prompt in enumerate(unique)}
        rows = torch.tensor([index[p] for p in [*negatives, *prompts]], device=table.device)
        device, dtype = _device_dtype(unet)
        return table.index_select(0, rows).to(device=device, dtype=dtype)

    def latent_shape(self, batch_size: int, height: int, width: int) -> tuple[int, int, int, int]:
        factor = _vae_factor(self.image_vae)
        return (batch_size, self.image_unet.config.in_channels, height // factor, width // factor)

    def prepare_latents(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z_T as float32 on the pipeline's device: ``latents`` if given, else N(0, I) drawn from
        ``generator`` (one generator per sample draws that sample's noise alone)."""
        shape = self.latent_shape(batch_size, height, width)
        if latents is None:
            if isinstance(generator, list) and len(generator) != batch_size:
                raise ConfigError(
                    f"got {len(generator)} generators for a batch of {batch_size} samples: pass one generator "
                    "per sample (prompts x num_images_per_prompt), or a single generator"
                )
            latents = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        else:
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != shape:
                got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                raise ConfigError(
                    f"latents must have shape {shape} (batch, channels, height/{_vae_factor(self.image_vae)}, "
                    f"width/{_vae_factor(self.image_vae)}), got {got}"
                )
            latents = latents.to(device=self.device, dtype=torch.float32)
        return latents * self.scheduler.init_noise_sigma

    @staticmethod
    def _decode(vae: nn.Module, latents: torch.Tensor) -> torch.Tensor:
        device, dtype = _device_dtype(vae)
        z = latents.to(device=device, dtype=dtype) / vae.config.scaling_factor
        return from_vae_range(vae.decode(z, return_dict=False)[0].float())

    @torch.no_grad()
    def decode_images(self, latents: torch.Tensor) -> torch.Tensor:
        """z_0 -> pictures ``[B, 3, H, W]`` in [0, 1] with the image model's VAE."""
        return self._decode(self.image_vae, latents)

    @torch.no_grad()
    def decode_spectrograms(self, latents: torch.Tensor) -> torch.Tensor:
        """z_0 -> spectrogram images ``[B, H, W]`` in [0, 1] (channel mean of the audio model's VAE decode)."""
        return self._decode(self.audio_vae, latents).mean(dim=1)

    def spectrograms_to_log_mels(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` spectrogram images in [0, 1] -> ``[B, n_mels, W]`` natural-log mel."""
        return image_to_mel(spectrograms.unsqueeze(1), reduce="first")

    @torch.no_grad()
    def vocode(self, log_mels: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, T]`` log-mel -> ``[B, hop * T]`` float32 audio with the pipeline's vocoder."""
        device, _ = _device_dtype(self.vocoder)
        audio = self.vocoder(log_mels.to(device=device, dtype=torch.float32))
        return audio.reshape(audio.shape[0], -1).float()

    def finish(
        self,
        images: torch.Tensor | None,
        spectrograms: torch.Tensor,
        latents: torch.Tensor | None,
        output_type: OutputType,
        crop_padding: bool,
    ) -> ImagesThatSpeakOutput:
        """Spectrograms -> log-mels -> audio, optional crop of the padding band, conversion to ``output_type``."""
        log_mels = self.spectrograms_to_log_mels(spectrograms)
        audios = self.vocode(log_mels)
        if crop_padding:
            images = images[..., :-CROP_COLUMNS] if images is not None else None
            spectrograms = spectrograms[..., :-CROP_COLUMNS]
            log_mels = log_mels[..., :-CROP_COLUMNS]
            audios = audios[..., : audios.shape[-1] - CROP_COLUMNS * self.mel_config.hop_length]
        if output_type == "np":
            images = images.permute(0, 2, 3, 1).cpu().numpy() if images is not None else None
            spectrograms, log_mels, audios = (x.cpu().numpy() for x in (spectrograms, log_mels, audios))
        return ImagesThatSpeakOutput(
            images=images,
            spectrograms=spectrograms,
            log_mels=log_mels,
            audios=audios,
            latents=latents,
            sample_rate=self.mel_config.sample_rate,
        )

    def check_size(self, height: int, width: int, output_type: str, crop_padding: bool) -> None:
        """Errors for sizes the VAE or the audio decode cannot take, and unknown output types."""
        if output_type not in ("np", "pt", "latent"):
            raise ConfigError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        factor = _vae_factor(self.image_vae)
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % factor:
                raise ConfigError(
                    f"{name} must be a positive multiple of {factor} (the VAE's downsampling), got {value!r}"
                )
        if output_type != "latent" and height != self.mel_config.n_mels:
            raise ConfigError(
                f"height={height} but the spectrogram has {self.mel_config.n_mels} mel bins: use height="
                f"{self.mel_config.n_mels} (or output_type='latent' for other sizes)"
            )
        if crop_padding and output_type != "latent" and width <= CROP_COLUMNS:
            raise ConfigError(f"width={width} is too small to crop {CROP_COLUMNS} columns: set crop_padding=False")

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        image_prompt: Prompts,
        audio_prompt: Prompts,
        *,
        num_inference_steps: int = DEFAULTS.steps,
        image_guidance_scale: float = DEFAULTS.image_guidance_scale,
        audio_guidance_scale: float = DEFAULTS.audio_guidance_scale,
        t_image: float = DEFAULTS.t_image,
        t_audio: float = DEFAULTS.t_audio,
        audio_weight: float = DEFAULTS.audio_weight,
        height: int = DEFAULTS.height,
        width: int = DEFAULTS.width,
        negative_image_prompt: Prompts = DEFAULTS.negative_image_prompt,
        negative_audio_prompt: Prompts = DEFAULTS.negative_audio_prompt,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: OutputType = "np",
        crop_padding: bool = DEFAULTS.crop_padding,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        return_dict: bool = True,
    ) -> ImagesThatSpeakOutput | tuple:
        """Sample pictures that are also spectrograms (docs/sampling.md); the defaults are
        :class:`~speakimg.sampling.SamplerSettings`' (``speakimg.sampling.sample_batch`` runs a whole
        ``SamplerSettings``).

        Args:
            image_prompt: what the picture shows (a string or a list, one per sample).
            audio_prompt: what it sounds like: a sound caption (Auffusion) or the sentence to speak (speech
                model). Lists of prompts batch; a single string is used for every sample.
            num_inference_steps: DDIM steps (100 in the paper: t = 991, 981, ..., 1).
            image_guidance_scale, audio_guidance_scale: classifier-free guidance scales of each model (a
                negative scale or one above 50 is used, with a warning).
            t_image, t_audio: fractions (0, 1] of the reverse process in which each model takes part;
                a model takes part at timestep t iff t <= fraction * 1000 (see
                :mod:`speakimg.pipeline.weights`). t_image=0.9: the first 10% of steps are audio-only.
            audio_weight: weight of the audio estimate once both models take part
                (``eps = audio_weight * eps_audio + (1 - audio_weight) * eps_image``).
            height, width: picture size in pixels (multiples of 8; height = 256 mel bins for audio output;
                width 1024 = 10.24 s).
            negative_image_prompt, negative_audio_prompt: the unconditional prompts of guidance ("" = the
                models' unconditional embeddings).
            num_images_per_prompt: samples per prompt pair.
            generator: a torch.Generator, or one per sample (then each sample equals its single run).
            latents: z_T ``[B, 4, H/8, W/8]`` to start from (overrides ``generator``).
            output_type: ``"np"`` or ``"pt"`` (everything decoded), ``"latent"`` (z_0 only).
            crop_padding: crop the last 32 columns (and 5120 samples): the padding band of the audio
                model's training canvas; 1024 -> 992 columns, 10.24 s -> 9.92 s.
            callback: ``callback(i, t, latents)`` after every step.
            return_dict: return an :class:`ImagesThatSpeakOutput` (else a tuple of its non-None fields).
        """
        self.check_size(height, width, output_type, crop_padding)
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
            raise ConfigError(f"num_inference_steps must be an int, got {num_inference_steps!r}")
        if not 1 <= num_inference_steps <= self.scheduler.config.num_train_timesteps:
            raise ConfigError(
                f"num_inference_steps must be in [1, {self.scheduler.config.num_train_timesteps}], got {num_inference_steps}"
            )
        image_scale = check_guidance("image_guidance_scale", image_guidance_scale)
        audio_scale = check_guidance("audio_guidance_scale", audio_guidance_scale)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        weights = combination_weights(
            self.scheduler.timesteps,
            t_image=t_image,
            t_audio=t_audio,
            audio_weight=audio_weight,
            num_train_timesteps=self.scheduler.config.num_train_timesteps,
        )
        images_p, audio_p, neg_images, neg_audio = self.batch_prompts(
            image_prompt, audio_prompt, negative_image_prompt, negative_audio_prompt, num_images_per_prompt
        )
        z_t = self.prepare_latents(len(images_p), height, width, generator, latents)
        denoisers = [
            GuidedDenoiser(
                self.image_unet,
                self.encode(self.image_prompt_encoder, self.image_unet, images_p, neg_images),
                image_scale,
            ),
            GuidedDenoiser(
                self.audio_unet,
                self.encode(self.audio_prompt_encoder, self.audio_unet, audio_p, neg_audio),
                audio_scale,
            ),
        ]
        with self.progress_bar(total=num_inference_steps) as bar:

            def on_step(i: int, t: torch.Tensor, z: torch.Tensor) -> None:
                bar.update()
                if callback is not None:
                    callback(i, t, z)

            z_0 = combined_denoise(denoisers, self.scheduler, z_t, weights, callback=on_step)
        if output_type == "latent":
            output = ImagesThatSpeakOutput(latents=z_0, sample_rate=self.mel_config.sample_rate)
        else:
            output = self.finish(self.decode_images(z_0), self.decode_spectrograms(z_0), z_0, output_type, crop_padding)
        return output if return_dict else output.to_tuple()

    def imprint(
        self, image_prompt: Prompts, audio_prompt: Prompts, settings: SamplerSettings | None = None, **kwargs: Any
    ) -> ImagesThatSpeakOutput:
        """The imprint baseline with this pipeline's models: see :func:`speakimg.pipeline.imprint.sample_imprint`
        (``settings``: a ``SamplerSettings``; keywords change its fields)."""
        return sample_imprint(self, image_prompt, audio_prompt, settings, **kwargs)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v!r}" for k, v in self.sources.items())
        return f"{type(self).__name__}({parts}, scheduler={type(self.scheduler).__name__}, device={self.device}, dtype={self.dtype})"
