"""A tiny PL-BERT folder in the original StyleTTS2 ``Utils/PLBERT`` format.

``config.yml`` (the original's keys, tiny ``model_params``) and several ``step_<N>.t7`` files
``{"net": {"module.encoder.<albert key>": ..., "module.mask_predictor...": ...}, "step": N, ...}``
as PL-BERT's trainer saves them (including the ``embeddings.position_ids`` buffer older transformers
saved). Each step file holds different weights, so a test can tell that the highest ``N`` is used:
``TINY_PLBERT_STEPS[-1]`` is numerically the highest but not the last in lexicographic order.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

__all__ = ["TINY_PLBERT_PARAMS", "TINY_PLBERT_STEPS", "plbert_checkpoint", "write_tiny_plbert"]

TINY_PLBERT_PARAMS = {
    "vocab_size": 178,
    "hidden_size": 24,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 512,
    "num_hidden_layers": 2,
    "embedding_size": 16,
    "dropout": 0.1,
}
"""PL-BERT's ``model_params`` keys with tiny sizes (the real model: 768 hidden, 12 heads, 2048, 12 layers)."""

TINY_PLBERT_STEPS = (300, 100, 2000)
"""Step files written; 2000 is the one a loader must pick ("step_300" sorts after "step_2000" as text)."""


def plbert_checkpoint(model_params: dict, seed: int, step: int, position_ids: bool = True) -> dict:
    """A ``{"net": ..., "step": ...}`` dict as PL-BERT's trainer saves it (``module.`` DataParallel prefix)."""
    from transformers import AlbertConfig, AlbertModel

    torch.manual_seed(seed)
    config = AlbertConfig(**model_params)
    albert = AlbertModel(config)  # with its pooler, as PL-BERT's MultiTaskModel holds it
    net = {f"module.encoder.{k}": v.clone() for k, v in albert.state_dict().items()}
    if position_ids:
        net["module.encoder.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]
    # the pre-training heads of PL-BERT's MultiTaskModel (not part of the encoder)
    net["module.mask_predictor.weight"] = torch.randn(config.vocab_size, config.hidden_size)
    net["module.mask_predictor.bias"] = torch.zeros(config.vocab_size)
    net["module.word_predictor.weight"] = torch.randn(11, config.hidden_size)
    net["module.word_predictor.bias"] = torch.zeros(11)
    return {"net": net, "step": step, "epoch": step // 100}


def write_tiny_plbert(folder: Path, seed: int = 0) -> None:
    """Write ``config.yml`` and ``step_<N>.t7`` for every N in :data:`TINY_PLBERT_STEPS`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "log_dir": "Checkpoint",
        "mixed_precision": "fp16",
        "data_folder": "wikipedia_20220301.en.processed",
        "batch_size": 192,
        "save_interval": 5000,
        "num_steps": 1000000,
        "dataset_params": {"tokenizer": "transfo-xl-wt103", "token_separator": " ", "token_mask": "M"},
        "model_params": TINY_PLBERT_PARAMS,
    }
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    for index, step in enumerate(TINY_PLBERT_STEPS):
        checkpoint = plbert_checkpoint(TINY_PLBERT_PARAMS, seed=seed + index, step=step)
        if step == max(TINY_PLBERT_STEPS):  # the real files also carried optimizer state at times
            params = [torch.zeros(2, 2)]
            optimizer = torch.optim.AdamW(params)
            params[0].grad = torch.ones(2, 2)
            optimizer.step()
            checkpoint["optimizer"] = optimizer.state_dict()
        torch.save(checkpoint, folder / f"step_{step}.t7")
