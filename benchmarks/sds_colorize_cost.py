"""Cost of SDS and colorization against the combined sampler on the tiny kit: CPU seconds per step, side by side.

    python benchmarks/sds_colorize_cost.py              # one step of each, at the papers' sizes
    python benchmarks/sds_colorize_cost.py --rounds 3   # median of 3

One pipeline (tiny SD + tiny Auffusion + tiny DeepFloyd IF), float32 on the CPU, 2 threads. One step of
each method at the papers' sizes, without the fixed cost of a sample (prompt encoding, decoding, vocoding):
a combined-denoising step (both guided UNets on the 4 x 32 x 128 latent, DDIM update); an SDS step
(implicit image 256 x 1024 with MLP width 256 and 256 Fourier features, its VAE encode and backward, the
audio model, and the IF pixel model on 8 crops of 256 -> 64), and an audio-only SDS step (the warm start);
a colorization step (IF at 256 x 992). Per sample: times the papers' step counts (denoise 100, SDS 35,000 +
5,000 audio-only, colorize 23). CPU time of the process (``time.process_time``, both threads) is reported
beside wall time: on a shared machine it is the figure that does not depend on the other jobs. No test
asserts a timing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from speakimg.sampling import PipelineModels, SamplerSettings, load_pipeline


def timed(function: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``function()`` over ``rounds`` calls, after one warm-up call."""
    function()
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from speakimg.pipeline import GuidedDenoiser, combined_denoise
    from speakimg.pipeline.colorization import colorize_spectrograms
    from speakimg.pipeline.sds import sample_sds

    models = PipelineModels("tiny:stable-diffusion", "tiny:auffusion", "griffin-lim", "tiny:deepfloyd-if")
    pipe = load_pipeline(models, 1, torch.device("cpu"), torch.float32)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)

    image = pipe.encode(pipe.image_prompt_encoder, pipe.image_unet, ["a castle"], [""])
    audio = pipe.encode(pipe.audio_prompt_encoder, pipe.audio_unet, ["bells ringing"], [""])
    denoisers = [GuidedDenoiser(pipe.image_unet, image, 10.0), GuidedDenoiser(pipe.audio_unet, audio, 10.0)]
    z = torch.randn(1, 4, 32, 128, generator=generator)

    def denoise_step() -> None:
        pipe.scheduler.set_timesteps(100)
        pipe.scheduler.timesteps = pipe.scheduler.timesteps[50:51]
        combined_denoise(denoisers, pipe.scheduler, z, torch.full((1, 2), 0.5))

    def sds_steps(steps: int, audio_only: bool) -> Callable[[], object]:
        settings = SamplerSettings(method="sds", sds_steps=steps, sds_audio_only_steps=steps if audio_only else 0,
                                   griffin_lim_iters=1)  # fmt: skip
        return lambda: sample_sds(pipe, ["a castle"], ["bells ringing"], settings, generator=generator)

    spectrogram = torch.rand(1, 256, 992, generator=generator)

    def colorize_steps(steps: int) -> Callable[[], object]:
        return lambda: colorize_spectrograms(pipe.pixel_model, spectrogram, ["a colorful photo of a castle"],
                                             steps=30, start_step=30 - steps, generator=generator)  # fmt: skip

    def difference(two: Callable[[], object], one: Callable[[], object]) -> tuple[float, float]:
        (w2, c2), (w1, c1) = timed(two, args.rounds), timed(one, args.rounds)
        return max(w2 - w1, 0.0), max(c2 - c1, 0.0)

    rows = [
        ("denoise (both guided UNets, DDIM)", lambda: timed(denoise_step, args.rounds), 100),
        ("sds, audio + image (IF, 8 crops)", lambda: difference(sds_steps(2, False), sds_steps(1, False)), 35000),
        ("sds, audio only (warm start)", lambda: difference(sds_steps(2, True), sds_steps(1, True)), 5000),
        ("colorize (IF at 256 x 992)", lambda: difference(colorize_steps(2), colorize_steps(1)), 23),
    ]
    print("| step of | wall s / step | CPU s / step | steps per sample | CPU s / sample |")
    print("| --- | --- | --- | --- | --- |")
    for name, measure, count in rows:
        wall, cpu = measure()
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {count} | {cpu * count:.0f} |", flush=True)


if __name__ == "__main__":
    main()
