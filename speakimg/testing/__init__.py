"""The tiny-model kit: deterministic random-weight models saved in the real on-disk formats.

No pretrained weights can be downloaded in CI or on our machines, so tests, the demo and the
notebook build tiny models here, save them exactly as the real ones are laid out, and load them
back through the same public loaders users call with hub ids. Each model is built once and
cached (``$SPEAKIMG_TINY_DIR`` or ``~/.cache/speakimg/tiny``); a stale cache is rebuilt.

>>> from speakimg import testing
>>> sd_folder = testing.tiny_stable_diffusion()      # StableDiffusionPipeline.from_pretrained(sd_folder)
>>> whisper_ckpt = testing.tiny_whisper()             # whisper.load_model(whisper_ckpt)
>>> plbert_folder = testing.tiny_plbert()              # speakimg.speech.PLBert.from_pretrained(plbert_folder)
>>> vits_folder = testing.tiny_vits()                  # speakimg.tts.get_engine("transformers", model=vits_folder)
>>> controlnet = testing.tiny_controlnet()            # diffusers.ControlNetModel.from_pretrained(controlnet)
>>> if_folder = testing.tiny_if()                       # IFPipeline.from_pretrained(if_folder): DeepFloyd IF stage I
>>> bin_only = testing.tiny_weights_variant("auffusion", ["bin"])  # .bin weights only, as Auffusion's repository

Real trained models that install offline (Whisper tiny.en / base, a Piper voice) are served as
``real:<name>`` by :mod:`speakimg.testing.real`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from speakimg.hub import register_resolver
from speakimg.lazy import lazy_exports
from speakimg.testing.cache import KIT_VERSION, cached_build, default_root
from speakimg.testing.real import REAL_MODELS, resolve_real

# The writers import torch: each builder imports its own on first use (``python -m speakimg.testing --help``
# and the ``tiny:`` resolver's registration stay light); their constants are exported lazily.
_LAZY = {
    "KINDS": "speakimg.testing.variants",
    "VARIANT_MARKS": "speakimg.testing.variants",
    "weights_file_name": "speakimg.testing.variants",
    "write_weight_variants": "speakimg.testing.variants",
    "SD15_SCHEDULER_CONFIG": "speakimg.testing.diffusion",
    "TINY_CROSS_ATTENTION_DIM": "speakimg.testing.diffusion",
    "TINY_PLBERT_PARAMS": "speakimg.testing.plbert",
    "TINY_PLBERT_STEPS": "speakimg.testing.plbert",
    "TINY_VOCODER_CONFIG": "speakimg.testing.vocoder",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "BUILDERS",
    "KINDS",
    "KIT_VERSION",
    "REAL_MODELS",
    "SD15_SCHEDULER_CONFIG",
    "TINY_CROSS_ATTENTION_DIM",
    "TINY_PLBERT_PARAMS",
    "TINY_PLBERT_STEPS",
    "TINY_VOCODER_CONFIG",
    "VARIANT_MARKS",
    "build_all",
    "default_root",
    "resolve_real",
    "resolve_tiny",
    "tiny_auffusion",
    "tiny_clap",
    "tiny_clip",
    "tiny_controlnet",
    "tiny_if",
    "tiny_plbert",
    "tiny_speech_model",
    "tiny_stable_diffusion",
    "tiny_vocoder",
    "tiny_vits",
    "tiny_weights_variant",
    "tiny_whisper",
    "weights_file_name",
    "write_weight_variants",
]

Root = str | os.PathLike | None


def _write_tiny_auffusion(folder: Path) -> None:
    from speakimg.testing.diffusion import write_tiny_stable_diffusion
    from speakimg.testing.vocoder import write_tiny_vocoder

    # Auffusion's hub folder is an SD 1.5 pipeline folder (its own weights) plus vocoder/.
    write_tiny_stable_diffusion(folder, seed=1)
    write_tiny_vocoder(folder / "vocoder", seed=2)


def tiny_stable_diffusion(root: Root = None) -> Path:
    """Folder in the SD-1.5 layout (the image model); ``StableDiffusionPipeline.from_pretrained`` loads it."""
    from speakimg.testing.diffusion import write_tiny_stable_diffusion

    return cached_build("stable-diffusion", lambda d: write_tiny_stable_diffusion(d, seed=0), root)


def tiny_auffusion(root: Root = None) -> Path:
    """Folder in Auffusion's layout (SD-1.5 layout with other weights, plus ``vocoder/``)."""
    from speakimg.testing.vocoder import TINY_VOCODER_CONFIG

    return cached_build("auffusion", _write_tiny_auffusion, root, spec={"vocoder": TINY_VOCODER_CONFIG})


def tiny_vocoder(root: Root = None) -> Path:
    """Folder with ``config.json`` + ``vocoder.pt`` (Auffusion's vocoder layout, 32 channels); ``load_vocoder`` loads it."""
    from speakimg.testing.vocoder import TINY_VOCODER_CONFIG, write_tiny_vocoder

    return cached_build("vocoder", lambda d: write_tiny_vocoder(d, seed=2), root, spec={"vocoder": TINY_VOCODER_CONFIG})


