"""The two Whisper backends of ``speakimg.metrics.WhisperWER`` side by side: WER and time per clip.

    python benchmarks/whisper_backends.py [--out benchmarks/whisper_backends.json] [--batch-size 16]
        [--backends tiny.en] [--clips /tmp/clips.npz]

Clips: the 20 held-out sentences (``configs/data/test_sentences.txt``) spoken by festival (HTS voice)
and by Piper (en_US-joe-medium, noise scales 0 and, for comparison, Piper's own noisy defaults), and
festival's speech through ``log_mel`` -> ``griffin_lim`` (32 iterations). Every clip is transcribed by:

- ``faster`` tiny.en: faster-whisper, int8 on CPU (``real:whisper-tiny.en``, the CTranslate2 files);
- ``openai`` tiny.en: openai-whisper, float32 on CPU, with the *same* weights: the CTranslate2 files
  converted back to openai-whisper's checkpoint format here (CTranslate2 has no exporter, and no
  openai-format real weights install offline), so the two backends differ only in the library;
- ``faster`` base (multilingual, ``real:whisper-base``, language forced to English);
- ``openai`` on the tiny random kit model (``tiny:whisper``): speed of the code path only.

Times are per clip, with as many threads as torch uses, each backend timed on the same clips in the
same run (model loading excluded, one warm-up batch first): wall clock, and the process's CPU time
(all threads), which a busy shared machine distorts less. ``--backends`` keeps the backends whose
label contains one of the given words; ``--clips`` keeps the synthesised clips in an .npz for reruns.
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (format version 6) by name; aliases resolved."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def unpack(fmt: str):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(unpack("<H"))[:-1].decode()

        version, _, _ = unpack("<I"), string(), unpack("<I")
        if version != 6:
            raise ValueError(f"{path}: CTranslate2 model format {version}, this reader knows 6")
        for _ in range(unpack("<I")):
            name = string()
            shape = [unpack("<I") for _ in range(unpack("<B"))]
            dtype = _CT2_DTYPES[unpack("<B")]
            data = f.read(unpack("<I"))
            variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        for _ in range(unpack("<I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    return variables


def ctranslate2_to_openai(folder: Path, out: Path) -> Path:
    """Write an openai-whisper checkpoint ``{"dims", "model_state_dict"}`` with the weights of a CTranslate2 folder."""
    from whisper.model import ModelDimensions, Whisper

    v = read_ctranslate2(folder / "model.bin")
    state: dict[str, torch.Tensor] = {}

    def put(key: str, array: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.array(array, dtype=np.float32))

    def norm(target: str, source: str) -> None:
        put(f"{target}.weight", v[f"{source}/gamma"])
        put(f"{target}.bias", v[f"{source}/beta"])

    def linear(target: str, source: str, bias: bool = True) -> None:
        put(f"{target}.weight", v[f"{source}/weight"])
        if bias:
            put(f"{target}.bias", v[f"{source}/bias"])

    def fused(targets: list[str], source: str) -> None:  # q/k/v (or k/v) stacked along the output rows
        weights = np.split(v[f"{source}/weight"], len(targets))
        biases = np.split(v[f"{source}/bias"], len(targets))
        for target, weight, bias in zip(targets, weights, biases, strict=True):
            put(f"{target}.weight", weight)
            if not target.endswith(".key"):  # Whisper's key projections have no bias (CTranslate2 stores zeros)
                put(f"{target}.bias", bias)

    def block(prefix: str, source: str, cross: bool) -> None:
        fused(
            [f"{prefix}.attn.query", f"{prefix}.attn.key", f"{prefix}.attn.value"], f"{source}/self_attention/linear_0"
        )
        linear(f"{prefix}.attn.out", f"{source}/self_attention/linear_1")
        norm(f"{prefix}.attn_ln", f"{source}/self_attention/layer_norm")
        if cross:
            linear(f"{prefix}.cross_attn.query", f"{source}/attention/linear_0")
            fused([f"{prefix}.cross_attn.key", f"{prefix}.cross_attn.value"], f"{source}/attention/linear_1")
            linear(f"{prefix}.cross_attn.out", f"{source}/attention/linear_2")
            norm(f"{prefix}.cross_attn_ln", f"{source}/attention/layer_norm")
        linear(f"{prefix}.mlp.0", f"{source}/ffn/linear_0")
        linear(f"{prefix}.mlp.2", f"{source}/ffn/linear_1")
        norm(f"{prefix}.mlp_ln", f"{source}/ffn/layer_norm")

    n_audio = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_text = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    for key in ("conv1", "conv2"):
        linear(f"encoder.{key}", f"encoder/{key}")
    put("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    for i in range(n_audio):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", v["decoder/embeddings/weight"])
    put("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    for i in range(n_text):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    dims = ModelDimensions(
        n_mels=int(v["encoder/conv1/weight"].shape[1]),
        n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(v["encoder/conv1/weight"].shape[0]),
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=n_audio,
        n_vocab=int(v["decoder/embeddings/weight"].shape[0]),
        n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(v["decoder/embeddings/weight"].shape[1]),
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=n_text,
    )
    model = Whisper(dims)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "decoder.mask"]:
        raise ValueError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, out)
    return out


def make_clips() -> dict[str, list[np.ndarray]]:
    from speakimg.audio import griffin_lim, log_mel
    from speakimg.tts import FestivalTTS, get_engine

    sentences = [s for s in (REPO / "configs/data/test_sentences.txt").read_text().splitlines() if s.strip()]
    festival = [FestivalTTS().synthesize(s).numpy() for s in sentences]
    piper = get_engine("piper", voice="real:piper-joe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the noisy voice says it is not reproducible
        noisy = get_engine("piper", voice="real:piper-joe", noise_scale=0.667, noise_w_scale=0.8)
    clips = {
        "festival": festival,
        "piper joe (noise 0)": [piper.synthesize(s).numpy() for s in sentences],
        "piper joe (noise 0.667 / 0.8)": [noisy.synthesize(s).numpy() for s in sentences],
        "festival -> log_mel -> Griffin-Lim 32": [
            griffin_lim(log_mel(torch.from_numpy(c)), n_iter=32, generator=torch.Generator().manual_seed(0)).numpy()
            for c in festival
        ],
    }
    return {"sentences": sentences, **clips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "whisper_backends.json")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="*", default=None, help="keep backends whose label contains one of these")
    parser.add_argument("--clips", type=Path, default=None, help="an .npz to load the clips from (written if missing)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import speakimg.testing  # noqa: F401  (real: and tiny: references)
    from speakimg.metrics import WhisperWER
    from speakimg.testing.real import real_cache_root, real_whisper_tiny_en

    started = time.time()
    if args.clips is not None and args.clips.is_file():
        with np.load(args.clips) as stored:
            data = {"sentences": [str(s) for s in stored["sentences"]]}
            for key in stored.files:
                if key != "sentences":
                    source, index = key.rsplit("#", 1)
                    data.setdefault(source, []).append((int(index), stored[key]))
            data = {k: v if k == "sentences" else [c for _, c in sorted(v)] for k, v in data.items()}
    else:
        data = make_clips()
        if args.clips is not None:
            arrays = {f"{s}#{i}": c for s, clips in data.items() if s != "sentences" for i, c in enumerate(clips)}
            np.savez(args.clips, sentences=np.array(data["sentences"]), **arrays)
    sentences = data.pop("sentences")
    print(f"clips ready in {time.time() - started:.0f} s")
    converted = real_cache_root() / "openai-tiny.en-from-ctranslate2.pt"
    converted.parent.mkdir(parents=True, exist_ok=True)
    ctranslate2_to_openai(real_whisper_tiny_en(), converted)
    backends = {
        "faster tiny.en (int8)": "real:whisper-tiny.en",
        "openai tiny.en (float32, same weights)": f"openai:{converted}",
        "faster base (int8, multilingual)": "real:whisper-base",
        "openai tiny random kit (speed only)": "tiny:whisper",
    }
    if args.backends:
        backends = {k: v for k, v in backends.items() if any(word in k for word in args.backends)}
    results: dict = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "batch_size": args.batch_size,
        "backends": {},
    }
    for label, reference in backends.items():
        metric = WhisperWER(reference, batch_size=args.batch_size, device="cpu")
        metric.transcribe([data["festival"][0]])  # load + warm up
        row: dict = {"reference": reference, "backend": metric.backend, "sources": {}}
        total_clips, total_seconds, total_cpu = 0, 0.0, 0.0
        for source, clips in data.items():
            metric.reset()
            start, cpu = time.perf_counter(), time.process_time()
            metric.update(clips, sentences)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            total_clips, total_seconds, total_cpu = total_clips + len(clips), total_seconds + seconds, total_cpu + cpu
            row["sources"][source] = {
                "wer": round(float(metric.compute()), 4),
                "seconds_per_clip": round(seconds / len(clips), 3),
                "cpu_seconds_per_clip": round(cpu / len(clips), 3),
                "transcripts": [h for _, h in metric.transcripts],
            }
        row["seconds_per_clip"] = round(total_seconds / total_clips, 3)
        row["cpu_seconds_per_clip"] = round(total_cpu / total_clips, 3)
        results["backends"][label] = row
        print(
            label,
            row["seconds_per_clip"],
            row["cpu_seconds_per_clip"],
            {s: r["wer"] for s, r in row["sources"].items()},
            flush=True,
        )
    results["sentences"] = sentences
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    sources = list(data)
    print("\n| backend | s / clip (wall) | CPU s / clip | " + " | ".join(sources) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in sources) + " |")
    for label, row in results["backends"].items():
        wers = " | ".join(f"{100 * row['sources'][s]['wer']:.1f} %" for s in sources)
        print(f"| {label} | {row['seconds_per_clip']:.2f} | {row['cpu_seconds_per_clip']:.2f} | {wers} |")


if __name__ == "__main__":
    main()
