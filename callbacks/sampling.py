"""``CombinedSamplingCallback``: listen to and look at a speech fine-tune while it trains.

Every ``every_n_steps`` optimizer steps (and when training ends) it runs combined denoising with the
module's *current* speech model (its own submodules, never the DDP wrapper) and a frozen image model,
for fixed (image prompt, sentence) pairs and seeds, plus audio-only samples of each sentence (no image
guidance) so speech quality is tracked on its own. It logs the spectrogram images, the image model's
decodes, the audio (16 kHz), Whisper's transcripts in a table and their word error rates.

DDP: ``distributed="rank_zero"`` (default) samples and logs on global rank 0 only, with no collective
(the other ranks wait at their next gradient all-reduce); ``distributed="split"`` lets every rank sample
its share of the pairs, then gathers them (a collective every rank joins) before rank 0 logs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from speakimg.errors import ConfigError
from speakimg.loggers import AudioCell, ImageCell, log_audios, log_images, log_scalars, log_table
from speakimg.sampling import SamplerSettings, SampleSettings, read_prompts, run_batch

__all__ = ["CALLBACK_STEPS", "CombinedSamplingCallback", "SampleRecord"]

log = logging.getLogger("callbacks.sampling")

CALLBACK_STEPS = 50
"""DDIM steps of the callback's samples when no ``sampler`` is given (half the papers': faster while training)."""


@dataclass
class SampleRecord:
    """One logged sample (numpy, CPU): what rank 0 logs and tests inspect."""

    kind: str  # "combined" or "audio_only"
    image_prompt: str
    sentence: str
    seed: int
    spectrogram: np.ndarray  # [H, W] in [0, 1]
    image: np.ndarray | None  # [3, H, W] in [0, 1] (combined samples)
    audio: np.ndarray  # [T] at 16 kHz
    transcript: str | None = None
    wer: float | None = None


def _read_lines(value: str | Sequence[str], name: str) -> list[str]:
    if isinstance(value, str):
        if not Path(value).is_file():
            raise ConfigError(f"{name}: '{value}' is not a file; give a list of prompts or a text file (one per line)")
        value = read_prompts(value)
    prompts = [str(v) for v in value]
    if not prompts or any(not p.strip() for p in prompts):
        raise ConfigError(f"{name} must hold at least one non-empty prompt, got {prompts!r}")
    return prompts


class CombinedSamplingCallback(Callback):
    """Sample images that speak with the speech model being trained, and log them.

    Args:
        image_model: the frozen image model (SD-1.5 folder, hub id or ``tiny:stable-diffusion``).
        image_prompts: image prompts (a list, or a text file with one per line).
        sentences: sentences to speak (a list or a file); paired with ``image_prompts`` element-wise
            (a single prompt or sentence is paired with every item of the other list).
        seeds: every pair is sampled once per seed (a CPU generator per sample: batching does not matter).
        every_n_steps: sample every this many optimizer steps (0: only when training ends).
        sample_on_train_end: also sample when training ends (skipped if that step was just sampled).
        sampler: the sampler settings (:class:`speakimg.sampling.SamplerSettings`; in YAML a mapping such
            as ``sampler: {steps: 50, t_image: 0.9}``); null: ``SamplerSettings(steps=CALLBACK_STEPS)``.
        audio_only: also sample each (sentence, seed) with the speech model alone
            (``SamplerSettings.audio_only``).
        vocoder: ``None``: the base model's ``vocoder/`` (HiFi-GAN) if it has one, else Griffin-Lim;
            ``"griffin-lim"``, a HiFi-GAN folder / hub id, or a vocoder training checkpoint.
        whisper: Whisper model name or checkpoint path for transcripts and WER (``None``: no WER).
        batch_size: samples per pipeline call.
        use_ema: sample with the module's EMA weights when it keeps an EMA.
        distributed: ``"rank_zero"`` or ``"split"`` (see the module docstring).
    """

    def __init__(
        self,
        image_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5",
        image_prompts: str | Sequence[str] = "configs/data/image_prompts.txt",
        sentences: str | Sequence[str] = "configs/data/test_sentences.txt",
        seeds: Sequence[int] = (0,),
        every_n_steps: int = 1000,
        sample_on_train_end: bool = True,
        sampler: SamplerSettings | None = None,
        audio_only: bool = True,
        vocoder: str | None = None,
        whisper: str | None = "base.en",
        batch_size: int = 4,
        use_ema: bool = True,
        distributed: Literal["rank_zero", "split"] = "rank_zero",
    ) -> None:
        super().__init__()
        if every_n_steps < 0:
            raise ConfigError(f"every_n_steps must be >= 0, got {every_n_steps}")
        if distributed not in ("rank_zero", "split"):
            raise ConfigError(f"distributed must be 'rank_zero' or 'split', got {distributed!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        images = _read_lines(image_prompts, "image_prompts")
        texts = _read_lines(sentences, "sentences")
        if len(images) != len(texts) and 1 not in (len(images), len(texts)):
            raise ConfigError(
                f"image_prompts ({len(images)}) and sentences ({len(texts)}) are paired element-wise: give lists "
                "of the same length, or a single prompt/sentence"
            )
        n = max(len(images), len(texts))
        self.pairs = [(images[i % len(images)], texts[i % len(texts)]) for i in range(n)]
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ConfigError("seeds must hold at least one seed")
        self.image_model = image_model
        self.every_n_steps = every_n_steps
        self.sample_on_train_end = sample_on_train_end
        self.sampler = (sampler if sampler is not None else SamplerSettings(steps=CALLBACK_STEPS)).resolved()
        self.audio_only = audio_only
        self.vocoder = vocoder
        self.whisper = whisper
        self.batch_size = batch_size
        self.use_ema = use_ema
        self.distributed = distributed
        self._pipe = None
        self._wer = None
        self._last_step: int | None = None
        self.history: list[tuple[int, list[SampleRecord]]] = []  # what rank 0 logged (step, records)

    # ------------------------------------------------------------------------------------ hooks
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.sample(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.sample_on_train_end and trainer.global_step != self._last_step:
            self.sample(trainer, pl_module)

    # ---------------------------------------------------------------------------------- sampling
    def items(self) -> list[tuple[str, str, str, int]]:
        """Every sample as (kind, image prompt, sentence, seed), in logging order."""
        combined = [("combined", image, text, seed) for image, text in self.pairs for seed in self.seeds]
        if not self.audio_only:
            return combined
        sentences = list(dict.fromkeys(text for _, text in self.pairs))
        return combined + [("audio_only", "", text, seed) for text in sentences for seed in self.seeds]

    def sample(self, trainer: Trainer, pl_module: LightningModule) -> list[SampleRecord] | None:
        """Sample and log now; returns the records on global rank 0 (``None`` elsewhere)."""
        self._last_step = trainer.global_step
        world, rank = trainer.world_size, trainer.global_rank
        if self.distributed == "rank_zero":
            if not trainer.is_global_zero:
                return None
            mine = list(enumerate(self.items()))
        else:
            mine = list(enumerate(self.items()))[rank::world]
        start = time.perf_counter()
        records = self._sample_items(trainer, pl_module, mine)
        if self.distributed == "split" and world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, records)  # every rank takes part
            records = [r for part in gathered for r in part]
        if not trainer.is_global_zero:
            return None
        ordered = [record for _, record in sorted(records, key=lambda pair: pair[0])]
        self._log(trainer, ordered)
        self.history.append((trainer.global_step, ordered))
        log.info(
            "sampled %d items at step %d in %.1f s", len(ordered), trainer.global_step, time.perf_counter() - start
        )
        return ordered

    def _pipeline(self, trainer: Trainer, pl_module: LightningModule):
        """The sampler over the module's own submodules (built once; the image model is frozen)."""
        if self._pipe is not None:
            return self._pipe
        from diffusers import DDIMScheduler

        from speakimg.pipeline import ImagesThatSpeakPipeline
        from speakimg.pipeline.loading import default_vocoder, load_image_model
        from speakimg.vocoder import load_vocoder

        model = getattr(pl_module, "model", None)
        if model is None or not all(hasattr(model, a) for a in ("unet", "prompt_encoder", "vae", "base_model")):
            raise ConfigError(
                "CombinedSamplingCallback needs a LightningModule whose .model is a speech model "
                "(.unet, .prompt_encoder, .vae, .base_model), e.g. speakimg.modules.SpeechLoRAModule"
            )
        device = pl_module.device
        dtype = torch.bfloat16 if "bf16" in str(trainer.precision) and device.type == "cuda" else None
        image = load_image_model(self.image_model, dtype)
        if self.vocoder is None:
            vocoder, _ = default_vocoder([str(model.base_model)])  # a hub id: only its vocoder/ is fetched
        else:
            vocoder = load_vocoder(self.vocoder)
        noise_scheduler = getattr(pl_module, "noise_scheduler", None)
        pipe = ImagesThatSpeakPipeline(
            image.unet.to(device).eval().requires_grad_(False),
            image.vae.to(device).eval().requires_grad_(False),
            image.prompt_encoder.to(device).eval(),
            model.unet,
            model.vae,
            model.prompt_encoder,
            DDIMScheduler.from_config(image.scheduler_config),
            vocoder.to(device).eval(),
            audio_scheduler_config=dict(noise_scheduler.config) if noise_scheduler is not None else None,
            sources={"image_model": image.source, "audio_model": "training", "audio_model_kind": "speech"},
        )
        if hasattr(pipe.vocoder, "n_iter"):  # Griffin-Lim (asked for, or the fallback)
            pipe.vocoder.n_iter = self.sampler.griffin_lim_iters
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe
        return pipe

    @contextlib.contextmanager
    def _sampling_mode(self, trainer: Trainer, pl_module: LightningModule) -> Iterator[None]:
        was_training = pl_module.training
        ema = pl_module.ema_weights() if self.use_ema and hasattr(pl_module, "ema_weights") else None
        pl_module.eval()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(torch.no_grad())
                if ema is not None:
                    stack.enter_context(ema)
                stack.enter_context(trainer.strategy.precision_plugin.forward_context())
                yield
        finally:
            pl_module.train(was_training)

    def _sample_items(
        self, trainer: Trainer, pl_module: LightningModule, items: list[tuple[int, tuple[str, str, str, int]]]
    ) -> list[tuple[int, SampleRecord]]:
        if not items:
            return []
        pipe = self._pipeline(trainer, pl_module)
        records: list[tuple[int, SampleRecord]] = []
        settings = {"combined": self.sampler, "audio_only": replace(self.sampler, method="denoise").audio_only()}
        with self._sampling_mode(trainer, pl_module):
            for kind in ("combined", "audio_only"):
                chosen = [(i, item) for i, item in items if item[0] == kind]
                for start in range(0, len(chosen), self.batch_size):
                    chunk = chosen[start : start + self.batch_size]
                    out = run_batch(
                        pipe,
                        [
                            SampleSettings(image, text, seed, sampler=settings[kind])
                            for _, (_, image, text, seed) in chunk
                        ],
                    )
                    for j, (index, (_, image_prompt, text, seed)) in enumerate(chunk):
                        record = SampleRecord(
                            kind=kind,
                            image_prompt=image_prompt,
                            sentence=text,
                            seed=seed,
                            spectrogram=out.spectrograms[j].float().cpu().numpy(),
                            image=out.images[j].float().cpu().numpy() if kind == "combined" else None,
                            audio=out.audios[j].float().cpu().numpy(),
                        )
                        records.append((index, record))
        if self.whisper is not None:
            self._transcribe([record for _, record in records], pl_module.device)
        return records

    def _transcribe(self, records: list[SampleRecord], device: torch.device) -> None:
        from speakimg.metrics import WhisperWER, word_error_rate

        if self._wer is None:
            self._wer = WhisperWER(self.whisper, device=device)
        transcripts = self._wer.transcribe([r.audio for r in records])
        for record, transcript in zip(records, transcripts, strict=True):
            record.transcript = transcript
            record.wer = word_error_rate([transcript], [record.sentence])

    # ----------------------------------------------------------------------------------- logging
    def _log(self, trainer: Trainer, records: list[SampleRecord]) -> None:
        from speakimg.metrics import word_error_rate

        step = trainer.global_step
        loggers, files = trainer.loggers, Path(trainer.default_root_dir) / "media"
        sample_rate = self._pipe.mel_config.sample_rate if self._pipe is not None else 16000
        for kind in ("combined", "audio_only"):
            chosen = [r for r in records if r.kind == kind]
            if not chosen:
                continue
            captions = [
                f"{r.image_prompt} | {r.sentence} | seed {r.seed}"
                if kind == "combined"
                else f"{r.sentence} | seed {r.seed}"
                for r in chosen
            ]
            spectrograms = [r.spectrogram for r in chosen]
            log_images(loggers, f"samples/{kind}/spectrogram", spectrograms, captions, step, files)
            if kind == "combined":
                log_images(loggers, f"samples/{kind}/image", [r.image for r in chosen], captions, step, files)
            log_audios(loggers, f"samples/{kind}/audio", [r.audio for r in chosen], captions, sample_rate, step, files)
            if self.whisper is not None:
                wer = word_error_rate([r.transcript for r in chosen], [r.sentence for r in chosen])
                log_scalars(loggers, {f"samples/wer_{kind}": wer}, step)
        columns = [
            "step",
            "kind",
            "image_prompt",
            "sentence",
            "seed",
            "transcript",
            "wer",
            "spectrogram",
            "image",
            "audio",
        ]
        rows = [
            [
                step,
                r.kind,
                r.image_prompt,
                r.sentence,
                r.seed,
                r.transcript or "",
                float("nan") if r.wer is None else r.wer,
                ImageCell(r.spectrogram),
                ImageCell(r.image) if r.image is not None else None,
                AudioCell(r.audio, sample_rate),
            ]
            for r in records
        ]
        log_table(loggers, "samples/transcripts", columns, rows, step, files)
