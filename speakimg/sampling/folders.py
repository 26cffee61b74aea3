"""The sample-folder format: where a sample goes, what it holds, and its ``sample.json``.

``OUT/<image-prompt-slug>__<audio-prompt-slug>/<seed>/`` (``<seed>-<method>/`` for methods other than
``denoise``) holds ``img.png``, ``spec.png``, ``spec_color.png``, ``audio.wav``, ``video.mp4`` (optional),
``log_mel.npy``, ``latents.npy`` (methods with a latent), ``color.png`` and ``color_video.mp4`` (with
``colorize``) and ``sample.json``. A folder is written
whole under a temporary name and renamed into place (:func:`speakimg.io.atomic_dir`): a reader sees
the old sample or the new one, never a mix of two runs, and a killed run leaves no half folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speakimg.errors import ConfigError, quote
from speakimg.sampling.settings import SampleSettings

__all__ = [
    "SAMPLE_JSON",
    "SampleDirs",
    "check_new_folders",
    "read_prompts",
    "read_sample",
    "slugify",
    "write_sample",
]

SAMPLE_JSON = "sample.json"
NOISE = (
    "z_T = torch.randn([1, C, H/8, W/8], generator=torch.Generator('cpu').manual_seed(seed)); "
    "imprint draws the picture's z_T, then the spectrogram's"
)


def slugify(text: str, max_length: int = 48) -> str:
    """A short file-system-safe name for a prompt (``"A castle, grayscale" -> "a-castle-grayscale"``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    digest = hashlib.sha1(text.encode()).hexdigest()[:6]
    if not slug:
        return f"prompt-{digest}"
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-") + "-" + digest
    return slug


def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a text file, one per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such prompt file (one prompt per line)")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ConfigError(f"{path} holds no prompts (one per line; '#' starts a comment)")
    return prompts


class SampleDirs:
    """``OUT/<image-slug>__<audio-slug>/<seed>/``; two prompts with one slug in a run get distinct folders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._slugs: dict[str, str] = {}

    def slug(self, text: str) -> str:
        """The slug of ``text``, with a hash suffix if another prompt of this run already has it."""
        slug = slugify(text)
        owner = self._slugs.setdefault(slug, text)
        if owner != text:
            slug = f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
        return slug

    def __call__(self, settings: SampleSettings) -> Path:
        pair = f"{self.slug(settings.image_prompt)}__{self.slug(settings.audio_prompt)}"
        method = settings.sampler.method
        leaf = str(settings.seed) if method == "denoise" else f"{settings.seed}-{method}"
        return self.root / pair / leaf


def read_sample(path: str | Path) -> SampleSettings:
    """The settings recorded in a ``sample.json`` (what ``--from-json`` regenerates)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sample.json")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not a readable JSON file ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ConfigError(f"{path} is not a speakimg sample.json (no 'settings')")
    return SampleSettings.from_dict(record["settings"])


def check_new_folders(samples: Sequence[SampleSettings], folders: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before anything is computed, to write a sample twice or over an existing sample folder.

    With ``overwrite`` an existing folder of the same prompts is replaced; one that holds another
    prompt pair (whose slugs are the same) never is.
    """
    seen: dict[Path, SampleSettings] = {}
    for sample, folder in zip(samples, folders, strict=True):
        if folder in seen:
            raise ConfigError(
                f"the prompt pair {quote(sample.image_prompt)} / {quote(sample.audio_prompt)} with seed {sample.seed} "
                f"is asked for twice (both would be written to {folder}): list each pair once"
            )
        seen[folder] = sample
    existing = [(s, f) for f, s in seen.items() if f.exists()]
    if not existing:
        return
    if not overwrite:
        names = ", ".join(str(f) for _, f in existing[:3]) + (
            f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        )
        raise ConfigError(
            f"{len(existing)} sample folder(s) exist already ({names}): nothing was written. Pass --overwrite "
            "(overwrite=True) to replace them, or choose another output folder"
        )
    for sample, folder in existing:
        try:
            old = read_sample(folder / SAMPLE_JSON)
        except ConfigError:
            continue  # not a readable sample: replaced as asked
        if (old.image_prompt, old.audio_prompt) != (sample.image_prompt, sample.audio_prompt):
            raise ConfigError(
                f"{folder} holds the sample of other prompts ({quote(old.image_prompt)} / {quote(old.audio_prompt)}) "
                "whose folder name is the same: it is not replaced; choose another output folder"
            )


def write_sample(
    folder: Path,
    settings: SampleSettings,
    output: Any,
    index: int,
    pipe: Any,
    timings: dict[str, float],
    video: bool = True,
    fps: int = 25,
    cycle_error: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write sample ``index`` of a pipeline ``output`` as one folder (atomically; an old folder is replaced).

    ``cycle_error``: the sample's vocoder cycle error if already computed (else it is computed here).
    ``extra``: more entries of the record (e.g. ``ranking``).
    Returns the ``sample.json`` record.
    """
    import speakimg
    from speakimg.audio import save_audio
    from speakimg.io import atomic_dir, save_npy, write_json
    from speakimg.media import playhead_video, save_image, save_spectrogram
    from speakimg.metrics.cycle import vocoder_cycle_error
    from speakimg.pipeline import DEFAULT_AUDIO_MODEL, DEFAULT_IMAGE_MODEL
    from speakimg.runtime import dtype_name

    folder = Path(folder)
    spectrogram = output.spectrograms[index].float().cpu()
    log_mel = output.log_mels[index].float().cpu()
    audio = output.audios[index].float().cpu()
    timings = dict(timings)
    if cycle_error is None:
        start = time.perf_counter()
        cycle_error = float(vocoder_cycle_error(log_mel, audio, pipe.mel_config))
        timings["cycle_check_s"] = time.perf_counter() - start
    with atomic_dir(folder) as tmp:
        files = {
            "image": save_image(tmp / "img.png", output.images[index]),
            "spectrogram": save_image(tmp / "spec.png", spectrogram),
            "spectrogram_color": save_spectrogram(tmp / "spec_color.png", spectrogram),
            "audio": save_audio(tmp / "audio.wav", audio, output.sample_rate),
            "log_mel": save_npy(tmp / "log_mel.npy", log_mel.numpy()),
        }
        if output.latents is not None:
            files["latents"] = save_npy(tmp / "latents.npy", output.latents[index].float().cpu().numpy())
        colors = getattr(output, "colors", None)
        if colors is not None:  # colorize: the spectrogram coloured by the pixel model (its greyscale)
            files["color"] = save_image(tmp / "color.png", colors[index])
        if video:
            start = time.perf_counter()
            files["video"] = playhead_video(files["spectrogram"], files["audio"], tmp / "video.mp4", fps=fps)
            if colors is not None:
                files["color_video"] = playhead_video(files["color"], files["audio"], tmp / "color_video.mp4", fps=fps)
            timings["video_s"] = time.perf_counter() - start
        models = settings.models
        recorded = settings.to_dict() | {
            "image_model": models.image_model or DEFAULT_IMAGE_MODEL,
            "audio_model": models.audio_model or DEFAULT_AUDIO_MODEL,
        }
        record = {
            "speakimg_version": speakimg.__version__,
            "settings": recorded,
            "models": dict(pipe.sources),
            "device": str(pipe.device),
            "dtype": dtype_name(pipe.dtype),
            "scheduler": {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")},
            "noise": NOISE,
            "sample_rate": output.sample_rate,
            "num_samples": int(audio.shape[-1]),
            "duration_s": audio.shape[-1] / output.sample_rate,
            "image_size": list(output.images[index].shape[-2:]),
            "vocoder_cycle_error": float(cycle_error),
            "timings": timings,
            "files": {key: path.relative_to(tmp).as_posix() for key, path in files.items()},
            "regenerate": f"python -m speakimg.sample --from-json {folder / SAMPLE_JSON} --out OUT",
            **(extra or {}),
        }
        write_json(tmp / SAMPLE_JSON, record)
    return record
