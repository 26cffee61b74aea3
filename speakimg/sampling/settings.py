"""The sampler's settings: one dataclass with the papers' defaults and one validation.

:class:`SamplerSettings` is THE list of what a sampling method is run with (besides the prompts, the
seed and the models): the pipeline reads its keyword defaults from it, the sample command line and the
evaluation config generate their options from it, the training callback and the demo take it, and
every ``sample.json`` records it with the values actually used (:meth:`SamplerSettings.resolved`:
no ``null`` guidance). :class:`PipelineModels` names the models; :class:`SampleSettings` is one
sample (prompts, seed, models, sampler settings), whose flat dictionary is ``sample.json["settings"]``.

This module imports nothing heavy (no torch), so command lines validate settings in a blink.
"""

from __future__ import annotations

import json
import math
import typing
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, TypeVar

from speakimg.audio.canvas import CANVAS
from speakimg.errors import ConfigError, SpeakimgWarning

__all__ = [
    "GUIDANCE_RANGE",
    "PipelineModels",
    "SampleSettings",
    "SamplerSettings",
    "check_fraction",
    "check_guidance",
    "from_flat",
    "settings_table",
    "to_flat",
]

GUIDANCE_RANGE = (0.0, 50.0)
"""Guidance scales outside this range are accepted with a warning (the papers use 7.5 and 10)."""


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in (0, 1], or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
    if not 0.0 < value <= 1.0:
        raise ConfigError(
            f"{name}={value} is outside (0, 1]: it is the fraction of the reverse process in which the model "
            "takes part (1.0 = from the first step; 0.9 = skip the noisiest 10%)"
        )
    return float(value)


