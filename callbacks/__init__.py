"""Lightning callbacks for speakimg runs: sampling images that speak during training, vocoder media.

Both are DDP-safe (media are logged on global rank 0 with no collective behind the rank check) and
logger-agnostic (W&B, TensorBoard, or files under the run folder for other loggers).
"""

from callbacks.sampling import CombinedSamplingCallback, SampleRecord
from callbacks.vocoder_media import VocoderMediaCallback

__all__ = ["CombinedSamplingCallback", "SampleRecord", "VocoderMediaCallback"]
