"""The GPU figures of issue 15 in one run (``benchmarks/gpu.sh`` calls this); ``--smoke`` checks it on a CPU.

    bash benchmarks/gpu.sh outputs/gpu-figures            # one GPU, under 8 minutes
    bash benchmarks/gpu.sh /tmp/gpu-smoke --smoke         # CPU: tiny sizes, 2 steps (a check of the script)

Sections (each its own try: a failing section is recorded and the others still run):

1. ``sampling``: seconds per sample of the combined sampler (latent output) at 100 steps with two
   full-size SD-1.5 UNets in bf16 (random weights from the real SD-1.5 UNet config: no download),
   batch 1 and 8, eager and ``pipe.compile()`` (compile_repeated_blocks; compile time apart), peak memory
   per batch (what ``speakimg.runtime.SAMPLE_GIB`` estimates), and a full sample (both VAE decodes +
   Griffin-Lim) at batch 8.
2. ``speech``: the speech fine-tune's samples/s and peak memory at batch 8, bf16, with and without
   gradient checkpointing (``benchmarks/speech_step.py --gpu``).
3. ``vocoder``: the HiFi-GAN step at Auffusion size (``benchmarks/vocoder_step.py --preset auffusion``).
4. ``evaluation``: pairs per minute of the evaluation = full sample at batch 8 + Whisper (faster-whisper
   on GPU, ``--whisper``) + windowed CLIP (``--clip``), per pair.

Writes ``OUT/figures.json`` and ``OUT/figures.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def build_pipeline(device: torch.device, smoke: bool):
    from pipeline import full_size_pipeline, tiny_pipeline

    if smoke:
        return tiny_pipeline(device)
    return full_size_pipeline(device, torch.bfloat16)


def time_sampling(pipe, batch: int, steps: int, device: torch.device, repeats: int) -> dict:
    images = [f"a painting of a lighthouse, number {i}" for i in range(batch)]
    audios = [f"the sea was calm, take {i}" for i in range(batch)]
    kwargs = dict(num_inference_steps=steps, output_type="latent", t_image=0.9)
    pipe(images, audios, **{**kwargs, "num_inference_steps": min(steps, 2)})  # warm-up (kernels, compilation)
    peak_reset(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        pipe(images, audios, generator=[torch.Generator().manual_seed(i) for i in range(batch)], **kwargs)
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"batch": batch, "steps": steps, "s_per_call": seconds, "s_per_sample": seconds / batch,
            "peak_gib": peak_gib(device)}  # fmt: skip


def section_sampling(args, device: torch.device, figures: dict) -> None:
    pipe = build_pipeline(device, args.smoke)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for batch in args.batch_sizes:
        rows.append({"variant": "eager", **time_sampling(pipe, batch, args.steps, device, args.repeats)})
        print(rows[-1], flush=True)
    # a full sample (both VAE decodes in fp32 + Griffin-Lim) at the largest batch, as the evaluation makes it
    batch = max(args.batch_sizes)
    peak_reset(device)
    sync(device)
    start = time.perf_counter()
    pipe(["a lighthouse"] * batch, ["the sea was calm"] * batch, num_inference_steps=args.steps, output_type="pt")
    sync(device)
    full = (time.perf_counter() - start) / batch
    figures["full_sample"] = {"batch": batch, "steps": args.steps, "s_per_sample": full, "peak_gib": peak_gib(device),
                              "vocoder": type(pipe.vocoder).__name__}  # fmt: skip
    print(figures["full_sample"], flush=True)
    if args.compile:
        start = time.perf_counter()
        pipe.compile()
        pipe(["a"], ["b"], num_inference_steps=2, output_type="latent")
        sync(device)
        figures["compile_s"] = time.perf_counter() - start
        for batch in args.batch_sizes:
            rows.append({"variant": "compiled", **time_sampling(pipe, batch, args.steps, device, args.repeats)})
            print(rows[-1], flush=True)
    figures["sampling"] = rows


def run_script(args, script: str, extra: list[str], json_path: Path) -> dict:
    command = [sys.executable, str(HERE / script), *extra, "--json", str(json_path)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, timeout=args.section_timeout)
    return json.loads(json_path.read_text())


def section_speech(args, device: torch.device, figures: dict, out: Path) -> None:
    base = ["--steps", "2", "--rounds", "1", "--batch-size", "1"] if args.smoke else ["--gpu", "--steps", "8",
                                                                                      "--rounds", "1"]  # fmt: skip
    figures["speech"] = [
        run_script(args, "speech_step.py", base + flag, out / f"speech{'-gc' if flag else ''}.json")
        for flag in ([], ["--gradient-checkpointing"])
    ]


def section_vocoder(args, device: torch.device, figures: dict, out: Path) -> None:
    extra = ["--preset", "tiny", "--steps", "2", "--rounds", "1", "--warmup", "1"] if args.smoke else [
        "--preset", "auffusion", "--steps", "8", "--rounds", "1", "--warmup", "2", "--device", "cuda"]  # fmt: skip
    figures["vocoder"] = run_script(args, "vocoder_step.py", extra, out / "vocoder.json")


def section_evaluation(args, device: torch.device, figures: dict) -> None:
    from speakimg.metrics import WhisperWER, WindowedCLIPScore

    clips = 16
    audio = [0.1 * torch.randn(158720, generator=torch.Generator().manual_seed(i)) for i in range(clips)]
    images = torch.rand(clips, 3, 256, 992, generator=torch.Generator().manual_seed(0))
    prompts = [f"a painting of a lighthouse, number {i}" for i in range(clips)]
    whisper = WhisperWER(args.whisper, batch_size=16, device=device)
    whisper.transcribe(audio[:2])  # load + warm-up
    sync(device)
    start = time.perf_counter()
    whisper.transcribe(audio)
    sync(device)
    whisper_s = (time.perf_counter() - start) / clips
    clip = WindowedCLIPScore(args.clip).to(device)
    clip(images[:2].to(device), prompts[:2])
    sync(device)
    start = time.perf_counter()
    clip(images.to(device), prompts)
    sync(device)
    clip_s = (time.perf_counter() - start) / clips
    sample_s = figures["full_sample"]["s_per_sample"]
    figures["evaluation"] = {
        "whisper": args.whisper,
        "whisper_backend": whisper.backend,
        "clip": args.clip,
        "sample_s": sample_s,
        "whisper_s_per_clip": whisper_s,
        "clip_s_per_pair": clip_s,
        "pairs_per_min": 60.0 / (sample_s + whisper_s + clip_s),
    }
    print(figures["evaluation"], flush=True)


def markdown(figures: dict) -> str:
    lines = [f"# GPU figures ({figures['device']}, {figures['date']})", "", f"`{figures['command']}`", ""]
    if figures.get("sampling"):
        lines += [
            "| sampler (latent output) | batch | steps | s / sample | peak GiB |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in figures["sampling"]:
            peak = "–" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
            lines.append(f"| {row['variant']} | {row['batch']} | {row['steps']} | {row['s_per_sample']:.3f} | {peak} |")
        if "compile_s" in figures:
            lines.append(f"\ncompile time (repeated blocks, both UNets): {figures['compile_s']:.0f} s")
    if figures.get("full_sample"):
        full = figures["full_sample"]
        lines.append(f"\nfull sample (sampler + 2 VAE decodes + {full['vocoder']}), batch {full['batch']}: "
                     f"{full['s_per_sample']:.3f} s / sample")  # fmt: skip
    for row in figures.get("speech", []):
        peak = "–" if row.get("peak_gib") is None else f"{row['peak_gib']:.1f} GiB"
        lines.append(f"\nspeech fine-tune, batch {row['batch_size']}, {row['precision']}, gradient checkpointing "
                     f"{row['gradient_checkpointing']}: {row['samples_per_s']:.1f} samples/s, peak {peak}")  # fmt: skip
    if figures.get("vocoder"):
        v = figures["vocoder"]
        lines.append(f"\nHiFi-GAN step ({v['preset']}, batch {v['batch']}): {v['lightning_s_per_step']:.3f} s")
    if figures.get("evaluation"):
        e = figures["evaluation"]
        lines.append(f"\nevaluation: {e['pairs_per_min']:.1f} pairs/min (sample {e['sample_s']:.2f} s + Whisper "
                     f"{e['whisper']} {e['whisper_s_per_clip']:.3f} s + CLIP {e['clip_s_per_pair']:.3f} s per pair)")  # fmt: skip
    for name, error in figures.get("errors", {}).items():
        lines.append(f"\n**{name} failed**: {error}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for figures.json and figures.md")
    parser.add_argument("--smoke", action="store_true", help="CPU check: tiny kit, 2 steps, batch 1 and 2")
    parser.add_argument("--steps", type=int, help="default 100 (smoke: 2)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 1 8 (smoke: 1 2)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--sections", nargs="+", default=["sampling", "speech", "vocoder", "evaluation"])
    parser.add_argument("--whisper", help="default large-v3 (smoke: tiny:whisper)")
    parser.add_argument("--clip", help="default openai/clip-vit-base-patch16 (smoke: tiny:clip)")
    parser.add_argument("--section-timeout", type=int, default=240, help="seconds per benchmark script")
    args = parser.parse_args()
    args.steps = args.steps or (2 if args.smoke else 100)
    args.batch_sizes = args.batch_sizes or ([1, 2] if args.smoke else [1, 8])
    args.whisper = args.whisper or ("tiny:whisper" if args.smoke else "large-v3")
    args.clip = args.clip or ("tiny:clip" if args.smoke else "openai/clip-vit-base-patch16")
    if args.smoke:
        args.compile = False  # inductor on a shared CPU takes minutes; the GPU run compiles
        torch.set_num_threads(2)
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke on a CPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor()})",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "smoke": args.smoke,
        "errors": {},
    }
    began = time.perf_counter()
    sections = {
        "sampling": lambda: section_sampling(args, device, figures),
        "speech": lambda: section_speech(args, device, figures, out),
        "vocoder": lambda: section_vocoder(args, device, figures, out),
        "evaluation": lambda: section_evaluation(args, device, figures),
    }
    for name in args.sections:
        start = time.perf_counter()
        try:
            sections[name]()
        except Exception as error:  # recorded; the other sections still run
            traceback.print_exc()
            figures["errors"][name] = f"{type(error).__name__}: {error}"
        figures[f"{name}_section_s"] = time.perf_counter() - start
        (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")  # after every section
    figures["total_s"] = time.perf_counter() - began
    (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    (out / "figures.md").write_text(markdown(figures))
    print(markdown(figures))
    if figures["errors"]:
        raise SystemExit(f"sections failed: {', '.join(figures['errors'])}")


if __name__ == "__main__":
    main()
