"""Deterministic, resumable training epochs for every data module (speech and vocoder), with any ``num_workers``.

Why a sampler of our own: Lightning creates the training iterator (``FitLoop.setup_data``) before it
calls ``set_epoch`` on the sampler, and on a resumed run it keeps that iterator. With ``num_workers > 0``
a DataLoader draws its first indices when the iterator is created, so a sampler that reads its epoch
there replays epoch 0's order after a resume. Here the data module itself tells the sampler where
training stands *before* the loader is built:

- :class:`EpochSampler` draws epoch ``e`` from ``seed + e`` only (never the global RNG), shards it over
  the ranks (a ``DistributedSampler``, so Lightning keeps it under DDP) and can skip the batches of
  an epoch that a checkpointed run had already consumed (:meth:`EpochSampler.resume_from`);
- :class:`ResumableEpochs` (a data-module mixin) stores ``{"epoch", "batches"}`` in every checkpoint
  (Lightning's ``LightningDataModule.state_dict``) and, when the loader is built, starts the sampler
  at that point (the next epoch when the checkpoint ended one), else at ``trainer.current_epoch``.

So a run resumed from any checkpoint, at an epoch boundary or mid-epoch, sees exactly the batches the
uninterrupted run saw, with 0 or N workers.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from speakimg.errors import ConfigError

__all__ = ["EpochSampler", "ResumableEpochs"]

# Lightning warns on every mid-epoch resume unless the DataLoader itself is stateful; here the data module's
# state places the sampler (exact resume, tests/test_data_resume.py), so that warning would be untrue.
warnings.filterwarnings(
    "ignore", message="You're resuming from a checkpoint that ended before the epoch ended", category=UserWarning
)


class _Indices:
    """A sized stand-in dataset for ``DistributedSampler`` (only its length is used)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __len__(self) -> int:
        return self.size


class EpochSampler(DistributedSampler):
    """Epoch ``e`` = a permutation drawn from ``seed + e``, sharded over ranks, resumable mid-epoch.

    Args:
        size: number of items.
        batch_size: items per batch (to skip whole batches on resume, and to count batches).
        num_replicas: ranks; rank ``r`` takes every ``num_replicas``-th key of the epoch order.
        rank: this process's rank.
        seed: base seed (default: ``seed_everything``'s seed ``PL_GLOBAL_SEED``, else 0).
        samples_per_epoch: items per epoch over all ranks (default ``size``); longer epochs concatenate
            further permutations of the same generator.
        drop_last: keep only full batches on each rank (else the last batch of a rank may be short and
            the epoch is padded with the next permutation's items so every rank gets as many).
    """

    def __init__(
        self,
        size: int,
        batch_size: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int | None = None,
        samples_per_epoch: int | None = None,
        drop_last: bool = False,
    ) -> None:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else int(seed)
        super().__init__(_Indices(size), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.drop_last_batch = drop_last
        total = samples_per_epoch or self.size
        per_rank = total // num_replicas if drop_last else math.ceil(total / num_replicas)
        if drop_last:
            per_rank = (per_rank // batch_size) * batch_size
        if per_rank == 0:
            raise ConfigError(
                f"an epoch of {total} items gives no full batch of {batch_size} on each of {num_replicas} "
                "process(es): lower batch_size or raise samples_per_epoch"
            )
        self.num_samples = per_rank
        self.total_size = per_rank * num_replicas
        self._skip: tuple[int, int] | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Batches this rank's loader yields in one epoch."""
        return (
            self.num_samples // self.batch_size
            if self.drop_last_batch
            else math.ceil(self.num_samples / self.batch_size)
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_from(self, epoch: int, batches: int) -> None:
        """Start at ``epoch`` and skip its first ``batches`` batches (once); a finished epoch starts the next."""
        epoch, batches = int(epoch), int(batches)
        if batches >= self.batches_per_epoch:
            epoch, batches = epoch + 1, 0
        self.epoch = epoch
        self._skip = (epoch, batches) if batches > 0 else None

    def order(self) -> list[int]:
        """The epoch's item order over all ranks (``total_size`` items)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order: list[int] = []
        while len(order) < self.total_size:
            order += torch.randperm(self.size, generator=generator).tolist()
        return order[: self.total_size]

    def key(self, index: int) -> Any:
        """What the loader passes to the dataset for item ``index`` (the index itself)."""
        return index

    def __iter__(self) -> Iterator:
        keys = self.order()[self.rank : self.total_size : self.num_replicas]
        skip, self._skip = self._skip, None
        if skip is not None and skip[0] == self.epoch:
            keys = keys[skip[1] * self.batch_size :]
        return iter([self.key(i) for i in keys])

    def __len__(self) -> int:
        return self.num_samples


class ResumableEpochs:
    """Mixin for a ``LightningDataModule`` whose training loader samples with an :class:`EpochSampler`.

    Call :meth:`_start_epoch` on the sampler in ``train_dataloader`` before building the loader.
    """

    _resume_state: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Where training stands: the current epoch and the batches of it already consumed."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        # batch_idx is the last batch whose training step ran: everything up to it has been consumed
        return {"epoch": int(trainer.current_epoch), "batches": int(trainer.fit_loop.epoch_loop.batch_idx) + 1}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "epoch" in state_dict:
            self._resume_state = (int(state_dict["epoch"]), int(state_dict.get("batches", 0)))

    def _start_epoch(self, sampler: EpochSampler) -> EpochSampler:
        """Point the sampler at the checkpoint's position (once), else at the trainer's current epoch."""
        if self._resume_state is not None:
            sampler.resume_from(*self._resume_state)
            self._resume_state = None
        else:
            trainer = getattr(self, "trainer", None)
            sampler.set_epoch(int(trainer.current_epoch) if trainer is not None else 0)
        return sampler
