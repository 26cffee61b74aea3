"""Helpers shared by the LightningModules: the NaN/inf guard and checkpoint summaries."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from speakimg.errors import TrainingError

__all__ = ["check_finite", "describe_state", "format_bytes", "format_count", "log_resume"]

log = logging.getLogger("speakimg.modules")


def check_finite(loss: torch.Tensor, name: str, step: int, weights_step: int | None = None) -> torch.Tensor:
    """Return ``loss`` or raise :class:`TrainingError` naming the loss and the step if it is NaN/inf.

    The error stops the run before the optimizer applies a non-finite update. ``weights_step`` is the
    global step of the weights the loss came from (default ``step``; the vocoder's generator loss comes
    after its discriminator update, from the weights of the batch's first step): the checkpoint of that
    step is the one that diverged (:class:`~speakimg.modules.checkpoints.FiniteCheckpoints` names it and
    the last finite one in the message).
    """
    if not torch.isfinite(loss.detach()).all():
        error = TrainingError(
            f"{name} is {loss.detach().float().item()} at global step {step}: training stopped before the update. "
            "Try a lower learning rate, 'bf16-mixed' instead of '16-mixed' precision, or gradient clipping "
            "(--trainer.gradient_clip_val)."
        )
        error.weights_step = step if weights_step is None else weights_step  # type: ignore[attr-defined]
        raise error
    return loss


def format_count(n: int) -> str:
    """``52113`` -> ``52.1 K``; ``26_214_400`` -> ``26.2 M``."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def format_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def describe_state(state: Mapping[str, Any]) -> str:
    """``"52 tensors, 52.1 K parameters, 203.6 KiB"`` for a state dict."""
    tensors = [v for v in state.values() if torch.is_tensor(v)]
    numel = sum(t.numel() for t in tensors)
    size = sum(t.numel() * t.element_size() for t in tensors)
    return f"{len(tensors)} tensors, {format_count(numel)} parameters, {format_bytes(size)}"


def log_resume(module: Any, checkpoint: Mapping[str, Any]) -> None:
    """Log what a resumed run restores (one line, instead of Lightning's list of keys it does not hold)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None:  # loaded outside a run (export, load_from_checkpoint): nothing is resumed
        return
    state = checkpoint.get("state_dict", {})
    held = sum(t.numel() for t in state.values() if torch.is_tensor(t))
    rest = sum(p.numel() for n, p in module.state_dict().items() if n not in state and torch.is_tensor(p))
    parts = [f"weights: {describe_state(state)}"]
    optimizers, schedulers = len(checkpoint.get("optimizer_states") or []), len(checkpoint.get("lr_schedulers") or [])
    parts.append(f"{optimizers} optimizer and {schedulers} scheduler state(s)")
    if "ema" in checkpoint:
        parts.append("the EMA")
    line = (
        f"resuming from {trainer.ckpt_path or 'a checkpoint'} at global step {checkpoint.get('global_step', 0)} "
        f"(epoch {checkpoint.get('epoch', 0)}): " + "; ".join(parts)
    )
    if rest:
        line += (
            f". The other {format_count(rest)} parameters are frozen and come from the base models (checkpoints hold "
            f"only the {format_count(held)} trained ones)"
        )
    log.info(line)
