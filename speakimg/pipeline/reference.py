"""Reference-anchored denoising (speakimg's extension, beyond the papers; docs/sampling.md).

The audio prompt is spoken by a TTS voice; its spectrogram image, encoded by the audio model's VAE,
is a clean latent ``z_ref``. The exact noise estimate of a diffusion model whose data is that one
latent is

    eps_ref(z_t, t) = (z_t - sqrt(abar_t) z_ref) / sqrt(1 - abar_t)

(its x0-prediction is ``z_ref`` at every step). It joins the combined sampler as one more denoiser
with its own weight schedule: where it takes part (``t <= t_reference * 1000``, the ``t_image`` /
``t_audio`` convention of :mod:`speakimg.pipeline.weights`) it has weight ``reference_weight`` and the
image and audio estimates share the rest as in combined denoising. The audio model stays as the
fourth estimate's slot: with a speech model it adds what it learnt; set ``t_image = 1`` and
``audio_weight = 0`` to leave it out. ``reference_start < 1`` starts from ``z_ref`` noised to the
first timestep ``<= reference_start * 1000`` (SDEdit) instead of pure noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from speakimg.audio import CANVAS, fit_canvas, log_mel, mel_to_image, peak_normalize, to_vae_range
from speakimg.errors import ConfigError, TextError
from speakimg.pipeline.output import ImagesThatSpeakOutput, OutputType, Prompts
from speakimg.pipeline.sampler import GuidedDenoiser, combined_denoise
from speakimg.pipeline.weights import combination_weights, takes_part
from speakimg.sampling.settings import SamplerSettings

__all__ = [
    "ReferenceDenoiser",
    "encode_spectrograms",
    "reference_weights",
    "sample_reference",
    "spoken_spectrograms",
]


def spoken_spectrograms(sentences: Sequence[str], voice: str = "festival") -> torch.Tensor:
    """Each sentence spoken by ``voice`` (a :mod:`speakimg.tts` voice spec), as a spectrogram image.

    The speech is peak-normalised to 0.95 (Auffusion's training normalisation), placed at the start of
    the canvas and analysed by the one mel front end: ``[B, 256, 1024]`` in [0, 1], silence = 0.
    A sentence longer than the canvas' 10 s of speech is a :class:`TextError` naming it.
    """
    from speakimg.tts import get_voice, parse_voices

    voices = parse_voices(voice)
    if len(voices) != 1:
        raise ConfigError(f"tts must be one voice spec, got {voice!r}")
    engine = get_voice(voices[0])
    limit = CANVAS.speech_frames * CANVAS.hop_length
    images: dict[str, torch.Tensor] = {}
    for sentence in dict.fromkeys(sentences):
        wav = peak_normalize(engine.synthesize(sentence), 0.95)
        if wav.numel() > limit:
            raise TextError(
                f"{voice} speaks {sentence!r} in {wav.numel() / CANVAS.sample_rate:.1f} s: more than the canvas' "
                f"{limit / CANVAS.sample_rate:.0f} s of speech; use a shorter sentence"
            )
        images[sentence] = fit_canvas(mel_to_image(log_mel(wav))[0], CANVAS.frames, 0.0)
    return torch.stack([images[s] for s in sentences])


@torch.no_grad()
def encode_spectrograms(vae: nn.Module, spectrograms: torch.Tensor) -> torch.Tensor:
    """Spectrogram images ``[B, H, W]`` in [0, 1] -> scaled latents (the VAE posterior's mean), float32."""
    param = next(vae.parameters())
    image = to_vae_range(spectrograms.unsqueeze(1).expand(-1, 3, -1, -1)).to(param.device, param.dtype)
    return vae.encode(image).latent_dist.mean.float() * vae.config.scaling_factor


class ReferenceDenoiser:
    """The exact noise estimate of a clean latent: ``(z_t - sqrt(abar_t) z_ref) / sqrt(1 - abar_t)``.

    Args:
        reference: ``z_ref`` ``[B, C, h, w]``.
        alphas_cumprod: the scheduler's ``abar`` table (``scheduler.alphas_cumprod``).
    """

    def __init__(self, reference: torch.Tensor, alphas_cumprod: torch.Tensor) -> None:
        self.reference = reference.float()
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        abar = float(self.alphas_cumprod[int(timestep)])
        return (latents.float() - abar**0.5 * self.reference.to(latents.device)) / (1.0 - abar) ** 0.5


def reference_weights(
    timesteps: torch.Tensor,
    *,
    t_image: float,
    t_audio: float,
    audio_weight: float,
    reference_weight: float,
    t_reference: float,
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """Per-step weights ``[N, 3]`` of (image, audio, reference); each row sums to 1.

    Where the reference takes part its weight is ``reference_weight`` and the image/audio weights of
    :func:`combination_weights` are scaled by ``1 - reference_weight``; elsewhere they are unchanged.
    """
    base = combination_weights(
        timesteps, t_image=t_image, t_audio=t_audio, audio_weight=audio_weight, num_train_timesteps=num_train_timesteps
    )
    on = takes_part(timesteps, t_reference, num_train_timesteps).to(torch.float64) * float(reference_weight)
    return torch.cat([base * (1.0 - on[:, None]), on[:, None]], dim=1)


@torch.no_grad()
def sample_reference(
    pipe: Any,
    image_prompt: Prompts,
    audio_prompt: Prompts,
    settings: SamplerSettings | None = None,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    output_type: OutputType = "np",
    reference: torch.Tensor | None = None,
) -> ImagesThatSpeakOutput:
    """Combined denoising anchored to the spoken audio prompt, with the models of ``pipe``.

    Args:
        settings: ``SamplerSettings`` (its ``reference_*``, ``t_reference`` and ``tts`` fields; the
            rest as for ``denoise``).
        reference: ``z_ref`` ``[B, 4, h, w]`` to use instead of speaking the audio prompts.
    """
    from dataclasses import replace

    settings = replace(settings or SamplerSettings(), method="reference").resolved()
    height, width, crop_padding = settings.height, settings.width, settings.crop_padding
    pipe.check_size(height, width, output_type, crop_padding)
    images_p, audio_p, neg_images, neg_audio = pipe.batch_prompts(
        image_prompt, audio_prompt, settings.negative_image_prompt, settings.negative_audio_prompt
    )
    if reference is None:
        spoken = spoken_spectrograms(audio_p, settings.tts)
        reference = encode_spectrograms(pipe.audio_vae, fit_canvas(spoken, width, 0.0))
    reference = reference.to(pipe.device, torch.float32)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(settings.steps, device=pipe.device)
    T = scheduler.config.num_train_timesteps
    start = int((~takes_part(scheduler.timesteps, settings.reference_start, T)).sum())
    if start == len(scheduler.timesteps):
        raise ConfigError(f"reference_start={settings.reference_start} leaves none of the {settings.steps} steps")
    weights = reference_weights(
        scheduler.timesteps,
        t_image=settings.t_image,
        t_audio=settings.t_audio,
        audio_weight=settings.audio_weight,
        reference_weight=settings.reference_weight,
        t_reference=settings.t_reference,
        num_train_timesteps=T,
    )
    z_t = pipe.prepare_latents(len(images_p), height, width, generator)
    if tuple(reference.shape) != tuple(z_t.shape):
        raise ConfigError(f"the reference latent has shape {tuple(reference.shape)}, the samples {tuple(z_t.shape)}")
    if start:  # SDEdit: z_ref noised to the first kept timestep, with the sample's own noise
        z_t = scheduler.add_noise(reference, z_t, scheduler.timesteps[start : start + 1])
        scheduler.timesteps = scheduler.timesteps[start:]  # DDIM's step needs only t and the step size
        weights = weights[start:]
    denoisers = [
        GuidedDenoiser(
            pipe.image_unet,
            pipe.encode(pipe.image_prompt_encoder, pipe.image_unet, images_p, neg_images),
            settings.image_guidance_scale,
        ),
        GuidedDenoiser(
            pipe.audio_unet,
            pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, audio_p, neg_audio),
            settings.audio_guidance_scale,
        ),
        ReferenceDenoiser(reference, scheduler.alphas_cumprod),
    ]
    with pipe.progress_bar(total=len(weights), desc="reference") as bar:
        z_0 = combined_denoise(denoisers, scheduler, z_t, weights, callback=lambda *_: bar.update())
    if output_type == "latent":
        return ImagesThatSpeakOutput(latents=z_0, sample_rate=pipe.mel_config.sample_rate)
    return pipe.finish(pipe.decode_images(z_0), pipe.decode_spectrograms(z_0), z_0, output_type, crop_padding)
