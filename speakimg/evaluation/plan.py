"""What an evaluation samples and scores: rows (what the CSV holds) and units (what the pipeline makes).

A **row** is one (kind, image prompt, audio prompt, seed) with its scores. A **unit** is one sample
the pipeline makes; it is scored for one or more rows:

- ``combined``: both models (the method). One unit per (image prompt, audio prompt, seed) = one row.
- ``audio_only``: the audio model alone (``audio_weight=1``, ``t_audio=1``: the image model's weight
  is 0 at every step, so it is never run). The sample depends only on (audio prompt, seed): one unit
  per (audio prompt, seed), scored against every image prompt (its CLIP score is the "how much does
  sound alone look like the picture" reference) -> one row per image prompt.
- ``image_only``: the image model alone (``audio_weight=0``, ``t_image=1``). One unit per (image
  prompt, seed), transcribed once, scored against every audio prompt -> one row per audio prompt.
- any other method of the registry named in the config's ``methods`` (``imprint``, ``controlnet``,
  ``reference``...): like ``combined`` with that method; the row's kind is the method's name.

All kinds use the same seeds, so a reference starts from the same noise z_T as the combined
samples it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from speakimg.sampling import SampleDirs, SampleSettings

__all__ = ["KINDS", "Row", "Unit", "kind_settings", "plan_units"]

KINDS: tuple[str, ...] = ("combined", "audio_only", "image_only")
KIND_TITLES = {
    "combined": "combined (both models)",
    "audio_only": "audio model alone",
    "image_only": "image model alone",
}


@dataclass(frozen=True)
class Row:
    """The identity of one CSV row."""

    kind: str
    image_index: int
    audio_index: int
    image_prompt: str
    audio_prompt: str
    seed: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What a resumed run matches rows on (the settings hash is the same for the whole CSV)."""
        return (self.kind, self.image_prompt, self.audio_prompt, self.seed)


@dataclass
class Unit:
    """One sample to make, the rows it is scored for, and where its media go (``None``: no media)."""

    kind: str
    settings: SampleSettings
    rows: list[Row] = field(default_factory=list)
    folder: Path | None = None


def kind_settings(base: SampleSettings, kind: str, image_prompt: str, audio_prompt: str, seed: int) -> SampleSettings:
    """The pipeline settings of a sample of ``kind`` (the references change only the weights).

    ``audio_only``: :meth:`SamplerSettings.audio_only` (no image prompt: the image model is not run);
    ``image_only``: :meth:`SamplerSettings.image_only` (no audio prompt). The references are combined
    denoising with one model's weight 0, whatever the method of the combined samples (with the same
    steps and guidance scales). Any other kind is the name of a sampling method: the combined
    sample's settings with that method.
    """
    if kind == "combined":
        return replace(base, image_prompt=image_prompt, audio_prompt=audio_prompt, seed=seed)
    if kind not in KINDS:  # another method, side by side with the combined rows
        sampler = replace(base.sampler, method=kind)
        return replace(base, image_prompt=image_prompt, audio_prompt=audio_prompt, seed=seed, sampler=sampler)
    reference = replace(base.sampler.resolved(), method="denoise")
    if kind == "audio_only":
        return replace(base, image_prompt="", audio_prompt=audio_prompt, seed=seed, sampler=reference.audio_only())
    if kind == "image_only":
        return replace(base, image_prompt=image_prompt, audio_prompt="", seed=seed, sampler=reference.image_only())


def plan_units(
    base: SampleSettings,
    image_prompts: list[str],
    audio_prompts: list[str],
    seeds: list[int],
    *,
    references: bool,
    media_root: Path,
    save_media: int | None,
    methods: Sequence[str] = (),
) -> list[Unit]:
    """Every unit of an evaluation, in order: kinds, then seeds, then image prompts, then audio prompts.

    The first ``save_media`` units of each kind (all when ``None``) get a media folder:
    ``media_root/combined/<image>__<audio>/<seed>/``, ``media_root/audio_only/<audio>/<seed>/``,
    ``media_root/image_only/<image>/<seed>/``; the kinds of ``methods`` (other sampling methods, after
    ``combined``): ``media_root/<method>/<image>__<audio>/<seed>-<method>/``.
    """
    dirs = SampleDirs(media_root / "combined")  # one slug table: the same prompt has the same slug everywhere
    units: list[Unit] = []
    kinds = [KINDS[0], *methods, *(KINDS[1:] if references else ())]
    for kind in kinds:
        made: list[Unit] = []
        for seed in seeds:
            if kind not in KINDS[1:]:  # combined, or another method
                for i, image in enumerate(image_prompts):
                    for a, audio in enumerate(audio_prompts):
                        settings = kind_settings(base, kind, image, audio, seed)
                        unit = Unit(kind, settings, [Row(kind, i, a, image, audio, seed)])
                        folder = dirs(settings)
                        unit.folder = (
                            folder if kind == "combined" else media_root / kind / folder.parent.name / folder.name
                        )
                        made.append(unit)
            elif kind == "audio_only":
                for a, audio in enumerate(audio_prompts):
                    rows = [Row(kind, i, a, image, audio, seed) for i, image in enumerate(image_prompts)]
                    unit = Unit(kind, kind_settings(base, kind, "", audio, seed), rows)
                    unit.folder = media_root / kind / dirs.slug(audio) / str(seed)
                    made.append(unit)
            else:
                for i, image in enumerate(image_prompts):
                    rows = [Row(kind, i, a, image, audio, seed) for a, audio in enumerate(audio_prompts)]
                    unit = Unit(kind, kind_settings(base, kind, image, "", seed), rows)
                    unit.folder = media_root / kind / dirs.slug(image) / str(seed)
                    made.append(unit)
        limit = len(made) if save_media is None else save_media
        for unit in made[limit:]:
            unit.folder = None
        units.extend(made)
    return units
