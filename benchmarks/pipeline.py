"""Benchmark: ImagesThatSpeakPipeline against the bare UNet + scheduler loop it needs.

    python benchmarks/pipeline.py                 # CPU: the tiny kit, 50 steps, 3 interleaved repeats
    python benchmarks/pipeline.py --gpu           # GPU: full-size random-weight SD-1.5 UNets in bf16,
                                                  #      100 steps, batch 1 and 8 (a few minutes on an H200)

The bare loop is what the method cannot do without: per step, one UNet call on ``[z, z]`` per
model taking part (with the same warm start), the guidance and weighting arithmetic, and
``scheduler.step``; embeddings, z_T and weights are computed beforehand. The pipeline is timed end
to end with ``output_type="latent"`` (prompt encoding, noise, validation, weights, the sampler);
both run side by side in one process with interleaved repeats, and the ratio of medians is the
pipeline's overhead (target <= 1.05). On a shared CPU machine wall time is noise from other
processes: the CPU run uses one thread and also reports the ratio of process CPU times. ``--gpu`` also reports seconds per sample of the full
pipeline (latent sampling + both VAE decodes in fp32 + Griffin-Lim) and the vocoder cycle error
of its samples; ``--gpu`` uses full-size SD-1.5 UNets and VAEs (random weights, configs written
inline: no download).
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib

import torch
from torch import nn

from speakimg.conditioning import PromptEncoder
from speakimg.pipeline import ImagesThatSpeakPipeline, combination_weights
from speakimg.testing.diffusion import SD15_UNET_CONFIG, SD15_VAE_CONFIG

SD15_UNET, SD15_VAE = SD15_UNET_CONFIG, SD15_VAE_CONFIG


class RandomPromptEncoder(PromptEncoder):
    """Stand-in for CLIP (whose cost is negligible next to 200 UNet calls): a fixed random [77, D] per prompt."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, prompts: list[str]) -> torch.Tensor:
        rows = []
        for text in prompts:
            g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
            rows.append(torch.randn(77, self.dim, generator=g))
        return torch.stack(rows).to(self.anchor.device, self.anchor.dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def bare_loop(pipe, image_emb, audio_emb, z_T, rows, s_image, s_audio):
    """The UNet + scheduler loop the method needs, written plainly."""
    z = z_T
    dtype = image_emb.dtype
    for i, t in enumerate(pipe.scheduler.timesteps):
        w_image, w_audio = rows[i]
        eps = 0.0
        if w_image:
            u, c = (
                pipe.image_unet(torch.cat([z, z]).to(dtype), t, encoder_hidden_states=image_emb).sample.float().chunk(2)
            )
            eps = eps + w_image * (u + s_image * (c - u))
        if w_audio:
            u, c = (
                pipe.audio_unet(torch.cat([z, z]).to(dtype), t, encoder_hidden_states=audio_emb).sample.float().chunk(2)
            )
            eps = eps + w_audio * (u + s_audio * (c - u))
        z = pipe.scheduler.step(eps, t, z).prev_sample
    return z


def compare(pipe, batch: int, steps: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Interleaved timings of the bare loop and the pipeline (latent output); medians in seconds."""
    images = [f"a painting of a lighthouse, number {i}" for i in range(batch)]
    audios = [f"waves crashing on rocks, take {i}" for i in range(batch)]
    z_T = torch.randn(batch, 4, 32, 128, generator=torch.Generator().manual_seed(0)).to(device)
    settings = dict(t_image=0.9, t_audio=1.0, audio_weight=0.5)
    image_emb = pipe.encode(pipe.image_prompt_encoder, pipe.image_unet, images, [""] * batch)
    audio_emb = pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, audios, [""] * batch)

    def run_bare(n: int = steps):
        pipe.scheduler.set_timesteps(n, device=device)
        rows = combination_weights(pipe.scheduler.timesteps, **settings).tolist()
        return bare_loop(pipe, image_emb, audio_emb, z_T.float(), rows, 10.0, 10.0)

    def run_pipe(n: int = steps):
        return pipe(images, audios, num_inference_steps=n, latents=z_T, output_type="latent", **settings).latents

    wall: dict[str, list[float]] = {"bare": [], "pipeline": []}
    cpu: dict[str, list[float]] = {"bare": [], "pipeline": []}
    results = {}
    runners = {"bare": run_bare, "pipeline": run_pipe}
    for name in runners:  # warm-up (allocator, kernels, compilation) on a few steps
        runners[name](min(steps, 3))
    for r in range(repeats):
        order = ["bare", "pipeline"] if r % 2 == 0 else ["pipeline", "bare"]
        for name in order:
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = runners[name]()
            sync(device)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    finite = torch.isfinite(results["bare"]).all() and torch.isfinite(results["pipeline"]).all()
    diff = (results["bare"] - results["pipeline"]).abs().max().item() if finite else float("nan")
    median = statistics.median
    return {
        "bare_s": median(wall["bare"]),
        "pipeline_s": median(wall["pipeline"]),
        "ratio": median(wall["pipeline"]) / median(wall["bare"]),
        "ratio_min": min(wall["pipeline"]) / min(wall["bare"]),
        "cpu_ratio": median(cpu["pipeline"]) / median(cpu["bare"]),
        "max_abs_diff": diff,
    }


@torch.no_grad()
def full_sample(pipe, batch: int, steps: int, device: torch.device) -> tuple[float, float]:
    """Seconds for one full call (sampling, both VAE decodes, vocoder) of ``batch`` samples, and the
    mean vocoder cycle error of its samples."""
    from speakimg.metrics import vocoder_cycle_error

    kwargs = dict(num_inference_steps=steps, generator=torch.Generator().manual_seed(1), output_type="pt")
    sync(device)
    start = time.perf_counter()
    out = pipe(["a lighthouse"] * batch, ["waves"] * batch, **kwargs)
    sync(device)
    seconds = time.perf_counter() - start
    return seconds, vocoder_cycle_error(out.log_mels, out.audios).mean().item()


def tiny_pipeline(device: torch.device) -> ImagesThatSpeakPipeline:
    from speakimg import testing

    pipe = ImagesThatSpeakPipeline.from_pretrained(
        testing.tiny_stable_diffusion(), testing.tiny_auffusion(), "griffin-lim", device=device
    )
    return pipe


def full_size_pipeline(device: torch.device, dtype: torch.dtype) -> ImagesThatSpeakPipeline:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from speakimg.testing import SD15_SCHEDULER_CONFIG
    from speakimg.vocoder import GriffinLimVocoder

    torch.manual_seed(0)
    with torch.device(device):
        image_unet, audio_unet = UNet2DConditionModel(**SD15_UNET), UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
    return ImagesThatSpeakPipeline(
        image_unet.eval(),
        vae.eval(),
        RandomPromptEncoder(768),
        audio_unet.eval(),
        vae,
        RandomPromptEncoder(768),
        DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        GriffinLimVocoder(n_iter=64),
    ).to(device, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="full-size SD-1.5 UNets in bf16 on the GPU")
    parser.add_argument("--device", help="default: cuda with --gpu, else cpu")
    parser.add_argument("--steps", type=int, help="default: 100 with --gpu, 50 on the tiny kit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default: 1 8 with --gpu, 1 on the tiny kit")
    parser.add_argument("--compile", action="store_true", help="also time the pipeline after pipe.compile()")
    parser.add_argument(
        "--threads", type=int, help="CPU threads (default 1 on CPU: process CPU time stays exact on a shared machine)"
    )
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if args.gpu else "cpu"))
    steps = args.steps or (100 if args.gpu else 50)
    batch_sizes = args.batch_sizes or ([1, 8] if args.gpu else [1])
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    print(f"torch {torch.__version__}, device {device}", end="")
    print(
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads"
    )

    start = time.perf_counter()
    if args.gpu:
        pipe = full_size_pipeline(device, torch.bfloat16)
        label = "full-size random-weight SD-1.5 UNets, bf16 (VAE fp32)"
    else:
        pipe = tiny_pipeline(device)
        label = "tiny kit (speakimg.testing), fp32"
    pipe.set_progress_bar_config(disable=True)
    print(f"models: {label}; built in {time.perf_counter() - start:.1f} s; {steps} steps, t_image 0.9")

    variants = [("eager", pipe)]
    for name, p in variants + ([("compiled", None)] if args.compile else []):
        if name == "compiled":
            p = pipe.compile()
        for batch in batch_sizes:
            r = compare(p, batch, steps, args.repeats, device)
            print(
                f"[{name}] batch {batch}: bare loop {r['bare_s']:.3f} s, pipeline {r['pipeline_s']:.3f} s (medians), "
                f"pipeline/bare: wall {r['ratio']:.3f} (of minima {r['ratio_min']:.3f}), "
                f"process CPU time {r['cpu_ratio']:.3f} (target <= 1.05); "
                f"sampling {r['pipeline_s'] / batch:.3f} s/sample; max |z0 diff| {r['max_abs_diff']:.2e}"
            )
            full, cycle = full_sample(p, batch, steps, device)
            print(
                f"[{name}] batch {batch}: full pipeline (sampling + 2 VAE decodes + Griffin-Lim "
                f"{pipe.vocoder.n_iter} it) {full / batch:.2f} s/sample; vocoder cycle error {cycle:.3f} nats"
            )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
