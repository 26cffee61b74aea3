"""The phoneme adapter: PL-BERT hidden states -> the UNet's cross-attention space.

``Linear(plbert_hidden, cross_attention_dim)`` then ``LayerNorm``, applied to every position of the
fixed-length phoneme sequence. The adapter also owns the speech model's **unconditional embedding**
(what the prompt ``""`` maps to for classifier-free guidance): a learned ``[num_tokens, D]`` tensor,
``null_embedding``, initialised to zeros. Zero keys and values mean the cross-attention reads nothing
(Stable Diffusion's ``to_k``/``to_v`` have no bias), i.e. "no sentence"; training then learns it through
conditioning dropout, which substitutes exactly this tensor, and it is saved with the adapter.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PhonemeAdapter"]


class PhonemeAdapter(nn.Module):
    """Projection + LayerNorm of PL-BERT states, and the learned unconditional embedding."""

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.num_tokens = int(in_dim), int(out_dim), int(num_tokens)
        self.proj = nn.Linear(self.in_dim, self.out_dim)
        self.norm = nn.LayerNorm(self.out_dim)
        self.null_embedding = nn.Parameter(torch.zeros(self.num_tokens, self.out_dim))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T, in_dim]`` PL-BERT states -> ``[B, T, out_dim]`` cross-attention tokens."""
        return self.norm(self.proj(hidden.to(self.proj.weight.dtype)))

    def unconditional(self, batch_size: int) -> torch.Tensor:
        """The unconditional phoneme tokens ``[batch_size, num_tokens, out_dim]`` (differentiable)."""
        return self.null_embedding.unsqueeze(0).expand(batch_size, -1, -1)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, num_tokens={self.num_tokens}"
