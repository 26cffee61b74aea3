"""The one model-loading layer for diffusers-layout folders (Stable Diffusion 1.5, Auffusion, a VAE).

Every loader of a UNet, VAE or CLIP text encoder goes through here, so there is one download-and-load
policy (docs/models.md lists the files each model needs):

- **Which file.** In each component folder (``unet/``, ``vae/``, ``text_encoder/``, or the root of a
  VAE / transformers repository) exactly one weights file is chosen (:func:`select_weights`):
  ``diffusion_pytorch_model.safetensors`` (``model.safetensors`` for transformers parts), else the
  ``.bin`` (``pytorch_model.bin``), loaded by diffusers/transformers with ``torch.load(weights_only=True)``
  (torch >= 2.6). With ``variant="fp16"`` (the default for ``torch_dtype=torch.float16``) the ``.fp16.``
  files come first. Sharded checkpoints (an ``.index.json`` and its shards) count as one choice. The
  choice is logged; a file that cannot be read (a refused pickle, a truncated file) is one
  :class:`~speakimg.errors.CheckpointError` naming it.
- **Which files to download.** For a hub id the repository's file list is read first
  (:func:`list_model_files`), the files to be loaded are selected (:func:`plan_download`: the chosen
  weights, the small config/tokenizer/scheduler files beside them) and only those are fetched. A
  repository that lacks a component or its weights is one :class:`~speakimg.errors.ModelNotFoundError`
  naming the repository and what it lacks.

Also here: the default model ids, the speech-model marker, and :func:`load_vae` (with an explicit
``frozen`` choice) for every caller that needs only the VAE (the latent cache, the vocoder's VAE round trip).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speakimg.errors import CheckpointError, ModelNotFoundError, SpeakimgError
from speakimg.hub import expand_reference, is_hub_id, resolve_dir

__all__ = [
    "DEFAULT_AUDIO_MODEL",
    "DEFAULT_IMAGE_MODEL",
    "SPEECH_MARKER",
    "DiffusionComponents",
    "WeightsChoice",
    "is_speech_model",
    "list_model_files",
    "load_component",
    "load_diffusion_model",
    "load_text_encoder",
    "load_vae",
    "plan_download",
    "resolve_model",
    "select_weights",
    "vae_folder",
    "variant_for",
]

log = logging.getLogger("speakimg.loading")

DEFAULT_IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Stable Diffusion 1.5 (the maintained mirror of the deleted ``runwayml/stable-diffusion-v1-5``)."""
DEFAULT_AUDIO_MODEL = "auffusion/auffusion-full-no-adapter"
"""Auffusion, text-to-audio in SD 1.5's latent space (reproduces Images that Sound; the speech model's base)."""
SPEECH_MARKER = "speakimg_speech.json"
"""Marker file at the root of an exported speech model folder."""

WEIGHTED = ("unet", "vae", "text_encoder", "")
"""Component folders that hold alternative weights files ("" = the repository root); one is chosen."""

_WEIGHTS_NAMES = (  # (safetensors, pickle) names of diffusers models, then transformers models
    ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    ("model.safetensors", "pytorch_model.bin"),
)
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".ot", ".gguf"}
_LABELS = {"unet": "UNet", "vae": "VAE", "text_encoder": "text encoder"}


def is_speech_model(root: str | os.PathLike) -> bool:
    """True if ``root`` is a local folder holding an exported speech model (its marker file)."""
    return (Path(root).expanduser() / SPEECH_MARKER).is_file()


def variant_for(torch_dtype: torch.dtype | None) -> str | None:
    """The weights variant worth fetching for a dtype: ``"fp16"`` for float16 (half the download), else none."""
    return "fp16" if torch_dtype == torch.float16 else None


