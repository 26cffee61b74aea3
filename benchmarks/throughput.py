"""Benchmark: what each throughput option of the combined sampler buys, side by side in one run.

    python benchmarks/throughput.py                          # CPU, tiny kit, 20 steps, 1 thread
    python benchmarks/throughput.py --compile --repeats 3    # also torch.compile of the repeated blocks
    python benchmarks/throughput.py --device cuda --full-size --steps 100 --batch 8 --compile   # a GPU

Options timed against the same baseline (batch 1, fp32, t_image 1.0, eager, contiguous), each in
isolation, with interleaved repeats (medians of wall time, and of this process's CPU time: on a
shared machine the CPU time is the honest figure):

- ``batch``: B prompt pairs in one pipeline call (one UNet call per model and step) vs B calls of one;
- ``warm start``: ``t_image 0.9`` (the image UNet skipped on the first 10% of steps) vs ``1.0``;
- ``channels_last``: NHWC UNet weights (what ``load_pipeline`` does on CUDA);
- ``bf16``: both UNets and prompt encoders in bfloat16;
- ``compile``: ``pipe.compile()`` (``compile_repeated_blocks``: the transformer blocks), compile time apart.

Every figure is seconds of sampling per sample (latent output: no VAE decode, no vocoder). On the tiny
kit the ratios say what an option removes or adds around the UNet calls, not what it buys on a
full-size UNet on a GPU (``benchmarks/gpu.sh``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch


def build(device: torch.device, full_size: bool):
    from speakimg.pipeline import ImagesThatSpeakPipeline

    if full_size:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from pipeline import full_size_pipeline  # the random-weight SD-1.5 pipeline of benchmarks/pipeline.py

        return full_size_pipeline(device, torch.float32)
    from speakimg import testing

    return ImagesThatSpeakPipeline.from_pretrained(
        testing.tiny_stable_diffusion(), testing.tiny_auffusion(), "griffin-lim", device=device
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-size", action="store_true", help="random-weight full-size SD-1.5 UNets")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4, help="pairs per call for the batch option")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: CPU time stays exact)")
    parser.add_argument("--compile", action="store_true", help="also time pipe.compile() (repeated blocks)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    base = build(device, args.full_size)
    base.set_progress_bar_config(disable=True)
    pairs = [
        (f"a painting of a lighthouse, number {i}", f"waves crashing on rocks, take {i}") for i in range(args.batch)
    ]

    variants = {"baseline": base}
    for name, change in (("channels_last", "cl"), ("bf16", "bf16")):
        pipe = copy.deepcopy(base)
        if change == "cl":
            for unet in (pipe.image_unet, pipe.audio_unet):
                unet.to(memory_format=torch.channels_last)
        else:
            pipe.to(device, torch.bfloat16)
        variants[name] = pipe
    compile_s = None
    if args.compile:
        pipe = copy.deepcopy(base)
        pipe.compile()
        start = time.perf_counter()
        pipe(pairs[0][0], pairs[0][1], num_inference_steps=2, output_type="latent", t_image=1.0)  # compiles
        compile_s = time.perf_counter() - start
        variants["compile"] = pipe

    def one_each(pipe, t_image: float) -> None:
        for image, audio in pairs:
            pipe(image, audio, num_inference_steps=args.steps, output_type="latent", t_image=t_image,
                 generator=torch.Generator().manual_seed(0))  # fmt: skip

    def batched(pipe, t_image: float) -> None:
        pipe([p[0] for p in pairs], [p[1] for p in pairs], num_inference_steps=args.steps, output_type="latent",
             t_image=t_image, generator=[torch.Generator().manual_seed(0) for _ in pairs])  # fmt: skip

    runs = {
        "baseline (batch 1, fp32, t_image 1.0, eager)": lambda: one_each(base, 1.0),
        f"batch {args.batch} in one call": lambda: batched(base, 1.0),
        "warm start (t_image 0.9)": lambda: one_each(base, 0.9),
        "channels_last": lambda: one_each(variants["channels_last"], 1.0),
        "bf16": lambda: one_each(variants["bf16"], 1.0),
    }
    if "compile" in variants:
        runs["compile (repeated blocks)"] = lambda: one_each(variants["compile"], 1.0)
    for fn in runs.values():  # warm-up
        fn()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.repeats):
        names = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in names:
            sync(device)
            w, c = time.perf_counter(), time.process_time()
            runs[name]()
            sync(device)
            wall[name].append((time.perf_counter() - w) / len(pairs))
            cpu[name].append((time.process_time() - c) / len(pairs))
    first = next(iter(runs))
    rows = []
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} thread(s), "
          f"{'full-size' if args.full_size else 'tiny kit'}, {args.steps} steps, {len(pairs)} pairs, "
          f"{args.repeats} repeats")  # fmt: skip
    print("| option | wall s/sample | CPU s/sample | speed-up (wall) | speed-up (CPU) |")
    print("| --- | --- | --- | --- | --- |")
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        sw = statistics.median(wall[first]) / w
        sc = statistics.median(cpu[first]) / c if c else float("nan")
        rows.append({"option": name, "wall_s": w, "cpu_s": c, "speedup_wall": sw, "speedup_cpu": sc})
        print(f"| {name} | {w:.4f} | {c:.4f} | {sw:.2f}x | {sc:.2f}x |")
    if compile_s is not None:
        print(f"compile time (first call, 2 steps): {compile_s:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "compile_s": compile_s, "steps": args.steps,
                                               "device": str(device), "full_size": args.full_size}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
