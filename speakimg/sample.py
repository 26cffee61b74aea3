"""``python -m speakimg.sample``: images that sound / speak, written as files you can look at and play.

    python -m speakimg.sample --image-prompt "a painting of a lighthouse, grayscale" \\
        --audio-prompt "The sea was calm and the night was clear." --audio-model path/to/speech-model \\
        --out outputs/samples --n 4 --seed 0
    python -m speakimg.sample --grid image_prompts.txt audio_prompts.txt --out outputs/grid   # every pair
    python -m speakimg.sample --from-json outputs/samples/<pair>/0/sample.json --out outputs/again
    python -m speakimg.sample --image-prompt ... --audio-prompt ... --n 20 --keep 2 --rank clip,wer   # re-rank
    python -m speakimg.sample --method controlnet|reference|imprint ...   # the other methods

Each sample goes to OUT/<image-prompt-slug>__<audio-prompt-slug>/<seed>/ (<seed>-imprint/ for
--method imprint): img.png (the picture), spec.png (the spectrogram: what is heard) and
spec_color.png, audio.wav (16 kHz), video.mp4 (the spectrogram with a playhead, audio muxed),
log_mel.npy, latents.npy (z_0) and sample.json (every setting as used, the seed, the models, the
vocoder cycle error and timings). Sample k of a prompt pair uses seed seed + k and its own
generator, so a sample does not depend on the batch it was made in, and --from-json regenerates it
exactly (same device and dtype). An existing sample folder is never written into unless --overwrite
(which replaces it whole). Options may be spelled with dashes or underscores; the sampler options are
the fields of speakimg.sampling.SamplerSettings (docs/sampling.md). Errors are one line (--debug:
the traceback).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from speakimg import cli
from speakimg.sampling import (
    PipelineModels,
    RerankSettings,
    SamplerSettings,
    SampleSettings,
    from_flat,
    generate,
    read_prompts,
    read_sample,
)

__all__ = ["PROG", "build_parser", "main", "run", "samples_from_args"]

PROG = "python -m speakimg.sample"


def build_parser(settings_class: type[SamplerSettings] = SamplerSettings) -> Any:
    """The parser: what to sample, one option per field of ``settings_class`` and of
    :class:`PipelineModels` (generated from the dataclasses), and how to run."""
    import argparse

    from jsonargparse import ArgumentParser, DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Option types and defaults (jsonargparse), the description as written."""

    parser = ArgumentParser(prog=PROG, description=__doc__, exit_on_error=False, formatter_class=Formatter)
    what = parser.add_argument_group("what to sample")
    what.add_argument("--image_prompt", type=str | None, help="what the picture shows")
    what.add_argument(
        "--audio_prompt", type=str | None, help="what it sounds like: a sound caption, or the sentence to speak"
    )
    what.add_argument("--grid", nargs=2, metavar=("IMAGE_PROMPTS_TXT", "AUDIO_PROMPTS_TXT"),
                      help="sample every pair of two prompt files (one prompt per line, '#' comments)")  # fmt: skip
    what.add_argument("--from_json", type=str | None, help="regenerate the sample described by a sample.json")
    what.add_argument("--n", type=int, default=1, help="samples per prompt pair (seeds seed .. seed+n-1)")
    what.add_argument("--seed", type=int, default=0, help="seed of the first sample of each pair")
    parser.add_class_arguments(settings_class, None, as_group=True)
    parser.add_argument(
        "--no_crop", action="store_true", help="keep the padding band: the same as --crop_padding false"
    )
    parser.add_class_arguments(PipelineModels, None, as_group=True)
    ranking = parser.add_argument_group("re-ranking (speakimg.sampling.rerank)")
    defaults = RerankSettings(keep=1)
    ranking.add_argument("--keep", type=int | None, default=None,
                         help="re-rank: make --n candidates per pair, score them, write only the best KEEP")  # fmt: skip
    ranking.add_argument("--rank", type=str, default=",".join(defaults.metrics),
                         help="metrics to rank by: clip,wer (sentences) or clip,clap (sound captions)")  # fmt: skip
    ranking.add_argument("--rank_rule", type=str, default=defaults.rule,
                         help="intersection (Images that Sound: the top --rank-fraction by every metric first) or rank_sum")  # fmt: skip
    ranking.add_argument(
        "--rank_fraction", type=float, default=defaults.fraction, help="top fraction of the intersection rule"
    )
    ranking.add_argument("--clip", type=str, default=defaults.clip, help="CLIP model of the clip metric")
    ranking.add_argument("--whisper", type=str, default=defaults.whisper, help="Whisper model of the wer metric")
    ranking.add_argument("--clap", type=str, default=defaults.clap, help="CLAP model of the clap metric")
    run = parser.add_argument_group("running")
    run.add_argument("--out", type=str, required=True, help="output folder")
    run.add_argument("--overwrite", action="store_true", help="replace sample folders that exist already (whole)")
    run.add_argument("--batch_size", type=int | None, default=None,
                     help="samples per pipeline call (default: from the free GPU memory; 4 on a CPU)")  # fmt: skip
    run.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--dtype", type=str, default="auto",
                     help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16")  # fmt: skip
    run.add_argument("--compile", action="store_true", help="torch.compile the UNets (pays off for many samples)")
    run.add_argument("--no_video", action="store_true", help="skip video.mp4 (no ffmpeg needed)")
    run.add_argument("--fps", type=int, default=25, help="video frame rate")
    run.add_argument("--debug", action="store_true", help=cli.DEBUG_HELP)
    return parser


