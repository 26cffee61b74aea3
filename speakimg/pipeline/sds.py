"""The SDS baseline of Images that Sound (sec. 4.1, eq. 7; appendix A.1): score distillation of one image.

A single-channel image ``x`` (1 x 256 x W in [0, 1]) is the output of an implicit network: random
Fourier features of the pixel coordinates through a small MLP (:class:`FourierImage`). Every step,
each model gives an SDS gradient ``w(t) (eps_hat(x_t; y, t) - eps) dx/dtheta`` (the UNet's Jacobian is
skipped, as in DreamFusion):

- the audio model on the VAE latent of ``x`` (4 x 32 x 128), guidance 10;
- the image model: with a DeepFloyd IF stage-I pixel model (``pixel_model``, as the paper), on eight
  random overlapping 256 x 256 crops of ``x`` resized to 64 x 64 (averaged), guidance 80; without one,
  Stable Diffusion's latent SDS on the VAE latent of ``x`` (same guidance);

``loss = SDS_audio + lambda SDS_image`` with ``lambda`` 0.4, 0 for the first 5,000 steps (audio only);
AdamW (lr 1e-4, weight decay 1e-3), 40,000 steps. Timesteps ``t ~ U[0.02, 0.98] * 1000`` (integers),
weighting ``w(t) = 1 - abar_t`` (DreamFusion's choice; Images that Sound follows DreamFusion).

The image is checkpointed every ``sds_checkpoint_every`` steps into ``<dir>/<key>/`` (the network
and AdamW's moments in ``implicit_image.safetensors``; the step, AdamW's hyperparameters and the
generator's state in ``state.json``), ``key`` a hash of the prompts, the seed, the models and the
settings that shape the optimisation: a rerun of the same sample resumes where it stopped, and a
run with more ``sds_steps`` continues it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speakimg.errors import CheckpointError, ConfigError
from speakimg.pipeline.output import ImagesThatSpeakOutput, OutputType
from speakimg.pipeline.sampler import GuidedDenoiser
from speakimg.sampling.settings import SamplerSettings

__all__ = ["FourierImage", "SDSCheckpoint", "latent_sds_loss", "sample_sds", "sds_loss", "sds_weight"]

CHECKPOINT_FILE = "implicit_image.safetensors"
STATE_FILE = "state.json"
# settings that do not change the optimisation's trajectory (a checkpoint stays valid when they change)
_NOT_IN_KEY = ("sds_steps", "sds_checkpoint_every", "sds_checkpoint_dir", "colorize", "colorize_steps",
               "colorize_start_step", "colorize_guidance_scale", "colorize_prompt", "crop_padding",
               "griffin_lim_iters", "steps", "imprint_rho", "imprint_image_steps", "method")  # fmt: skip


class FourierImage(nn.Module):
    """An implicit single-channel image: ``sigmoid(MLP([sin 2 pi c B, cos 2 pi c B]))`` at every pixel ``c``.

    Pixel coordinates are in units of the image height (``y`` in [0, 1), ``x`` in [0, W/H)); ``B`` is a
    fixed ``[2, features]`` Gaussian matrix of standard deviation ``scale`` (Tancik et al. 2020); the MLP
    has three hidden ReLU layers of width ``hidden``.
    """

    def __init__(self, height: int, width: int, features: int, scale: float, hidden: int, seed: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(2, features, generator=generator) * scale)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mlp = nn.Sequential(
                nn.Linear(2 * features, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, 1),
            )  # fmt: skip

    def forward(self) -> torch.Tensor:
        """The image ``[1, 1, H, W]`` in [0, 1]."""
        device = self.frequencies.device
        y = torch.arange(self.height, device=device, dtype=torch.float32) / self.height
        x = torch.arange(self.width, device=device, dtype=torch.float32) / self.height
        coords = torch.stack(torch.meshgrid(y, x, indexing="ij"), dim=-1).reshape(-1, 2)
        phase = 2 * math.pi * coords @ self.frequencies
        values = self.mlp(torch.cat([phase.sin(), phase.cos()], dim=-1))
        return torch.sigmoid(values).reshape(1, 1, self.height, self.width)


def sds_weight(alphas_cumprod: torch.Tensor, timestep: int) -> float:
    """``w(t) = 1 - abar_t`` (DreamFusion)."""
    return float(1.0 - alphas_cumprod[timestep])


def sds_loss(
    denoiser: GuidedDenoiser, x0: torch.Tensor, timestep: int, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """A surrogate loss whose gradient with respect to ``x0`` is ``w(t) (eps_hat(x_t, t) - eps)`` (summed over the batch).

    ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; ``eps_hat`` is the guided noise estimate (its first
    ``C`` channels: IF also predicts a variance), computed without a graph: no gradient flows through the UNet.
    """
    abar = float(alphas_cumprod[timestep])
    with torch.no_grad():
        x_t = math.sqrt(abar) * x0.detach().float() + math.sqrt(1.0 - abar) * noise
        t = torch.tensor(timestep, device=x0.device)
        eps_hat = denoiser(x_t, t)[:, : x0.shape[1]]
        gradient = (1.0 - abar) * (eps_hat - noise)
    return (gradient * x0.float()).sum()


def _vae_latent(vae: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The VAE latent (posterior mean, scaled) of a ``[B, 1, H, W]`` image in [0, 1], with its graph."""
    dtype = next(vae.parameters()).dtype
    rgb = (2.0 * image - 1.0).expand(-1, 3, -1, -1).to(dtype)
    return vae.encode(rgb).latent_dist.mean.float() * vae.config.scaling_factor


