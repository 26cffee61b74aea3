"""``VocoderMediaCallback``: real vs generated audio and log-mel images of fixed validation clips.

For the first ``num_clips`` validation items of each validation run (the validation loader is not
shuffled, so they are the same clips every time) it vocodes their mels with the module's generator
and logs the real and generated audio side by side, and one image with the real log-mel above the
log-mel of the generated audio. Rank 0 only; no collective.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from speakimg.audio import MelConfig, log_mel, mel_to_image
from speakimg.errors import ConfigError
from speakimg.loggers import log_audios, log_images
from speakimg.media import colorize

__all__ = ["VocoderMediaCallback"]


class VocoderMediaCallback(Callback):
    """Log ``num_clips`` validation clips (real vs generated) every ``every_n_epochs`` validation runs.

    The module must have a ``generator`` (mel ``[B, n_mels, T]`` -> audio ``[B, 1, hop * T]``); batches are
    dicts with ``"mel"`` and ``"audio"`` (``speakimg.data.vocoder.VocoderDataModule``).
    """

    def __init__(self, num_clips: int = 4, every_n_epochs: int = 1) -> None:
        super().__init__()
        if num_clips < 1 or every_n_epochs < 1:
            raise ConfigError(f"num_clips and every_n_epochs must be >= 1, got {num_clips}, {every_n_epochs}")
        self.num_clips = num_clips
        self.every_n_epochs = every_n_epochs
        self._clips: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._runs = 0

    def _active(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and not trainer.sanity_checking and self._runs % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._clips = []

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active(trainer) or len(self._clips) >= self.num_clips:
            return
        generator = getattr(pl_module, "generator", None)
        if generator is None:
            raise ConfigError("VocoderMediaCallback needs a LightningModule with a .generator (HiFiGANModule)")
        take = min(self.num_clips - len(self._clips), batch["mel"].shape[0])
        with torch.no_grad():
            fake = generator(batch["mel"][:take]).reshape(take, -1)
        real = batch["audio"][:take].reshape(take, -1)
        self._clips += [(r.detach().float().cpu(), f.detach().float().cpu()) for r, f in zip(real, fake, strict=True)]

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            self._runs += 0 if trainer.sanity_checking else 1
            return
        self._runs += 1
        if not self._clips:
            return
        generator = getattr(pl_module, "generator", None)
        sample_rate = getattr(generator, "sample_rate", 16000)
        config = MelConfig(sample_rate=sample_rate)
        step = trainer.global_step // max(1, len(trainer.optimizers))  # batches (HiFi-GAN steps 2 optimizers)
        loggers, files = trainer.loggers, Path(trainer.default_root_dir) / "media"
        for i, (real, fake) in enumerate(self._clips):
            mels = log_mel(torch.stack([real, fake]), config)
            image = torch.cat([mel_to_image(mels[0])[0], mel_to_image(mels[1])[0]], dim=0)  # real above generated
            key = f"val/clip{i}"
            log_audios(loggers, f"{key}/audio", [real, fake], ["real", "generated"], sample_rate, step, files)
            log_images(loggers, f"{key}/mel", [colorize(image)], ["real (top) / generated (bottom)"], step, files)
        self._clips = []
