"""Festival with the HTS voice cmu_us_slt_arctic_hts: offline and natural-sounding (the default)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import torch

from speakimg.audio.io import load_audio
from speakimg.tts.base import TTSEngine, TTSError, require_program

__all__ = ["FestivalTTS"]

_INSTALL = "apt-get install festival festvox-us-slt-hts"


class FestivalTTS(TTSEngine):
    """``text2wave`` with an HTS voice; ``stretch`` sets the HTS engine's speech rate (``-r 1/stretch``)."""

    name = "festival"
    native_stretch = True

    def __init__(self, voice: str = "cmu_us_slt_arctic_hts", timeout: float = 120.0) -> None:
        self.voice = voice
        self.timeout = timeout
        self._program = require_program("text2wave", _INSTALL)

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        evals = [f"(voice_{self.voice})"]
        if stretch != 1.0:
            evals.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1.0 / stretch:.6f}))))')
        with tempfile.TemporaryDirectory(prefix="speakimg-festival-") as tmp:
            out = Path(tmp) / "speech.wav"
            cmd = [self._program]
            for expr in evals:
                cmd += ["-eval", expr]
            cmd += ["-o", str(out)]
            proc = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=self.timeout)
            if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
                detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                hint = f" (is the voice '{self.voice}' installed? {_INSTALL})" if "voice" in detail[0].lower() else ""
                raise TTSError(f"festival failed on {text!r}: {detail[0]}{hint}")
            return load_audio(out)

    def __repr__(self) -> str:
        return f"FestivalTTS(voice={self.voice!r})"
