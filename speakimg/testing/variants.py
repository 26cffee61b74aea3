"""Weights-file variants of a tiny diffusers-layout folder, as hub repositories ship them.

Stable Diffusion 1.5's repository holds every component's weights several times: safetensors and pickle
(``.bin``), full precision and ``fp16``, and for the UNet the ``non_ema`` weights; Auffusion's holds
``.bin`` only. :func:`write_weight_variants` rewrites the ``unet/``, ``vae/`` and ``text_encoder/`` of a
tiny folder into any such set. With ``marked=True`` each kind of file holds the weights plus its own
constant (:data:`VARIANT_MARKS`), so a test can tell from the loaded weights which file was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["KINDS", "VARIANT_MARKS", "weights_file_name", "write_weight_variants"]

KINDS = ("safetensors", "bin", "fp16.safetensors", "fp16.bin", "non_ema.safetensors", "non_ema.bin")
"""File kinds: the format, optionally after a variant (``fp16.safetensors`` = ``*.fp16.safetensors``)."""

VARIANT_MARKS = {kind: float(i) for i, kind in enumerate(KINDS)}
"""The constant added to every floating-point weight of each kind of file when ``marked``."""

_STEMS = {
    "diffusers": ("diffusion_pytorch_model", "diffusion_pytorch_model"),
    "transformers": ("model", "pytorch_model"),
}
_COMPONENTS = {"unet": "diffusers", "vae": "diffusers", "text_encoder": "transformers"}


def weights_file_name(component: str, kind: str) -> str:
    """``("unet", "fp16.bin")`` -> ``diffusion_pytorch_model.fp16.bin``; ``("text_encoder", "bin")`` -> ``pytorch_model.bin``."""
    safetensors_stem, bin_stem = _STEMS[_COMPONENTS[component]]
    return f"{safetensors_stem if kind.endswith('safetensors') else bin_stem}.{kind}"


def write_weight_variants(
    folder: str | Path,
    kinds: Sequence[str],
    marked: bool = False,
    components: Sequence[str] = ("unet", "vae", "text_encoder"),
) -> Path:
    """Replace each component's weights in ``folder`` (written with safetensors) by one file per kind.

    ``non_ema`` files are written for the UNet only (as in SD 1.5); ``fp16`` files hold float16 tensors.
    ``.bin`` files are plain state dicts saved with ``torch.save`` (what ``save_pretrained`` wrote before
    safetensors), loadable with ``weights_only=True``. Returns ``folder``.
    """
    from safetensors.torch import load_file, save_file

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown weights kinds {unknown}; choose from {KINDS}")
    folder = Path(folder)
    for component in components:
        sub = folder / component
        original = sub / weights_file_name(component, "safetensors")
        state = load_file(original)
        original.unlink()
        for kind in kinds:
            if kind.startswith("non_ema") and component != "unet":
                continue
            mark = VARIANT_MARKS[kind] if marked else 0.0
            half = kind.startswith("fp16")
            tensors = {}
            for key, value in state.items():
                value = value + mark if value.is_floating_point() else value
                tensors[key] = (value.half() if half and value.is_floating_point() else value).contiguous()
            target = sub / weights_file_name(component, kind)
            if kind.endswith("safetensors"):
                save_file(tensors, target, metadata={"format": "pt"})
            else:
                torch.save(tensors, target)
    return folder
