"""Writing what users look at: images and colour-mapped spectrograms as PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["colorize", "to_uint8", "save_image", "save_spectrogram"]


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image in [0, 1] (or uint8) -> ``[H, W, 3]`` / ``[H, W]`` uint8.

    Accepts channel-first ``[C, H, W]`` or channel-last ``[H, W, C]`` (C = 1 or 3) tensors and arrays, or
    grayscale ``[H, W]``.
    """
    x = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 0, -1)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.dtype == np.uint8:
        return x
    return (np.clip(x.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Write an image in [0, 1] (``[3, H, W]``, ``[H, W, 3]`` or grayscale ``[H, W]``) as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def colorize(image: torch.Tensor | np.ndarray, cmap: str = "magma") -> np.ndarray:
    """A spectrogram image in [0, 1] (``[H, W]``, or channels averaged) -> ``[H, W, 3]`` uint8 via a colormap."""
    import matplotlib

    gray = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if gray.ndim == 3:
        gray = gray.mean(axis=0) if gray.shape[0] in (1, 3) else gray.mean(axis=-1)
    rgb = matplotlib.colormaps[cmap](np.clip(gray, 0.0, 1.0))[..., :3]
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def save_spectrogram(path: str | os.PathLike, image: torch.Tensor | np.ndarray, cmap: str = "magma") -> Path:
    """Write a spectrogram image in [0, 1] (channels averaged) through a matplotlib colormap."""
    return save_image(path, colorize(image, cmap))
