"""HiFi-GAN step time: HiFiGANModule under Lightning vs a bare PyTorch loop doing the same G/D updates.

Both sides start from the same weights and see the same batches (a fixed synthetic batch served by a
DataLoader); rounds alternate between them so that machine load drifts hit both alike. A step is the time
between two consecutive batch starts (data fetch, forward/backward of D and G, optimizer steps, hooks,
logging). The bare loop is what one writes by hand (jik876-style: no finiteness checks, no logging), so the
ratio is the whole cost of the framework. Afterwards the weights of both are compared: they must agree,
i.e. both did the same updates.

    python benchmarks/vocoder_step.py                       # tiny CPU setting (the sandbox's)
    python benchmarks/vocoder_step.py --preset auffusion    # Auffusion's generator + full discriminators (GPU)
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from speakimg.audio import log_mel
from speakimg.modules.hifigan import HiFiGANModule
from speakimg.vocoder import GeneratorConfig
from speakimg.vocoder.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss, mel_l1

PRESETS = {
    "tiny": dict(channels=32, width=1 / 16, segment=3200, batch=4),
    "auffusion": dict(channels=512, width=1.0, segment=8000, batch=16),
}


class FixedBatches(Dataset):
    """The same ``{"mel", "audio"}`` batch ``n`` times (``batch_size=None`` loaders)."""

    def __init__(self, batch: dict[str, torch.Tensor], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch


def synthetic_batch(batch: int, segment: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Harmonic tones with noise, and their log-mels."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(segment) / 16000
    f0 = 100 + 200 * torch.rand(batch, 1, generator=g)
    audio = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 6))
    audio = 0.5 * audio / audio.abs().amax(dim=1, keepdim=True) + 0.01 * torch.randn(batch, segment, generator=g)
    return {"mel": log_mel(audio), "audio": audio.unsqueeze(1)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(L.Callback):
    """Wall time between consecutive batch starts."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.starts = device, []

    def on_train_batch_start(self, *args) -> None:
        _sync(self.device)
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        _sync(self.device)
        self.starts.append(time.perf_counter())

    def intervals(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.starts)]


def bare_loop(module: HiFiGANModule, loader: DataLoader, device: torch.device) -> list[float]:
    """The same updates as ``HiFiGANModule.training_step``, by hand; returns per-step times."""
    G, mpd, msd, hp = module.generator, module.mpd, module.msd, module.hparams
    kw = dict(lr=2e-4, betas=(0.8, 0.99), weight_decay=0.01)  # the module's default optimizer
    opt_g = torch.optim.AdamW(G.parameters(), **kw)
    opt_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), **kw)
    d_params = list(itertools.chain(msd.parameters(), mpd.parameters()))
    loss_mel = module.loss_mel
    times = []
    _sync(device)
    start = time.perf_counter()
    for batch in loader:
        mel, y = batch["mel"].to(device), batch["audio"].to(device)
        y_hat = G(mel)
        for p in G.parameters():
            p.requires_grad_(False)
        rp, fp, _, _ = mpd(y, y_hat.detach())
        rs, fs, _, _ = msd(y, y_hat.detach())
        loss_d = discriminator_loss(rp, fp)[0] + discriminator_loss(rs, fs)[0]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        for p in G.parameters():
            p.requires_grad_(True)
        for p in d_params:
            p.requires_grad_(False)
        # the module's order of operations (it sets autograd's gradient accumulation order, hence the rounding)
        loss_mel_term = hp.mel_weight * mel_l1(y, y_hat, loss_mel)
        _, fp, mrp, mfp = mpd(y, y_hat)
        _, fs, mrs, mfs = msd(y, y_hat)
        loss_g = (
            generator_adversarial_loss(fp)[0]
            + generator_adversarial_loss(fs)[0]
            + feature_matching_loss(mrp, mfp, hp.feature_matching_weight)
            + feature_matching_loss(mrs, mfs, hp.feature_matching_weight)
            + loss_mel_term
        )
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        _sync(device)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return times


def make_module(preset: dict, seed: int) -> HiFiGANModule:
    torch.manual_seed(seed)
    config = GeneratorConfig(upsample_initial_channel=preset["channels"])
    return HiFiGANModule(generator=config, discriminator_width=preset["width"], scheduler_interval="epoch")


def lightning_run(module: HiFiGANModule, loader: DataLoader, device: torch.device) -> list[float]:
    timer = StepTimer(device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    return timer.intervals()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--steps", type=int, default=12, help="steps per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of each round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset, device = PRESETS[args.preset], torch.device(args.device)
    batch = synthetic_batch(preset["batch"], preset["segment"])
    loader = DataLoader(FixedBatches(batch, args.steps + 1), batch_size=None, shuffle=False)
    bare_t, light_t = [], []
    for r in range(args.rounds):
        bare = make_module(preset, seed=r).to(device).train()
        light = make_module(preset, seed=r)
        light.load_state_dict(bare.state_dict())
        bare_round = bare_loop(bare, loader, device)[args.warmup :]
        light_round = lightning_run(light, loader, device)[args.warmup :]
        bare_t += bare_round
        light_t += light_round
        diff = max(
            (a - b.to(a.device)).abs().max().item()
            for a, b in zip(bare.state_dict().values(), light.state_dict().values(), strict=True)
        )
        print(
            f"round {r}: bare {statistics.median(bare_round):.4f} s/step, "
            f"lightning {statistics.median(light_round):.4f} s/step, max |weight diff| {diff:.2e}"
        )
    bare_med, light_med = statistics.median(bare_t), statistics.median(light_t)
    result = {
        "preset": args.preset,
        **preset,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "steps_timed_per_side": len(bare_t),
        "bare_s_per_step": round(bare_med, 5),
        "lightning_s_per_step": round(light_med, 5),
        "ratio": round(light_med / bare_med, 4),
        "max_weight_diff_last_round": diff,
        "generator_params": sum(p.numel() for p in bare.generator.parameters()),
        "discriminator_params": sum(p.numel() for p in itertools.chain(bare.mpd.parameters(), bare.msd.parameters())),
    }
    print(json.dumps(result, indent=2))
    print(f"Lightning / bare step time: {result['ratio']:.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
