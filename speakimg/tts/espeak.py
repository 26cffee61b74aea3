"""espeak-ng: offline, robotic, very fast; its words-per-minute setting gives native rate control."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import torch

from speakimg.audio.io import load_audio
from speakimg.tts.base import TTSEngine, TTSError, require_program

__all__ = ["EspeakTTS"]


class EspeakTTS(TTSEngine):
    """``espeak-ng -v en-us``; ``stretch`` divides the speaking rate (``-s wpm / stretch``)."""

    name = "espeak"
    native_stretch = True

    def __init__(self, voice: str = "en-us", words_per_minute: int = 175, timeout: float = 60.0) -> None:
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.timeout = timeout
        self._program = require_program("espeak-ng", "apt-get install espeak-ng")

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        wpm = max(20, round(self.words_per_minute / stretch))
        with tempfile.TemporaryDirectory(prefix="speakimg-espeak-") as tmp:
            out = Path(tmp) / "speech.wav"
            cmd = [self._program, "-v", self.voice, "-s", str(wpm), "-w", str(out), "--stdin"]
            proc = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=self.timeout)
            if proc.returncode != 0 or not out.is_file():
                raise TTSError(f"espeak-ng failed on {text!r}: {proc.stderr.strip() or 'no output'}")
            return load_audio(out)

    def __repr__(self) -> str:
        return f"EspeakTTS(voice={self.voice!r}, words_per_minute={self.words_per_minute})"