def latent_sds_loss(
    vae: nn.Module,
    denoiser: GuidedDenoiser,
    image: torch.Tensor,
    timestep: int,
    noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """:func:`sds_loss` on the VAE latent of ``image`` ``[B, 1, H, W]``; its gradient flows through the encoder."""
    return sds_loss(denoiser, _vae_latent(vae, image), timestep, noise, alphas_cumprod)


class SDSCheckpoint:
    """The resumable state of one SDS run in ``folder``: network, AdamW, step, generator."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def exists(self) -> bool:
        return (self.folder / STATE_FILE).is_file()

    def save(
        self, image: FourierImage, optimizer: torch.optim.Optimizer, step: int, generator: torch.Generator
    ) -> None:
        from safetensors.torch import save_file

        from speakimg.io import atomic_path, write_json

        tensors = {f"image.{k}": v.detach().cpu().contiguous() for k, v in image.state_dict().items()}
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["generator"] = generator.get_state()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / CHECKPOINT_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_json(self.folder / STATE_FILE, {"step": step, "param_groups": state["param_groups"], "format": 1})

    def load(self, image: FourierImage, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> int:
        """Restore the network, AdamW and the generator; returns the number of steps done."""
        from speakimg.io import load_safetensors

        path = self.folder / STATE_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            step, groups = int(record["step"]), record["param_groups"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"{path}: not a readable SDS checkpoint state ({error}); delete {self.folder} to start over"
            ) from None
        tensors = load_safetensors(self.folder / CHECKPOINT_FILE, what="SDS checkpoint")
        device = next(image.parameters()).device
        try:
            image.load_state_dict({k[len("image.") :]: v for k, v in tensors.items() if k.startswith("image.")})
            optim_state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith("optimizer."):
                    _, index, name = key.split(".", 2)
                    optim_state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
            optimizer.load_state_dict({"state": optim_state, "param_groups": groups})
            generator.set_state(tensors["generator"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(
                f"{self.folder / CHECKPOINT_FILE} does not fit this SDS run ({str(error)[:200]}); delete {self.folder} to start over"
            ) from None
        return step


def checkpoint_key(settings: SamplerSettings, image_prompt: str, audio_prompt: str, seed: int, sources: dict) -> str:
    """The checkpoint folder name of one sample: a hash of what shapes its optimisation."""
    relevant = {k: v for k, v in asdict(settings).items() if k not in _NOT_IN_KEY}
    blob = json.dumps([image_prompt, audio_prompt, seed, relevant, sources], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _random_crops(image: torch.Tensor, count: int, size: int, out: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` crops of ``[1, 1, H, W]``, resized to ``out`` x ``out``, as RGB in [-1, 1]."""
    _, _, height, width = image.shape
    if size > height or size > width:
        raise ConfigError(
            f"sds_crop_size={size} does not fit in the {height} x {width} picture: lower sds_crop_size or widen the picture"
        )
    tops = torch.randint(0, height - size + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (count,), generator=generator).tolist()
    crops = torch.cat([image[..., t : t + size, s : s + size] for t, s in zip(tops, lefts, strict=True)])
    if size != out:
        crops = F.interpolate(crops, size=(out, out), mode="bilinear", antialias=True, align_corners=False)
    return (2.0 * crops - 1.0).expand(-1, 3, -1, -1)


def _timestep(settings: SamplerSettings, num_train_timesteps: int, generator: torch.Generator) -> int:
    u = settings.sds_t_min + (settings.sds_t_max - settings.sds_t_min) * torch.rand((), generator=generator).item()
    return min(int(u * num_train_timesteps), num_train_timesteps - 1)


def _optimize_one(
    pipe: Any, settings: SamplerSettings, image_prompt: str, audio_prompt: str, generator: torch.Generator,
    checkpoint: SDSCheckpoint | None,
) -> torch.Tensor:  # fmt: skip
    """Optimise one implicit image; returns it ``[1, H, W]`` in [0, 1] (float32, on the pipeline's device)."""
    device = pipe.device
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    image = FourierImage(settings.height, settings.width, settings.sds_fourier_features, settings.sds_fourier_scale,
                         settings.sds_hidden, seed).to(device)  # fmt: skip
    optimizer = torch.optim.AdamW(image.parameters(), lr=settings.sds_lr, weight_decay=settings.sds_weight_decay)
    audio = GuidedDenoiser(
        pipe.audio_unet,
        pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, [audio_prompt], [settings.negative_audio_prompt]),
        settings.audio_guidance_scale,
    )
    audio_abar = pipe.scheduler.alphas_cumprod.float()
    pixel = getattr(pipe, "pixel_model", None)
    if pixel is not None:
        crops = settings.sds_crops
        embeddings = pipe.encode(pixel.prompt_encoder, pixel.unet, [image_prompt], [settings.negative_image_prompt])
        image_denoiser = GuidedDenoiser(
            pixel.unet, embeddings.repeat_interleave(crops, dim=0), settings.image_guidance_scale
        )
        image_abar = pixel.scheduler().alphas_cumprod.float()
        pixel_size = int(pixel.unet.config.sample_size)
    else:
        image_denoiser = GuidedDenoiser(
            pipe.image_unet,
            pipe.encode(pipe.image_prompt_encoder, pipe.image_unet, [image_prompt], [settings.negative_image_prompt]),
            settings.image_guidance_scale,
        )
        image_abar = audio_abar
    train_steps = int(pipe.scheduler.config.num_train_timesteps)
    start = checkpoint.load(image, optimizer, generator) if checkpoint is not None and checkpoint.exists() else 0
    with pipe.progress_bar(total=settings.sds_steps, desc="sds") as bar:
        bar.update(min(start, settings.sds_steps))
        for step in range(start, settings.sds_steps):
            x = image()
            z = _vae_latent(pipe.audio_vae, x)
            noise = torch.randn(z.shape, generator=generator).to(device)
            loss = sds_loss(audio, z, _timestep(settings, train_steps, generator), noise, audio_abar)
            if step >= settings.sds_audio_only_steps and settings.sds_image_weight > 0:
                if pixel is not None:
                    views = _random_crops(x, crops, settings.sds_crop_size, pixel_size, generator)
                    noise = torch.randn(views.shape, generator=generator).to(device)
                    t = _timestep(settings, train_steps, generator)
                    image_loss = sds_loss(image_denoiser, views, t, noise, image_abar) / crops
                else:
                    latent = _vae_latent(pipe.image_vae, x)
                    noise = torch.randn(latent.shape, generator=generator).to(device)
                    image_loss = sds_loss(image_denoiser, latent, _timestep(settings, train_steps, generator), noise,
                                          image_abar)  # fmt: skip
                loss = loss + settings.sds_image_weight * image_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update()
            done = step + 1
            if checkpoint is not None and (done % settings.sds_checkpoint_every == 0 or done == settings.sds_steps):
                checkpoint.save(image, optimizer, done, generator)
    with torch.no_grad():
        return image()[0].float()


