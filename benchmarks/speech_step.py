"""Speech fine-tune training step: Lightning vs a bare PyTorch loop doing the same work on the same model.

    python benchmarks/speech_step.py                 # CPU, the tiny-model kit (~1-2 minutes on 2 cores)
    python benchmarks/speech_step.py --gpu           # GPU: full-size SD-1.5 UNet (random weights), bf16, batch 8

Both sides train the same ``SpeechLoRAModule`` (LoRA + unfrozen cross-attention K/V + PL-BERT adapter) on
the same batch of latents ``[B, 4, 32, 128]`` with the same AdamW + warmup/cosine schedule: the Lightning
side through ``Trainer.fit``, the bare side through ``compute_loss -> backward -> step -> zero_grad``. Rounds
alternate (Lightning, bare, Lightning, ...) so that machine noise hits both alike; the first step of every
round is warm-up and not counted. A step is the time between the starts of consecutive iterations
(data fetch, forward, backward, optimizer, logging: everything the loop does). The ratio is
median Lightning step / median bare step (target <= 1.05), in wall time and, on CPU, also in this
process's CPU time, which other processes on a shared machine do not inflate.

``--gpu`` builds a full-size SD-1.5 UNet (860 M parameters, random weights) and a full-size PL-BERT
(random) in a temporary folder, trains in ``bf16-mixed`` (frozen weights in bf16, trainable fp32) and also
reports samples/s and peak GPU memory of each side.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from speakimg.testing.diffusion import SD15_UNET_CONFIG

WARMUP = 5  # warmup steps of the benchmark's schedule (both loops)

SD15_UNET = SD15_UNET_CONFIG

PLBERT_PARAMS = dict(
    vocab_size=178,
    hidden_size=768,
    num_attention_heads=12,
    intermediate_size=2048,
    max_position_embeddings=512,
    num_hidden_layers=12,
    dropout=0.1,
)
"""PL-BERT's model_params (docs/method.md 7)."""

SENTENCE = "A small red fox jumped over the quiet garden wall."


def full_size_models(root: Path) -> tuple[str, str]:
    """Write an SD-1.5-size base folder (tiny VAE/CLIP, full UNet) and a full-size PL-BERT; random weights."""
    import yaml
    from diffusers import UNet2DConditionModel

    from speakimg.testing import tiny_auffusion
    from speakimg.testing.plbert import plbert_checkpoint

    base = root / "sd15-random"
    shutil.copytree(tiny_auffusion(), base, ignore=shutil.ignore_patterns("unet"))
    torch.manual_seed(0)
    UNet2DConditionModel(**SD15_UNET).save_pretrained(base / "unet", safe_serialization=True)
    plbert = root / "plbert-random"
    plbert.mkdir()
    (plbert / "config.yml").write_text(yaml.safe_dump({"model_params": PLBERT_PARAMS}))
    torch.save(plbert_checkpoint(PLBERT_PARAMS, seed=0, step=1), plbert / "step_1.t7")
    return str(base), str(plbert)


def make_batch(batch_size: int, device: torch.device) -> dict:
    from speakimg.text import prepare_text

    ids = torch.tensor([prepare_text(SENTENCE).ids] * batch_size)
    generator = torch.Generator().manual_seed(0)
    return {
        "latents": torch.randn(batch_size, 4, 32, 128, generator=generator),
        "phoneme_ids": ids,
        "phoneme_mask": torch.ones_like(ids),
        "text": [SENTENCE] * batch_size,
        "id": [f"b{i}" for i in range(batch_size)],
    }


class _Batches(torch.utils.data.IterableDataset):
    """The same batch, forever (what a latent-cache loader yields, without disk or workers)."""

    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def __iter__(self):
        while True:
            yield self.batch


def _loader(batch: dict):
    return torch.utils.data.DataLoader(_Batches(batch), batch_size=None, num_workers=0)


