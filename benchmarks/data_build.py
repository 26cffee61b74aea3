"""Dataset build speed: items per second with 1 and 2 worker processes, measured side by side.

    python benchmarks/data_build.py [--sentences 24] [--tts festival] [--repeats 2]

Builds the first N sentences of configs/data/train_sentences.txt into fresh temporary folders with
``--workers 1`` and ``--workers 2`` (alternating, ``--repeats`` times each; the best run counts), and
prints items/s and the speed-up. The time includes starting the worker processes and writing the
manifest, i.e. what a user waits for. Results: benchmarks/RESULTS-data.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from speakimg.data import BuildConfig, build_dataset

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(sentences: list[str], workers: int, config: BuildConfig) -> tuple[float, float]:
    """(items per second, CPU seconds per item incl. workers and TTS subprocesses) of one fresh build."""
    with tempfile.TemporaryDirectory(prefix="speakimg-bench-") as tmp:
        cpu, start = _cpu_seconds(), time.perf_counter()
        summary = build_dataset(sentences, Path(tmp) / "data", config, workers=workers, progress=False)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        assert summary.built == len(sentences), summary.format()
    return len(sentences) / seconds, cpu / len(sentences)


def _cpu_pressure() -> str:
    try:  # Linux PSI: share of time runnable tasks waited for a CPU (other jobs on the machine)
        return Path("/proc/pressure/cpu").read_text().splitlines()[0].split()[2].split("=")[1] + " %"
    except (OSError, IndexError):
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--tts", default="festival")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    lines = (REPO / "configs" / "data" / "train_sentences.txt").read_text("utf-8").splitlines()[: args.sentences]
    config = BuildConfig(tts=args.tts)
    run(lines[:2], 1, config)  # warm the page cache (voices, libraries)
    rates: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):
            rate, cpu_per_item = run(lines, workers, config)
            rates[workers].append(rate)
            cpu[workers].append(cpu_per_item)
    best = {w: max(r) for w, r in rates.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; load average {load:.1f}, CPU pressure {_cpu_pressure()}"
    )
    print(f"{args.sentences} sentences, tts={args.tts}, fit=pad, best of {args.repeats}")
    print("| workers | items/s (best) | all runs | CPU s / item |")
    print("| --- | --- | --- | --- |")
    for workers, values in rates.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {workers} | {best[workers]:.2f} | {runs} | {min(cpu[workers]):.3f} |")
    print(f"speed-up 2 vs 1 workers: {best[2] / best[1]:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "cpu": cpu, "best": best, "load": load}, indent=2))


if __name__ == "__main__":
    main()
