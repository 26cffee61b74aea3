"""The vocoder's learning curve with real ears: HiFi-GAN trained from scratch, WER of its audio against steps.

    python benchmarks/vocoder_intelligibility.py                 # reduced width, CPU (~30 min on 2 cores)
    python benchmarks/vocoder_intelligibility.py --full          # Auffusion's width and batch, for a GPU

1. builds (or resumes) two multi-voice datasets with ``speakimg.data``: ``--train`` sentences (default the
   first 150 of ``configs/data/train_sentences.txt``) and the 20 held-out sentences
   (``configs/data/test_sentences.txt``), each item spoken by one of ``--voices`` (festival, Piper joe,
   espeak: dealt per item by the builder's seed);
2. trains :class:`speakimg.modules.hifigan.HiFiGANModule` from random weights under Lightning on the
   training set (:class:`speakimg.data.vocoder.VocoderDataModule`: random segments and their stored mels);
3. at every step of ``--eval-at`` (batches: one D and one G update each) vocodes the stored log-mel of
   each held-out clip's speech and transcribes it with the real Whisper tiny.en (``real:whisper-tiny.en``,
   faster-whisper int8), beside the ground truth (the stored audio) and Griffin-Lim (32 iterations) of
   the same mels: corpus WER after Whisper's English normaliser, overall and per voice.

Writes ``--out``/curve.json (every WER, transcript and the mel L1 of the held-out clips) and, with
``--plot``, the curve as a PNG (``benchmarks/vocoder_curve.png``). Every figure is measured; steps,
not minutes, are the budget (wall times are recorded beside them, the machine shared or not).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import platform
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from speakimg.data import BuildConfig, build_dataset
from speakimg.data.manifest import read_manifest
from speakimg.data.report import voice_of
from speakimg.data.vocoder import VocoderClips, VocoderDataModule
from speakimg.metrics import WhisperWER, match_error_rate, word_error_rate
from speakimg.modules.hifigan import ADAMW, HiFiGANModule
from speakimg.vocoder import GeneratorConfig
from speakimg.vocoder.losses import mel_l1

REPO = Path(__file__).resolve().parents[1]
WHISPER = "real:whisper-tiny.en"
PRESETS = {
    # reduced: 1/8 of Auffusion's generator width, 1/16 of HiFi-GAN's discriminators, 0.2 s segments (CPU)
    "reduced": dict(channels=64, width=1 / 16, segment=3200, batch=4),
    # --full: Auffusion's vocoder architecture and HiFi-GAN's discriminators, batch 16 of 8000 samples
    "full": dict(channels=512, width=1.0, segment=8000, batch=16),
}


def build(args: argparse.Namespace) -> tuple[Path, Path]:
    """The training and held-out datasets (built or resumed)."""
    train_lines = args.train.read_text("utf-8").splitlines()[: args.num_train]
    held_lines = args.heldout.read_text("utf-8").splitlines()
    train_dir, held_dir = args.out / "train", args.out / "heldout"
    for lines, folder, val in ((train_lines, train_dir, 0.05), (held_lines, held_dir, 0.0)):
        config = BuildConfig(tts=args.voices, val_fraction=val, seed=0)
        summary = build_dataset(lines, folder, config, workers=args.workers, progress=True)
        print(summary.format())
    return train_dir, held_dir


class Held:
    """The held-out clips (speech only, stored mel and audio) and their scores."""

    def __init__(self, data_dir: Path, griffin_lim_iters: int, whisper: str, device: torch.device) -> None:
        records = read_manifest(data_dir)
        clips = VocoderClips(data_dir, records, max_frames=None)  # from the speech's start to its end
        self.items = [clips[k] for k in range(len(clips))]
        self.texts = [r.text for r in records]
        self.voices = [voice_of(r) for r in records]
        self.metric = WhisperWER(whisper, device="cpu")
        self.griffin_lim_iters = griffin_lim_iters
        self.device = device

    def score(self, audios: list[torch.Tensor]) -> dict:
        """Corpus WER overall and per voice, and the transcripts."""
        self.metric.reset()
        self.metric.update([a.reshape(-1).float().cpu() for a in audios], self.texts)
        wer = float(self.metric.compute())
        hyps = [h for _, h in self.metric.transcripts]
        by_voice = {}
        for voice in sorted(set(self.voices)):
            rows = [k for k, v in enumerate(self.voices) if v == voice]
            by_voice[voice] = word_error_rate([hyps[k] for k in rows], [self.texts[k] for k in rows])
        return {"wer": wer, "mer": match_error_rate(hyps, self.texts), "by_voice": by_voice, "transcripts": hyps}

    def references(self) -> dict:
        """Ground truth (stored audio) and Griffin-Lim of the stored mels."""
        from speakimg.audio import griffin_lim

        truth = self.score([item["audio"] for item in self.items])
        generator = torch.Generator().manual_seed(0)
        resynth = [griffin_lim(item["mel"], n_iter=self.griffin_lim_iters, generator=generator) for item in self.items]
        return {"ground_truth": truth, "griffin_lim": self.score(resynth)}

    @torch.no_grad()
    def vocode(self, module: HiFiGANModule) -> tuple[list[torch.Tensor], float]:
        """The generator's audio of every held-out mel, and its mean mel L1 against the stored audio."""
        was_training = module.training
        module.eval()
        audios, errors = [], []
        for item in self.items:
            y_hat = module.generator(item["mel"].unsqueeze(0).to(self.device)).cpu()
            audios.append(y_hat)
            errors.append(float(mel_l1(item["audio"].unsqueeze(0), y_hat, module.loss_mel)))
        module.train(was_training)
        return audios, sum(errors) / len(errors)


