"""The playhead video: durations, size, and where the playhead is at a given time (ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

from speakimg.audio import save_audio
from speakimg.errors import MissingDependencyError
from speakimg.media import playhead_video, probe_duration

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def frame_at(video, seconds: float, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(video), "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(int)


def playhead_column(frame: np.ndarray) -> float:
    redness = frame[..., 0] - frame[..., 1]  # the picture is grey: only the red playhead has R > G
    columns = np.nonzero((redness > 80).mean(axis=0) > 0.5)[0]
    assert len(columns) > 0, "no playhead in the frame"
    return float(columns.mean())


@pytest.mark.parametrize("width", [1024, 992])
def test_video_lasts_as_long_as_the_audio_and_the_playhead_keeps_time(tmp_path, width):
    seconds = width * 160 / 16000  # one column per 10 ms: 10.24 s / 9.92 s
    t = torch.arange(width * 160) / 16000
    save_audio(tmp_path / "a.wav", 0.3 * torch.sin(2 * torch.pi * 440 * t))
    gray = torch.linspace(0.2, 0.8, width).expand(3, 256, width)
    video = playhead_video(gray, tmp_path / "a.wav", tmp_path / "v.mp4", fps=25)
    for stream in ("format", "v", "a"):
        assert probe_duration(video, stream) == pytest.approx(seconds, abs=1 / 25 + 1e-6)
    for at in (2.0, 5.0, 8.0):
        # the frame shown at time `at` has its playhead at column W * at / duration (= 100 columns per second)
        assert playhead_column(frame_at(video, at, width, 256)) == pytest.approx(100 * at, abs=4)


def test_missing_ffmpeg_is_one_clear_error(tmp_path, monkeypatch):
    save_audio(tmp_path / "a.wav", torch.zeros(1600))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install ffmpeg"):
        playhead_video(torch.zeros(3, 8, 8), tmp_path / "a.wav", tmp_path / "v.mp4")
