"""What users look at and play: images and colour-mapped spectrograms (PNG), playhead videos (ffmpeg).

- :func:`save_image`, :func:`save_spectrogram`, :func:`colorize`, :func:`to_uint8`: PNG files.
- :func:`playhead_video`: the spectrogram with a playhead moving in time with the audio, audio muxed.
- :func:`probe_duration`, :func:`require_program`: ffprobe durations; ffmpeg presence with install hints.
"""

from speakimg.media.images import colorize, save_image, save_spectrogram, to_uint8
from speakimg.media.video import playhead_video, probe_duration, require_program

__all__ = [
    "colorize",
    "playhead_video",
    "probe_duration",
    "require_program",
    "save_image",
    "save_spectrogram",
    "to_uint8",
]