class CurveCallback(L.Callback):
    """Scores the generator on the held-out clips after the listed numbers of batches."""

    def __init__(self, held: Held, eval_at: list[int], out: Path, extra: dict) -> None:
        self.held, self.eval_at, self.out, self.extra = held, sorted(set(eval_at)), out, extra
        self.points: list[dict] = []
        self.batches = 0
        self.train_seconds = 0.0
        self._mark = 0.0

    def _evaluate(self, module: HiFiGANModule) -> None:
        start = time.perf_counter()
        audios, mel_error = self.held.vocode(module)
        scores = self.held.score(audios)
        point = {"batches": self.batches, "train_seconds": round(self.train_seconds, 1), "mel_l1": mel_error,
                 "eval_seconds": round(time.perf_counter() - start, 1), **scores}  # fmt: skip
        self.points.append(point)
        print(f"batch {self.batches:>6}: WER {scores['wer']:.1%} {scores['by_voice']}, held-out mel L1 "
              f"{mel_error:.3f}, {self.train_seconds:.0f} s of training", flush=True)  # fmt: skip
        self.out.write_text(json.dumps({**self.extra, "curve": self.points}, indent=2))

    def on_train_start(self, trainer: L.Trainer, module: HiFiGANModule) -> None:
        if 0 in self.eval_at:
            self._evaluate(module)
        self._mark = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: HiFiGANModule, *args) -> None:
        self.batches += 1
        if self.batches in self.eval_at:
            self.train_seconds += time.perf_counter() - self._mark
            self._evaluate(module)
            self._mark = time.perf_counter()


def add_match_error_rates(result: dict) -> dict:
    """Fill in the corpus match error rate of every scored point that lacks it (runs recorded before it was
    computed), from its stored transcripts."""
    texts = result["heldout_texts"]
    for point in [*result["curve"], *result["references"].values()]:
        point.setdefault("mer", match_error_rate(point["transcripts"], texts))
    return result


def table(result: dict) -> str:
    """The curve as a Markdown table: references first, then every evaluated number of batches."""
    voices = sorted(result["references"]["ground_truth"]["by_voice"])
    rows = [
        "| audio | batches | training s | WER, all | " + " | ".join(voices) + " | MER, all | held-out mel L1 |",
        "| --- " * (6 + len(voices)) + "|",
    ]

    def row(name: str, p: dict, batches: str = "", seconds: str = "", mel: str = "") -> str:
        by_voice = " | ".join(f"{p['by_voice'][v]:.1%}" for v in voices)
        return f"| {name} | {batches} | {seconds} | {p['wer']:.1%} | {by_voice} | {p['mer']:.1%} | {mel} |"

    rows.append(row("ground truth", result["references"]["ground_truth"]))
    rows.append(row("Griffin-Lim 32 it.", result["references"]["griffin_lim"]))
    for p in result["curve"]:
        rows.append(row("HiFi-GAN", p, str(p["batches"]), f"{p['train_seconds']:.0f}", f"{p['mel_l1']:.3f}"))
    return "\n".join(rows)


