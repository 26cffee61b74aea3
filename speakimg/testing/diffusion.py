"""Tiny Stable-Diffusion-layout and Auffusion-layout model folders with random weights.

The folders are what ``diffusers.StableDiffusionPipeline.save_pretrained`` writes (model_index.json,
unet/, vae/, text_encoder/, tokenizer/, scheduler/), with SD 1.5's scheduler config and a VAE that
downsamples 8x into 4 latent channels, so every shape in the real method holds: a 256 x 1024 image
is a 4 x 32 x 128 latent. The tokenizer folder holds vocab.json + merges.txt like SD 1.5's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from speakimg.testing.tokenizer import tiny_clip_vocab, write_clip_tokenizer

__all__ = [
    "SD15_SCHEDULER_CONFIG",
    "SD15_UNET_CONFIG",
    "SD15_VAE_CONFIG",
    "TINY_CROSS_ATTENTION_DIM",
    "write_tiny_stable_diffusion",
]

SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}
"""``scheduler/scheduler_config.json`` of runwayml/stable-diffusion-v1-5 (and Auffusion)."""

SD15_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
    norm_eps=1e-5,
    act_fn="silu",
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
)
"""Full-size SD-1.5 ``unet/config.json`` (the fields that shape the network): random-weight GPU benchmarks."""

SD15_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
    force_upcast=True,
)
"""Full-size SD-1.5 ``vae/config.json``."""


TINY_CROSS_ATTENTION_DIM = 32
"""Hidden size of the tiny CLIP text encoder = cross-attention size of the tiny UNet."""


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    # Attention only at the coarser level keeps a 32 x 128 latent fast on CPU; the block names
    # (down_blocks.1.attentions..., up_blocks.0.attentions...) and attention projections (to_q,
    # to_k, to_v, to_out.0) are those LoRA targets and unfreezing patterns see in SD 1.5.
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=0.18215,
    )


def _tiny_text_encoder(vocab_size: int, eos_id: int, bos_id: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_CROSS_ATTENTION_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TINY_CROSS_ATTENTION_DIM,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return CLIPTextModel(config)


def write_tiny_stable_diffusion(folder: Path, seed: int = 0) -> None:
    """Write a tiny SD-1.5-layout pipeline folder with weights drawn from ``seed``."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    tok_dir = folder / "tokenizer"
    write_clip_tokenizer(tok_dir)
    vocab, _ = tiny_clip_vocab()
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(seed)
    unet = _tiny_unet()
    vae = _tiny_vae()
    text_encoder = _tiny_text_encoder(len(vocab), vocab["<|endoftext|>"], vocab["<|startoftext|>"])
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained re-serialises the tokenizer as tokenizer.json; keep SD 1.5's own file layout.
    shutil.rmtree(tok_dir)
    write_clip_tokenizer(tok_dir)
