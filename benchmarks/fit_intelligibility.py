"""What fitting speech to the 10 s canvas costs in intelligibility, with real ears: slow-down x factor x voice.

    python benchmarks/fit_intelligibility.py [--voices festival,piper:joe,espeak] [--workers 2]

Every held-out sentence (``configs/data/test_sentences.txt``, 20) is spoken by each voice and placed on
the 10.24 s canvas as the builder does (``--fit pad``: natural speed, silence after it), or first slowed
down by 1.25 / 1.5 / 2x with each method:

- ``native``: the engine's own rate control (festival's HTS ``-r``, Piper's ``length_scale``, espeak's
  words per minute): what ``--fit stretch`` uses for these engines;
- ``phase-vocoder`` (librosa) and ``atempo`` (ffmpeg; the builder's ``--stretch-method`` default for
  engines without rate control): a time stretch of the natural speech.

Each clip is transcribed by the real Whisper tiny.en (``real:whisper-tiny.en``: faster-whisper, int8 on
CPU, greedy, English normaliser); the table gives the corpus WER per voice and condition, and, with
``--griffin-lim-iters N``, the WER of the Griffin-Lim re-synthesis of the clip's log-mel too.

An earlier version of this study (festival only) used pocketsphinx (ffmpeg's ``asr`` filter), an old
recogniser with 41 % WER on the unslowed speech; its figures are kept in ``docs/data.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
WHISPER = "real:whisper-tiny.en"


def sentence_conditions(
    voice: str, sentence: str, methods: list[str], factors: list[float], griffin_lim_iters: int
) -> dict[str, dict]:
    """Canvas audio (and Griffin-Lim of its log-mel) of one sentence under every (method, factor)."""
    from speakimg.audio import griffin_lim, log_mel, peak_normalize
    from speakimg.audio.stretch import time_stretch
    from speakimg.data.canvas import SPEECH_SAMPLES, place_on_canvas, trim_silence
    from speakimg.text import normalize_text
    from speakimg.tts import get_voice

    torch.set_num_threads(1)
    engine = get_voice(voice)
    text = normalize_text(sentence)
    natural = trim_silence(engine.synthesize(text))
    out: dict[str, dict] = {}
    for method in ("pad", *methods):
        for factor in (1.0,) if method == "pad" else factors:
            if method == "pad":
                speech = natural
            elif method == "native":
                speech = trim_silence(engine.synthesize(text, stretch=factor))
            else:
                speech = time_stretch(natural, factor, method)
            speech = peak_normalize(speech[:SPEECH_SAMPLES], 0.95)
            canvas, _ = place_on_canvas(speech)
            entry = {"audio": canvas.numpy(), "seconds": round(speech.shape[0] / 16000, 2)}
            if griffin_lim_iters:
                generator = torch.Generator().manual_seed(0)
                entry["griffin_lim"] = griffin_lim(
                    log_mel(canvas), n_iter=griffin_lim_iters, generator=generator
                ).numpy()
            out["pad" if method == "pad" else f"{method}@{factor:g}"] = entry
    return out


def main(argv: list[str] | None = None) -> dict:
    from speakimg.metrics import WhisperWER, word_error_rate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, default=REPO / "configs" / "data" / "test_sentences.txt")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--voices", default="festival,piper:joe,espeak")
    parser.add_argument("--methods", default="native,phase-vocoder", help="comma-separated; also: atempo, rubberband")
    parser.add_argument("--factors", default="1.25,1.5,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--griffin-lim-iters", type=int, default=0, help="also score Griffin-Lim (0: no)")
    parser.add_argument("--whisper", default=WHISPER)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "fit_intelligibility.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sentences = [s for s in args.sentences.read_text("utf-8").splitlines() if s.strip()][: args.limit]
    voices, methods = args.voices.split(","), args.methods.split(",")
    factors = [float(f) for f in args.factors.split(",")]
    ears = WhisperWER(args.whisper, batch_size=16, device="cpu")
    kinds = ["audio"] + (["griffin_lim"] if args.griffin_lim_iters else [])
    table: dict[str, dict[str, dict]] = {}
    transcripts: dict[str, dict[str, dict[str, list[str]]]] = {}
    result: dict = {"whisper": args.whisper, "sentences": sentences, "griffin_lim_iters": args.griffin_lim_iters}
    with ProcessPoolExecutor(args.workers) as pool:
        for voice in voices:  # one voice at a time; the JSON is rewritten after each (partial results survive)
            n = len(sentences)
            clips = list(pool.map(sentence_conditions, [voice] * n, sentences, [methods] * n, [factors] * n,
                                  [args.griffin_lim_iters] * n))  # fmt: skip
            conditions = list(clips[0])
            table[voice], transcripts[voice] = {}, {}
            for condition in conditions:
                entry = {"seconds": round(sum(c[condition]["seconds"] for c in clips) / n, 2)}
                transcripts[voice][condition] = {}
                for kind in kinds:
                    heard = ears.transcribe([c[condition][kind] for c in clips])
                    entry[f"wer_{kind}"] = word_error_rate(heard, sentences)
                    transcripts[voice][condition][kind] = heard
                table[voice][condition] = entry
                print(voice, condition, entry, flush=True)
            result.update(wall_seconds=round(time.perf_counter() - start, 1), table=table, transcripts=transcripts)
            if args.json:
                args.json.write_text(json.dumps(result, indent=2) + "\n")
    voices = list(table)
    print(f"{len(sentences)} sentences; Whisper {args.whisper}; WER of the canvas audio (mean speech seconds)")
    print("| condition | " + " | ".join(voices) + " |")
    print("| --- |" + " --- |" * len(voices))
    for condition in conditions:
        cells = [f"{table[v][condition]['wer_audio']:.1%} ({table[v][condition]['seconds']:.1f} s)" for v in voices]
        print(f"| {condition} | " + " | ".join(cells) + " |")
    return result


if __name__ == "__main__":
    main()
