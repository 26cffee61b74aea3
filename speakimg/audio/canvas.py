"""The canvas geometry: one object that says how big a spectrogram image, its audio and its latent are.

Auffusion's canvas (docs/method.md sections 1-2): 16 kHz audio, hop 160, 256 mel bins,
1024 frames (10.24 s) of which speech may fill the first 10 s (1000 frames); the generated outputs
lose their last 32 columns (0.32 s, the band that is padding in the training clips); the SD VAE maps
the 256 x 1024 image to a 4 x 32 x 128 latent. Every module reads these numbers from a
:class:`CanvasSpec` (the default instance is :data:`CANVAS`) instead of writing them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speakimg.audio.config import MelConfig

__all__ = ["CANVAS", "CanvasSpec"]


@dataclass(frozen=True)
class CanvasSpec:
    """Spectrogram canvas geometry.

    Attributes:
        mel: the log-mel analysis (sample rate, hop, mel bins).
        frames: canvas width in mel frames (1024 = 10.24 s).
        speech_frames: frames at the start of the canvas that speech may fill (1000 = 10 s); the rest
            is always silence in training data.
        crop_columns: columns cropped off the right edge of generated outputs (32 = 0.32 s).
        latent_factor: the VAE's spatial downsampling (8 for SD's VAE).
        latent_channels: latent channels (4 for SD's VAE).
    """

    mel: MelConfig = field(default_factory=MelConfig)
    frames: int = 1024
    speech_frames: int = 1000
    crop_columns: int = 32
    latent_factor: int = 8
    latent_channels: int = 4

    def __post_init__(self) -> None:
        for name in ("frames", "speech_frames", "latent_factor", "latent_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"CanvasSpec.{name} must be a positive int, got {value!r}")
        if not 0 <= self.crop_columns < self.frames:
            raise ValueError(f"CanvasSpec.crop_columns must be in [0, frames), got {self.crop_columns}")
        if self.speech_frames > self.frames:
            raise ValueError(f"CanvasSpec.speech_frames ({self.speech_frames}) exceeds frames ({self.frames})")

    # the mel analysis
    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length

    @property
    def n_mels(self) -> int:
        return self.mel.n_mels

    # the image
    @property
    def height(self) -> int:
        """Image height in pixels = mel bins (256)."""
        return self.mel.n_mels

    @property
    def width(self) -> int:
        """Image width in pixels = frames (1024)."""
        return self.frames

    @property
    def cropped_width(self) -> int:
        """Width of a generated output after the crop (992)."""
        return self.frames - self.crop_columns

    # the audio
    @property
    def num_samples(self) -> int:
        """Audio samples of the whole canvas (163 840)."""
        return self.frames * self.mel.hop_length

    @property
    def speech_samples(self) -> int:
        """Audio samples that speech may fill (160 000)."""
        return self.speech_frames * self.mel.hop_length

    @property
    def crop_samples(self) -> int:
        """Audio samples cropped off generated outputs (5120)."""
        return self.crop_columns * self.mel.hop_length

    @property
    def duration_s(self) -> float:
        """Canvas duration in seconds (10.24)."""
        return self.num_samples / self.mel.sample_rate

    def samples_for(self, columns: int) -> int:
        """Audio samples of ``columns`` spectrogram columns."""
        return columns * self.mel.hop_length

    # the latent
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(channels, height / factor, width / factor)`` = (4, 32, 128)."""
        f = self.latent_factor
        return (self.latent_channels, self.height // f, self.width // f)


CANVAS = CanvasSpec()
"""Auffusion's canvas: 16 kHz, hop 160, 256 x 1024, 32 columns cropped, latent 4 x 32 x 128."""
