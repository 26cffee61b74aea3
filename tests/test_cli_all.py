"""Every command line: ``--help`` answers at once, a bad argument is one ``error:`` line naming the culprit
(exit status 2, no traceback), and ``--debug`` shows the traceback (issue 12 item 5, issue 13 item 2).

``--help`` runs in a fresh interpreter (``python -m MODULE``), as a user runs it; the error cases run the
module's real ``__main__`` block in this process (``runpy``), so the heavy libraries are imported once.
Start-up times are measured by ``benchmarks/cli_startup.py`` (benchmarks/RESULTS.md), never asserted.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from speakimg.cli import COMMANDS
from speakimg.errors import SpeakimgError

REPO = Path(__file__).resolve().parents[1]

CLIS = list(COMMANDS)
ERRORS = [m for m in CLIS if m != "speakimg.app"]  # the studio's one-line errors: tests/test_app.py


def bad_arguments(module: str, tmp: Path) -> tuple[list[str], str]:
    """A bad argument for ``module`` and the culprit its error line must name."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("not a folder\n")
    no_data = str(tmp / "no_dataset")
    return {
        "speakimg.fit": (["--config", str(tmp / "missing.yaml")], "missing.yaml"),
        "speakimg.export": ([str(tmp / "missing.ckpt"), str(tmp / "out")], "missing.ckpt"),
        "speakimg.sample": (
            ["--image-prompt", "a", "--audio-prompt", "b", "--out", str(tmp / "s"), "--steps", "0"],
            "steps",
        ),  # fmt: skip
        "speakimg.evaluate": (["--config", str(tmp / "missing_eval.yaml")], "missing_eval.yaml"),
        "speakimg.demo": (["--sentences", "0", "--out", str(tmp / "demo")], "--sentences"),
        "speakimg.data.build": (["--texts", str(tmp / "missing.txt"), "--out", str(tmp / "b")], "missing.txt"),
        "speakimg.data.report": ([no_data, "--whisper", "none"], "no_dataset"),
        "speakimg.data.verify": ([no_data], "no_dataset"),
        "speakimg.data.latents": ([no_data, "--vae", "tiny:stable-diffusion"], "no_dataset"),
        "speakimg.vocoder.prepare_mels": ([no_data, "--vae", "tiny:stable-diffusion"], "no_dataset"),
        "speakimg.vocoder.export": ([str(tmp / "missing.ckpt"), str(tmp / "out")], "missing.ckpt"),
        "speakimg.testing": (["--out", str(a_file)], "a_file.txt"),
    }[module]


def run_main(module: str, argv: list[str], monkeypatch) -> int:
    """Run ``python -m module argv`` in this process; returns the exit status."""
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message=".*found in sys.modules")
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else 1
    return 0


@pytest.mark.parametrize("module", CLIS)
def test_help_answers_with_usage(module):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and module.replace(".__main__", "") in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("module", ERRORS)
def test_a_bad_argument_is_one_line_naming_the_culprit(module, tmp_path, monkeypatch, capsys):
    argv, culprit = bad_arguments(module, tmp_path)
    status = run_main(module, argv, monkeypatch)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and "error: " in lines[0] and culprit in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "b").exists()  # nothing started


@pytest.mark.parametrize("module", ERRORS)
def test_debug_shows_the_traceback(module, tmp_path, monkeypatch, capsys):
    argv, culprit = bad_arguments(module, tmp_path)
    try:
        status = run_main(module, [*argv, "--debug"], monkeypatch)
    except SpeakimgError as error:  # Lightning command lines let it propagate: Python prints the traceback
        assert culprit in str(error)
        return
    err = capsys.readouterr().err
    assert status == 2 and "Traceback (most recent call last)" in err and culprit in err.splitlines()[-1], err


def test_the_error_helper_escapes_and_shortens(capsys):
    from speakimg import cli

    def run(argv: list[str]) -> None:
        raise SpeakimgError("bad sentence: " + "\x1b[31m" + "word " * 2000)

    assert cli.main(run, []) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "\x1b" not in line and "\\x1b" in line and "more characters; --debug prints all" in line
    assert len(line) < cli.MAX_MESSAGE + 100


def test_a_cli_that_returns_a_status_exits_with_it():
    from speakimg import cli

    assert cli.main(lambda argv: 1, []) == 1 and cli.main(lambda argv: [Path("x")], []) == 0
    with pytest.raises(SystemExit) as done:
        cli.console(lambda argv: 3)
    assert done.value.code == 3


def test_report_fails_on_an_offline_whisper_before_any_griffin_lim(festival_dataset, tmp_path, monkeypatch, capsys):
    """Issue 13: ``data.report --whisper small.en`` offline said so only after minutes of Griffin-Lim."""
    import speakimg.audio

    def no_griffin_lim(*args, **kwargs):
        raise AssertionError("Griffin-Lim ran before Whisper was checked")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))  # nothing cached
    monkeypatch.setattr(speakimg.audio, "griffin_lim", no_griffin_lim)
    out = tmp_path / "report"
    status = run_main("speakimg.data.report", [str(festival_dataset), "--whisper", "small.en", "--out", str(out)],
                      monkeypatch)  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "small.en" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())  # nothing computed or written
