"""The sampling methods: a small registry of functions ``(pipe, settings, prompts, generators) -> output``.

A method is one module in this package that registers one function with :func:`register_method`;
every module here is imported when the registry is, so adding a method is adding a module (its knobs,
if it needs new ones, are fields of :class:`~speakimg.sampling.SamplerSettings`). Method modules must
import nothing heavy at import time (the registry is read when settings are validated, before torch).

- ``denoise``: combined denoising (Images that Sound): :meth:`ImagesThatSpeakPipeline.__call__`.
- ``imprint``: the imprint baseline: :meth:`ImagesThatSpeakPipeline.imprint`.
- ``sds``: multimodal score distillation of an implicit image: :func:`speakimg.pipeline.sds.sample_sds`.

With ``settings.colorize`` :func:`speakimg.sampling.run_batch` also colours every method's spectrograms
with the pixel model (:mod:`speakimg.pipeline.colorization`): the output's ``colors``.

>>> out = sample_batch(pipe, SamplerSettings(steps=50), ["a castle"], ["bells"], [torch.Generator().manual_seed(0)])
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speakimg.errors import ConfigError

if TYPE_CHECKING:
    from speakimg.sampling.settings import SamplerSettings

__all__ = ["METHODS", "Method", "get_method", "register_method", "sample_batch"]

MethodFunction = Callable[..., Any]
"""``fn(pipe, settings, image_prompts, audio_prompts, generators, *, output_type) -> ImagesThatSpeakOutput``."""


@dataclass(frozen=True)
class Method:
    """A registered method: its name, function, default guidance scale and one-line summary.

    ``image_guidance_scale``: the image model's default when it differs from ``guidance_scale``.
    """

    name: str
    function: MethodFunction
    guidance_scale: float
    summary: str
    image_guidance_scale: float | None = None


METHODS: dict[str, Method] = {}
"""Every registered method by name."""


def register_method(
    name: str, *, guidance_scale: float, summary: str, image_guidance_scale: float | None = None
) -> Callable[[MethodFunction], MethodFunction]:
    """Register the decorated function as method ``name`` (``guidance_scale``: the default of both scales;
    ``image_guidance_scale``: the image model's, when it differs)."""

    def decorate(function: MethodFunction) -> MethodFunction:
        if name in METHODS and METHODS[name].function is not function:
            raise ValueError(f"a sampling method named {name!r} is already registered")
        image = None if image_guidance_scale is None else float(image_guidance_scale)
        METHODS[name] = Method(name, function, float(guidance_scale), summary, image)
        return function

    return decorate


def get_method(name: str) -> Method:
    """The method called ``name``, or a :class:`ConfigError` listing the methods there are."""
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise ConfigError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return method


def sample_batch(
    pipe: Any,
    settings: SamplerSettings,
    image_prompts: Sequence[str],
    audio_prompts: Sequence[str],
    generators: Any = None,
    *,
    output_type: str = "pt",
) -> Any:
    """Sample a batch with ``settings.method`` (settings resolved first); returns the pipeline's output.

    (``settings.colorize`` is applied by :func:`speakimg.sampling.run_batch`, the commands' batch runner.)
    """
    settings = settings.resolved()
    function = get_method(settings.method).function
    return function(pipe, settings, list(image_prompts), list(audio_prompts), generators, output_type=output_type)


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
