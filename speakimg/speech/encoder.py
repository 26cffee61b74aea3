"""The speech model's prompt encoder: sentence -> phonemes -> PL-BERT -> adapter -> cross-attention tokens.

Two conditioning modes:

- ``replace``: the conditioning is the adapter output, ``[B, max_phonemes, D]``.
- ``augment``: the CLIP text encoding of the sentence (77 tokens, the base model's own text encoder,
  frozen) followed by the adapter output along the sequence axis: ``[B, 77 + max_phonemes, D]``.

Phoneme ids always come from :func:`speakimg.text.prepare_text` (the data builder stores the same
ids) and are right-padded with 0 to a **fixed** length ``max_phonemes``, so a sentence is encoded the
same way in training and at inference and every row of a batch has the same length (no attention
mask reaches the UNet: the padded positions carry PL-BERT's states for padding, as CLIP's padding
tokens do in Stable Diffusion).

The prompt ``""`` (or only spaces) is unconditional: the adapter's learned ``null_embedding`` in
``replace`` mode, ``[CLIP(""), null_embedding]`` in ``augment`` mode. Conditioning dropout during
training substitutes exactly :meth:`PhonemePromptEncoder.unconditional`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from speakimg.conditioning import CLIPPromptEncoder, PromptEncoder
from speakimg.errors import ConfigError, DataError, TextError
from speakimg.speech.adapter import PhonemeAdapter
from speakimg.speech.plbert import PLBert
from speakimg.text import PAD_ID, prepare_text

__all__ = ["MODES", "PhonemePromptEncoder"]

MODES = ("replace", "augment")


class PhonemePromptEncoder(PromptEncoder):
    """Sentences (``""`` = unconditional) -> ``[B, L, D]`` embeddings for the speech model's UNet."""

    def __init__(
        self,
        plbert: PLBert,
        adapter: PhonemeAdapter,
        mode: str = "replace",
        max_phonemes: int = 128,
        text_encoder: CLIPPromptEncoder | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"conditioning mode {mode!r} is not one of {MODES}")
        if mode == "augment" and text_encoder is None:
            raise ConfigError("mode 'augment' needs the base model's CLIP text encoder (text_encoder=...)")
        if not 2 <= max_phonemes <= plbert.max_positions:
            raise ConfigError(
                f"max_phonemes={max_phonemes} must be in [2, {plbert.max_positions}] (PL-BERT's positions)"
            )
        if adapter.in_dim != plbert.hidden_size or adapter.num_tokens != max_phonemes:
            raise ConfigError(
                f"adapter {adapter.extra_repr()} does not fit PL-BERT hidden size {plbert.hidden_size} "
                f"and max_phonemes {max_phonemes}"
            )
        self.plbert = plbert
        self.adapter = adapter
        self.mode = mode
        self.max_phonemes = int(max_phonemes)
        self.text_encoder = text_encoder if mode == "augment" else None

    # ----------------------------------------------------------------------------------- tokens
    def tokenize(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``prepare_text`` ids of each sentence, right-padded to ``max_phonemes``: (ids, mask), long."""
        ids = torch.full((len(sentences), self.max_phonemes), PAD_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, sentence in enumerate(sentences):
            sentence_ids = prepare_text(sentence).ids
            if len(sentence_ids) > self.max_phonemes:
                raise TextError(
                    f"sentence {sentence!r} has {len(sentence_ids)} phoneme ids; this speech model takes at most "
                    f"{self.max_phonemes} (max_phonemes). Shorten the sentence (the 10 s canvas holds ~25 words)."
                )
            ids[row, : len(sentence_ids)] = torch.tensor(sentence_ids)
            mask[row, : len(sentence_ids)] = 1
        return ids, mask

    def fixed_length(
        self, phoneme_ids: torch.Tensor, phoneme_mask: torch.Tensor, texts: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad (or trim padding of) batch ids ``[B, L]`` to ``[B, max_phonemes]``; error if a row is too long."""
        if phoneme_ids.ndim != 2 or phoneme_mask.shape != phoneme_ids.shape:
            raise DataError(
                f"phoneme_ids {tuple(phoneme_ids.shape)} and phoneme_mask {tuple(phoneme_mask.shape)} must both be [B, L]"
            )
        length = phoneme_ids.shape[1]
        if length > self.max_phonemes:
            lengths = phoneme_mask.sum(dim=1)
            too_long = (lengths > self.max_phonemes).nonzero().flatten().tolist()
            if too_long:
                row = too_long[0]
                name = repr(texts[row]) if texts is not None else f"row {row}"
                raise DataError(
                    f"sentence {name} has {int(lengths[row])} phoneme ids; the speech model takes at most "
                    f"{self.max_phonemes} (max_phonemes). Raise max_phonemes or filter the dataset."
                )
            return phoneme_ids[:, : self.max_phonemes], phoneme_mask[:, : self.max_phonemes]
        pad = self.max_phonemes - length
        return (
            nn.functional.pad(phoneme_ids, (0, pad), value=PAD_ID),
            nn.functional.pad(phoneme_mask, (0, pad), value=0),
        )

    # --------------------------------------------------------------------------------- encoding
    @property
    def num_tokens(self) -> int:
        """Sequence length ``L`` of every embedding this encoder returns."""
        clip = self.text_encoder.tokenizer.model_max_length if self.text_encoder is not None else 0
        return clip + self.max_phonemes

    def _clip(self, texts: Sequence[str]) -> torch.Tensor:
        assert self.text_encoder is not None
        return self.text_encoder(list(texts)).to(self.adapter.proj.weight.dtype)

    def encode_ids(
        self, phoneme_ids: torch.Tensor, phoneme_mask: torch.Tensor, texts: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Conditional embeddings of pre-tokenised ids (a training batch); ``texts`` needed for ``augment``."""
        ids, mask = self.fixed_length(phoneme_ids, phoneme_mask, texts)
        device = self.adapter.proj.weight.device
        tokens = self.adapter(self.plbert(ids.to(device), attention_mask=mask.to(device)))
        if self.mode == "augment":
            if texts is None or len(texts) != ids.shape[0]:
                raise DataError("conditioning mode 'augment' needs the batch's 'text' (one sentence per row)")
            tokens = torch.cat([self._clip(texts), tokens], dim=1)
        return tokens

    def unconditional(self, batch_size: int) -> torch.Tensor:
        """The unconditional embedding (what ``""`` encodes to), ``[batch_size, L, D]``."""
        tokens = self.adapter.unconditional(batch_size)
        if self.mode == "augment":
            tokens = torch.cat([self._clip([""] * batch_size), tokens], dim=1)
        return tokens

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        """Encode sentences; ``""`` rows get the unconditional embedding. Returns ``[B, L, D]``."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        out = self.unconditional(len(prompts))
        rows = [i for i, prompt in enumerate(prompts) if prompt.strip()]
        if rows:
            sentences = [prompts[i] for i in rows]
            ids, mask = self.tokenize(sentences)
            cond = self.encode_ids(ids, mask, sentences)
            out = out.clone()
            out[rows] = cond.to(out.dtype)
        return out

    def train(self, mode: bool = True) -> PhonemePromptEncoder:
        """Frozen parts (PL-BERT unless some of it trains, the CLIP text encoder) stay in eval mode."""
        super().train(mode)
        if not any(p.requires_grad for p in self.plbert.parameters()):
            self.plbert.eval()
        if self.text_encoder is not None:
            self.text_encoder.eval()
        return self
