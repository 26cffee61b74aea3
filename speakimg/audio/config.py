"""The settings of the log-mel analysis, in a module that imports nothing heavy.

:class:`MelConfig` is read by :mod:`speakimg.audio.canvas` (and so by settings objects and command
lines that must start fast); the analysis itself is :mod:`speakimg.audio.mel`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["MelConfig"]


@dataclass(frozen=True)
class MelConfig:
    """Settings of the log-mel analysis; the defaults are Auffusion's (16 kHz, 256 mels, hop 160).

    ``fmax=None`` means the Nyquist frequency (used e.g. for a full-band vocoder loss mel).
    """

    sample_rate: int = 16000
    n_fft: int = 2048
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 256
    fmin: float = 0.0
    fmax: float | None = 8000.0
    clamp_min: float = 1e-5
    magnitude_eps: float = 1e-9

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or isinstance(self.sample_rate, bool):
            raise TypeError(f"MelConfig.sample_rate must be an int (Hz), got {self.sample_rate!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} must not exceed n_fft {self.n_fft}")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even (it is split into two paddings)")

    @property
    def padding(self) -> int:
        """Reflect padding applied on each side before the STFT."""
        return (self.n_fft - self.hop_length) // 2

    def to_dict(self) -> dict:
        return asdict(self)
