"""The offline demo: ``python -m speakimg.demo``.

Builds the tiny-model kit, speaks a sentence with the offline TTS (festival), fits it to the
10 s canvas, and writes under ``outputs/demo/``: the speech, its spectrogram image (as the
diffusion models see it, and colour-mapped) and the Griffin-Lim re-synthesis from the image.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

log = logging.getLogger("speakimg.demo")

DEFAULT_SENTENCE = "A small red fox jumped over the quiet garden wall."


def run(out: Path, sentence: str = DEFAULT_SENTENCE, tts: str = "festival", seed: int = 0) -> dict[str, Path]:
    """Run the demo; returns the files written."""
    from speakimg import testing
    from speakimg.audio import (
        CANVAS_FRAMES,
        fit_canvas,
        griffin_lim,
        image_to_mel,
        log_mel,
        mel_to_image,
        peak_normalize,
        save_audio,
    )
    from speakimg.media import save_image, save_spectrogram
    from speakimg.tts import get_engine

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    steps = tqdm(total=4, desc="demo", unit="step")

    steps.set_postfix_str("tiny models")
    kit = testing.build_all()
    steps.update()

    steps.set_postfix_str(f"speaking with {tts}")
    speech = peak_normalize(get_engine(tts).synthesize(sentence), 0.95)
    canvas = fit_canvas(speech, 160000)  # natural speed, silence to 10 s
    files["speech"] = save_audio(out / "speech.wav", canvas)
    steps.update()

    steps.set_postfix_str("spectrogram image")
    image = fit_canvas(mel_to_image(log_mel(canvas)), CANVAS_FRAMES)  # [3, 256, 1024]
    files["spec"] = save_image(out / "spec.png", image)
    files["spec_color"] = save_spectrogram(out / "spec_color.png", image)
    steps.update()

    steps.set_postfix_str("Griffin-Lim")
    generator = torch.Generator().manual_seed(seed)
    audio = griffin_lim(image_to_mel(image), n_iter=64, generator=generator)
    files["griffin_lim"] = save_audio(out / "griffin_lim.wav", audio)
    steps.update()
    steps.close()

    log.info("tiny models: %s", ", ".join(f"{k}={v}" for k, v in kit.items()))
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m speakimg.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--sentence", default=DEFAULT_SENTENCE, help="the sentence to speak")
    parser.add_argument("--tts", default="festival", help="TTS engine (festival, espeak)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.time()
    files = run(args.out, args.sentence, args.tts, args.seed)
    print(f"\nspeakimg demo finished in {time.time() - start:.1f} s. Wrote:")
    for name, path in files.items():
        print(f"  {name:>12}: {path}")


if __name__ == "__main__":
    main()
