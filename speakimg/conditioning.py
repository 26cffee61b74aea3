"""Prompt encoders: what turns a prompt into the UNet's cross-attention input.

Both diffusion models of the combined sampler (and the training of the speech model) see their
prompts through a :class:`PromptEncoder`: ``encoder(["", "a sentence"]) -> [2, L, D]``. The empty
string ``""`` is the unconditional prompt used for classifier-free guidance; every row of one call
has the same length ``L``, so ``[uncond, cond]`` can go through one UNet call.

- :class:`CLIPPromptEncoder`: Stable Diffusion's / Auffusion's CLIP text encoder (last hidden
  state, padded to 77 tokens; ``""`` encodes the empty string, as diffusers does).
- :class:`T5PromptEncoder`: DeepFloyd IF's T5 encoder (last hidden state of 77 tokens with the
  attention mask, as ``IFPipeline.encode_prompt``; ``""`` encodes the empty string).
- ``speakimg.speech.PhonemePromptEncoder``: sentence -> phonemes -> PL-BERT -> adapter (the speech
  model), where ``""`` maps to the model's trained unconditional embedding.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

__all__ = ["PromptEncoder", "CLIPPromptEncoder", "T5PromptEncoder"]


class PromptEncoder(nn.Module, abc.ABC):
    """Prompts in, ``[B, L, D]`` cross-attention embeddings out (``""`` = unconditional)."""

    @abc.abstractmethod
    def forward(self, prompts: list[str]) -> torch.Tensor:
        """Encode a batch of prompts; all rows share one sequence length."""

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.float32


class CLIPPromptEncoder(PromptEncoder):
    """A CLIP tokenizer + text encoder as in Stable Diffusion: last hidden state of 77 tokens."""

    def __init__(self, tokenizer, text_encoder: nn.Module) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder

    @classmethod
    def from_pretrained(cls, name_or_path: str, torch_dtype: torch.dtype | None = None) -> CLIPPromptEncoder:
        """Load ``tokenizer/`` and ``text_encoder/`` of a diffusers-layout folder or hub id (:mod:`speakimg.loading`)."""
        from speakimg.loading import load_text_encoder

        return cls(*load_text_encoder(name_or_path, torch_dtype))

    def forward(self, prompts: list[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        self.warn_truncated(prompts)
        ids = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.text_encoder.device)
        return self.text_encoder(ids)[0]

    def warn_truncated(self, prompts: list[str]) -> None:
        """A :class:`~speakimg.errors.SpeakimgWarning` for each prompt longer than the tokenizer's
        ``model_max_length`` (77 for CLIP), naming the words the model never sees."""
        import warnings

        from speakimg.errors import SpeakimgWarning, quote

        limit = self.tokenizer.model_max_length
        for prompt, ids in zip(prompts, self.tokenizer(list(prompts), verbose=False).input_ids, strict=True):
            if len(ids) > limit:
                dropped = self.tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True)
                warnings.warn(
                    f"the prompt {quote(prompt, 60)} is {len(ids)} tokens long, more than the {limit} CLIP reads: "
                    f"the end is cut off and plays no part: {quote(dropped, 200)}",
                    SpeakimgWarning,
                    stacklevel=2,
                )


class T5PromptEncoder(CLIPPromptEncoder):
    """A T5 tokenizer + encoder as in DeepFloyd IF: last hidden state of 77 tokens, padding masked.

    Built by :func:`speakimg.pipeline.deepfloyd.load_pixel_model`; truncation warnings as for CLIP.
    """

    def forward(self, prompts: list[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        self.warn_truncated(prompts)
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        ).to(self.text_encoder.device)
        return self.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]
