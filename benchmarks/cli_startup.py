"""How long the command lines take to answer ``--help`` (and a config error), side by side with another checkout.

    python benchmarks/cli_startup.py                               # this checkout, every CLI's --help
    python benchmarks/cli_startup.py --baseline /path/to/main      # alternating rounds: baseline, this
    python benchmarks/cli_startup.py --modules speakimg.fit --rounds 5

Each command runs in a fresh interpreter (``python -m MODULE ARGS``) from the checkout's root with it on
``PYTHONPATH``; rounds alternate between the two checkouts so that a change of machine load hits both. Reports
the median wall time and the number of output lines. No test asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from speakimg.cli import COMMANDS  # noqa: E402  (the list of command lines; imports no torch)

CLIS = list(COMMANDS)
ERRORS = [  # a bad setting: one error line, before any model loads
    ("speakimg.fit", ["--config", "configs/auffusion_lora.yaml", "--model.init_args.lora_rnak", "3"]),
    (
        "speakimg.sample",
        ["--image-prompt", "a", "--audio-prompt", "b", "--out", "/tmp/cli_startup_out", "--steps", "0"],
    ),
]


def run_once(root: Path, module: str, args: list[str]) -> tuple[float, int, int]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, done.returncode, len((done.stdout + done.stderr).splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with (e.g. main)")
    parser.add_argument("--modules", nargs="*", default=CLIS, help="the CLIs to time (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-config-error", action="store_true", help="skip the bad-setting commands")
    args = parser.parse_args()
    roots = {"baseline": args.baseline, "this": REPO} if args.baseline else {"this": REPO}
    commands = [(m, ["--help"]) for m in args.modules]
    if not args.no_config_error:
        commands.extend(ERRORS)
    print(f"load average before: {os.getloadavg()[0]:.1f}; {args.rounds} rounds; {os.cpu_count()} CPUs")
    print("| command | " + " | ".join(f"{name}: s (lines)" for name in roots) + " |")
    print("| --- |" + " --- |" * len(roots))
    for module, extra in commands:
        times: dict[str, list[float]] = {name: [] for name in roots}
        lines: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, root in roots.items():
                seconds, code, count = run_once(root, module, extra)
                times[name].append(seconds)
                lines[name] = count if code in (0, 1, 2) else -1
        cells = [f"{statistics.median(times[n]):.2f} ({lines[n]})" for n in roots]
        print(f"| `python -m {module} {' '.join(extra)}` | " + " | ".join(cells) + " |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
