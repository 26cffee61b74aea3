"""What calling the MSD's spectral-norm scale as the original does (real, then generated) costs.

The multi-scale discriminator's raw-audio scale sees real and generated audio in two calls so that its
power iteration (and so its losses) equal jik876's from the first step; the weight-normed scales see both
in one batch. This measures one training-mode D step (forward on ``y`` and ``y_hat``, LSGAN loss, backward)
with scale 0 in two calls against the same module with scale 0 batched, side by side in alternating
rounds, and reports the ratio::

    python benchmarks/msd_calls.py                      # full width, batch 4, 8000-sample segments (CPU)
    python benchmarks/msd_calls.py --device cuda --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from speakimg.runtime import select_device
from speakimg.vocoder import MultiScaleDiscriminator, discriminator_loss


def step(msd: MultiScaleDiscriminator, y: torch.Tensor, y_hat: torch.Tensor) -> None:
    real, fake, _, _ = msd(y, y_hat)
    discriminator_loss(real, fake)[0].backward()
    msd.zero_grad(set_to_none=True)


def timed(msd, y, y_hat, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(msd, y, y_hat)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segment", type=int, default=8000)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    device = select_device(args.device)
    torch.manual_seed(0)
    msd = MultiScaleDiscriminator(width=args.width).to(device).train()
    y = 0.5 * torch.tanh(torch.randn(args.batch, 1, args.segment, device=device))
    y_hat = 0.5 * torch.tanh(torch.randn(args.batch, 1, args.segment, device=device))
    scale0 = msd.discriminators[0]
    step(msd, y, y_hat)  # warm-up
    separate, batched = [], []
    for _ in range(args.rounds):
        scale0.use_spectral_norm = True  # real, then generated: the original's two calls
        separate.append(timed(msd, y, y_hat, args.steps, device))
        scale0.use_spectral_norm = False  # the same module, scale 0 given both in one batch
        batched.append(timed(msd, y, y_hat, args.steps, device))
    scale0.use_spectral_norm = True
    a, b = statistics.median(separate), statistics.median(batched)
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch}, segment {args.segment}, "
        f"width {args.width}: D step with scale 0 in two calls {a * 1e3:.1f} ms, batched {b * 1e3:.1f} ms, "
        f"ratio {a / b:.3f} (median of {args.rounds} rounds x {args.steps} steps)"
    )


if __name__ == "__main__":
    main()
