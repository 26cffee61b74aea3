"""Optimizers and learning-rate schedules injected from config, with the recipes' defaults.

The LightningModules take ``optimizer`` (``OptimizerCallable``: parameters -> optimizer) and ``scheduler``
(``LRSchedulerCallable``: optimizer -> scheduler) init arguments, so a YAML chooses any torch optimizer
or schedule by class path::

    optimizer:
      class_path: torch.optim.AdamW
      init_args: {betas: [0.9, 0.999], weight_decay: 0.01}
    scheduler:
      class_path: speakimg.modules.optim.WarmupCosine
      init_args: {warmup_steps: 500, min_lr_ratio: 0.1}

``None`` (the default) means the recipe's own choice, built by :func:`make_optimizer` /
:func:`make_scheduler`. Schedules are stepped by the module (per optimizer step, or per epoch for the
vocoder's ``scheduler_interval: epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from speakimg.errors import ConfigError

__all__ = ["WarmupCosine", "make_optimizer", "make_scheduler", "warmup_cosine"]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1 over ``warmup_steps``, then cosine down to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(LRScheduler):
    """Linear warmup to each group's learning rate over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio`` x that rate at ``total_steps`` (held there after).

    Written here because neither library has this curve: transformers'
    ``get_cosine_with_min_lr_schedule_with_warmup`` starts the warmup at lr 0 (a wasted first step) and
    rises again after ``num_training_steps``; torch's ``CosineAnnealingLR`` has one absolute ``eta_min`` for
    every group, not a ratio per group.

    Args:
        optimizer: the optimizer (one rate per parameter group, e.g. LoRA / unfrozen / adapter).
        warmup_steps: steps of linear warmup (step ``i`` < ``warmup_steps`` gets ``(i + 1) / warmup_steps``).
        min_lr_ratio: the final rate as a fraction of each group's rate.
        total_steps: the step where the cosine ends; ``None``: the run's length, filled in by the module
            from the trainer (``max_steps`` or ``max_epochs``) before the first step.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int = 500,
        min_lr_ratio: float = 0.1,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(
                f"WarmupCosine: warmup_steps >= 0 and min_lr_ratio in [0, 1] expected, got {warmup_steps}, {min_lr_ratio}"
            )
        if total_steps is not None and total_steps < 1:
            raise ConfigError(f"WarmupCosine: total_steps must be >= 1 (or null: the run's length), got {total_steps}")
        self.warmup_steps = int(warmup_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        self.total_steps = total_steps
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of every group's base rate at ``step`` (0-based optimizer steps)."""
        if self.total_steps is None and step > 0:
            raise ConfigError("WarmupCosine: total_steps is not set (the module fills it in from the trainer)")
        return warmup_cosine(step, self.warmup_steps, self.total_steps or 1, self.min_lr_ratio)

    def get_lr(self) -> list[float]:
        # closed form (not chained on the current rate): exact at every step and after a resume
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        # total_steps is the current run's length (a resumed run with a new max_steps ends its cosine there)
        return {k: v for k, v in super().state_dict().items() if k != "total_steps"}


def make_optimizer(
    optimizer: Callable[[Iterable], torch.optim.Optimizer] | None,
    params: Iterable,
    **default: Any,
) -> torch.optim.Optimizer:
    """``optimizer(params)``, or the recipe's ``AdamW(params, **default)`` when ``optimizer`` is ``None``."""
    if optimizer is None:
        return torch.optim.AdamW(params, **default)
    return optimizer(params)


def make_scheduler(
    scheduler: Callable[[torch.optim.Optimizer], Any] | None,
    optimizer: torch.optim.Optimizer,
    default: Callable[[torch.optim.Optimizer], Any],
    total_steps: Callable[[], int] | None = None,
):
    """``scheduler(optimizer)`` (or ``default(optimizer)``); a :class:`WarmupCosine` without ``total_steps``
    gets ``total_steps()`` (the run's length)."""
    made = (scheduler or default)(optimizer)
    if isinstance(made, WarmupCosine) and made.total_steps is None:
        if total_steps is None:
            raise ConfigError("WarmupCosine needs total_steps here (the run's length is unknown)")
        made.total_steps = int(total_steps())
    return made
