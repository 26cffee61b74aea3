"""A tiny CLIP model + processor folder (transformers layout) for CLIP scoring offline."""

from __future__ import annotations

from pathlib import Path

import torch

from speakimg.testing.tokenizer import tiny_clip_vocab, write_clip_tokenizer

__all__ = ["write_tiny_clip"]


def write_tiny_clip(folder: Path, seed: int = 0) -> None:
    """Write a CLIPModel + CLIPProcessor folder: ``CLIPModel.from_pretrained(folder)`` loads it."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip import CLIPImageProcessorPil

    vocab, _ = tiny_clip_vocab()
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer.from_pretrained(folder))
    processor.save_pretrained(folder)
    # keep the original tokenizer files next to what the processor wrote
    write_clip_tokenizer(folder)
