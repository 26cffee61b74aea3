"""A tiny DeepFloyd IF stage-I folder (``IFPipeline`` layout) with random weights.

The folder is what ``diffusers.IFPipeline.save_pretrained`` writes for ``DeepFloyd/IF-I-M-v1.0``:
``model_index.json``, ``text_encoder/`` (a T5 encoder), ``tokenizer/`` (a T5 unigram tokenizer),
``unet/`` (a pixel UNet on 64 x 64 RGB that predicts noise and a variance, 6 output channels, with
IF's text projection and added-KV attention blocks) and ``scheduler/`` (IF's DDPM config:
``squaredcos_cap_v2`` betas, learned-range variance, dynamic thresholding). Only the sizes are tiny.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["IF_SCHEDULER_CONFIG", "TINY_T5_DIM", "write_tiny_if"]

IF_SCHEDULER_CONFIG = {
    "_class_name": "DDPMScheduler",
    "beta_end": 0.02,
    "beta_schedule": "squaredcos_cap_v2",
    "beta_start": 0.0001,
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.95,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.5,
    "thresholding": True,
    "variance_type": "learned_range",
}
"""``scheduler/scheduler_config.json`` of DeepFloyd IF stage I."""

TINY_T5_DIM = 32
"""Hidden size of the tiny T5 encoder (IF-I: 4096)."""

_WORDS = [
    "a",
    "colorful",
    "photo",
    "of",
    "the",
    "castle",
    "towers",
    "painting",
    "dog",
    "cat",
    "bells",
    "ringing",
    "sea",
    "night",
    "with",
    "and",
    "in",
    "on",
]


def _tokenizer():
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>"]
    pieces += ["\u2581" + w for w in _WORDS] + ["\u2581"] + list("abcdefghijklmnopqrstuvwxyz,.'")
    vocab = [(p, 0.0 if i < 3 else -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=77)


def _text_encoder(vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=TINY_T5_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def _unet():
    from diffusers import UNet2DConditionModel

    # IF-I's architecture (ResnetDownsample / SimpleCrossAttn blocks, text_proj of the T5 states, text
    # added embedding, scale-shift time conditioning, 3 -> 6 channels) at a tiny width; attention only at
    # a quarter of the resolution keeps full-size 256 x W inputs (colorization) affordable on a CPU.
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=3,
        out_channels=6,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"),
        cross_attention_dim=32,
        encoder_hid_dim=TINY_T5_DIM,
        encoder_hid_dim_type="text_proj",
        attention_head_dim=8,
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=32,
    )


def write_tiny_if(folder: Path, seed: int = 3) -> None:
    """Write a tiny DeepFloyd IF stage-I folder (``IFPipeline.from_pretrained`` loads it) from ``seed``."""
    from diffusers import DDPMScheduler, IFPipeline

    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    pipe = IFPipeline(
        tokenizer=tokenizer,
        text_encoder=_text_encoder(len(tokenizer)),
        unet=_unet(),
        scheduler=DDPMScheduler.from_config(IF_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
