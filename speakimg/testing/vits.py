"""A tiny random-weight VITS text-to-speech model in the transformers layout (like facebook/mms-tts-eng)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["write_tiny_vits"]

_CHARACTERS = list(" abcdefghijklmnopqrstuvwxyz'-.,?!")


def write_tiny_vits(folder: Path, seed: int = 0, sampling_rate: int = 16000) -> None:
    """Write a ``VitsModel`` + ``VitsTokenizer`` folder (16 kHz by default) that ``pipeline("text-to-speech")`` loads."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps({ch: i for i, ch in enumerate(_CHARACTERS)}, ensure_ascii=False))
    tokenizer = VitsTokenizer(str(vocab_file), add_blank=True, normalize=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(_CHARACTERS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=65,
        upsample_initial_channel=32,
        upsample_rates=[8, 8, 2, 2],  # product 256 = the hop of MMS-TTS
        upsample_kernel_sizes=[16, 16, 4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        sampling_rate=sampling_rate,
    )
    torch.manual_seed(seed)
    VitsModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
