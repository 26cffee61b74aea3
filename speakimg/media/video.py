"""Videos that play the spectrogram: a playhead sweeps the picture in time with the audio (ffmpeg).

Column ``x`` of a spectrogram is the audio at ``x * hop / sample_rate`` seconds (10 ms at 16 kHz,
hop 160), so the playhead sits at ``x = W * t / duration`` in the frame shown at time ``t``. The
frame is built by ffmpeg itself (a looped still image with a coloured bar overlaid at a
time-dependent position), so a 10 s video encodes in about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from speakimg.errors import AudioError, MissingDependencyError

__all__ = ["playhead_video", "probe_duration", "require_program"]


def require_program(name: str = "ffmpeg") -> str:
    """Path of ``name`` (ffmpeg, ffprobe), or a :class:`MissingDependencyError` saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(
            f"{name} is not installed, and videos are made with it. Install ffmpeg (Debian/Ubuntu: "
            "`sudo apt-get install ffmpeg`; conda: `conda install -c conda-forge ffmpeg`; macOS: `brew install "
            "ffmpeg`), or skip videos (`python -m speakimg.sample ... --no-video`)."
        )
    return path


@lru_cache(maxsize=4)
def _video_codec(ffmpeg: str) -> list[str]:
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if " libx264 " in encoders:
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]
    return ["-c:v", "mpeg4", "-q:v", "2"]


def playhead_video(
    image: str | os.PathLike | np.ndarray | torch.Tensor,
    audio: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fps: int = 25,
    color: str = "red",
    line_width: int = 3,
) -> Path:
    """Write an mp4 of ``image`` with a vertical playhead moving left to right in time with ``audio``.

    Args:
        image: a PNG path, or an image in [0, 1] (``[3, H, W]`` / ``[H, W, 3]`` / ``[H, W]``).
        audio: the wav to mux (its duration sets the video's).
        out: the mp4 to write (written atomically).
        fps: frames per second (25 divides 10.24 s and 9.92 s into whole frames).
        color: the playhead's colour (an ffmpeg colour name or ``0xRRGGBB``).
        line_width: the playhead's width in pixels.

    Raises:
        MissingDependencyError: ffmpeg is not installed.
        AudioError: the audio file is missing or empty.
    """
    ffmpeg = require_program("ffmpeg")
    audio, out = Path(audio), Path(out)
    if not audio.is_file():
        raise AudioError(f"{audio}: no such audio file for the video")
    info = sf.info(str(audio))
    if info.frames == 0:
        raise AudioError(f"{audio}: the audio is empty; cannot make a video of it")
    duration = info.frames / info.samplerate
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="speakimg-video-") as tmp:
        if isinstance(image, (str, os.PathLike)):
            picture = Path(image)
        else:
            from speakimg.media.images import save_image

            picture = save_image(Path(tmp) / "frame.png", image)
        with Image.open(picture) as im:
            height = im.height
        graph = (
            "[0:v]format=rgb24,pad=ceil(iw/2)*2:ceil(ih/2)*2[bg];"
            f"[bg][1:v]overlay=x='W*t/{duration!r}-w/2':y=0:eval=frame,format=yuv420p[v]"
        )
        partial = Path(tmp) / "video.mp4"
        command = [
            ffmpeg, "-y", "-hide_banner", "-loglevel", "error",
            "-loop", "1", "-framerate", str(fps), "-i", str(picture),
            "-f", "lavfi", "-i", f"color=c={color}:s={line_width}x{height + height % 2}:r={fps}",
            "-i", str(audio),
            "-filter_complex", graph, "-map", "[v]", "-map", "2:a",
            "-t", repr(duration), "-r", str(fps),
            *_video_codec(ffmpeg), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart",
            str(partial),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed to write {out}: {result.stderr.strip()[-2000:]}")
        shutil.move(str(partial), out)
    return out


def probe_duration(path: str | os.PathLike, stream: str = "format") -> float:
    """Duration in seconds of a media file (``"format"``), or of its first video (``"v"``) / audio
    (``"a"``) stream, read with ffprobe."""
    ffprobe = require_program("ffprobe")
    if stream == "format":
        args = ["-show_entries", "format=duration"]
    else:
        args = ["-select_streams", f"{stream}:0", "-show_entries", "stream=duration"]
    result = subprocess.run(
        [ffprobe, "-v", "error", *args, "-of", "json", str(path)], capture_output=True, text=True, check=True
    )
    data = json.loads(result.stdout)
    entry = data["format"] if stream == "format" else data["streams"][0]
    return float(entry["duration"])
