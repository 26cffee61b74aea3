"""``python -m speakimg.sample``: images that sound / speak, written as files you can look at and play.

    python -m speakimg.sample --image-prompt "a painting of a lighthouse, grayscale" \\
        --audio-prompt "The sea was calm and the night was clear." --audio-model path/to/speech-model \\
        --out outputs/samples --n 4 --seed 0
    python -m speakimg.sample --grid image_prompts.txt audio_prompts.txt --out outputs/grid   # every pair
    python -m speakimg.sample --from-json outputs/samples/<pair>/0/sample.json --out outputs/again

Each sample goes to ``OUT/<image-prompt-slug>__<audio-prompt-slug>/<seed>/`` (``<seed>-imprint/`` for
``--method imprint``): ``img.png`` (the picture), ``spec.png`` (the spectrogram: what is heard) and
``spec_color.png``, ``audio.wav`` (16 kHz), ``video.mp4`` (the spectrogram with a playhead, audio
muxed), ``log_mel.npy``, ``latents.npy`` (z_0) and ``sample.json`` (every setting, the seed, the
models, the vocoder cycle error and timings). Sample ``k`` of a prompt pair uses seed ``seed + k``
and its own generator, so a sample does not depend on the batch it was made in, and
``--from-json`` regenerates it exactly (same device and dtype).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from speakimg.errors import ConfigError

log = logging.getLogger("speakimg.sample")

SAMPLE_JSON = "sample.json"


@dataclass
class SampleSettings:
    """Everything that determines a sample (besides the device and dtype): ``sample.json["settings"]``."""

    image_prompt: str
    audio_prompt: str
    seed: int = 0
    method: str = "denoise"
    steps: int = 100
    image_guidance_scale: float | None = None  # None: 10 (denoise) / 7.5 (imprint)
    audio_guidance_scale: float | None = None
    t_image: float = 0.9
    t_audio: float = 1.0
    audio_weight: float = 0.5
    negative_image_prompt: str = ""
    negative_audio_prompt: str = ""
    height: int = 256
    width: int = 1024
    crop_padding: bool = True
    image_model: str | None = None  # None: the pipeline's default
    audio_model: str | None = None
    vocoder: str | None = None  # None: the audio model's vocoder/, else Griffin-Lim
    griffin_lim_iters: int = 64
    imprint_rho: float = 0.5
    imprint_image_steps: int = 50

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown sample settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def guidance(self) -> tuple[float, float]:
        default = 7.5 if self.method == "imprint" else 10.0
        image = self.image_guidance_scale if self.image_guidance_scale is not None else default
        audio = self.audio_guidance_scale if self.audio_guidance_scale is not None else default
        return image, audio

    def model_key(self) -> tuple:
        """Settings that need another pipeline when they change."""
        return (self.image_model, self.audio_model, self.vocoder, self.griffin_lim_iters)

    def call_key(self) -> tuple:
        """Settings shared by the samples of one batched pipeline call."""
        skip = {"image_prompt", "audio_prompt", "seed"}
        return tuple(v for k, v in asdict(self).items() if k not in skip)


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
        self.root = root
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
        leaf = str(settings.seed) if settings.method == "denoise" else f"{settings.seed}-{settings.method}"
        return self.root / pair / leaf


def select_device(name: str):
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``... as a ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def select_dtype(name: str, device) -> Any:
    """``auto`` (bfloat16 on CUDA, float32 elsewhere), ``float32``, ``bfloat16``, ``float16`` as a torch dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    table.update({"float16": torch.float16, "fp16": torch.float16})
    if name not in table:
        raise ConfigError(f"--dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return table[name]


def load_pipeline(settings: SampleSettings, device, dtype):
    """The pipeline for ``settings``' models and vocoder, on ``device`` in ``dtype``."""
    from speakimg.pipeline import DEFAULT_AUDIO_MODEL, DEFAULT_IMAGE_MODEL, ImagesThatSpeakPipeline
    from speakimg.vocoder import GRIFFIN_LIM, GriffinLimVocoder

    vocoder: Any = settings.vocoder
    if vocoder is not None and str(vocoder).lower() in GRIFFIN_LIM:
        vocoder = GriffinLimVocoder(n_iter=settings.griffin_lim_iters)
    pipe = ImagesThatSpeakPipeline.from_pretrained(
        settings.image_model or DEFAULT_IMAGE_MODEL,
        settings.audio_model or DEFAULT_AUDIO_MODEL,
        vocoder,
        torch_dtype=dtype,
        device=device,
    )
    if isinstance(pipe.vocoder, GriffinLimVocoder):
        pipe.vocoder.n_iter = settings.griffin_lim_iters
        pipe.sources["vocoder"] = "griffin-lim"
    return pipe


def run_batch(pipe, batch: list[SampleSettings]):
    """One pipeline call for samples that share every setting but the prompts and seeds."""
    import torch

    first = batch[0]
    image_scale, audio_scale = first.guidance()
    generators = [torch.Generator("cpu").manual_seed(s.seed) for s in batch]
    common = dict(
        height=first.height,
        width=first.width,
        negative_image_prompt=first.negative_image_prompt,
        negative_audio_prompt=first.negative_audio_prompt,
        generator=generators,
        output_type="pt",
        crop_padding=first.crop_padding,
    )
    images = [s.image_prompt for s in batch]
    audios = [s.audio_prompt for s in batch]
    if first.method == "imprint":
        return pipe.imprint(
            images,
            audios,
            image_steps=first.imprint_image_steps,
            audio_steps=first.steps,
            image_guidance_scale=image_scale,
            audio_guidance_scale=audio_scale,
            rho=first.imprint_rho,
            **common,
        )
    if first.method != "denoise":
        raise ConfigError(f"method must be 'denoise' or 'imprint', got {first.method!r}")
    return pipe(
        images,
        audios,
        num_inference_steps=first.steps,
        image_guidance_scale=image_scale,
        audio_guidance_scale=audio_scale,
        t_image=first.t_image,
        t_audio=first.t_audio,
        audio_weight=first.audio_weight,
        **common,
    )


def write_sample(
    folder: Path,
    settings: SampleSettings,
    output,
    index: int,
    pipe,
    timings: dict[str, float],
    video: bool = True,
    fps: int = 25,
    cycle_error: float | None = None,
) -> dict[str, Any]:
    """Write one sample's files and its ``sample.json``; returns the JSON record.

    ``cycle_error``: the sample's vocoder cycle error if already computed (else it is computed here).
    """
    import speakimg
    from speakimg.audio import save_audio
    from speakimg.media import save_image, save_spectrogram
    from speakimg.pipeline import playhead_video, vocoder_cycle_error

    folder.mkdir(parents=True, exist_ok=True)
    spectrogram = output.spectrograms[index].float().cpu()
    log_mel = output.log_mels[index].float().cpu()
    audio = output.audios[index].float().cpu()
    files = {
        "image": save_image(folder / "img.png", output.images[index]),
        "spectrogram": save_image(folder / "spec.png", spectrogram),
        "spectrogram_color": save_spectrogram(folder / "spec_color.png", spectrogram),
        "audio": save_audio(folder / "audio.wav", audio, output.sample_rate),
    }
    np.save(folder / "log_mel.npy", log_mel.numpy())
    files["log_mel"] = folder / "log_mel.npy"
    if output.latents is not None:
        np.save(folder / "latents.npy", output.latents[index].float().cpu().numpy())
        files["latents"] = folder / "latents.npy"
    timings = dict(timings)
    if cycle_error is None:
        start = time.perf_counter()
        cycle_error = float(vocoder_cycle_error(log_mel, audio, pipe.mel_config))
        timings["cycle_check_s"] = time.perf_counter() - start
    cycle = float(cycle_error)
    if video:
        start = time.perf_counter()
        files["video"] = playhead_video(files["spectrogram"], files["audio"], folder / "video.mp4", fps=fps)
        timings["video_s"] = time.perf_counter() - start
    record = {
        "speakimg_version": speakimg.__version__,
        "settings": asdict(settings),
        "models": dict(pipe.sources),
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).replace("torch.", ""),
        "scheduler": {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")},
        "noise": (
            "z_T = torch.randn([1, C, H/8, W/8], generator=torch.Generator('cpu').manual_seed(seed)); "
            "imprint draws the picture's z_T, then the spectrogram's"
        ),
        "sample_rate": output.sample_rate,
        "num_samples": int(audio.shape[-1]),
        "duration_s": audio.shape[-1] / output.sample_rate,
        "image_size": list(output.images[index].shape[-2:]),
        "vocoder_cycle_error": cycle,
        "timings": timings,
        "files": {k: Path(v).name for k, v in files.items()},
        "regenerate": f"python -m speakimg.sample --from-json {folder / SAMPLE_JSON} --out OUT",
    }
    (folder / SAMPLE_JSON).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def generate(
    samples: list[SampleSettings],
    out: Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 4,
    compile: bool = False,
    video: bool = True,
    fps: int = 25,
) -> list[Path]:
    """Generate and write every sample; returns their folders (in the order of ``samples``)."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    torch_device = select_device(device)
    torch_dtype = select_dtype(dtype, torch_device)
    dirs = SampleDirs(out)
    folders = [dirs(s) for s in samples]
    done: list[Path] = []
    pipes: dict[tuple, Any] = {}
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.model_key(), s.call_key()), []).append(i)
    progress = tqdm(total=len(samples), desc="samples", unit="sample")
    for (model_key, _), indices in groups.items():
        if model_key not in pipes:
            pipes.clear()  # one pipeline in memory at a time
            pipes[model_key] = load_pipeline(samples[indices[0]], torch_device, torch_dtype)
            if compile:
                pipes[model_key].compile()
        pipe = pipes[model_key]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            began = time.perf_counter()
            output = run_batch(pipe, [samples[i] for i in chunk])
            seconds = time.perf_counter() - began
            timing = {"batch_size": len(chunk), "pipeline_s_per_sample": seconds / len(chunk)}
            for j, i in enumerate(chunk):
                record = write_sample(folders[i], samples[i], output, j, pipe, timing, video=video, fps=fps)
                log.info("%s  (cycle error %.3f)", folders[i], record["vocoder_cycle_error"])
                done.append(folders[i])
                progress.update()
    progress.close()
    return [f for f in folders if f in done]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m speakimg.sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = p.add_argument_group("what to sample")
    what.add_argument("--image-prompt", help="what the picture shows")
    what.add_argument("--audio-prompt", help="what it sounds like: a sound caption, or the sentence to speak")
    what.add_argument(
        "--grid",
        nargs=2,
        metavar=("IMAGE_PROMPTS_TXT", "AUDIO_PROMPTS_TXT"),
        help="sample every pair of two prompt files",
    )
    what.add_argument("--from-json", type=Path, help="regenerate the sample described by a sample.json")
    what.add_argument("--n", type=int, default=1, help="samples per prompt pair (seeds seed .. seed+n-1)")
    what.add_argument("--seed", type=int, default=0)
    what.add_argument("--method", choices=["denoise", "imprint"], default="denoise", help="the method, or the baseline")
    method = p.add_argument_group("method (METHOD.md section 5)")
    method.add_argument("--steps", type=int, default=100, help="DDIM steps (imprint: the spectrogram's)")
    method.add_argument("--image-guidance-scale", type=float, help="CFG scale of the image model (10; imprint 7.5)")
    method.add_argument("--audio-guidance-scale", type=float, help="CFG scale of the audio model (10; imprint 7.5)")
    method.add_argument(
        "--t-image", type=float, default=0.9, help="fraction of the steps the image model takes part in"
    )
    method.add_argument(
        "--t-audio", type=float, default=1.0, help="fraction of the steps the audio model takes part in"
    )
    method.add_argument("--audio-weight", type=float, default=0.5, help="weight of the audio estimate once both run")
    method.add_argument("--negative-image-prompt", default="")
    method.add_argument("--negative-audio-prompt", default="")
    method.add_argument("--height", type=int, default=256)
    method.add_argument("--width", type=int, default=1024, help="1024 columns = 10.24 s")
    method.add_argument("--no-crop", action="store_true", help="keep the last 32 columns (the padding band)")
    method.add_argument("--imprint-rho", type=float, default=0.5, help="imprint strength")
    method.add_argument("--imprint-image-steps", type=int, default=50, help="imprint: the picture's DDIM steps")
    models = p.add_argument_group("models")
    models.add_argument("--image-model", help="SD-1.5-layout folder or hub id (default: Stable Diffusion 1.5)")
    models.add_argument("--audio-model", help="Auffusion folder / hub id, or an exported speech model folder")
    models.add_argument("--vocoder", help="HiFi-GAN folder / hub id, or griffin-lim (default: the audio model's)")
    models.add_argument("--griffin-lim-iters", type=int, default=64)
    run = p.add_argument_group("running")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--batch-size", type=int, default=4, help="samples per pipeline call")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument(
        "--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    run.add_argument("--compile", action="store_true", help="torch.compile the UNets (pays off for many samples)")
    run.add_argument("--no-video", action="store_true", help="skip video.mp4 (no ffmpeg needed)")
    run.add_argument("--fps", type=int, default=25, help="video frame rate")
    return p


def samples_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[SampleSettings]:
    """The samples a command line asks for."""
    if args.from_json is not None:
        if not args.from_json.is_file():
            parser.error(f"--from-json {args.from_json}: no such file")
        record = json.loads(args.from_json.read_text())
        if "settings" not in record:
            parser.error(f"{args.from_json} is not a speakimg sample.json (no 'settings')")
        return [SampleSettings.from_dict(record["settings"])]
    if args.grid:
        pairs = [(i, a) for i in read_prompts(args.grid[0]) for a in read_prompts(args.grid[1])]
    elif args.image_prompt is not None and args.audio_prompt is not None:
        pairs = [(args.image_prompt, args.audio_prompt)]
    else:
        parser.error("pass --image-prompt and --audio-prompt, or --grid IMAGE_PROMPTS AUDIO_PROMPTS, or --from-json")
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    shared = dict(
        method=args.method,
        steps=args.steps,
        image_guidance_scale=args.image_guidance_scale,
        audio_guidance_scale=args.audio_guidance_scale,
        t_image=args.t_image,
        t_audio=args.t_audio,
        audio_weight=args.audio_weight,
        negative_image_prompt=args.negative_image_prompt,
        negative_audio_prompt=args.negative_audio_prompt,
        height=args.height,
        width=args.width,
        crop_padding=not args.no_crop,
        image_model=args.image_model,
        audio_model=args.audio_model,
        vocoder=args.vocoder,
        griffin_lim_iters=args.griffin_lim_iters,
        imprint_rho=args.imprint_rho,
        imprint_image_steps=args.imprint_image_steps,
    )
    return [
        SampleSettings(image_prompt=image, audio_prompt=audio, seed=args.seed + k, **shared)
        for image, audio in pairs
        for k in range(args.n)
    ]


def run(argv: list[str] | None = None) -> list[Path]:
    """Run the CLI on ``argv`` (default ``sys.argv``); returns the sample folders written."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    samples = samples_from_args(args, parser)
    if not args.no_video:
        from speakimg.pipeline.video import require_program

        require_program("ffmpeg")  # fail before sampling, not after
    start = time.time()
    folders = generate(
        samples,
        args.out,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        compile=args.compile,
        video=not args.no_video,
        fps=args.fps,
    )
    log.info("wrote %d sample(s) under %s in %.1f s", len(folders), args.out, time.time() - start)
    return folders


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``speakimg-sample``): exit status 0 when every sample was written."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
