"""Seconds per sample of each sampling method on the tiny kit (CPU), measured side by side.

    python benchmarks/methods_cost.py --steps 10 --repeats 2 [--methods denoise,imprint,controlnet,reference]

Each round runs every method once (interleaved, so machine load hits all alike) on one sample of
the full 256 x 1024 canvas, decoded and vocoded (Griffin-Lim, 8 iterations); the TTS of controlnet /
reference is espeak. Prints a markdown table (median seconds, and the ratio to ``denoise``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", default="denoise,imprint,controlnet,reference")
    args = parser.parse_args()

    from speakimg.pipeline import ImagesThatSpeakPipeline
    from speakimg.sampling import SamplerSettings, sample_batch
    from speakimg.testing import tiny_auffusion, tiny_stable_diffusion
    from speakimg.vocoder import GriffinLimVocoder

    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_stable_diffusion(), tiny_auffusion(), GriffinLimVocoder(8))
    pipe.set_progress_bar_config(disable=True)
    methods = args.methods.split(",")
    common = dict(steps=args.steps, imprint_image_steps=args.steps, tts="espeak", controlnet_model="tiny:controlnet")
    times: dict[str, list[float]] = {m: [] for m in methods}
    for m in methods:  # warm-up: loads the ControlNet, the TTS, first-call allocations
        sample_batch(pipe, SamplerSettings(method=m, **{**common, "steps": 1, "imprint_image_steps": 1}),
                     ["a lighthouse"], ["The sea was calm."], [torch.Generator().manual_seed(0)])  # fmt: skip
    for _ in range(args.repeats):
        for m in methods:
            began = time.perf_counter()
            sample_batch(pipe, SamplerSettings(method=m, **common), ["a lighthouse"], ["The sea was calm."],
                         [torch.Generator().manual_seed(0)])  # fmt: skip
            times[m].append(time.perf_counter() - began)
    base = statistics.median(times.get("denoise", times[methods[0]]))
    print(f"tiny kit, {args.steps} steps, 1 sample, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print(f"| method | s / sample (median of {args.repeats}) | / denoise |")
    print("| --- | --- | --- |")
    for m in methods:
        median = statistics.median(times[m])
        print(f"| {m} | {median:.2f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
