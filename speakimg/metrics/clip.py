"""CLIP score of a wide spectrogram-image against its prompt, the "Images that Sound" way.

A ``256 x W`` image is cut into ``256 x 256`` windows with stride 32 (25 windows for W = 1024);
the score is ``max(mean over windows of 100 * cos(image, text), 0)``, computed by torchmetrics'
``CLIPScore`` over the windows of one image. torchmetrics 1.9 expects ``get_image_features`` and
``get_text_features`` to return tensors, which transformers 5 no longer does (they return a
``BaseModelOutputWithPooling`` whose ``pooler_output`` is the projected embedding); the model is
wrapped so that they do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["WindowedCLIPScore", "image_windows", "load_clip_for_torchmetrics"]


class _TensorFeatures(nn.Module):
    """A CLIPModel whose feature methods return the projected embeddings as tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    @staticmethod
    def _tensor(output) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._tensor(self.model.get_image_features(pixel_values=pixel_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._tensor(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def load_clip_for_torchmetrics(name_or_path: str):
    """``(model, processor)`` for torchmetrics' CLIPScore from a hub id or local CLIP folder."""
    from transformers import CLIPModel, CLIPProcessor

    from speakimg.loading import resolve_model

    folder = resolve_model(name_or_path, [""])  # a hub id: its config/processor files and one weights file
    model = CLIPModel.from_pretrained(folder).eval()
    return _TensorFeatures(model), CLIPProcessor.from_pretrained(folder)


def image_windows(image: torch.Tensor, window: int | None = None, stride: int = 32) -> torch.Tensor:
    """``[3, H, W]`` -> ``[N, 3, H, window]`` square windows every ``stride`` columns (window = H)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image [3, H, W], got {tuple(image.shape)}")
    window = window or image.shape[1]
    if image.shape[2] < window:
        raise ValueError(f"image width {image.shape[2]} is smaller than the {window}-pixel window")
    return image.unfold(2, window, stride).permute(2, 0, 1, 3)


def _to_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected images [B, 3, H, W] or [B, H, W, 3], got {tuple(x.shape)}")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return x


class WindowedCLIPScore(nn.Module):
    """Per-image windowed CLIP scores (0-100) of images against their prompts.

    Args:
        model_name_or_path: CLIP hub id or local folder (``openai/clip-vit-base-patch16`` in ITS).
        window: window width in pixels (default: the image height, 256).
        stride: window stride in pixels (32 in ITS).
    """

    def __init__(
        self, model_name_or_path: str = "openai/clip-vit-base-patch16", window: int | None = None, stride: int = 32
    ) -> None:
        super().__init__()
        from torchmetrics.multimodal import CLIPScore

        self.model_name_or_path = model_name_or_path
        self.window = window
        self.stride = stride
        # windows of one image are scored locally: no cross-process sync in compute() under DDP
        self.metric = CLIPScore(
            model_name_or_path=lambda: load_clip_for_torchmetrics(model_name_or_path), sync_on_compute=False
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor | np.ndarray, prompts: list[str] | str) -> torch.Tensor:
        """``images`` ([B, 3, H, W] in [0, 1] or uint8, or [B, H, W, 3]) -> scores ``[B]``."""
        batch = _to_uint8(images)
        prompts = [prompts] * len(batch) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(batch):
            raise ValueError(f"got {len(batch)} images but {len(prompts)} prompts")
        scores = []
        for image, prompt in zip(batch, prompts, strict=True):
            windows = image_windows(image, self.window, self.stride).to(self.metric.device)
            self.metric.reset()
            self.metric.update(list(windows), [prompt] * len(windows))
            scores.append(self.metric.compute().detach().float().cpu())
        self.metric.reset()
        return torch.stack(scores)