def plot(result: dict, path: Path) -> None:
    """WER (per voice dashed; Griffin-Lim and ground truth as lines), match error rate and the held-out mel L1
    against batches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve, refs = result["curve"], result["references"]
    x = [p["batches"] for p in curve]
    fig, (ax, ax_mer, ax_mel) = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [3, 2, 2]})
    ax.plot(x, [100 * p["wer"] for p in curve], "o-", color="k", label="HiFi-GAN (all voices)")
    for voice, colour in zip(sorted(curve[0]["by_voice"]), ("C0", "C1", "C4", "C5"), strict=False):
        ax.plot(x, [100 * p["by_voice"][voice] for p in curve], "--", color=colour, alpha=0.7, label=voice)
    for axis, key in ((ax, "wer"), (ax_mer, "mer")):
        axis.axhline(100 * refs["ground_truth"][key], color="C2", lw=1, ls=":", label="ground truth audio")
        axis.axhline(100 * refs["griffin_lim"][key], color="C3", lw=1, ls="-.", label="Griffin-Lim 32 it.")
        axis.set_xlabel("training batches (1 D + 1 G update each)")
        axis.grid(alpha=0.3)
    ax.set_ylabel("WER on the 20 held-out sentences, %")
    ax.set_ylim(0, 5 + max(110, *(100 * v for p in curve for v in (p["wer"], *p["by_voice"].values()))))
    ax.legend(fontsize=7, ncol=2)
    ax_mer.plot(x, [100 * p["mer"] for p in curve], "o-", color="k", label="HiFi-GAN")
    ax_mer.set_ylabel("match error rate, % (all voices)")
    ax_mer.set_ylim(0, 105)
    ax_mer.legend(fontsize=7)
    ax_mel.plot(x, [p["mel_l1"] for p in curve], "o-", color="k")
    ax_mel.set_xlabel("training batches")
    ax_mel.set_ylabel("held-out mel L1 (nats)")
    ax_mel.grid(alpha=0.3)
    preset = result["preset"]
    fig.suptitle(f"HiFi-GAN from scratch ({preset['channels']} ch, batch {preset['batch']} x {preset['segment']}), "
                 f"AdamW {result.get('lr', ADAMW['lr']):g}, Whisper tiny.en; {result['device']}, {result['threads']} thread",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="Auffusion's generator width and batch (GPU)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "vocoder_intelligibility")
    parser.add_argument("--train", type=Path, default=REPO / "configs" / "data" / "train_sentences.txt")
    parser.add_argument("--num-train", type=int, default=150)
    parser.add_argument("--heldout", type=Path, default=REPO / "configs" / "data" / "test_sentences.txt")
    parser.add_argument("--voices", default="festival,piper:joe,espeak")
    parser.add_argument("--batches", type=int, default=3000, help="training batches (each: one D + one G update)")
    parser.add_argument("--eval-at", type=int, nargs="*", default=None, help="default: 0, 50, 100, 250, 500, ...")
    parser.add_argument("--lr", type=float, default=ADAMW["lr"], help="AdamW learning rate of G and D (HiFi-GAN's)")
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    parser.add_argument("--whisper", default=WHISPER)
    parser.add_argument("--workers", type=int, default=2, help="dataset build processes")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: no oversubscription)")
    parser.add_argument(
        "--plot-only", action="store_true", help="only print the table and redraw --plot from --out/curve.json"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--plot", type=Path, default=None, help="write the curve as a PNG here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        result = add_match_error_rates(json.loads((args.out / "curve.json").read_text()))
        print(table(result))
        if args.plot:
            plot(result, args.plot)
        return result
    preset = PRESETS["full" if args.full else "reduced"]
    eval_at = args.eval_at
    if eval_at is None:
        eval_at = [b for b in (0, 50, 100, 250, 500, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 50000)
                   if b < args.batches] + [args.batches]  # fmt: skip
    train_dir, held_dir = build(args)
    device = torch.device(args.device)
    held = Held(held_dir, args.griffin_lim_iters, args.whisper, device)
    start = time.perf_counter()
    references = held.references()
    print(f"ground truth WER {references['ground_truth']['wer']:.1%} {references['ground_truth']['by_voice']}; "
          f"Griffin-Lim {references['griffin_lim']['wer']:.1%} {references['griffin_lim']['by_voice']} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    L.seed_everything(args.seed, verbose=False)
    optimizer = functools.partial(torch.optim.AdamW, **{**ADAMW, "lr": args.lr})  # the module's recipe at --lr
    module = HiFiGANModule(generator=GeneratorConfig(upsample_initial_channel=preset["channels"]),
                           discriminator_width=preset["width"], optimizer=optimizer)  # fmt: skip
    data = VocoderDataModule(str(train_dir), segment_size=preset["segment"], batch_size=preset["batch"],
                             num_workers=1, seed=args.seed)  # fmt: skip
    extra = {
        "preset": preset,
        "lr": args.lr,
        "voices": args.voices,
        "whisper": args.whisper,
        "train_items": len(read_manifest(train_dir)),
        "heldout_items": len(held.items),
        "heldout_texts": held.texts,
        "heldout_voices": held.voices,
        "generator_params": sum(p.numel() for p in module.generator.parameters()),
        "discriminator_params": sum(p.numel() for n, p in module.named_parameters() if not n.startswith("generator")),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "references": references,
    }
    curve = CurveCallback(held, eval_at, args.out / "curve.json", extra)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_steps=2 * args.batches,  # Lightning counts both optimizer steps of a batch
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[curve],
    )
    trainer.fit(module, datamodule=data)
    result = {**extra, "curve": curve.points, "wall_seconds": round(time.perf_counter() - start, 1)}
    (args.out / "curve.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    if args.plot:
        plot(result, args.plot)
    return result


if __name__ == "__main__":
    main()