def check_guidance(name: str, value: Any, high: float = GUIDANCE_RANGE[1]) -> float:
    """A guidance scale as a float: an error if it is not a finite number, a warning if it is unusual
    (negative or above ``high``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    low = GUIDANCE_RANGE[0]
    if not low <= value <= high:
        what = "negative: it pushes the sample away from its prompt" if value < low else f"above {high:g}"
        warnings.warn(
            f"{name}={value:g} is {what} (the papers use 7.5 and 10); sampling goes on with it",
            SpeakimgWarning,
            stacklevel=3,
        )
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_unit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


_FLOAT_FIELDS = ("sds_lr", "sds_weight_decay", "sds_image_weight", "sds_t_min", "sds_t_max", "sds_fourier_scale",
                 "colorize_guidance_scale")  # fmt: skip


@dataclass
class SamplerSettings:
    """How a sample is made, besides its prompts, seed and models (defaults: Images that Sound).

    Args:
        method: the sampling method, one of the registry (``speakimg.sampling.METHODS``): ``denoise`` (one
            latent denoised by both models, Images that Sound eq. 1-6), ``imprint`` (the baseline: each model
            alone, the picture darkens the spectrogram), ``controlnet`` (Images that Speak's zero-shot
            attempt: SD + a canny ControlNet on the contours of a TTS spectrogram), ``reference`` (ours:
            combined denoising plus the exact noise estimate of the TTS spectrogram's latent), ``sds`` (score
            distillation of one implicit image by both models).
        steps: DDIM steps (eta 0); for imprint, the spectrogram's. 100 in the papers.
        image_guidance_scale: classifier-free guidance scale of the image model; null: the method's
            default (denoise 10, imprint 7.5).
        audio_guidance_scale: classifier-free guidance scale of the audio model; null: the method's default.
        t_image: fraction of the reverse process in which the image model takes part (0.9: the first tenth
            of the steps are audio-only, a warm start).
        t_audio: fraction of the reverse process in which the audio model takes part (1.0: from the first step).
        audio_weight: weight of the audio noise estimate once both models take part
            (eps = w eps_audio + (1 - w) eps_image).
        negative_image_prompt: the unconditional side of the image model's guidance ("": unconditional).
        negative_audio_prompt: the unconditional side of the audio model's guidance ("": unconditional).
        height: picture height in pixels = mel bins.
        width: picture width in pixels = spectrogram columns (1024 = 10.24 s).
        crop_padding: crop the last 32 columns (0.32 s, the padding band of the training clips) as Images
            that Sound does: 992-column pictures, 9.92 s of audio.
        griffin_lim_iters: Griffin-Lim iterations when Griffin-Lim is the vocoder.
        imprint_rho: imprint: how much the darkest parts of the picture attenuate the spectrogram, in [0, 1].
        imprint_image_steps: imprint: DDIM steps of the picture.
        imprint_inverse_image: imprint: return (and score) the inverted grey picture 1 - g, as Images that
            Sound's code does by default (its `inverse_image: true`).
        tts: controlnet, reference: the voice that speaks the audio prompt (a `speakimg.tts` voice spec:
            `festival`, `espeak`, `piper:joe`, `transformers:<folder>`).
        controlnet_model: controlnet: a ControlNet in diffusers' layout for SD 1.5 (folder or hub id).
        controlnet_scale: controlnet: strength of the ControlNet's residuals (diffusers'
            `controlnet_conditioning_scale`).
        canny_low: controlnet: lower hysteresis threshold of the Canny edge detector (0-255 image).
        canny_high: controlnet: upper hysteresis threshold of the Canny edge detector (0-255 image).
        reference_weight: reference: weight of the TTS latent's exact noise estimate where it takes part;
            the image and audio estimates share the rest as in `denoise`.
        t_reference: reference: fraction of the reverse process in which the reference estimate takes part
            (the `t_image` / `t_audio` convention: 1.0 = from the first step).
        reference_start: reference: start from z_ref noised to the first timestep <= reference_start * 1000
            (SDEdit); 1.0: from pure noise, as the other methods.
        sds_steps: sds: optimisation steps of the implicit image (40,000 in Images that Sound).
        sds_audio_only_steps: sds: the first steps use the audio model alone (5,000: a warm start).
        sds_lr: sds: AdamW learning rate of the implicit image's network.
        sds_weight_decay: sds: AdamW weight decay.
        sds_image_weight: sds: weight of the image model's SDS gradient against the audio model's (lambda 0.4).
        sds_crops: sds with a pixel model: random overlapping square crops per step, averaged.
        sds_crop_size: sds with a pixel model: the crops' side in pixels of the spectrogram (256).
        sds_t_min: sds: smallest timestep drawn, as a fraction of the training steps.
        sds_t_max: sds: largest timestep drawn, as a fraction of the training steps.
        sds_fourier_features: sds: random Fourier features of the pixel coordinates (sin and cos of each).
        sds_fourier_scale: sds: standard deviation of the Fourier frequencies (cycles per image side).
        sds_hidden: sds: width of the implicit image's MLP (3 hidden layers).
        sds_checkpoint_every: sds: steps between checkpoints of the implicit image (resumable).
        sds_checkpoint_dir: sds: folder of the checkpoints ("": the sample command uses
            OUT/.sds-checkpoints; from Python, none are written).
        colorize: also colour the spectrogram with the pixel model (Factorized Diffusion): color.png
            (its greyscale is the spectrogram) and a colour playhead video; needs pixel_model.
        colorize_steps: colorize: DDPM steps of the pixel model (30).
        colorize_start_step: colorize: the step it starts from, the spectrogram noised to it (7 of 30).
        colorize_guidance_scale: colorize: classifier-free guidance scale of the pixel model.
        colorize_prompt: colorize: the pixel model's prompt; {} stands for the image prompt.
    """

    method: str = "denoise"
    steps: int = 100
    image_guidance_scale: float | None = None
    audio_guidance_scale: float | None = None
    t_image: float = 0.9
    t_audio: float = 1.0
    audio_weight: float = 0.5
    negative_image_prompt: str = ""
    negative_audio_prompt: str = ""
    height: int = CANVAS.height
    width: int = CANVAS.width
    crop_padding: bool = True
    griffin_lim_iters: int = 64
    imprint_rho: float = 0.5
    imprint_image_steps: int = 50
    imprint_inverse_image: bool = False
    tts: str = "festival"
    controlnet_model: str = "lllyasviel/sd-controlnet-canny"
    controlnet_scale: float = 1.0
    canny_low: int = 100
    canny_high: int = 200
    reference_weight: float = 0.5
    t_reference: float = 1.0
    reference_start: float = 1.0
    sds_steps: int = 40000
    sds_audio_only_steps: int = 5000
    sds_lr: float = 1e-4
    sds_weight_decay: float = 1e-3
    sds_image_weight: float = 0.4
    sds_crops: int = 8
    sds_crop_size: int = CANVAS.height
    sds_t_min: float = 0.02
    sds_t_max: float = 0.98
    sds_fourier_features: int = 256
    sds_fourier_scale: float = 10.0
    sds_hidden: int = 256
    sds_checkpoint_every: int = 1000
    sds_checkpoint_dir: str = ""
    colorize: bool = False
    colorize_steps: int = 30
    colorize_start_step: int = 7
    colorize_guidance_scale: float = 10.0
    colorize_prompt: str = "a colorful photo of {}"

    def validate(self) -> SamplerSettings:
        """One :class:`ConfigError` naming the first bad value (needs no model); returns ``self``.

        Guidance scales outside :data:`GUIDANCE_RANGE` are accepted with a :class:`SpeakimgWarning`.
        """
        from speakimg.sampling.methods import get_method

        method = get_method(self.method)
        _check_int("steps", self.steps, 1)
        for name in ("image_guidance_scale", "audio_guidance_scale"):
            default = method.image_guidance_scale if name.startswith("image") else None
            high = max(GUIDANCE_RANGE[1], 2 * (default or method.guidance_scale))  # SDS: 80 is the paper's
            if getattr(self, name) is not None:
                check_guidance(name, getattr(self, name), high)
        check_fraction("t_image", self.t_image)
        check_fraction("t_audio", self.t_audio)
        _check_unit("audio_weight", self.audio_weight)
        for name in ("negative_image_prompt", "negative_audio_prompt"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        factor = CANVAS.latent_factor
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % factor:
                raise ConfigError(
                    f"{name} must be a positive multiple of {factor} (the VAE's downsampling), got {value!r}"
                )
        if self.height != CANVAS.height:
            raise ConfigError(
                f"height={self.height} but the spectrogram has {CANVAS.height} mel bins: use height={CANVAS.height}"
            )
        if not isinstance(self.crop_padding, bool):
            raise ConfigError(f"crop_padding must be true or false, got {self.crop_padding!r}")
        if self.crop_padding and self.width <= CANVAS.crop_columns:
            raise ConfigError(
                f"width={self.width} is too small to crop {CANVAS.crop_columns} columns: set crop_padding false"
            )
        _check_int("griffin_lim_iters", self.griffin_lim_iters, 1)
        _check_unit("imprint_rho", self.imprint_rho)
        _check_int("imprint_image_steps", self.imprint_image_steps, 1)
        if not isinstance(self.imprint_inverse_image, bool):
            raise ConfigError(f"imprint_inverse_image must be true or false, got {self.imprint_inverse_image!r}")
        self._validate_extensions()
        self._validate_sds()
        self._validate_colorize()
        return self

    def _validate_extensions(self) -> None:
        """The settings of the controlnet and reference methods (and the TTS voice they use)."""
        # the engine itself is checked by speakimg.tts when a method uses it (importing it here would import torch)
        if not isinstance(self.tts, str) or not self.tts.strip() or "," in self.tts:
            raise ConfigError(f"tts must be one voice spec such as 'festival' or 'espeak', got {self.tts!r}")
        if not isinstance(self.controlnet_model, str) or not self.controlnet_model.strip():
            raise ConfigError(f"controlnet_model must be a folder or hub id, got {self.controlnet_model!r}")
        scale = self.controlnet_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= scale <= 10.0:
            raise ConfigError(f"controlnet_scale must be a number in [0, 10] (1.0: diffusers' default), got {scale!r}")
        for name in ("canny_low", "canny_high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise ConfigError(f"{name} must be an int in [0, 255] (thresholds on a 0-255 image), got {value!r}")
        if self.canny_low > self.canny_high:
            raise ConfigError(f"canny_low={self.canny_low} is above canny_high={self.canny_high}: swap them")
        _check_unit("reference_weight", self.reference_weight)
        check_fraction("t_reference", self.t_reference)
        check_fraction("reference_start", self.reference_start)

    def _validate_sds(self) -> None:
        for name in ("sds_steps", "sds_crops", "sds_fourier_features", "sds_hidden", "sds_checkpoint_every"):
            _check_int(name, getattr(self, name), 1)
        _check_int("sds_audio_only_steps", self.sds_audio_only_steps, 0)
        _check_int("sds_crop_size", self.sds_crop_size, 8)
        for name in ("sds_lr", "sds_weight_decay", "sds_image_weight", "sds_fourier_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        _check_unit("sds_t_min", self.sds_t_min)
        _check_unit("sds_t_max", self.sds_t_max)
        if not self.sds_t_min < self.sds_t_max:
            raise ConfigError(f"sds_t_min={self.sds_t_min} must be below sds_t_max={self.sds_t_max}")
        if self.sds_crop_size > self.height:
            raise ConfigError(f"sds_crop_size={self.sds_crop_size} is larger than the picture's height {self.height}")
        if not isinstance(self.sds_checkpoint_dir, str):
            raise ConfigError(f'sds_checkpoint_dir must be a folder name (or ""), got {self.sds_checkpoint_dir!r}')

    def _validate_colorize(self) -> None:
        if not isinstance(self.colorize, bool):
            raise ConfigError(f"colorize must be true or false, got {self.colorize!r}")
        _check_int("colorize_steps", self.colorize_steps, 1)
        _check_int("colorize_start_step", self.colorize_start_step, 0)
        if self.colorize_start_step >= self.colorize_steps:
            raise ConfigError(
                f"colorize_start_step={self.colorize_start_step} must be below colorize_steps={self.colorize_steps} "
                "(the paper: step 7 of 30)"
            )
        check_guidance("colorize_guidance_scale", self.colorize_guidance_scale)
        if not isinstance(self.colorize_prompt, str) or self.colorize_prompt.count("{}") != 1:
            raise ConfigError(
                f"colorize_prompt must be a string with one {{}} for the image prompt, got {self.colorize_prompt!r}"
            )

    def resolved(self) -> SamplerSettings:
        """Validated, with every "null = the method's default" filled in: the values actually used."""
        from speakimg.sampling.methods import get_method

        self.validate()
        method = get_method(self.method)
        default = method.guidance_scale
        image_default = default if method.image_guidance_scale is None else method.image_guidance_scale
        image, audio = self.image_guidance_scale, self.audio_guidance_scale
        return replace(
            self,
            image_guidance_scale=float(image_default if image is None else image),
            audio_guidance_scale=float(default if audio is None else audio),
            t_image=float(self.t_image),
            t_audio=float(self.t_audio),
            audio_weight=float(self.audio_weight),
            imprint_rho=float(self.imprint_rho),
            controlnet_scale=float(self.controlnet_scale),
            reference_weight=float(self.reference_weight),
            t_reference=float(self.t_reference),
            reference_start=float(self.reference_start),
            **{name: float(getattr(self, name)) for name in _FLOAT_FIELDS},
        )

    def audio_only(self) -> SamplerSettings:
        """The audio model alone: its weight is 1 at every step, so the image model is never run."""
        return replace(self, audio_weight=1.0, t_audio=1.0, t_image=1.0, negative_image_prompt="")

    def image_only(self) -> SamplerSettings:
        """The image model alone: the audio model is never run."""
        return replace(self, audio_weight=0.0, t_image=1.0, t_audio=1.0, negative_audio_prompt="")


@dataclass
class PipelineModels:
    """The models a sample is made with (each a local folder, a hub id, or a ``tiny:``/``real:`` reference).

    Args:
        image_model: SD-1.5-layout folder or hub id (null: Stable Diffusion 1.5).
        audio_model: Auffusion-layout folder or hub id (sound captions), or a speech model folder exported
            by speakimg (sentences); null: Auffusion.
        vocoder: HiFi-GAN folder or hub id, or ``griffin-lim``; null: the audio model's ``vocoder/``
            (Griffin-Lim when it has none).
        pixel_model: DeepFloyd IF stage-I folder or hub id (``DeepFloyd/IF-I-M-v1.0``), for the image side
            of sds and for colorize; null: none (sds then uses the image model's latent SDS).
    """

    image_model: str | None = None
    audio_model: str | None = None
    vocoder: str | None = None
    pixel_model: str | None = None


@dataclass
class SampleSettings:
    """Everything that determines one sample (besides the device and dtype).

    Its flat dictionary (:meth:`to_dict`: prompts, seed, models, sampler settings side by side) is
    ``sample.json["settings"]``; :meth:`from_dict` reads it back (``--from-json``).
    """

    image_prompt: str
    audio_prompt: str
    seed: int = 0
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    models: PipelineModels = field(default_factory=PipelineModels)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleSettings:
        """From the flat dictionary of :meth:`to_dict` (older files' ``null`` guidance means the default)."""
        return from_flat(cls, data, "sample settings")

    def to_dict(self) -> dict[str, Any]:
        """The flat dictionary, with the sampler settings actually used (:meth:`SamplerSettings.resolved`)."""
        return to_flat(replace(self, sampler=self.sampler.resolved()))

    def model_key(self) -> tuple:
        """What needs another pipeline when it changes."""
        return (*asdict(self.models).values(), self.sampler.griffin_lim_iters)

    def call_key(self) -> tuple:
        """What the samples of one batched call share: every sampler setting."""
        return tuple(asdict(self.sampler.resolved()).values())


# --------------------------------------------------------------------------------- flat layouts
T = TypeVar("T")


def _nested(cls: type) -> dict[str, type]:
    """The fields of dataclass ``cls`` that are dataclasses themselves (name -> class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if is_dataclass(hints[f.name])}


def to_flat(obj: Any) -> dict[str, Any]:
    """A dataclass as one flat dictionary: the fields of nested dataclasses stand in their place."""
    nested = _nested(type(obj))
    flat: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        flat.update(to_flat(value) if f.name in nested else {f.name: value})
    return flat


def from_flat(cls: type[T], data: dict[str, Any], what: str = "settings") -> T:
    """The dataclass ``cls`` from a flat dictionary (:func:`to_flat`); unknown keys are one error."""
    data = dict(data)
    nested = _nested(cls)
    known = [f.name for f in fields(cls) if f.name not in nested]
    known += [f.name for sub in nested.values() for f in fields(sub)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; known: {sorted(known)}")
    kwargs = {name: from_flat(sub, {f.name: data.pop(f.name) for f in fields(sub) if f.name in data}, what)
              for name, sub in nested.items()}  # fmt: skip
    try:
        return cls(**kwargs, **data)
    except TypeError as error:  # a missing required key
        raise ConfigError(f"{what}: {error}") from None


def settings_table(cls: type = SamplerSettings) -> str:
    """The markdown table of ``cls``'s fields (name, default, meaning from the docstring), as in the docs."""
    import inspect
    import re

    doc = inspect.getdoc(cls) or ""
    args = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    meanings = {}
    for match in re.finditer(r"^    (\w+): (.*?)(?=^    \w+: |\Z)", args, re.S | re.M):
        meanings[match.group(1)] = " ".join(match.group(2).split()).replace("``", "`")
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for f in fields(cls):
        default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        shown = json.dumps(default) if isinstance(default, (str, bool)) or default is None else repr(default)
        rows.append(f"| `{f.name}` | `{shown}` | {meanings.get(f.name, '')} |")
    return "\n".join(rows) + "\n"
