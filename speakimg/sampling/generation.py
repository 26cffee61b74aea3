"""Batched generation: check everything that needs no model, load each pipeline once, sample, write.

:func:`generate` is what ``python -m speakimg.sample`` runs: settings, folders (no overwriting unless
asked), ffmpeg and offline model names are checked before any model loads; samples sharing their
models and sampler settings are made in batches of ``batch_size`` (each with its own CPU generator,
so a sample does not depend on its batch); every sample is written as one folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from speakimg.errors import ConfigError
from speakimg.sampling.folders import SampleDirs, check_new_folders, write_sample
from speakimg.sampling.methods import sample_batch
from speakimg.sampling.rerank import RerankSettings
from speakimg.sampling.settings import PipelineModels, SampleSettings

__all__ = ["check_model_names", "generate", "load_pipeline", "run_batch"]

log = logging.getLogger("speakimg.sampling")


def check_model_names(models: PipelineModels, extra: dict[str, str | None] | None = None) -> None:
    """Fail now, not after minutes of loading, for a model that cannot be found without the network.

    Local paths and registered references (``tiny:``) pass; other names are looked up in the hub
    cache when the hub is offline (``HF_HUB_OFFLINE=1``), and left to the loaders otherwise.
    ``extra``: more models a method loads (role -> name, e.g. ``controlnet_model``).
    """
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        return
    from speakimg.hub import is_local, is_registered_reference, resolve_dir
    from speakimg.vocoder import GRIFFIN_LIM

    named = {
        "image_model": models.image_model,
        "audio_model": models.audio_model,
        "vocoder": models.vocoder,
        "pixel_model": models.pixel_model,
    }
    for role, name in {**named, **(extra or {})}.items():
        if name is None or str(name).lower() in GRIFFIN_LIM or is_local(name) or is_registered_reference(name):
            continue
        try:
            resolve_dir(name)
        except Exception as error:
            raise type(error)(f"{role}: {error}") from None


def load_pipeline(models: PipelineModels, griffin_lim_iters: int, device: Any, dtype: Any) -> Any:
    """The pipeline of ``models`` on ``device`` in ``dtype`` (Griffin-Lim with ``griffin_lim_iters``)."""
    from speakimg.pipeline import DEFAULT_AUDIO_MODEL, DEFAULT_IMAGE_MODEL, ImagesThatSpeakPipeline
    from speakimg.vocoder import GRIFFIN_LIM, GriffinLimVocoder

    vocoder: Any = models.vocoder
    if vocoder is not None and str(vocoder).lower() in GRIFFIN_LIM:
        vocoder = GriffinLimVocoder(n_iter=griffin_lim_iters)
    pipe = ImagesThatSpeakPipeline.from_pretrained(
        models.image_model or DEFAULT_IMAGE_MODEL,
        models.audio_model or DEFAULT_AUDIO_MODEL,
        vocoder,
        torch_dtype=dtype,
        device=device,
    )
    if isinstance(pipe.vocoder, GriffinLimVocoder):
        pipe.vocoder.n_iter = griffin_lim_iters
        pipe.sources["vocoder"] = "griffin-lim"
    if models.pixel_model is not None:
        from speakimg.pipeline.deepfloyd import load_pixel_model

        pipe.pixel_model = load_pixel_model(models.pixel_model, dtype, device)
        pipe.sources["pixel_model"] = models.pixel_model
    if pipe.device.type == "cuda":  # NHWC convolutions: faster with bf16 tensor cores (pipe.compile() does it too)
        import torch

        for unet in (pipe.image_unet, pipe.audio_unet):
            unet.to(memory_format=torch.channels_last)
    return pipe


def run_batch(pipe: Any, batch: Sequence[SampleSettings]) -> Any:
    """One pipeline call for samples that share their sampler settings (each with its seed's generator);
    with ``colorize``, the output's ``colors`` too."""
    import torch

    keys = {s.call_key() for s in batch}
    if len(keys) != 1:
        raise ConfigError("run_batch needs samples that share every sampler setting (group them by call_key())")
    generators = [torch.Generator("cpu").manual_seed(s.seed) for s in batch]
    images = [s.image_prompt for s in batch]
    audios = [s.audio_prompt for s in batch]
    output = sample_batch(pipe, batch[0].sampler, images, audios, generators, output_type="pt")
    if batch[0].sampler.colorize:  # any method: colour its spectrograms with the pixel model
        from speakimg.pipeline.colorization import colorize_output

        output = colorize_output(pipe, batch[0].sampler.resolved(), images, output, generators)
    return output


def _with_checkpoint_dir(sample: SampleSettings, out: Path) -> SampleSettings:
    """SDS samples checkpoint into ``OUT/.sds-checkpoints`` unless told otherwise (resumable long runs)."""
    if sample.sampler.method != "sds" or sample.sampler.sds_checkpoint_dir:
        return sample
    return replace(sample, sampler=replace(sample.sampler, sds_checkpoint_dir=str(out / ".sds-checkpoints")))


def generate(
    samples: Sequence[SampleSettings],
    out: Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    compile: bool = False,
    video: bool = True,
    fps: int = 25,
    overwrite: bool = False,
    rerank: RerankSettings | None = None,
) -> list[Path]:
    """Generate and write every sample under ``out``; returns their folders (in the order of ``samples``).

    With ``rerank`` (:mod:`speakimg.sampling.rerank`) the samples of each prompt pair are candidates:
    all are made and scored, only the best ``rerank.keep`` are written (each ``sample.json`` records
    every candidate's scores and ranks under ``ranking``).

    Under ``torchrun`` / ``srun`` (:mod:`speakimg.sampling.distributed`) each process makes and writes
    a deterministic share of the samples and returns the folders it wrote.

    Raises (before any model loads): :class:`ConfigError` for bad settings or existing folders (unless
    ``overwrite``), :class:`~speakimg.errors.MissingDependencyError` without ffmpeg when ``video``,
    :class:`~speakimg.errors.ModelNotFoundError` for a model that cannot be found offline.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be an int >= 1 or None (from the free memory), got {batch_size!r}")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ConfigError(f"fps must be an int >= 1, got {fps!r}")
    for sample in samples:
        sample.sampler.validate()
    if rerank is not None:
        counts: dict[tuple, int] = {}
        for s in samples:
            counts[_pair(s)] = counts.get(_pair(s), 0) + 1
        rerank.validate(min(counts.values()))
    from speakimg.sampling.distributed import setup_ranks

    ranks = setup_ranks(device)
    dirs = SampleDirs(out)
    folders = [dirs(s) for s in samples]
    ranks.main_first(lambda: check_new_folders(samples, folders, overwrite))  # one rank checks (and replaces)
    if video:
        from speakimg.media import require_program

        require_program("ffmpeg")
    for sample in samples:
        if sample.sampler.colorize and sample.models.pixel_model is None:
            raise ConfigError(
                "colorize needs a DeepFloyd IF stage-I pixel model: pass --pixel-model DeepFloyd/IF-I-M-v1.0 "
                "(gated on the hub: accept its licence first) or a downloaded IFPipeline folder"
            )
    samples = [_with_checkpoint_dir(s, Path(out)) for s in samples]
    for models in {tuple(vars(s.models).values()): s.models for s in samples}.values():
        check_model_names(models)
    controlnets = {s.sampler.controlnet_model for s in samples if s.sampler.method == "controlnet"}
    for name in controlnets:
        check_model_names(PipelineModels(), {"controlnet_model": name})

    from tqdm.auto import tqdm

    from speakimg.runtime import default_batch_size, select_device, select_dtype

    torch_device = ranks.device(device) if ranks.distributed else select_device(device)
    torch_dtype = select_dtype(dtype, torch_device)
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.model_key(), s.call_key()), []).append(i)
    if ranks.distributed:  # under torchrun/srun: every rank makes its share of each group's prompt pairs
        shared = {}  # (whole pairs: the candidates of a re-ranked pair are ranked together)
        for key, indices in groups.items():
            mine = [i for pair in ranks.share(list(_pairs(samples, indices).values())) for i in pair]
            if mine:
                shared[key] = mine
        groups = shared
    pipes: dict[tuple, Any] = {}
    done: set[Path] = set()
    scorer = None
    if rerank is not None:
        from speakimg.sampling.rerank import Scorer

        scorer = Scorer(rerank, torch_device)
    with tqdm(total=sum(map(len, groups.values())), desc="samples", unit="sample") as progress:
        for (model_key, _), indices in groups.items():
            first = samples[indices[0]]
            if model_key not in pipes:
                pipes.clear()  # one pipeline in memory at a time
                pipes[model_key] = load_pipeline(
                    first.models, first.sampler.griffin_lim_iters, torch_device, torch_dtype
                )
                if compile:
                    pipes[model_key].compile()
            pipe = pipes[model_key]
            made: dict[int, tuple[Any, int, dict[str, float]]] = {}
            size = batch_size or default_batch_size(torch_device)
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                began = time.perf_counter()
                output = run_batch(pipe, [samples[i] for i in chunk])
                seconds = time.perf_counter() - began
                timing = {"batch_size": len(chunk), "pipeline_s_per_sample": seconds / len(chunk)}
                for j, i in enumerate(chunk):
                    if scorer is not None:  # written once every candidate of its pair is made and scored
                        made[i] = (output, j, timing)
                        continue
                    record = write_sample(folders[i], samples[i], output, j, pipe, timing, video=video, fps=fps)
                    log.info("%s  (cycle error %.3f)", folders[i], record["vocoder_cycle_error"])
                    done.add(folders[i])
                    progress.update()
            if scorer is not None:
                for candidates in _pairs(samples, indices).values():
                    rankings = _rank(scorer, rerank, samples, candidates, made)
                    for i, ranking in zip(candidates, rankings, strict=True):
                        if ranking["kept"]:
                            output, j, timing = made[i]
                            write_sample(folders[i], samples[i], output, j, pipe, timing, video=video, fps=fps,
                                         extra={"ranking": ranking})  # fmt: skip
                            done.add(folders[i])
                        progress.update()
                made.clear()
    ranks.barrier()
    return [f for f in folders if f in done]


def _pair(sample: SampleSettings) -> tuple:
    return (sample.image_prompt, sample.audio_prompt, sample.model_key(), sample.call_key())


def _pairs(samples: Sequence[SampleSettings], indices: Sequence[int]) -> dict[tuple, list[int]]:
    """The candidates of each prompt pair among ``indices``."""
    pairs: dict[tuple, list[int]] = {}
    for i in indices:
        pairs.setdefault(_pair(samples[i]), []).append(i)
    return pairs


def _rank(scorer: Any, rerank: RerankSettings, samples: Sequence[SampleSettings], candidates: list[int],
          made: dict[int, tuple[Any, int, dict[str, float]]]) -> list[dict[str, Any]]:  # fmt: skip
    """Score the candidates of one pair and rank them; one ``ranking`` record per candidate."""
    import torch

    from speakimg.sampling.rerank import rank_candidates

    images = torch.stack([made[i][0].images[made[i][1]].float().cpu() for i in candidates])
    audios = [made[i][0].audios[made[i][1]].float().cpu() for i in candidates]
    first = samples[candidates[0]]
    scores = scorer(images, audios, first.image_prompt, first.audio_prompt)
    records = rank_candidates(scores, rerank.keep, rerank.rule, rerank.fraction)
    table = [{"seed": samples[i].seed, **record} for i, record in zip(candidates, records, strict=True)]
    settings = {"metrics": list(rerank.metrics), "rule": rerank.rule, "fraction": rerank.fraction,
                "keep": rerank.keep, "n": len(candidates)}  # fmt: skip
    return [{**settings, **record, "candidates": table} for record in table]
