"""Device and dtype choice: the one place that decides "CUDA if available" and names dtypes; CPUs to use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from speakimg.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPE_NAMES",
    "SAMPLE_GIB",
    "available_cpus",
    "batch_size_for_memory",
    "default_batch_size",
    "dtype_name",
    "select_device",
    "select_dtype",
]

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


SAMPLE_GIB = 3.0
"""Estimated GPU memory one sample of the combined pipeline needs beyond the loaded models, in GiB:
two SD-1.5 UNet calls on ``[z, z]`` at 32 x 128 latents in bf16 and the fp32 VAE decodes of a
256 x 1024 picture and spectrogram (the decode dominates). ``benchmarks/gpu.sh`` records the peak
memory at batch 1 and 8 to check it."""


def batch_size_for_memory(free_bytes: int, per_sample_bytes: float, *, headroom: float = 0.9, maximum: int = 32) -> int:
    """The batch size that fits ``headroom`` of ``free_bytes`` at ``per_sample_bytes`` a sample, in [1, maximum].

    >>> batch_size_for_memory(40 * 2**30, 3 * 2**30)
    12
    """
    if per_sample_bytes <= 0 or free_bytes < 0 or not 0 < headroom <= 1 or maximum < 1:
        raise ConfigError(
            f"batch_size_for_memory needs free_bytes >= 0, per_sample_bytes > 0, headroom in (0, 1] and maximum >= 1; "
            f"got {free_bytes}, {per_sample_bytes}, {headroom}, {maximum}"
        )
    return max(1, min(maximum, int(free_bytes * headroom // per_sample_bytes)))


def default_batch_size(device: torch.device | str, per_sample_gib: float = SAMPLE_GIB, cpu: int = 4) -> int:
    """Samples per pipeline call when none is given: ``cpu`` on a CPU; on CUDA, what the free memory
    (``torch.cuda.mem_get_info``, measured after the models are loaded) holds at ``per_sample_gib``."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return cpu
    free, _ = torch.cuda.mem_get_info(device)
    return batch_size_for_memory(free, per_sample_gib * 2**30)


def available_cpus() -> int:
    """CPUs this process may use (respects SLURM / taskset CPU masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1
