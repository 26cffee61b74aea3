"""Device and dtype choice: the one place that decides "CUDA if available" and names dtypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from speakimg.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DTYPE_NAMES", "dtype_name", "select_device", "select_dtype"]

DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}
"""Accepted dtype names and the torch dtype each means."""


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``/``None`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ... as a ``torch.device``."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here: use auto or cpu")
    return device


def select_dtype(name: str | torch.dtype | None = "auto", device: torch.device | str | None = None) -> torch.dtype:
    """``auto``/``None`` (bfloat16 on CUDA, float32 elsewhere) or a name of :data:`DTYPE_NAMES` as a torch dtype."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name is None or name == "auto":
        return torch.bfloat16 if select_device(device or "auto").type == "cuda" else torch.float32
    key = DTYPE_NAMES.get(str(name).lower().removeprefix("torch."))
    if key is None:
        raise ConfigError(f"dtype must be auto or one of {sorted(DTYPE_NAMES)}, got {name!r}")
    return getattr(torch, key)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (for records such as sample.json)."""
    return str(dtype).removeprefix("torch.")
