"""A tiny CLAP model + processor folder (transformers layout: HTSAT audio tower, RoBERTa text tower)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from speakimg.testing.tokenizer import tiny_clip_vocab

__all__ = ["write_tiny_clap"]


def _write_roberta_tokenizer(folder: Path) -> None:
    """A byte-level BPE vocabulary with RoBERTa's special tokens (vocab.json + merges.txt)."""
    vocab, merges = tiny_clip_vocab()
    roberta = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in vocab:
        if not token.startswith("<|") and not token.endswith("</w>"):
            roberta.setdefault(token, len(roberta))
    roberta["<mask>"] = len(roberta)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(roberta, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def write_tiny_clap(folder: Path, seed: int = 0) -> None:
    """Write a ClapModel + ClapProcessor folder: ``ClapModel.from_pretrained(folder)`` loads it."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    tok_dir = folder / ".tokenizer-src"
    _write_roberta_tokenizer(tok_dir)
    tokenizer = RobertaTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=80,
            projection_dim=16,
            pad_token_id=1,
        ),
        audio_config=dict(
            depths=[1, 1, 1, 1],
            num_attention_heads=[1, 1, 1, 1],
            patch_embeds_hidden_size=8,
            hidden_size=64,
            projection_dim=16,
            num_hidden_layers=4,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = ClapModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    # laion/clap-htsat-unfused's feature extractor: 48 kHz, 10 s windows, no fusion
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    for path in tok_dir.iterdir():
        path.unlink()
    tok_dir.rmdir()
