"""Scaling evaluation out: ranks under torchrun (2-process gloo CPU), resuming a killed rank, sweeps."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speakimg.errors import ConfigError
from speakimg.evaluate import run
from speakimg.pipeline import ImagesThatSpeakPipeline
from speakimg.sampling.distributed import Ranks

REPO = Path(__file__).resolve().parents[1]
IMAGES = (REPO / "configs/data/image_prompts.txt").read_text().splitlines()[:2]
SENTENCES = (REPO / "configs/data/test_sentences.txt").read_text().splitlines()[:2]
SCORES = ("clip", "wer", "wer_errors", "vocoder_cycle_error")


def small_args(tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper, out: Path, *extra: str) -> list[str]:
    """The speech protocol on the tiny kit: 2 x 2 combined samples, 1 step, 320 columns (2 CLIP windows),
    no media, no logger."""
    return [
        "--config", str(REPO / "configs/eval.yaml"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--clip", str(tiny_clip),
        "--whisper", str(tiny_whisper), "--limit_image_prompts", "2", "--limit_audio_prompts", "2",
        "--steps", "1", "--width", "320", "--griffin_lim_iters", "2", "--references", "false", "--save_media", "0",
        "--video", "false", "--logger", "none", "--batch_size", "1", "--device", "cpu", "--dtype", "float32",
        "--out", str(out), *extra,
    ]  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, world: int, port: int, log_dir: str, phases: list[tuple[str, str, list[str]]]) -> None:
    """One torchrun-like process (the env:// variables torchrun sets) running ``phases`` in turn: each
    ``(name, command, argv)`` with ``command`` ``evaluate``, ``sample`` or ``killed`` (evaluate with rank 1
    killed at its 2nd pipeline call); every pipeline call is logged to ``log_dir/<name>.rank-<r>.txt``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      TORCHELASTIC_RUN_ID="test")  # fmt: skip
    os.chdir(REPO)
    from speakimg.sample import run as sample

    real = ImagesThatSpeakPipeline.__call__
    phase = {"name": "", "kill": False}

    def counted(pipe, image_prompt, audio_prompt, **kwargs):
        calls = Path(log_dir) / f"{phase['name']}.rank-{rank}.txt"
        with calls.open("a") as f:  # batch_size 1: one prompt pair per call
            (image,), (audio,) = image_prompt, audio_prompt
            f.write(f"{image}|{audio}\n")
        if phase["kill"] and rank == 1 and len(calls.read_text().splitlines()) == 2:
            raise RuntimeError("rank 1 killed")
        return real(pipe, image_prompt, audio_prompt, **kwargs)

    ImagesThatSpeakPipeline.__call__ = counted
    for name, command, argv in phases:
        phase.update(name=name, kill=command == "killed")
        (sample if command == "sample" else run)(argv)