class Clock:
    """Wall time and this process's CPU time at the start of every iteration (and at the end)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.marks: list[tuple[float, float]] = []

    def tick(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), time.process_time()))

    def steps(self) -> list[tuple[float, float]]:
        """(wall, cpu) seconds of each step but the first (warm-up)."""
        deltas = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return deltas[1:]


def lightning_round(module, batch: dict, steps: int, accelerator: str, precision: str) -> list[tuple[float, float]]:
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import Callback

    clock = Clock(accelerator == "gpu")

    class ClockCallback(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            clock.tick()

        def on_train_end(self, trainer, pl_module) -> None:
            clock.tick()

    trainer = Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[ClockCallback()],
    )
    trainer.fit(module, train_dataloaders=_loader(batch))
    return clock.steps()


def bare_round(module, batch: dict, steps: int, device: torch.device, precision: str) -> list[tuple[float, float]]:
    from speakimg.modules.optim import warmup_cosine

    hp = module.hparams
    module.to(device).train()
    rates = {"lora": hp.lora_lr, "unfrozen": hp.unfreeze_lr, "adapter": hp.adapter_lr, "plbert": hp.plbert_lr}
    groups = [
        {"params": [p for _, p in params], "lr": rates[name]}
        for name, params in module.model.parameter_groups().items()
        if params
    ]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2)  # the module's default
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, WARMUP, steps, 0.1))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16-mixed" else None
    clock = Clock(device.type == "cuda")
    iterator = iter(_loader(batch))
    for step in range(steps):
        clock.tick()
        data = next(iterator)
        data = {k: v.to(device) if torch.is_tensor(v) else v for k, v in data.items()}
        generator = torch.Generator(device=device).manual_seed(step)
        if autocast is not None:
            with autocast:
                loss = module.compute_loss(data, generator, hp.cond_dropout)["loss"]
        else:
            loss = module.compute_loss(data, generator, hp.cond_dropout)["loss"]
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    clock.tick()
    return clock.steps()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="full-size SD-1.5 UNet on the GPU in bf16")
    parser.add_argument("--full-size", action="store_true", help="full-size models on the CPU (a smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default 12 CPU, 25 GPU)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, interleaved")
    parser.add_argument("--batch-size", type=int, default=None, help="default 2 (CPU), 8 (GPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 gives clean CPU times on a shared machine)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from speakimg.modules.optim import WarmupCosine
    from speakimg.modules.speech_lora import SpeechLoRAModule

    for name in ("lightning.pytorch", "lightning.fabric", "speakimg"):  # after import: Lightning sets INFO
        logging.getLogger(name).setLevel(logging.ERROR)

    tmp = Path(tempfile.mkdtemp(prefix="speech-bench-"))
    try:
        if args.gpu or args.full_size:
            if args.gpu and not torch.cuda.is_available():
                raise SystemExit("--gpu: no CUDA device")
            if args.gpu:
                device, accelerator, precision = torch.device("cuda"), "gpu", "bf16-mixed"
            else:
                device, accelerator, precision = torch.device("cpu"), "cpu", "32-true"
            steps, batch_size = args.steps or 25, args.batch_size or 8
            t0 = time.time()
            base, plbert = full_size_models(tmp)
            print(f"full-size random models written in {time.time() - t0:.0f} s")
            recipe = dict(lora_rank=32, lora_alpha=32, max_phonemes=128, snr_gamma=5.0)
        else:
            device, accelerator, precision = torch.device("cpu"), "cpu", "32-true"
            steps, batch_size = args.steps or 12, args.batch_size or 2
            base, plbert = "tiny:auffusion", "tiny:plbert"
            recipe = dict(lora_rank=8, lora_alpha=8, max_phonemes=128)
        module = SpeechLoRAModule(
            base_model=base,
            plbert=plbert,
            unfreeze=(r"attn2\.to_k", r"attn2\.to_v"),
            scheduler=functools.partial(WarmupCosine, warmup_steps=WARMUP),
            gradient_checkpointing=args.gradient_checkpointing,
            **recipe,
        )
        batch = make_batch(batch_size, device)
        from speakimg.speech.lora import is_lora_name

        unet_params = sum(p.numel() for n, p in module.model.unet.named_parameters() if not is_lora_name(n))
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        print(
            f"{'GPU ' + torch.cuda.get_device_name() if args.gpu else 'CPU'}: UNet {unet_params / 1e6:.1f} M params, "
            f"trainable {trainable / 1e6:.2f} M ({100 * trainable / unet_params:.1f} %), batch {batch_size} x "
            f"4x32x128, {precision}, {steps} steps x {args.rounds} rounds per side, torch threads "
            f"{torch.get_num_threads()}"
        )
        lightning_times: list[tuple[float, float]] = []
        bare_times: list[tuple[float, float]] = []
        peaks = {"lightning": 0, "bare": 0}
        for round_index in range(args.rounds):
            for side in ("lightning", "bare"):
                if args.gpu:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                if side == "lightning":
                    times = lightning_round(module, batch, steps, accelerator, precision)
                    lightning_times += times
                else:
                    times = bare_round(module, batch, steps, device, precision)
                    bare_times += times
                if args.gpu:
                    peaks[side] = max(peaks[side], torch.cuda.max_memory_allocated())
                wall, cpu = (statistics.median(t[i] for t in times) for i in (0, 1))
                print(
                    f"  round {round_index + 1} {side:>9}: median step {1e3 * wall:8.1f} ms wall, {1e3 * cpu:8.1f} ms CPU"
                )
        lightning_step, lightning_cpu = (statistics.median(t[i] for t in lightning_times) for i in (0, 1))
        bare_step, bare_cpu = (statistics.median(t[i] for t in bare_times) for i in (0, 1))
        print(f"Lightning step {1e3 * lightning_step:.1f} ms | bare step {1e3 * bare_step:.1f} ms (wall, median)")
        print(f"ratio Lightning / bare = {lightning_step / bare_step:.3f} wall (target <= 1.05)")
        if not args.gpu:  # this process's CPU time: robust to other processes sharing the machine
            print(
                f"ratio Lightning / bare = {lightning_cpu / bare_cpu:.3f} CPU time ({1e3 * lightning_cpu:.1f} / {1e3 * bare_cpu:.1f} ms)"
            )
        if args.gpu:
            for side, step in (("lightning", lightning_step), ("bare", bare_step)):
                print(
                    f"{side:>9}: {batch_size / step:.1f} samples/s, peak memory {peaks[side] / 2**30:.1f} GiB "
                    "(torch.cuda.max_memory_allocated)"
                )
        if args.json:
            import json

            figures = {
                "device": torch.cuda.get_device_name() if args.gpu else "cpu",
                "precision": precision,
                "batch_size": batch_size,
                "gradient_checkpointing": args.gradient_checkpointing,
                "lightning_step_s": lightning_step,
                "bare_step_s": bare_step,
                "ratio": lightning_step / bare_step,
                "samples_per_s": batch_size / lightning_step,
                "peak_gib": peaks["lightning"] / 2**30 if args.gpu else None,
            }
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
