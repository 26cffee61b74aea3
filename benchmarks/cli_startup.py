"""How fast the sampling command lines answer before any model loads: ``--help`` and a bad setting.

    python benchmarks/cli_startup.py --repeats 5

Each command runs in a fresh interpreter (as a user types it), ``--repeats`` times; the median wall
time is printed with the load average (the machine is shared: read the figures with it). No test
asserts a timing; the figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def commands(out: str) -> dict[str, list[str]]:
    sample = [sys.executable, "-m", "speakimg.sample"]
    return {
        "sample --help": [*sample, "--help"],
        "sample --steps 0 (one-line error)": [
            *sample,
            "--image-prompt",
            "a",
            "--audio-prompt",
            "b",
            "--out",
            out,
            "--steps",
            "0",
        ],  # fmt: skip
        "evaluate --help": [sys.executable, "-m", "speakimg.evaluate", "--help"],
        "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in commands(str(Path(tmp) / "out")).items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                subprocess.run(command, cwd=REPO, env=env, capture_output=True)
                times.append(time.perf_counter() - start)
            print(
                f"{name:<40} median {statistics.median(times):.2f} s  (min {min(times):.2f}, load {os.getloadavg()[0]:.1f})"
            )


if __name__ == "__main__":
    main()
