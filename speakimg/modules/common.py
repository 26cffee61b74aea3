"""Helpers shared by the LightningModules."""

from __future__ import annotations

import torch

from speakimg.errors import TrainingError

__all__ = ["check_finite"]


def check_finite(loss: torch.Tensor, name: str, step: int) -> torch.Tensor:
    """Return ``loss`` or raise :class:`TrainingError` naming the loss and the step if it is NaN/inf.

    The error stops the run before the optimizer applies a non-finite update; checkpoints written
    so far stay valid.
    """
    if not torch.isfinite(loss.detach()).all():
        raise TrainingError(
            f"{name} is {loss.detach().float().item()} at global step {step}. Training stopped before the "
            "update; the last checkpoint is intact. Try a lower learning rate, 'bf16-mixed' instead of "
            "'16-mixed' precision, or gradient clipping (--trainer.gradient_clip_val)."
        )
    return loss