# ------------------------------------------------------------------------------------------ policy
def _with_variant(name: str, variant: str | None) -> str:
    """``diffusion_pytorch_model.safetensors`` -> ``diffusion_pytorch_model.fp16.safetensors`` (diffusers' rule)."""
    if not variant:
        return name
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.{variant}.{ext}"


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file(s) of one component folder that will be read."""

    files: tuple[str, ...]  # one file, or an index and its shards
    variant: str | None
    safetensors: bool

    @property
    def main(self) -> str:
        return self.files[0]


def _is_weights(name: str) -> bool:
    return Path(name).suffix in _WEIGHT_SUFFIXES or ".index." in name


def select_weights(files: Iterable[str], variant: str | None = None) -> WeightsChoice | None:
    """The one weights file (or sharded set) to load among the file names of one component folder.

    Order: the ``variant``'s safetensors, its ``.bin``; then the plain safetensors, the plain ``.bin``
    (diffusers' names before transformers'). Other variants (``non_ema``, ``fp16`` unless asked) are never
    chosen. ``None`` if the folder holds none of them.
    """
    names = set(files)
    for v in dict.fromkeys([variant, None]):
        for pair in _WEIGHTS_NAMES:
            for single in pair:
                safetensors = single.endswith(".safetensors")
                name = _with_variant(single, v)
                if name in names:
                    return WeightsChoice((name,), v, safetensors)
                index = _with_variant(single + ".index.json", v)
                if index in names:
                    stem, ext = single.rsplit(".", 1)
                    tag = rf"(\.{re.escape(v)})?" if v else ""  # variant shards: name.fp16-00001-of-00002.ext
                    shard = re.compile(rf"^{re.escape(stem)}{tag}-\d{{5}}-of-\d{{5}}{tag}\.{ext}$")
                    shards = sorted(n for n in names if shard.match(n) and (not v or f".{v}" in n))
                    return WeightsChoice((index, *shards), v, safetensors)
    return None


def _describe_expected(component: str) -> str:
    if component == "text_encoder":
        return "model.safetensors or pytorch_model.bin"
    if component in ("unet", "vae"):
        return "diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin"
    return "diffusion_pytorch_model.safetensors / model.safetensors or their .bin"


def _folder_files(files: Iterable[str], component: str) -> list[str]:
    prefix = f"{component}/" if component else ""
    return sorted(f[len(prefix) :] for f in files if f.startswith(prefix) and "/" not in f[len(prefix) :])


def plan_download(
    files: Iterable[str],
    components: Sequence[str],
    variant: str | None | dict[str, str | None] = None,
    source: str = "the model",
    optional: Sequence[str] = (),
) -> list[str]:
    """Exactly the files of a repository listing that loading ``components`` reads.

    A weighted component (``unet``, ``vae``, ``text_encoder``, ``""`` = the root) contributes its small
    files (``config.json``, processor/tokenizer files) and the one weights choice of :func:`select_weights`;
    any other component (``tokenizer``, ``scheduler``, ``vocoder``) all its files; ``model_index.json`` and the
    speech marker come along when present. ``variant`` is one variant for all components or one per
    component. Components in ``optional`` are skipped when absent; a missing required one raises.
    """
    files = list(files)
    plan = [f for f in ("model_index.json", SPEECH_MARKER) if f in files]
    for component in components:
        here = _folder_files(files, component)
        where = f"{component}/" if component else "its root"
        if not here:
            if component in optional:
                continue
            kind = f" it is a speakimg speech model ({SPEECH_MARKER})." if SPEECH_MARKER in files else ""
            raise ModelNotFoundError(
                f"'{source}' has no {where} folder;{kind or ' '} A diffusers pipeline (Stable Diffusion 1.5, "
                "Auffusion) has unet/, vae/, text_encoder/, tokenizer/ and scheduler/."
            )
        prefix = f"{component}/" if component else ""
        if component not in WEIGHTED:
            plan += [prefix + f for f in here]
            continue
        wanted = variant.get(component) if isinstance(variant, dict) else variant
        choice = select_weights(here, wanted)
        if choice is None or "config.json" not in here:
            lacks = "config.json" if choice is not None else f"weights ({_describe_expected(component)})"
            raise ModelNotFoundError(f"'{source}' lacks {lacks} in {where} (it has: {', '.join(here) or 'nothing'})")
        plan += [prefix + f for f in here if not _is_weights(f)] + [prefix + f for f in choice.files]
    return sorted(dict.fromkeys(plan))


# -------------------------------------------------------------------------------------- the hub
def list_model_files(name: str) -> list[str]:
    """Every file of a hub repository (relative paths): the hub's listing, else the local cache's snapshot.

    Offline (``HF_HUB_OFFLINE=1`` or no network) the files of the cached snapshot are listed instead.
    """
    try:
        from huggingface_hub import HfApi

        return sorted(HfApi().list_repo_files(name))
    except Exception as online_error:  # offline, no network, missing repo, auth
        try:
            from huggingface_hub import snapshot_download

            root = Path(snapshot_download(name, local_files_only=True))
        except Exception:
            raise ModelNotFoundError(
                f"cannot list the files of hub model '{name}' ({type(online_error).__name__}: "
                f"{str(online_error)[:200]}) and it is not in the local hub cache. Pass a downloaded model "
                "folder, or download it first on a machine with network access (docs/models.md)."
            ) from online_error
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def resolve_model(
    name: str | os.PathLike,
    components: Sequence[str],
    variant: str | None | dict[str, str | None] = None,
    optional: Sequence[str] = (),
) -> Path:
    """Local folder of a model: a folder (or ``tiny:`` reference) as it is; a hub id with only the planned files.

    For a hub id the repository is listed, :func:`plan_download` selects the files that loading
    ``components`` reads, and only those are downloaded (or found in the cache).
    """
    expanded = expand_reference(name)
    local = Path(expanded).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotFoundError(f"{local} is a file; pass a model folder (or a hub id)")
        return local
    if not is_hub_id(name):
        return resolve_dir(name)  # neither a folder nor a hub id: resolve_dir says what is wrong
    plan = plan_download(list_model_files(str(name)), components, variant, str(name), optional)
    log.info("'%s': fetching %d files: %s", name, len(plan), ", ".join(plan))
    root = resolve_dir(str(name), allow_patterns=plan)
    missing = [f for f in plan if not (root / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"hub model '{name}': {', '.join(missing)} could not be fetched (offline with an incomplete cache?). "
            "Download them on a machine with network access (docs/models.md)."
        )
    return root


# ------------------------------------------------------------------------------------- loading
def _diagnose(path: Path, error: BaseException, what: str) -> Exception:
    """The clearest error for a weights file its library could not load: refused pickle, truncation, other."""
    from speakimg.io import load_torch, safetensors_error

    if isinstance(error, SpeakimgError):
        return error
    if path.suffix == ".bin":
        try:  # diffusers folds every torch.load failure into one OSError: read it again, safely, to say why
            load_torch(path, what=what, map_location="meta")
        except CheckpointError as diagnosed:
            return diagnosed
    elif path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(path, "pt"):
                pass  # the header and the file's size are checked on opening
        except Exception as direct:
            return safetensors_error(path, direct, what)
    return CheckpointError(f"{path}: cannot load the {what} ({type(error).__name__}: {str(error)[:300]})")


def load_component(
    root: str | os.PathLike,
    subfolder: str,
    model_class: Any,
    *,
    torch_dtype: torch.dtype | None = None,
    variant: str | None = None,
    source: str | None = None,
) -> nn.Module:
    """``model_class.from_pretrained`` on exactly the weights file :func:`select_weights` picks in ``root/subfolder``.

    ``model_class`` is a diffusers or transformers model class (``UNet2DConditionModel``, ``AutoencoderKL``,
    ``CLIPTextModel``...). The file used is logged; an unreadable file is a :class:`CheckpointError` naming it.
    """
    root = Path(root)
    folder = root / subfolder if subfolder else root
    source = source or str(root)
    what = f"{_LABELS.get(subfolder or folder.name, model_class.__name__)} weights file"
    if not folder.is_dir():
        raise ModelNotFoundError(f"'{source}' ({root}) has no {subfolder}/ folder")
    names = [p.name for p in folder.iterdir() if p.is_file()]
    choice = select_weights(names, variant)
    if choice is None or "config.json" not in names:
        lacks = "config.json" if choice is not None else f"weights ({_describe_expected(subfolder)})"
        raise ModelNotFoundError(
            f"'{source}': {folder} lacks {lacks} (it has: {', '.join(sorted(names)) or 'nothing'})"
        )
    path = folder / choice.main
    if variant and choice.variant != variant:
        log.info("'%s': no %s variant in %s/, loading the full-precision file", source, variant, subfolder)
    log.info("'%s': %s <- %s", source, subfolder or model_class.__name__, path)
    kwargs: dict[str, Any] = {"use_safetensors": choice.safetensors, "variant": choice.variant}
    if torch_dtype is not None:
        kwargs["torch_dtype"] = torch_dtype
    try:
        return model_class.from_pretrained(root, subfolder=subfolder or None, **kwargs)
    except Exception as error:
        raise _diagnose(path, error, what) from error


def load_text_encoder(
    name_or_path: str | os.PathLike, torch_dtype: torch.dtype | None = None, variant: str | None = None
) -> tuple[Any, nn.Module]:
    """``(CLIPTokenizer, CLIPTextModel)`` of a diffusers-layout folder or hub id, the encoder frozen in eval mode."""
    from transformers import CLIPTextModel, CLIPTokenizer

    variant = variant if variant is not None else variant_for(torch_dtype)
    root = resolve_model(name_or_path, ("tokenizer", "text_encoder"), variant)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
    encoder = load_component(
        root, "text_encoder", CLIPTextModel, torch_dtype=torch_dtype, variant=variant, source=str(name_or_path)
    )
    return tokenizer, encoder.eval().requires_grad_(False)


@dataclass
class DiffusionComponents:
    """What speakimg takes from a Stable-Diffusion-layout model folder."""

    root: Path
    unet: nn.Module
    vae: nn.Module
    scheduler_config: dict[str, Any]
    tokenizer: Any = None
    text_encoder: nn.Module | None = None


def load_diffusion_model(
    name_or_path: str | os.PathLike,
    torch_dtype: torch.dtype | None = None,
    *,
    vae_dtype: torch.dtype | None = None,
    text_encoder: bool = True,
    extra: Sequence[str] = (),
    variant: str | None = None,
) -> DiffusionComponents:
    """UNet, VAE (frozen), scheduler config and, with ``text_encoder``, CLIP tokenizer + encoder (frozen).

    ``torch_dtype`` applies to the UNet and text encoder, ``vae_dtype`` to the VAE (``None``: float32, as
    SD's VAE asks, ``force_upcast``). ``extra`` names further folders to fetch if the model has them
    (``"vocoder"``). The UNet is returned as loaded (eval mode, parameters trainable: callers freeze or adapt it).
    """
    from diffusers import DDIMScheduler, UNet2DConditionModel

    source = str(name_or_path)
    required = ["unet", "vae", "scheduler"] + (["text_encoder", "tokenizer"] if text_encoder else [])
    variants = {
        "unet": variant if variant is not None else variant_for(torch_dtype),
        "text_encoder": variant if variant is not None else variant_for(torch_dtype),
        "vae": variant if variant is not None else variant_for(vae_dtype),
    }
    root = resolve_model(name_or_path, [*required, *extra], variants, optional=extra)
    missing = [sub for sub in required if not (root / sub).is_dir()]
    if missing:
        raise ModelNotFoundError(
            f"'{source}' ({root}) is not a Stable-Diffusion-layout model folder: no '{missing[0]}/' folder "
            f"(missing {', '.join(m + '/' for m in missing)}). Pass a diffusers pipeline folder (unet/, vae/, text_encoder/, "
            f"tokenizer/, scheduler/) or, for the speech model, a folder exported by speakimg (with {SPEECH_MARKER})."
        )
    unet = load_component(
        root, "unet", UNet2DConditionModel, torch_dtype=torch_dtype, variant=variants["unet"], source=source
    )
    vae = load_vae(root, frozen=True, dtype=vae_dtype, variant=variants["vae"])
    scheduler_config = dict(DDIMScheduler.load_config(root, subfolder="scheduler"))
    parts = DiffusionComponents(root=root, unet=unet, vae=vae, scheduler_config=scheduler_config)
    if text_encoder:
        parts.tokenizer, parts.text_encoder = load_text_encoder(root, torch_dtype, variants["text_encoder"])
    return parts


# ------------------------------------------------------------------------------------------ VAE
def _vae_layout(files: Iterable[str]) -> str | None:
    files = set(files)
    if "vae/config.json" in files:
        return "vae"  # a pipeline folder (SD 1.5, Auffusion)
    if "config.json" in files:
        return ""  # a VAE folder / repository
    return None


def vae_folder(name_or_path: str | os.PathLike, variant: str | None = None) -> Path:
    """The local folder holding the VAE's ``config.json`` + weights: a pipeline's ``vae/`` or a VAE folder.

    A hub id is listed first and only the VAE's files are fetched.
    """
    expanded = Path(expand_reference(name_or_path)).expanduser()
    if expanded.is_dir():
        if (expanded / "vae" / "config.json").is_file():
            return expanded / "vae"
        if (expanded / "config.json").is_file():
            return expanded
        raise ModelNotFoundError(
            f"{expanded}: neither a diffusers pipeline folder with vae/ nor a VAE folder (config.json)"
        )
    if not is_hub_id(name_or_path):
        return resolve_dir(name_or_path, "vae")  # a missing path or file: resolve_dir names the problem
    files = list_model_files(str(name_or_path))
    layout = _vae_layout(files)
    if layout is None:
        raise ModelNotFoundError(
            f"hub model '{name_or_path}' has neither vae/config.json nor a config.json at its root"
        )
    root = resolve_model(name_or_path, [layout], variant)
    return root / layout if layout else root


def load_vae(
    name_or_path: str | os.PathLike,
    *,
    frozen: bool,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    variant: str | None = None,
):
    """The ``AutoencoderKL`` of a pipeline folder / hub id (its ``vae/``) or of a VAE folder.

    ``frozen``: eval mode with every parameter's ``requires_grad`` off (encoding data, sampling), else as
    diffusers returns it (eval mode, trainable parameters). ``dtype`` ``None`` keeps float32.
    """
    from diffusers import AutoencoderKL

    variant = variant if variant is not None else variant_for(dtype)
    folder = vae_folder(name_or_path, variant)
    vae = load_component(folder, "", AutoencoderKL, torch_dtype=dtype, variant=variant, source=str(name_or_path))
    if device is not None:
        vae = vae.to(device)
    return vae.eval().requires_grad_(False) if frozen else vae
