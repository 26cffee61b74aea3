"""Issue 12's scenarios as regression tests: the map of every scenario to its test (docs/reliability.md),
and the scenarios that had no test elsewhere (a killed fit, swapped vocoder upsampling rates)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import requires_festival

from speakimg.errors import SpeakimgWarning

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "docs" / "reliability.md"


def scenario_tests() -> dict[str, list[str]]:
    """``{scenario: [test node ids]}`` from the table of docs/reliability.md."""
    rows = {}
    for line in TABLE.read_text("utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("scenario (issue 12)", "---"):
            rows[cells[0]] = re.findall(r"`(tests/[\w/]+\.py::\w+)`", cells[2])
    return rows


def test_every_scenario_maps_to_a_test_that_exists():
    rows = scenario_tests()
    assert len(rows) >= 25, "the table of docs/reliability.md lost rows"
    for scenario, tests in rows.items():
        assert tests, f"docs/reliability.md: no test for {scenario!r}"
        for node in tests:
            path, name = node.split("::")
            source = (REPO / path).read_text("utf-8") if (REPO / path).is_file() else ""
            assert re.search(rf"^def {name}\(", source, re.M), f"docs/reliability.md names {node}, which does not exist"


def test_a_missing_test_name_is_caught(tmp_path, monkeypatch):
    """The check above fails for a row naming a test that does not exist (a deliberately broken table)."""
    broken = tmp_path / "reliability.md"
    broken.write_text(TABLE.read_text("utf-8").replace("test_a_truncated_plbert_checkpoint_is_named", "test_gone"))
    monkeypatch.setattr(sys.modules[__name__], "TABLE", broken)
    with pytest.raises(AssertionError, match="test_gone"):
        test_every_scenario_maps_to_a_test_that_exists()


def test_swapped_upsample_rates_are_warned_about():
    from speakimg.vocoder.generator import GeneratorConfig

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GeneratorConfig()  # Auffusion's: rates 5-4-4-2, kernels 11-8-8-4
        GeneratorConfig(upsample_rates=[8, 5, 4], upsample_kernel_sizes=[16, 10, 8])
    with pytest.warns(SpeakimgWarning, match=r"rate 4 has kernel 11.*same order"):
        GeneratorConfig(upsample_rates=[4, 5, 4, 2])  # swapped: the product is still the hop, 160
    with pytest.warns(SpeakimgWarning, match=r"rate 2 has kernel 8"):
        GeneratorConfig(upsample_rates=[5, 4, 2, 4])


@pytest.mark.slow
@requires_festival
def test_a_killed_fit_resumes_from_its_last_checkpoint(tmp_path, speech_data, tiny_root):
    """``fit`` killed with SIGKILL right after a checkpoint: ``--ckpt_path last`` goes on from that step."""
    from test_speech_fit import quickstart

    from speakimg.fit import main
    from speakimg.io import load_torch

    config = quickstart(tmp_path, speech_data, every_n_train_steps=2)
    run = tmp_path / "run"
    args = [*config, "--trainer.default_root_dir", str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "speakimg.fit", *args, "--trainer.max_steps", "40"], cwd=REPO,
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoints = run / "checkpoints"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (checkpoints / "step000002.ckpt").is_file():
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (checkpoints / "step000002.ckpt").is_file(), "the fit wrote no checkpoint before the deadline"
    # every checkpoint left is whole; a kill between a step checkpoint and last.ckpt leaves last.ckpt behind
    steps = [int(load_torch(path, what="checkpoint")["global_step"]) for path in checkpoints.glob("*.ckpt")]
    killed_at = max(steps)
    assert 2 <= killed_at < 40, "the fit was not killed mid-run"
    resumed = main([*args, "--trainer.max_steps", str(killed_at + 1), "--ckpt_path", "last"])
    assert resumed.trainer.global_step == killed_at + 1  # went on from the checkpoint, not from step 0
    assert int(load_torch(checkpoints / "last.ckpt", what="checkpoint")["global_step"]) == killed_at + 1
