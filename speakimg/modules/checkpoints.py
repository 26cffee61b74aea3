"""Keep the last finite checkpoint when a run diverges, and say truthfully which checkpoint holds what.

A NaN/inf loss at global step ``g`` (:func:`~speakimg.modules.common.check_finite`) stops training before
the update, but the checkpoint written at step ``g`` already holds the weights that loss came from, and
``last.ckpt`` is usually that checkpoint. :class:`FiniteCheckpoints` (attached by the speakimg
LightningModules through ``configure_callbacks``, so every run has it) tracks what the run wrote:

- a checkpoint written at step ``s`` is *finite* once training has computed finite losses from its weights
  (the batch that starts at step ``s``);
- when a finite checkpoint is about to be overwritten or deleted (``last.ckpt`` at the next save, an old
  top-k file) before its successor is known to be finite, it is moved to ``last-finite.ckpt`` in its folder
  (a rename: no copy), and removed again once a newer checkpoint is finite, so a healthy run ends with
  the folder ModelCheckpoint made;
- when the run diverges, ``last-finite.ckpt`` is made the newest finite checkpoint (copied if needed) and
  the error message says which file holds the diverged weights and which the last finite ones.

While it exists during a run, ``last-finite.ckpt`` is older than ``last.ckpt``, so ``--ckpt_path last``
resumes from ``last.ckpt``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch import Callback

__all__ = ["FINITE_NAME", "FiniteCheckpoints"]


FINITE_NAME = "last-finite.ckpt"


@dataclass
class _Written:
    step: int
    finite_values: bool


def _values_finite(checkpoint: dict[str, Any]) -> bool:
    return all(torch.isfinite(v).all() for v in checkpoint.get("state_dict", {}).values() if torch.is_floating_point(v))


class _TrackingIO(CheckpointIO):
    """Delegates to the strategy's checkpoint IO; records what is written and keeps a finite file that would be
    overwritten or removed as ``last-finite.ckpt`` until a newer checkpoint is known to be finite (rank 0 only:
    the strategy calls its IO on global rank 0)."""

    def __init__(self, inner: CheckpointIO) -> None:
        self.inner = inner
        self.written: dict[str, _Written] = {}  # path -> what it holds
        self.kept: dict[str, _Written] = {}  # folder -> what its last-finite.ckpt holds
        self.newest = -1

    # ------------------------------------------------------------------------------------ CheckpointIO
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        step = int(checkpoint.get("global_step", 0))
        key = os.path.abspath(path)
        old = self.written.get(key)
        if old is not None and old.step < step and os.path.isfile(key):
            self._keep(key, old)  # training went past it with finite losses: keep it until the new one is too
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        self.written[key] = _Written(step, _values_finite(checkpoint))
        self.newest = max(self.newest, step)

    def remove_checkpoint(self, path) -> None:
        key = os.path.abspath(path)
        old = self.written.pop(key, None)
        if old is not None and old.step < self.newest and os.path.isfile(key):
            self._keep(key, old)
            return
        self.inner.remove_checkpoint(path)

    def load_checkpoint(self, path, map_location: Any | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.inner.load_checkpoint(path, map_location=map_location, **kwargs)

    def teardown(self) -> None:
        self.inner.teardown()

    # --------------------------------------------------------------------------------------- keeping
    def _keep(self, path: str, record: _Written, copy: bool = False) -> None:
        """Move (or copy) ``path`` to ``last-finite.ckpt`` beside it, unless what is kept there is as new."""
        folder = str(Path(path).parent)
        target = Path(folder, FINITE_NAME)
        kept = self.kept.get(folder)
        if kept is not None and kept.step >= record.step and target.is_file():
            if not copy:
                os.remove(path)
            return
        if copy:
            tmp = target.with_name(f".{FINITE_NAME}.{os.getpid()}.tmp")
            shutil.copy2(path, tmp)
            os.replace(tmp, target)
        else:
            os.replace(path, target)
        self.kept[folder] = record

    def _existing(self) -> dict[str, _Written]:
        return {p: r for p, r in self.written.items() if os.path.isfile(p)}

    def confirmed(self, through: int) -> None:
        """Training computed finite losses from the weights of step ``through``: every checkpoint up to it is
        finite, and a kept file older than such a checkpoint in its folder is no longer needed."""
        for folder, kept in list(self.kept.items()):
            newer = [r for p, r in self._existing().items() if str(Path(p).parent) == folder and kept.step < r.step]
            if any(r.step <= through and r.finite_values for r in newer):
                Path(folder, FINITE_NAME).unlink(missing_ok=True)
                del self.kept[folder]

    def finished(self) -> None:
        """A run that ended normally: drop kept files if the newest checkpoint holds finite values."""
        existing = self._existing()
        if existing and max(existing.values(), key=lambda r: r.step).finite_values:
            self.confirmed(self.newest)

    def diverged(self, weights_step: int) -> str:
        """Keep the newest finite checkpoint (written before ``weights_step``) and describe the files."""
        existing = self._existing()
        bad = sorted((r.step, p) for p, r in existing.items() if r.step >= weights_step)
        good = sorted((r.step, p) for p, r in existing.items() if r.step < weights_step and r.finite_values)
        notes = []
        if bad:
            step = bad[-1][0]
            paths = [p for s, p in bad if s == step]
            values = "finite values" if all(existing[p].finite_values for p in paths) else "NaN/inf values"
            names = " and ".join([paths[0], *(Path(p).name for p in paths[1:])])
            holds = "hold" if len(paths) > 1 else "holds"
            notes.append(f"{names} (step {step}) {holds} the weights this loss came from ({values})")
        if good:
            step, path = good[-1]
            self._keep(path, existing[path], copy=True)
        kept = [(r.step, str(Path(folder, FINITE_NAME))) for folder, r in self.kept.items()]
        kept = [(s, p) for s, p in kept if os.path.isfile(p)]
        if kept:
            step, path = max(kept)
            notes.append(f"the last finite checkpoint is kept as {path} (step {step})")
        elif self.written:
            notes.append(f"no checkpoint before step {weights_step} was written, so none is known to be finite")
        return "; ".join(notes)


class FiniteCheckpoints(Callback):
    """Keep the newest finite checkpoint as ``last-finite.ckpt`` and name it when a loss turns NaN/inf.

    Attached by the speakimg LightningModules (``configure_callbacks``); see the module docstring.
    """

    def __init__(self) -> None:
        self._io: _TrackingIO | None = None
        self._batch_start = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if not isinstance(io, _TrackingIO):
            io = _TrackingIO(io)
            trainer.strategy.checkpoint_io = io
        self._io = io

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if isinstance(trainer.strategy.checkpoint_io, _TrackingIO):
            trainer.strategy.checkpoint_io = trainer.strategy.checkpoint_io.inner

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._batch_start = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        # runs before ModelCheckpoint saves this step (Lightning calls checkpoint callbacks last)
        if self._io is not None and trainer.is_global_zero:
            self._io.confirmed(self._batch_start)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._io is not None and trainer.is_global_zero:
            self._io.finished()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        weights_step = getattr(exception, "weights_step", None)
        if weights_step is None or self._io is None or not trainer.is_global_zero:
            return
        note = self._io.diverged(weights_step)
        if note and exception.args:
            exception.args = (f"{exception.args[0]} Checkpoints: {note}.", *exception.args[1:])
