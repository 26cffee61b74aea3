"""The combined sampler as a small pure function: denoisers + scheduler + weights -> z_0.

In the spirit of k-diffusion, nothing here loads, encodes or decodes anything. A
:class:`GuidedDenoiser` is one diffusion model with its prompt embeddings and guidance scale;
:func:`combined_denoise` runs the shared scheduler, weighing every denoiser's classifier-free-guided
noise estimate per step (:func:`speakimg.pipeline.weights.combination_weights` builds the weights of
Images that Sound). A denoiser whose weight is 0 at a step is not evaluated at that step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from speakimg.errors import ConfigError

__all__ = ["GuidedDenoiser", "combined_denoise"]

StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]
"""``callback(step_index, timestep, latents_after_the_step)``."""


@dataclass
class GuidedDenoiser:
    """One model's classifier-free-guided noise estimate ``eps_u + s * (eps_c - eps_u)``.

    Attributes:
        unet: a ``UNet2DConditionModel`` (or any module with its call signature).
        embeddings: ``[2B, L, D]``: the B unconditional rows first, then the B conditional rows,
            already on the UNet's device and in its dtype.
        guidance_scale: ``s``.
    """

    unet: nn.Module
    embeddings: torch.Tensor
    guidance_scale: float

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Guided noise estimate for ``latents`` ``[B, C, h, w]`` at ``timestep``, in float32.

        The unconditional and conditional inputs go through one UNet call on ``[z, z]``.
        """
        model_input = torch.cat([latents, latents]).to(self.embeddings.dtype)
        noise = self.unet(model_input, timestep, encoder_hidden_states=self.embeddings, return_dict=False)[0]
        uncond, cond = noise.float().chunk(2)
        return uncond + self.guidance_scale * (cond - uncond)


@torch.no_grad()
def combined_denoise(
    denoisers: Sequence[GuidedDenoiser],
    scheduler,
    latents: torch.Tensor,
    weights: torch.Tensor,
    *,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Denoise ``latents`` (z_T) with a weighted sum of guided noise estimates; returns z_0.

    Args:
        denoisers: the M models taking part.
        scheduler: a diffusers scheduler on which ``set_timesteps`` has been called; a DDIM scheduler
            gives the deterministic (eta 0) update of the method.
        latents: z_T ``[B, C, h, w]`` (already scaled by ``scheduler.init_noise_sigma``). The sampling
            state is kept in float32 whatever the UNets' dtype.
        weights: ``[N, M]``: weight of each denoiser at each of the scheduler's N steps.
        callback: called after every step with ``(i, t, z_t-1)``.
    """
    timesteps = scheduler.timesteps
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (len(timesteps), len(denoisers)):
        raise ConfigError(
            f"weights must have shape [steps, models] = [{len(timesteps)}, {len(denoisers)}], "
            f"got {tuple(weights.shape)}"
        )
    rows = weights.tolist()
    z = latents.float()
    for i, t in enumerate(timesteps):
        eps = None
        for denoiser, weight in zip(denoisers, rows[i], strict=True):
            if weight == 0.0:
                continue
            estimate = denoiser(z, t)
            if weight != 1.0:
                estimate = weight * estimate
            eps = estimate if eps is None else eps + estimate
        if eps is None:
            raise ConfigError(f"no denoiser has a non-zero weight at step {i} (t={int(t)})")
        z = scheduler.step(eps, t, z, return_dict=False)[0]  # DDIM: eta defaults to 0
        if callback is not None:
            callback(i, t, z)
    return z
