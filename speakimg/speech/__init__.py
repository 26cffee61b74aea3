"""The speech model: Auffusion fine-tuned to speak a sentence, conditioned on PL-BERT phonemes.

- :class:`PLBert`: PL-BERT's phoneme encoder, loaded from its original ``config.yml`` + ``step_N.t7``.
- :class:`PhonemeAdapter`: PL-BERT states -> the UNet's cross-attention space, plus the learned
  unconditional embedding.
- :class:`PhonemePromptEncoder`: the :class:`~speakimg.conditioning.PromptEncoder` of the speech model
  (``encoder(["", sentence]) -> [2, L, D]``), modes ``replace`` and ``augment``.
- :class:`SpeechModel`: UNet with LoRA + unfrozen blocks, VAE, prompt encoder; ``from_pretrained`` /
  ``save_pretrained`` of the standalone speech model folder (marker ``speakimg_speech.json``).
"""

from speakimg.speech.adapter import PhonemeAdapter
from speakimg.speech.encoder import MODES, PhonemePromptEncoder
from speakimg.speech.lora import DEFAULT_TARGETS, LoRASpec
from speakimg.speech.model import DEFAULT_BASE_MODEL, MARKER, SpeechConfig, SpeechModel, is_speech_model
from speakimg.speech.plbert import PLBert

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_TARGETS",
    "MARKER",
    "MODES",
    "LoRASpec",
    "PLBert",
    "PhonemeAdapter",
    "PhonemePromptEncoder",
    "SpeechConfig",
    "SpeechModel",
    "is_speech_model",
]
