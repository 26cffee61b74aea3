"""HiFiGANModule: HiFi-GAN training (from scratch or fine-tuning Auffusion's vocoder) in Lightning.

A thin training wrapper over :mod:`speakimg.vocoder` (generator, discriminators, losses). Manual
optimization, per batch (docs/method.md section 4)::

    y_hat = G(mel)                                          # once
    D step: loss_D(MPD, MSD on y and y_hat.detach())        # discriminator AdamW (G frozen)
    G step: adv + feature matching + 45 * mel L1            # generator AdamW (D frozen)

The optimizer and the schedule come from config (``optimizer`` / ``scheduler``, one of each per network);
by default both AdamW use lr 2e-4, betas (0.8, 0.99), weight decay 0.01, with ExponentialLR(0.999) per
epoch (jik876) or per batch (``scheduler_interval="step"``), stepped by hand. Lightning counts every optimizer step, so
``trainer.global_step`` (and ``max_steps``, ``every_n_train_steps``) advances by 2 per batch
(Lightning #17958); logs are indexed by batches.

Checkpoints carry ``vocoder_config`` so that ``Generator.from_pretrained(ckpt)`` and
``python -m speakimg.vocoder.export CKPT OUT_DIR`` need nothing else.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from speakimg.audio import MelConfig
from speakimg.errors import ConfigError
from speakimg.modules.checkpoints import FiniteCheckpoints
from speakimg.modules.common import check_finite, log_resume
from speakimg.modules.optim import make_optimizer, make_scheduler
from speakimg.vocoder.checkpoints import read_discriminators
from speakimg.vocoder.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from speakimg.vocoder.generator import Generator, GeneratorConfig
from speakimg.vocoder.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1,
)
from speakimg.vocoder.norms import from_legacy_state_dict

__all__ = ["ADAMW", "HiFiGANModule"]

log = logging.getLogger(__name__)

ADAMW = {"lr": 2e-4, "betas": (0.8, 0.99), "weight_decay": 0.01}
"""HiFi-GAN's optimizer settings (AdamW for G and for D) when no ``optimizer`` is injected."""

# Lightning >= 2.6 warns that step-based checkpoints of manually optimized modules hold the weights after the
# optimizer step. That is the state consistent with the checkpoint's loop counters (the batch counts as done),
# i.e. the one to resume from; the warning's alternative would break exact resume.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization", category=UserWarning)


