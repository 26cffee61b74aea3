"""A tiny CLIP byte-level BPE vocabulary written in the real ``tokenizer/`` file layout."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_clip_tokenizer", "tiny_clip_vocab"]

# A handful of merges over common English letter pairs: enough for real BPE merging to happen.
_MERGES = [
    "t h",
    "th e</w>",
    "a n",
    "i n",
    "e r",
    "o n",
    "r e",
    "a t",
    "e n",
    "s t",
    "o u",
    "e d</w>",
    "i ng</w>",
    "n g</w>",
    "e s</w>",
    "o r",
    "a r",
    "i s</w>",
    "a l",
    "l e",
]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def tiny_clip_vocab() -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of a tiny CLIP BPE: 256 byte symbols, their word-final forms, merges, specials."""
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges = []
    for merge in _MERGES:
        a, b = merge.split()
        if a in vocab and b in vocab:
            merges.append(merge)
            vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def write_clip_tokenizer(folder: Path, model_max_length: int = 77) -> int:
    """Write vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json like SD 1.5's.

    Returns the vocabulary size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        **special,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": model_max_length,
        "tokenizer_class": "CLIPTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)