def tiny_whisper(root: Root = None) -> Path:
    """Path of a tiny checkpoint file that ``whisper.load_model(path)`` loads."""
    from speakimg.testing.whisper import WHISPER_FILENAME, write_tiny_whisper

    return cached_build("whisper", write_tiny_whisper, root) / WHISPER_FILENAME


def tiny_clip(root: Root = None) -> Path:
    """Folder with a tiny ``CLIPModel`` and ``CLIPProcessor`` (transformers layout)."""
    from speakimg.testing.clip import write_tiny_clip

    return cached_build("clip", write_tiny_clip, root)


def tiny_clap(root: Root = None) -> Path:
    """Folder with a tiny ``ClapModel`` and ``ClapProcessor`` (transformers layout)."""
    from speakimg.testing.clap import write_tiny_clap

    return cached_build("clap", write_tiny_clap, root)


def tiny_controlnet(root: Root = None) -> Path:
    """Folder of a tiny ``ControlNetModel`` for the tiny SD (``lllyasviel/sd-controlnet-canny``'s layout)."""
    from speakimg.testing.controlnet_kit import write_tiny_controlnet

    return cached_build("controlnet", write_tiny_controlnet, root)


def tiny_if(root: Root = None) -> Path:
    """Folder in DeepFloyd IF stage-I layout (T5 encoder, 64 x 64 pixel UNet, DDPM scheduler); ``IFPipeline`` loads it."""
    from speakimg.testing.if_kit import write_tiny_if

    return cached_build("deepfloyd-if", write_tiny_if, root)


def tiny_plbert(root: Root = None) -> Path:
    """Folder in PL-BERT's original layout (``config.yml`` + ``step_<N>.t7``); ``PLBert.from_pretrained`` loads it."""
    from speakimg.testing.plbert import write_tiny_plbert

    return cached_build("plbert", write_tiny_plbert, root)


def tiny_vits(root: Root = None) -> Path:
    """Folder with a tiny ``VitsModel`` + ``VitsTokenizer`` (MMS-TTS layout, 16 kHz; random weights)."""
    from speakimg.testing.vits import write_tiny_vits

    return cached_build("vits", write_tiny_vits, root)


def tiny_speech_model(root: Root = None) -> Path:
    """An exported speech model folder (``speakimg_speech.json``) over the tiny Auffusion and PL-BERT."""
    from speakimg.testing.speech import write_tiny_speech_model

    base, plbert = tiny_auffusion(root), tiny_plbert(root)
    default = root is None or Path(root).resolve() == default_root().resolve()
    refs = ("tiny:auffusion", "tiny:plbert") if default else (str(base), str(plbert))
    return cached_build("speech", lambda d: write_tiny_speech_model(d, *refs), root, spec={"refs": refs})


BUILDERS: dict[str, Callable[[Root], Path]] = {
    "stable-diffusion": tiny_stable_diffusion,
    "auffusion": tiny_auffusion,
    "vocoder": tiny_vocoder,
    "whisper": tiny_whisper,
    "clip": tiny_clip,
    "clap": tiny_clap,
    "plbert": tiny_plbert,
    "speech": tiny_speech_model,
    "vits": tiny_vits,
    "controlnet": tiny_controlnet,
    "deepfloyd-if": tiny_if,
}
"""Every tiny model by name; ``build_all`` and ``python -m speakimg.testing`` write them all."""


def tiny_weights_variant(base: str, kinds: Sequence[str], marked: bool = False, root: Root = None) -> Path:
    """A copy of the tiny ``base`` model (``stable-diffusion`` or ``auffusion``) whose ``unet/``, ``vae/`` and
    ``text_encoder/`` hold the weights files ``kinds`` (``["bin"]``: ``.bin`` only; every kind of
    :data:`KINDS`: SD 1.5's full set). ``marked``: each kind holds the weights plus its :data:`VARIANT_MARKS`."""
    if base not in ("stable-diffusion", "auffusion"):
        raise ValueError(f"weights variants are written for stable-diffusion or auffusion, not {base!r}")
    source = BUILDERS[base](root)

    from speakimg.testing.variants import write_weight_variants

    def build(folder: Path) -> None:
        shutil.copytree(source, folder, dirs_exist_ok=True)
        write_weight_variants(folder, kinds, marked)

    name = f"{base}-{'+'.join(kinds)}{'-marked' if marked else ''}"
    base_stamp = (source / ".speakimg-tiny").read_text().strip()  # rebuilt when the base model is
    return cached_build(name, build, root, spec={"kinds": list(kinds), "marked": marked, "base": base_stamp})


TINY_PREFIX = "tiny:"


def resolve_tiny(reference: str) -> Path:
    """Local path of the kit model ``tiny:<name>`` (built on first use): the ``tiny:`` resolver of :mod:`speakimg.hub`."""
    from speakimg.errors import ModelNotFoundError

    name = reference.removeprefix(TINY_PREFIX)
    if name not in BUILDERS:
        raise ModelNotFoundError(f"{reference!r}: the tiny-model kit has no {name!r}; choose one of {sorted(BUILDERS)}")
    return BUILDERS[name]()


register_resolver("tiny", resolve_tiny)
register_resolver("real", resolve_real)  # trained models from offline packages (speakimg.testing.real)


def build_all(root: Root = None) -> dict[str, Path]:
    """Build (or find cached) every tiny model under ``root``; returns name -> path."""
    return {name: build(root) for name, build in BUILDERS.items()}