def samples_from_args(args: Any, settings_class: type[SamplerSettings] = SamplerSettings) -> list[SampleSettings]:
    """The samples a parsed command line asks for (usage mistakes exit with one ``error:`` line)."""
    if args.from_json is not None:
        if not Path(args.from_json).is_file():
            cli.usage_error(f"--from-json {args.from_json}: no such file", PROG)
        return [read_sample(args.from_json)]
    if args.grid:
        pairs = [(i, a) for i in read_prompts(args.grid[0]) for a in read_prompts(args.grid[1])]
    elif args.image_prompt is not None and args.audio_prompt is not None:
        pairs = [(args.image_prompt, args.audio_prompt)]
    else:
        cli.usage_error(
            "pass --image-prompt and --audio-prompt, or --grid IMAGE_PROMPTS AUDIO_PROMPTS, or --from-json", PROG
        )
    if args.n < 1:
        cli.usage_error(f"--n must be >= 1, got {args.n}", PROG)
    sampler = from_flat(settings_class, {f.name: args[f.name] for f in fields(settings_class)}, "sampler settings")
    if args.no_crop:
        sampler.crop_padding = False
    models = PipelineModels(**{f.name: args[f.name] for f in fields(PipelineModels)})
    return [
        SampleSettings(image, audio, seed=args.seed + k, sampler=sampler, models=models)
        for image, audio in pairs
        for k in range(args.n)
    ]


def run(argv: list[str] | None = None) -> list[Path]:
    """Run the command line on ``argv`` (default ``sys.argv``); returns the sample folders written.

    Every check that needs no model (options, settings, prompt files, existing folders, ffmpeg, offline
    model names) runs before any model loads.
    """
    from jsonargparse import ArgumentError

    parser = build_parser()
    argv = cli.normalize_options(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except ArgumentError as error:
        cli.usage_error(str(error), PROG)
    samples = samples_from_args(args)
    rerank = None
    if args.keep is not None:
        rerank = RerankSettings(
            keep=args.keep,
            metrics=tuple(m.strip() for m in args.rank.split(",")),
            rule=args.rank_rule,
            fraction=args.rank_fraction,
            clip=args.clip,
            whisper=args.whisper,
            clap=args.clap,
        ).validate(args.n)
    return generate(
        samples,
        Path(args.out),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        compile=args.compile,
        video=not args.no_video,
        fps=args.fps,
        overwrite=args.overwrite,
        rerank=rerank,
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``speakimg-sample``): 0 when every sample was written, 2 with one line on error."""
    return cli.main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
