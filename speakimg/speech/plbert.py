"""PL-BERT, the phoneme-level ALBERT of StyleTTS2, loaded from its original checkpoint folder.

The original layout (docs/method.md 7) is ``<dir>/config.yml`` (``model_params`` -> ``AlbertConfig``) and
one or more ``<dir>/step_<N>.t7`` training checkpoints holding ``{"net": state_dict, ...}`` whose keys
are ``module.encoder.<albert key>`` (plus the pre-training heads, which are not used). The loader
takes the highest ``N``, reads it with ``torch.load(weights_only=True)``, keeps the encoder weights,
drops the ``embeddings.position_ids`` buffer some versions saved, and then checks that every weight
the model needs was found (non-strict loading would silently leave missing ones random).

:meth:`PLBert.save_pretrained` writes the same ``config.yml`` next to ``plbert.safetensors``; the
loader reads that layout too, so an exported speech model carries its own copy of PL-BERT.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from speakimg.errors import CheckpointError, ConfigError, ModelNotFoundError
from speakimg.hub import resolve_dir

__all__ = [
    "PLBERT_CONFIG",
    "PLBERT_WEIGHTS",
    "PLBert",
    "albert_config",
    "latest_step_file",
    "read_plbert_state_dict",
]

log = logging.getLogger(__name__)

PLBERT_CONFIG = "config.yml"
PLBERT_WEIGHTS = "plbert.safetensors"
_STEP_FILE = re.compile(r"^step_(\d+)\.t7$")
_DROPPED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def albert_config(model_params: dict[str, Any]):
    """``transformers.AlbertConfig`` from PL-BERT's ``model_params`` (other fields: ALBERT defaults)."""
    from transformers import AlbertConfig

    if not isinstance(model_params, dict) or "hidden_size" not in model_params:
        raise ConfigError(f"PL-BERT model_params must be a mapping with hidden_size etc., got {model_params!r}")
    return AlbertConfig(**model_params)


def latest_step_file(folder: str | os.PathLike) -> Path:
    """The ``step_<N>.t7`` with the highest ``N`` in ``folder`` (numeric order: 2000 > 300)."""
    folder = Path(folder)
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_file() and (m := _STEP_FILE.match(p.name))]
    if not steps:
        raise ModelNotFoundError(
            f"{folder}: no PL-BERT weights (neither {PLBERT_WEIGHTS} nor step_<N>.t7). Point `plbert` at the folder "
            "holding config.yml and step_1000000.t7 (StyleTTS2's Utils/PLBERT)."
        )
    return max(steps)[1]


def _encoder_weights(net: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ALBERT weights of a PL-BERT state dict, whatever wrapper prefixes it was saved with."""
    keys = list(net)
    if keys and all(k.startswith("module.") for k in keys):  # saved from DataParallel/accelerate
        net = {k[len("module.") :]: v for k, v in net.items()}
    if any(k.startswith("encoder.embeddings.") for k in net):  # PL-BERT's MultiTaskModel: encoder + heads
        net = {k[len("encoder.") :]: v for k, v in net.items() if k.startswith("encoder.")}
    return {k: v for k, v in net.items() if k not in _DROPPED_BUFFERS and not k.startswith("pooler.")}


def read_plbert_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """ALBERT state dict of a ``step_<N>.t7`` file (safe loading: tensors and plain containers only).

    A file that holds other objects, is truncated or is no PyTorch file is one :class:`CheckpointError` naming it.
    """
    from speakimg.io import load_torch

    path = Path(path)
    checkpoint = load_torch(path, what="PL-BERT checkpoint")
    net = checkpoint.get("net", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(net, dict) or not all(isinstance(v, torch.Tensor) for v in net.values()):
        raise CheckpointError(f"{path}: expected {{'net': state_dict, ...}} (PL-BERT's format), got {type(checkpoint)}")
    return _encoder_weights(net)


class PLBert(nn.Module):
    """PL-BERT's encoder: phoneme ids ``[B, T]`` + attention mask -> hidden states ``[B, T, H]``."""

    def __init__(self, model_params: dict[str, Any]) -> None:
        super().__init__()
        from transformers import AlbertModel

        self.model_params = dict(model_params)
        self.albert = AlbertModel(albert_config(self.model_params), add_pooling_layer=False)

    @property
    def hidden_size(self) -> int:
        return int(self.albert.config.hidden_size)

    @property
    def max_positions(self) -> int:
        return int(self.albert.config.max_position_embeddings)

    @property
    def vocab_size(self) -> int:
        return int(self.albert.config.vocab_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.albert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def load_checked(self, state_dict: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
        """Load ``state_dict``, first checking it has exactly the weights this model needs."""
        expected = set(self.albert.state_dict())
        found = set(state_dict)
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        if missing or unexpected:
            raise CheckpointError(
                f"{source}: PL-BERT weights do not match the model of its config.yml. "
                + (f"Missing {len(missing)}: {missing[:8]}. " if missing else "")
                + (f"Unexpected {len(unexpected)}: {unexpected[:8]}. " if unexpected else "")
                + "Is config.yml the one saved with these weights?"
            )
        try:
            self.albert.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:  # shape mismatches
            raise CheckpointError(f"{source}: PL-BERT weights do not fit its config.yml ({error})") from error

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, subfolder: str | None = None) -> PLBert:
        """Load a PL-BERT folder (hub id, local folder or ``tiny:plbert``): the original or our layout."""
        folder = resolve_dir(name_or_path, subfolder)
        config_path = folder / PLBERT_CONFIG
        if not config_path.is_file():
            raise ModelNotFoundError(f"{folder}: no {PLBERT_CONFIG}; a PL-BERT folder holds config.yml + step_<N>.t7")
        with config_path.open(encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
        model = cls(config.get("model_params", config))
        weights = folder / PLBERT_WEIGHTS
        if weights.is_file():
            from speakimg.io import load_safetensors

            model.load_checked(load_safetensors(weights, what="PL-BERT weights"), weights)
        else:
            step_file = latest_step_file(folder)
            log.info("PL-BERT: loading %s", step_file)
            model.load_checked(read_plbert_state_dict(step_file), step_file)
        return model.eval()

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.yml`` (``model_params``) and ``plbert.safetensors``; ``from_pretrained`` reads them."""
        from safetensors.torch import save_file

        from speakimg.io import atomic_path, write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / PLBERT_CONFIG, yaml.safe_dump({"model_params": self.model_params}, sort_keys=False))
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.albert.state_dict().items()}
        with atomic_path(folder / PLBERT_WEIGHTS) as tmp:
            save_file(state, tmp)
        return folder