def _calls(log_dir: Path, name: str) -> dict[int, list[str]]:
    files = {r: log_dir / f"{name}.rank-{r}.txt" for r in (0, 1)}
    return {r: f.read_text().splitlines() if f.exists() else [] for r, f in files.items()}


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_write_the_rows_of_one_process_and_a_killed_rank_resumes(
    tmp_path, tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper, monkeypatch
):
    import torch.multiprocessing as mp

    monkeypatch.chdir(REPO)
    models = (tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper)
    pairs = sorted(f"{i}|{a}" for i in IMAGES for a in SENTENCES)
    single = run(small_args(*models, tmp_path / "one"))
    assert single.sampled == 4

    (tmp_path / "images.txt").write_text(IMAGES[0] + "\n")
    (tmp_path / "audios.txt").write_text("\n".join(SENTENCES) + "\n")
    grid = [
        "--grid", str(tmp_path / "images.txt"), str(tmp_path / "audios.txt"), "--out", str(tmp_path / "grid"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--steps", "1", "--width", "320",
        "--griffin_lim_iters", "2", "--batch_size", "1", "--no_video", "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip
    phases = [
        ("two", "evaluate", small_args(*models, tmp_path / "two")),
        ("grid", "sample", grid),
        ("killed", "killed", small_args(*models, tmp_path / "killed")),
    ]
    logs = tmp_path / "calls"
    logs.mkdir()
    with pytest.raises(Exception, match="rank 1 killed"):  # the launcher stops rank 0 when rank 1 dies
        mp.spawn(_rank_worker, args=(2, _free_port(), str(logs), phases), nprocs=2, join=True)

    # a complete 2-process run: each rank sampled half, rank 0 merged the rows of a 1-process run, in its order
    two = _calls(logs, "two")
    assert len(two[0]) == len(two[1]) == 2 and sorted(two[0] + two[1]) == pairs
    assert not (tmp_path / "two" / "parts").exists()
    one, both = read_csv(single.csv), read_csv(tmp_path / "two" / "samples.csv")
    key = ("kind", "image_index", "audio_index", "image_prompt", "audio_prompt", "seed", "settings_hash", "transcript")
    assert [tuple(r[k] for k in key) for r in both] == [tuple(r[k] for k in key) for r in one]
    for a, b in zip(one, both, strict=True):
        for column in SCORES:
            assert float(b[column]) == pytest.approx(float(a[column]), abs=1e-4)
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["run"]["complete"]

    # sample --grid under the same two ranks: one folder each, every pair written once
    grid_calls = _calls(logs, "grid")
    assert len(grid_calls[0]) == len(grid_calls[1]) == 1
    written = sorted(p.parent.parent.name for p in (tmp_path / "grid").glob("*/0/sample.json"))
    assert len(written) == len(set(written)) == 2

    # the killed run: rank 1 wrote its first row to its part file and died on the next sample
    killed = _calls(logs, "killed")
    assert len(killed[1]) == 2
    out = tmp_path / "killed"
    finished = {f"{r['image_prompt']}|{r['audio_prompt']}" for p in (out / "parts").glob("*.csv") for r in read_csv(p)}
    assert killed[1][0] in finished and killed[1][1] not in finished
    assert not (out / "samples.csv").exists() or read_csv(out / "samples.csv") == []
    # resumed here, by one process: the parts are merged and only the missing samples are made
    resumed_calls: list[str] = []
    real = ImagesThatSpeakPipeline.__call__

    def counted(pipe, image_prompt, audio_prompt, **kwargs):
        resumed_calls.append(f"{image_prompt[0]}|{audio_prompt[0]}")
        return real(pipe, image_prompt, audio_prompt, **kwargs)

    monkeypatch.setattr(ImagesThatSpeakPipeline, "__call__", counted)
    resumed = run(small_args(*models, out))
    assert sorted(resumed_calls + sorted(finished)) == pairs and resumed.sampled == len(resumed_calls) >= 1
    assert [tuple(r[k] for k in key) for r in read_csv(out / "samples.csv")] == [tuple(r[k] for k in key) for r in one]
    assert resumed.summary["run"]["complete"] and not (out / "parts").exists()


def test_ranks_share_deterministically_and_report_rank_zero_errors():
    items = list(range(7))
    shares = [Ranks(r, 3).share(items) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == items
    assert Ranks().share(items) == items
    assert Ranks().main_first(lambda: 5) == 5
    with pytest.raises(ConfigError, match="bad"):
        Ranks().main_first(lambda: (_ for _ in ()).throw(ConfigError("bad")))


@pytest.mark.slow
def test_a_sweep_writes_the_grid_of_settings_and_the_clip_wer_plot(
    tmp_path, tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper, monkeypatch
):
    monkeypatch.chdir(REPO)
    out = tmp_path / "sweep"
    argv = small_args(tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper, out, "--limit_audio_prompts", "1",
                      "--limit_image_prompts", "1", "--logger", "wandb",
                      "--sweep", "{t_audio: [0.5, 1.0], audio_weight: [0.25, 0.75]}")  # fmt: skip
    result = run(argv)
    assert result.sampled == 4
    points = json.loads((out / "sweep.json").read_text())["settings"]
    combos = [(p["settings"]["t_audio"], p["settings"]["audio_weight"]) for p in points]
    assert combos == [(0.5, 0.25), (0.5, 0.75), (1.0, 0.25), (1.0, 0.75)]
    for point in points:  # each setting is an ordinary evaluation with those settings, summarised from its CSV
        folder = out / point["folder"]
        settings = json.loads((folder / "eval_settings.json").read_text())["settings"]
        assert (settings["t_audio"], settings["audio_weight"]) == (point["settings"]["t_audio"],
                                                                   point["settings"]["audio_weight"])  # fmt: skip
        (row,) = read_csv(folder / "samples.csv")
        assert point["kinds"]["combined"]["clip"]["mean"] == pytest.approx(float(row["clip"]))
        assert point["kinds"]["combined"]["wer_corpus"] == pytest.approx(float(row["wer"]))
    # t_audio 0.5 with 1 step (t = 1): the audio model takes part; the weights change the sample
    latents = {
        p["folder"]: float(read_csv(out / p["folder"] / "samples.csv")[0]["vocoder_cycle_error"]) for p in points
    }
    assert len(set(latents.values())) > 1
    plot = Image.open(out / "clip_vs_wer.png")
    assert plot.size == (700, 500) and np.asarray(plot.convert("L")).std() > 0
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("files/media/images/sweep/clip_vs_wer*.png"))
    assert list(run_dir.glob("files/media/table/sweep*.table.json"))

    with pytest.raises(ConfigError, match="not a sampler setting"):
        run([*argv[:-2], "--out", str(tmp_path / "bad"), "--sweep", "{t_imag: [0.5, 1.0]}"])
    with pytest.raises(ConfigError, match="t_image"):
        run([*argv[:-2], "--out", str(tmp_path / "bad"), "--sweep", "{t_image: [0.5, 1.5]}"])
    with pytest.raises(ConfigError, match="non-empty list"):
        run([*argv[:-2], "--out", str(tmp_path / "bad"), "--sweep", "{t_image: []}"])
    assert not (tmp_path / "bad").exists()  # refused before anything was written
