"""``SpeechLoRAModule``: the Lightning training job that turns Auffusion into a speech model.

Thin over :mod:`speakimg.speech`: the :class:`~speakimg.speech.SpeechModel` holds the networks, the
loss is :func:`speakimg.speech.diffusion.diffusion_loss`; this module adds what training needs:

- the batch contract check (one clear :class:`DataError` on the first batch, before any update);
- conditioning dropout (the dropped rows get exactly the encoder's unconditional embedding);
- per-step random draws (noise, timesteps, dropout, VAE sample) seeded by ``(seed, rank, global_step,
  batch_idx)``, so a resumed run draws what an uninterrupted one would (data order is the loader's);
- one learning rate per parameter group (LoRA, unfrozen UNet blocks, adapter, PL-BERT) for an optimizer
  and a schedule injected from config (default: AdamW, linear warmup then cosine decay, per step;
  :mod:`speakimg.modules.optim`);
- frozen weights in bf16 under ``bf16-mixed`` (trainable ones stay float32), gradient checkpointing,
  optional EMA of the trainable weights;
- checkpoints with only the trainable weights (+ optimizer, scheduler, EMA), checked when loaded; the
  last finite checkpoint kept when a loss turns NaN/inf (:mod:`speakimg.modules.checkpoints`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from speakimg.errors import CheckpointError, ConfigError, DataError
from speakimg.modules.checkpoints import FiniteCheckpoints
from speakimg.modules.common import check_finite, log_resume
from speakimg.modules.optim import WarmupCosine, make_optimizer, make_scheduler, warmup_cosine
from speakimg.speech.diffusion import diffusion_loss, draw_noise
from speakimg.speech.lora import DEFAULT_TARGETS, LoRASpec
from speakimg.speech.model import DEFAULT_BASE_MODEL, SpeechConfig, SpeechModel

__all__ = ["SpeechLoRAModule", "LossOutput", "warmup_cosine"]  # warmup_cosine: from speakimg.modules.optim

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "speakimg.SpeechLoRAModule"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# The frozen parts (VAE, PL-BERT, CLIP) stay in eval mode on purpose (no dropout in what does not train).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", category=UserWarning)


class LossOutput(dict):
    """``loss`` plus the random draws that produced it (``noise``, ``timesteps``, ``dropped``, ``latents``)."""


def _seed(*parts: int) -> int:
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


class SpeechLoRAModule(LightningModule):
    """Fine-tune Auffusion into a speech model: LoRA + unfrozen UNet blocks + PL-BERT phoneme adapter.

    Args:
        base_model: hub id, diffusers folder or ``tiny:auffusion`` of the base model (Auffusion).
        plbert: PL-BERT folder (``config.yml`` + ``step_N.t7``), hub id, or ``tiny:plbert``.
        plbert_subfolder: subfolder of ``plbert`` holding it (e.g. ``Utils/PLBERT``).
        mode: ``replace`` (conditioning = adapter output) or ``augment`` (CLIP(sentence) then adapter).
        max_phonemes: fixed phoneme sequence length (ids padded with 0; longer sentences are an error).
        lora_rank, lora_alpha, lora_targets, lora_dropout: the UNet LoRA (alpha ``None`` = rank).
        unfreeze: regular expressions of UNet parameter names trained in full (after LoRA is added).
        plbert_unfreeze: regular expressions of PL-BERT parameter names to train (default: frozen).
        lora_lr, unfreeze_lr, adapter_lr, plbert_lr: the learning rate of each parameter group (the
            optimizer's own ``lr`` is not used).
        optimizer: builds the optimizer from the parameter groups (``OptimizerCallable``; in YAML a class path
            and init args); ``None``: ``AdamW(betas=(0.9, 0.999), weight_decay=0.01)``.
        scheduler: builds the per-step LR schedule from the optimizer (``LRSchedulerCallable``); ``None``:
            :class:`~speakimg.modules.optim.WarmupCosine` (500 warmup steps, cosine to 0.1 x at the run's last step).
        cond_dropout: probability of training a row with the unconditional embedding (classifier-free guidance).
        snr_gamma: min-SNR loss weighting (``None``: plain MSE; 5.0 is the paper's value).
        noise_offset: offset-noise strength (0: off).
        gradient_checkpointing: recompute UNet activations in the backward pass (less memory, more compute).
        ema_decay: keep an EMA of the trainable weights with this decay (``None``: off); validation and
            export then use the EMA weights.
        frozen_dtype: dtype of the frozen UNet / PL-BERT / CLIP weights; ``auto``: bf16 under ``bf16-mixed``,
            fp16 under ``16-mixed``, else float32. The VAE and trainable weights stay float32.
        image_size: the spectrogram image size (height, width) the data must have (Auffusion: 256 x 1024).
        seed: seed of the per-step random draws (noise, timesteps, dropout).
    """

    def __init__(
        self,
        base_model: str = DEFAULT_BASE_MODEL,
        plbert: str = "checkpoints/PLBERT",
        plbert_subfolder: str | None = None,
        mode: Literal["replace", "augment"] = "replace",
        max_phonemes: int = 128,
        lora_rank: int = 32,
        lora_alpha: float | None = None,
        lora_targets: Sequence[str] = DEFAULT_TARGETS,
        lora_dropout: float = 0.0,
        unfreeze: Sequence[str] = (r"attn2\.to_k", r"attn2\.to_v"),
        plbert_unfreeze: Sequence[str] = (),
        lora_lr: float = 1e-4,
        unfreeze_lr: float = 2e-5,
        adapter_lr: float = 1e-4,
        plbert_lr: float = 1e-5,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        cond_dropout: float = 0.1,
        snr_gamma: float | None = None,
        noise_offset: float = 0.0,
        gradient_checkpointing: bool = False,
        ema_decay: float | None = None,
        frozen_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        image_size: tuple[int, int] = (256, 1024),
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= cond_dropout < 1.0:
            raise ConfigError(f"cond_dropout must be in [0, 1), got {cond_dropout}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {ema_decay}")
        # the callables are not plain data (weights-only checkpoints): the run's config.yaml records them
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        config = SpeechConfig(
            base_model=base_model,
            plbert=plbert,
            plbert_subfolder=plbert_subfolder,
            mode=mode,
            max_phonemes=max_phonemes,
            lora=LoRASpec(rank=lora_rank, alpha=lora_alpha, targets=list(lora_targets), dropout=lora_dropout),
            unfreeze=list(unfreeze),
            plbert_unfreeze=list(plbert_unfreeze),
        )
        self.model = SpeechModel.from_base(config)
        self.noise_scheduler = self.model.noise_scheduler()
        self.strict_loading = False  # checkpoints hold only the trainable weights (see on_save_checkpoint)
        self.trainable_names = [n for n, p in self.named_parameters() if p.requires_grad]
        self._ema = None
        self._pending_ema: dict | None = None
        self._checked: set[str] = set()
        if gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()
        counts = {k: sum(p.numel() for _, p in v) for k, v in self.model.parameter_groups().items()}
        total_unet = sum(p.numel() for p in self.model.unet.parameters())
        log.info("speech model: trainable %s of a %d-parameter UNet", counts, total_unet)

    # ---------------------------------------------------------------------------------- setup
    def setup(self, stage: str) -> None:
        """Cast frozen weights to the training precision's dtype (trainable ones stay float32)."""
        name = self.hparams.frozen_dtype
        if name == "auto":
            precision = str(self.trainer.precision) if self._trainer is not None else "32-true"
            name = "bfloat16" if "bf16" in precision else "float16" if precision.startswith("16") else "float32"
        dtype = _DTYPES[name]
        if dtype == torch.float32:
            return
        for part in (self.model.unet, self.model.prompt_encoder.plbert, self.model.prompt_encoder.text_encoder):
            if part is None:
                continue
            for param in part.parameters():
                if not param.requires_grad:
                    param.data = param.data.to(dtype)
        log.info("frozen UNet/PL-BERT/CLIP weights cast to %s; trainable weights stay float32", dtype)

    def on_fit_start(self) -> None:
        if self.hparams.ema_decay is not None and self._ema is None:
            self._ema = self._make_ema()

    def _make_ema(self):
        from diffusers.training_utils import EMAModel

        ema = EMAModel(self._trainable_params(), decay=self.hparams.ema_decay, foreach=True)
        if self._pending_ema is not None:
            ema.load_state_dict(self._pending_ema)
            ema.to(device=self.device)
            self._pending_ema = None
        return ema

    def _trainable_params(self) -> list[torch.nn.Parameter]:
        params = dict(self.named_parameters())
        return [params[n] for n in self.trainable_names]

    # ----------------------------------------------------------------------------- the batch
    def check_batch(self, batch: Any, stage: str) -> None:
        """Raise one :class:`DataError` naming what is wrong with a batch (shapes against the VAE/UNet)."""
        height, width = self.hparams.image_size
        ds, channels = self.model.vae_downsample, self.model.latent_channels
        if not isinstance(batch, dict):
            raise DataError(f"{stage} batch must be a dict (image or latents, phoneme_ids, ...), got {type(batch)}")
        if "latents" in batch:
            latents = batch["latents"]
            want = (channels, height // ds, width // ds)
            if not torch.is_tensor(latents) or latents.ndim != 4 or tuple(latents.shape[1:]) != want:
                shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents)
                raise DataError(
                    f"{stage} batch 'latents' has shape {shape}; this model needs [B, {want[0]}, {want[1]}, {want[2]}] "
                    f"(the VAE latents of {height} x {width} spectrogram images, x scaling_factor). Rebuild the latent "
                    "cache with this model's VAE."
                )
        elif "image" in batch:
            image = batch["image"]
            if not torch.is_tensor(image) or image.ndim != 4 or tuple(image.shape[1:]) != (3, height, width):
                shape = tuple(image.shape) if torch.is_tensor(image) else type(image)
                raise DataError(
                    f"{stage} batch 'image' has shape {shape}; this model trains on [B, 3, {height}, {width}] "
                    f"spectrogram images ({height} mels x {width} frames, docs/method.md 2). Rebuild the dataset with "
                    "`python -m speakimg.data.build` or set the model's image_size."
                )
            low, high = float(image.min()), float(image.max())
            if low < -1.01 or high > 1.01:
                raise DataError(f"{stage} batch 'image' spans [{low:.3f}, {high:.3f}]; the VAE expects [-1, 1]")
        else:
            raise DataError(f"{stage} batch has neither 'image' nor 'latents' (keys: {sorted(batch)})")
        ids, mask = batch.get("phoneme_ids"), batch.get("phoneme_mask")
        if not torch.is_tensor(ids) or not torch.is_tensor(mask) or ids.ndim != 2 or ids.shape != mask.shape:
            raise DataError(f"{stage} batch needs 'phoneme_ids' and 'phoneme_mask', long [B, L] of equal shape")
        if ids.dtype != torch.long or ids.min() < 0 or ids.max() >= self.model.prompt_encoder.plbert.vocab_size:
            raise DataError(
                f"{stage} batch 'phoneme_ids' must be long ids of PL-BERT's {self.model.prompt_encoder.plbert.vocab_size}"
                f"-symbol table (speakimg.text.prepare_text), got {ids.dtype} in [{int(ids.min())}, {int(ids.max())}]"
            )
        if self.hparams.mode == "augment" and len(batch.get("text") or []) != ids.shape[0]:
            raise DataError(f"{stage} batch needs 'text' (one sentence per row) for conditioning mode 'augment'")

    def _generator(self, *parts: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_seed(self.hparams.seed, self.global_rank, *parts))
        return generator

    def latents_of(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents of a batch: the cached ``latents`` or a VAE posterior sample of ``image``."""
        if "latents" in batch:
            return batch["latents"].float()
        return self.model.encode_images(batch["image"], generator).float()

    def compute_loss(self, batch: dict, generator: torch.Generator, cond_dropout: float) -> LossOutput:
        """The training/validation loss of a batch with all random draws taken from ``generator``."""
        latents = self.latents_of(batch, generator)
        encoder = self.model.prompt_encoder
        cond = encoder.encode_ids(batch["phoneme_ids"], batch["phoneme_mask"], batch.get("text"))
        batch_size = latents.shape[0]
        dropped = torch.rand(batch_size, generator=generator, device=latents.device) < cond_dropout
        # torch.where keeps the unconditional embedding in the graph every step (no unused parameters in DDP)
        cond = torch.where(dropped[:, None, None], encoder.unconditional(batch_size).to(cond.dtype), cond)
        noise, timesteps = draw_noise(
            latents, self.noise_scheduler.config.num_train_timesteps, generator, self.hparams.noise_offset
        )
        loss = diffusion_loss(
            self.model.unet, self.noise_scheduler, latents, cond, noise, timesteps, self.hparams.snr_gamma
        )
        return LossOutput(loss=loss, noise=noise, timesteps=timesteps, dropped=dropped, latents=latents)

    # -------------------------------------------------------------------------------- steps
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if "train" not in self._checked:
            self.check_batch(batch, "train")
            self._checked.add("train")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.compute_loss(batch, self._generator(1, self.global_step, batch_idx), self.hparams.cond_dropout)
        loss = check_finite(out["loss"], "train/loss", self.global_step)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=out["latents"].shape[0])
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the EMA update (before any callback can checkpoint the step)."""
        super().optimizer_step(*args, **kwargs)
        if self._ema is not None:
            self._ema.step(self._trainable_params())

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if "val" not in self._checked:
            self.check_batch(batch, "val")
            self._checked.add("val")
        out = self.compute_loss(batch, self._generator(2, batch_idx), cond_dropout=0.0)
        self.log("val/loss", out["loss"], prog_bar=True, sync_dist=True, batch_size=out["latents"].shape[0])
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        if self._ema is not None:
            self._ema.store(self._trainable_params())
            self._ema.copy_to(self._trainable_params())

    def on_validation_epoch_end(self) -> None:
        if self._ema is not None:
            self._ema.restore(self._trainable_params())

    # ---------------------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        rates = {"lora": hp.lora_lr, "unfrozen": hp.unfreeze_lr, "adapter": hp.adapter_lr, "plbert": hp.plbert_lr}
        groups = [
            {"params": [p for _, p in params], "lr": rates[name], "name": name}
            for name, params in self.model.parameter_groups().items()
            if params
        ]
        # each group carries its own lr, which wins over the optimizer's own default
        optimizer = make_optimizer(self.optimizer_factory, groups, betas=(0.9, 0.999), weight_decay=1e-2)
        scheduler = make_scheduler(self.scheduler_factory, optimizer, WarmupCosine, self._run_length)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _run_length(self) -> int:
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("set --trainer.max_steps (or max_epochs): the cosine schedule needs the run's length")
        return int(total)

    def configure_callbacks(self) -> list:
        return [FiniteCheckpoints()]

    # --------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable weights (LoRA, unfrozen blocks, adapter, trained PL-BERT) and the EMA."""
        keep = set(self.trainable_names)
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["speakimg"] = {"kind": CHECKPOINT_KIND, "trainable": list(self.trainable_names)}
        if self._ema is not None:
            checkpoint["ema"] = self._ema.state_dict()
        elif self._pending_ema is not None:
            checkpoint["ema"] = self._pending_ema

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check that the checkpoint holds exactly this module's trainable weights (clear error otherwise)."""
        kind = checkpoint.get("speakimg", {}).get("kind")
        if kind != CHECKPOINT_KIND:
            raise CheckpointError(f"not a SpeechLoRAModule checkpoint (kind {kind!r})")
        state = checkpoint.get("state_dict", {})
        expected = set(self.trainable_names)
        missing = [k for k in self.trainable_names if k not in state]
        unknown = [k for k in state if k not in expected]
        if missing or unknown:
            raise CheckpointError(
                "the checkpoint's trainable weights do not match this model's settings "
                "(lora_*, unfreeze, plbert_unfreeze, mode, max_phonemes must be those it was trained with). "
                + (f"Missing {len(missing)}: {missing[:5]}. " if missing else "")
                + (f"Unexpected {len(unknown)}: {unknown[:5]}." if unknown else "")
            )
        if "ema" in checkpoint:
            self._pending_ema = checkpoint["ema"]
            self._ema = None
        log_resume(self, checkpoint)
        # The frozen weights are the base model's, already in this module: completing the state with them lets
        # Lightning load it whole (``load_from_checkpoint`` would otherwise list every frozen weight as missing).
        for name, value in self.state_dict().items():
            state.setdefault(name, value)
        checkpoint["state_dict"] = state

    # -------------------------------------------------------------------------------- export
    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[bool]:
        """Within the block the trainable weights are the EMA weights (if an EMA exists); yields whether."""
        if self._ema is None and self._pending_ema is not None:
            self._ema = self._make_ema()
        if self._ema is None:
            yield False
            return
        params = self._trainable_params()
        self._ema.store(params)
        self._ema.copy_to(params)
        try:
            yield True
        finally:
            self._ema.restore(params)

    def export(self, folder: str | Path, use_ema: bool = True, extra: dict[str, Any] | None = None) -> Path:
        """Write the standalone speech model folder (``SpeechModel.from_pretrained`` reads it)."""
        context = self.ema_weights() if use_ema else contextlib.nullcontext(False)
        with context as ema_used:
            info = {"global_step": int(self.global_step) if self._trainer is not None else None, "ema": bool(ema_used)}
            return self.model.save_pretrained(folder, extra={"training": {**info, **(extra or {})}})