class HiFiGANModule(LightningModule):
    """Train or fine-tune a HiFi-GAN vocoder.

    Args:
        generator: architecture when training from scratch (default: Auffusion's); ignored with ``pretrained``.
        pretrained: fine-tune this generator: an Auffusion model folder / hub id (``vocoder/``), a vocoder
            folder, or a HiFiGANModule ``.ckpt``.
        pretrained_discriminators: start the discriminators from a jik876 ``do_XXXXXXXX`` file (or one
            written by ``python -m speakimg.vocoder.export``), or a HiFiGANModule ``.ckpt``.
        mpd_periods: periods of the multi-period discriminator.
        msd_scales: scales of the multi-scale discriminator.
        discriminator_width: channel width of both discriminators relative to HiFi-GAN's (1.0: 70.7 M
            parameters; 1/16 for CPU quickstarts).
        optimizer: builds each network's optimizer from its parameters (``OptimizerCallable``; in YAML a class
            path and init args); ``None``: ``AdamW(lr=2e-4, betas=(0.8, 0.99), weight_decay=0.01)``.
        scheduler: builds each optimizer's LR schedule (``LRSchedulerCallable``); ``None``: ``ExponentialLR(0.999)``.
        scheduler_interval: step the schedules once per "epoch" (jik876) or per "step" (batch).
        mel_weight, feature_matching_weight: loss weights (45 and 2 in HiFi-GAN).
        fmax_for_loss: upper frequency of the loss mel (``None``: full band, 8 kHz at 16 kHz).
        grad_clip_val: clip each network's gradient norm to this (None: no clipping, as HiFi-GAN).
    """

    def __init__(
        self,
        generator: GeneratorConfig | None = None,
        pretrained: str | None = None,
        pretrained_discriminators: str | None = None,
        mpd_periods: Sequence[int] = (2, 3, 5, 7, 11),
        msd_scales: int = 3,
        discriminator_width: float = 1.0,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        mel_weight: float = 45.0,
        feature_matching_weight: float = 2.0,
        fmax_for_loss: float | None = None,
        grad_clip_val: float | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if pretrained:
            self.generator = Generator.from_pretrained(pretrained, remove_weight_norm=False).train()
            log.info("fine-tuning the generator of %s", pretrained)
            if generator is not None:
                log.warning("both `generator` and `pretrained` are set: the architecture of %s is used", pretrained)
        else:
            self.generator = Generator(generator or GeneratorConfig())
        self.mpd = MultiPeriodDiscriminator(mpd_periods, width=discriminator_width)
        self.msd = MultiScaleDiscriminator(msd_scales, width=discriminator_width)
        if pretrained_discriminators:
            self._load_discriminators(pretrained_discriminators)
        cfg = self.generator.config
        self.loss_mel = MelConfig(
            sample_rate=cfg.sampling_rate, hop_length=cfg.hop_length, n_mels=cfg.num_mels, fmax=fmax_for_loss
        )
        # Hyperparameters stay plain (weights_only checkpoints): the generator config as a dict; the optimizer and
        # scheduler callables are recorded by the run's config.yaml.
        self.save_hyperparameters(ignore=["generator", "optimizer", "scheduler"])
        self.hparams["generator"] = cfg.to_dict()
        self._checked_shapes = False

    # ------------------------------------------------------------------------------------ loading
    def _load_discriminators(self, path: str) -> None:
        mpd, msd = read_discriminators(path)  # a jik876 do_XXXXXXXX file or a HiFiGANModule .ckpt
        for name, module, sd in (("mpd", self.mpd, mpd), ("msd", self.msd, msd)):
            try:
                module.load_state_dict(from_legacy_state_dict(module, sd), strict=True)
            except RuntimeError as error:
                raise ConfigError(f"{path}: the {name} weights do not fit this discriminator ({error})") from error
        log.info("discriminators initialised from %s", path)

    # ---------------------------------------------------------------------------------- inference
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, num_mels, T]`` log-mel -> ``[B, 1, hop * T]`` audio."""
        return self.generator(mel)

    # ----------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        opt_g = make_optimizer(self.optimizer_factory, self.generator.parameters(), **ADAMW)
        # MSD before MPD, as jik876: exported optimizer states index the parameters in the same order.
        discriminators = itertools.chain(self.msd.parameters(), self.mpd.parameters())
        opt_d = make_optimizer(self.optimizer_factory, discriminators, **ADAMW)

        def exponential(optimizer):
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.999)

        schedulers = [make_scheduler(self.scheduler_factory, opt, exponential) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedulers

    def configure_callbacks(self) -> list:
        return [FiniteCheckpoints()]

    def _check_batch(self, mel: torch.Tensor, audio: torch.Tensor, y_hat: torch.Tensor) -> None:
        if y_hat.shape != audio.shape:
            raise ConfigError(
                f"the generator made {tuple(y_hat.shape)} from a mel of {tuple(mel.shape)}, but the audio is "
                f"{tuple(audio.shape)}: its upsampling (x{self.generator.hop_length}) must equal the data's hop"
            )

    def _clip(self, optimizer) -> None:
        if self.hparams.grad_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip_val, gradient_clip_algorithm="norm")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        mel, y = batch["mel"], batch["audio"]
        opt_g, opt_d = self.optimizers()
        start = self.global_step  # the step of the weights this batch starts from (2 optimizer steps per batch)
        y_hat = self.generator(mel)
        if not self._checked_shapes:
            self._check_batch(mel, y, y_hat)
            self._checked_shapes = True

        # Discriminator step on the detached output.
        self.toggle_optimizer(opt_d)
        real_p, fake_p, _, _ = self.mpd(y, y_hat.detach())
        real_s, fake_s, _, _ = self.msd(y, y_hat.detach())
        loss_d_mpd = discriminator_loss(real_p, fake_p)[0]
        loss_d_msd = discriminator_loss(real_s, fake_s)[0]
        loss_d = check_finite(loss_d_mpd + loss_d_msd, "discriminator loss", self.global_step)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        self._clip(opt_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # Generator step.
        self.toggle_optimizer(opt_g)
        mel_error = mel_l1(y, y_hat, self.loss_mel)
        _, fake_p, fmap_rp, fmap_fp = self.mpd(y, y_hat)
        _, fake_s, fmap_rs, fmap_fs = self.msd(y, y_hat)
        adv_mpd = generator_adversarial_loss(fake_p)[0]
        adv_msd = generator_adversarial_loss(fake_s)[0]
        fm_mpd = feature_matching_loss(fmap_rp, fmap_fp, self.hparams.feature_matching_weight)
        fm_msd = feature_matching_loss(fmap_rs, fmap_fs, self.hparams.feature_matching_weight)
        loss_mel = self.hparams.mel_weight * mel_error
        loss_g = adv_mpd + adv_msd + fm_mpd + fm_msd + loss_mel
        loss_g = check_finite(loss_g, "generator loss", self.global_step, weights_step=start)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        self._clip(opt_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        if self.hparams.scheduler_interval == "step":
            for scheduler in self.lr_schedulers():
                scheduler.step()

        # Per-step scalars of this rank (no collective per step); validation is averaged over ranks.
        self.log_dict(
            {
                "train/loss_d": loss_d.detach(),
                "train/loss_g": loss_g.detach(),
                "train/mel_error": mel_error.detach(),
            },
            prog_bar=True,
            batch_size=mel.shape[0],
        )
        self.log_dict(
            {
                "train/loss_d_mpd": loss_d_mpd.detach(),
                "train/loss_d_msd": loss_d_msd.detach(),
                "train/loss_g_adv_mpd": adv_mpd.detach(),
                "train/loss_g_adv_msd": adv_msd.detach(),
                "train/loss_g_fm_mpd": fm_mpd.detach(),
                "train/loss_g_fm_msd": fm_msd.detach(),
                "train/loss_g_mel": loss_mel.detach(),
                "train/lr": float(opt_g.param_groups[0]["lr"]),
            },
            batch_size=mel.shape[0],
        )

    def on_train_epoch_end(self) -> None:
        if self.hparams.scheduler_interval == "epoch":
            for scheduler in self.lr_schedulers():
                scheduler.step()

    # --------------------------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        mel, y = batch["mel"], batch["audio"]
        y_hat = self.generator(mel)
        error = mel_l1(y, y_hat, self.loss_mel)
        self.log("val/mel_error", error, prog_bar=True, sync_dist=True, batch_size=mel.shape[0])
        return error

    # -------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vocoder_config"] = self.generator.config.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        log_resume(self, checkpoint)
