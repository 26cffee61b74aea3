"""What fitting speech to the 10 s canvas costs in intelligibility: slow-down methods x factors.

    python benchmarks/fit_intelligibility.py [--sentences configs/data/test_sentences.txt] [--workers 2]

Every sentence is spoken by festival (HTS voice), slowed down by each factor with each method, placed
on the 10.24 s canvas as the builder does, and transcribed by an offline recogniser; the word error
rate (Whisper's English normaliser, corpus level) is reported per method and factor, for the audio
itself and for its Griffin-Lim re-synthesis from the log-mel (what a weight-free vocoder recovers from
a perfect spectrogram).

Methods: ``native`` (festival's own HTS rate control), ``rubberband`` and ``atempo`` (ffmpeg filters),
``phase-vocoder`` (librosa). Factor ``fill`` slows each sentence to 90 % of 10 s (what ``--fit
stretch`` does by default).

The recogniser is CMU pocketsphinx through ffmpeg's ``asr`` filter with Debian's ``pocketsphinx-en-us``
model: it is already on machines with Debian's ffmpeg and needs no download, but it is a weak, old
recogniser -- read its WERs relative to each other, not as the number Whisper would give. Needs
ffmpeg built with pocketsphinx (Debian's is) and the model in /usr/share/pocketsphinx/model/en-us.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = Path("/usr/share/pocketsphinx/model/en-us")
METHODS = ("native", "rubberband", "atempo", "phase-vocoder")
FACTORS = ("1.25", "1.5", "2", "fill")


def recognise(wav: torch.Tensor, tmp: Path) -> str:
    """pocketsphinx (ffmpeg asr filter) transcript of 16 kHz audio."""
    from speakimg.audio import save_audio

    path = save_audio(tmp / "clip.wav", wav)
    asr = f"asr=hmm={MODEL / 'en-us'}:dict={MODEL / 'cmudict-en-us.dict'}:lm={MODEL / 'en-us.lm.bin'}"
    meta = tmp / "meta.txt"
    meta.unlink(missing_ok=True)
    audio_filter = f"apad=pad_dur=1,{asr},ametadata=mode=print:key=lavfi.asr.text:file={meta}"
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-i",
        str(path),
        "-af",
        audio_filter,
        "-f",
        "null",
        "-",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    lines = meta.read_text().splitlines() if meta.is_file() else []
    return " ".join(line.split("=", 1)[1] for line in lines if line.startswith("lavfi.asr.text="))


def sentence_conditions(sentence: str, griffin_lim_iters: int) -> dict[str, dict[str, str]]:
    """Transcripts of one sentence under every (method, factor), for the audio and its Griffin-Lim."""
    from speakimg.audio import griffin_lim, log_mel, peak_normalize
    from speakimg.audio.stretch import time_stretch
    from speakimg.data.canvas import SPEECH_SAMPLES, place_on_canvas, trim_silence
    from speakimg.text import normalize_text
    from speakimg.tts import get_engine

    torch.set_num_threads(1)
    festival = get_engine("festival")
    text = normalize_text(sentence)
    natural = trim_silence(festival.synthesize(text))
    out: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("none", *METHODS):
            for factor in ("1",) if method == "none" else FACTORS:
                f = 0.9 * SPEECH_SAMPLES / natural.shape[0] if factor == "fill" else float(factor)
                if method == "none":
                    speech = natural
                elif method == "native":
                    speech = trim_silence(festival.synthesize(text, stretch=f))
                else:
                    speech = time_stretch(natural, f, method)
                speech = peak_normalize(speech[:SPEECH_SAMPLES], 0.95)
                canvas, _ = place_on_canvas(speech)
                generator = torch.Generator().manual_seed(0)
                resynth = griffin_lim(log_mel(canvas), n_iter=griffin_lim_iters, generator=generator)
                out[f"{method}@{factor}"] = {
                    "audio": recognise(canvas, Path(tmp)),
                    "griffin_lim": recognise(resynth, Path(tmp)),
                    "seconds": round(speech.shape[0] / 16000, 2),
                }
    return out


def main() -> None:
    from speakimg.metrics import word_error_rate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, default=REPO / "configs" / "data" / "test_sentences.txt")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sentences = args.sentences.read_text("utf-8").splitlines()[: args.limit]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(sentence_conditions, sentences, [args.griffin_lim_iters] * len(sentences)))
    conditions = list(results[0])
    table = {}
    for condition in conditions:
        seconds = sum(r[condition]["seconds"] for r in results) / len(results)
        table[condition] = {
            "seconds": round(seconds, 2),
            "wer_audio": word_error_rate([r[condition]["audio"] for r in results], sentences),
            "wer_griffin_lim": word_error_rate([r[condition]["griffin_lim"] for r in results], sentences),
        }
    print(f"{len(sentences)} sentences, festival, pocketsphinx (ffmpeg asr); Griffin-Lim {args.griffin_lim_iters} it.")
    print("| method @ factor | mean speech s | WER audio | WER Griffin-Lim |")
    print("| --- | --- | --- | --- |")
    for condition, row in table.items():
        print(f"| {condition} | {row['seconds']:.2f} | {row['wer_audio']:.1%} | {row['wer_griffin_lim']:.1%} |")
    if args.json:
        args.json.write_text(json.dumps({"table": table, "transcripts": results}, indent=2))


if __name__ == "__main__":
    main()