def sample_sds(
    pipe: Any,
    image_prompt: list[str],
    audio_prompt: list[str],
    settings: SamplerSettings | None = None,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    output_type: OutputType = "pt",
    **changes: Any,
) -> ImagesThatSpeakOutput:
    """The SDS baseline with ``pipe``'s models (and ``pipe.pixel_model`` if set: IF pixel SDS for the image).

    One implicit image per prompt pair, optimised for ``sds_steps`` (checkpointed into
    ``sds_checkpoint_dir`` unless it is ""); the result is both the picture (as 3 equal channels) and the
    spectrogram. ``changes``: fields of :class:`SamplerSettings`. ``latents`` of the output is ``None``.
    """
    if output_type not in ("np", "pt"):
        raise ConfigError(f"the SDS baseline has no latent: output_type must be 'np' or 'pt', got {output_type!r}")
    try:
        settings = replace(settings or SamplerSettings(), method="sds", **changes).resolved()
    except TypeError as error:
        raise ConfigError(f"sds: {error}; the settings are the fields of SamplerSettings") from None
    pipe.check_size(settings.height, settings.width, output_type, settings.crop_padding)
    image_prompts, audio_prompts, _, _ = pipe.batch_prompts(image_prompt, audio_prompt)
    batch = len(image_prompts)
    if isinstance(generator, list) and len(generator) != batch:
        raise ConfigError(f"got {len(generator)} generators for {batch} samples: pass one per sample, or one")
    images = []
    for i, (image_text, audio_text) in enumerate(zip(image_prompts, audio_prompts, strict=True)):
        g = generator[i] if isinstance(generator, list) else generator
        g = g if g is not None else torch.Generator().manual_seed(torch.seed())
        checkpoint = None
        if settings.sds_checkpoint_dir:
            key = checkpoint_key(settings, image_text, audio_text, g.initial_seed(), dict(pipe.sources))
            checkpoint = SDSCheckpoint(Path(settings.sds_checkpoint_dir) / key)
        with torch.enable_grad():
            images.append(_optimize_one(pipe, settings, image_text, audio_text, g, checkpoint))
    spectrograms = torch.cat(images).detach()
    pictures = spectrograms.unsqueeze(1).expand(-1, 3, -1, -1)
    return pipe.finish(pictures, spectrograms, None, output_type, settings.crop_padding)
