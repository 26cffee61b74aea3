"""A tiny random-weight Whisper checkpoint in openai-whisper's file format ({"dims", "model_state_dict"})."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

__all__ = ["WHISPER_FILENAME", "write_tiny_whisper"]

WHISPER_FILENAME = "tiny-whisper.pt"


def write_tiny_whisper(folder: Path, seed: int = 0) -> None:
    """Write ``folder/tiny-whisper.pt``, loadable by ``whisper.load_model(path)`` (English-only vocab)."""
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=32,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=32,
        n_text_head=2,
        n_text_layer=1,
    )
    torch.manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():  # allocated with torch.empty upstream: give it defined values
        model.decoder.positional_embedding.normal_(0.0, 0.02)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, folder / WHISPER_FILENAME)
