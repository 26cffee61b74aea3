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
    """The speech protocol on the tiny kit: 2 x 2 combined samples, 1 step, no media, no logger."""
    return [
        "--config", str(REPO / "configs/eval.yaml"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--clip", str(tiny_clip),
        "--whisper", str(tiny_whisper), "--limit_image_prompts", "2", "--limit_audio_prompts", "2",
        "--steps", "1", "--griffin_lim_iters", "2", "--references", "false", "--save_media", "0",
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


def _rank_worker(rank: int, world: int, port: int, argv: list[str], log_dir: str, fail_at: int | None,
                 grid: list[str] | None) -> None:  # fmt: skip
    """One torchrun-like process: the env:// variables torchrun sets, pipeline calls logged to a file,
    and (``fail_at``) rank 1 killed at its ``fail_at``-th pipeline call."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      TORCHELASTIC_RUN_ID="test")  # fmt: skip
    os.chdir(REPO)
    real = ImagesThatSpeakPipeline.__call__
    calls = Path(log_dir) / f"calls.rank-{rank}.txt"

    def counted(pipe, image_prompt, audio_prompt, **kwargs):
        with calls.open("a") as f:  # batch_size 1: one prompt pair per call
            (image,), (audio,) = image_prompt, audio_prompt
            f.write(f"{image}|{audio}\n")
        if fail_at is not None and rank == 1 and len(calls.read_text().splitlines()) == fail_at:
            raise RuntimeError("rank 1 killed")
        return real(pipe, image_prompt, audio_prompt, **kwargs)

    ImagesThatSpeakPipeline.__call__ = counted
    run(argv)
    if grid is not None:
        from speakimg.sample import run as sample

        sample(grid)


def _spawn(argv, log_dir: Path, fail_at: int | None = None, grid: list[str] | None = None) -> None:
    import torch.multiprocessing as mp

    log_dir.mkdir(parents=True, exist_ok=True)
    mp.spawn(_rank_worker, args=(2, _free_port(), argv, str(log_dir), fail_at, grid), nprocs=2, join=True)


def _calls(log_dir: Path) -> dict[int, list[str]]:
    return {r: (log_dir / f"calls.rank-{r}.txt").read_text().splitlines() if (log_dir / f"calls.rank-{r}.txt").exists()
            else [] for r in (0, 1)}  # fmt: skip


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_resume_a_killed_rank_and_write_the_rows_of_one_process(
    tmp_path, tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper, monkeypatch
):
    monkeypatch.chdir(REPO)
    models = (tiny_sd, tiny_auffusion, tiny_clip, tiny_whisper)
    single = run(small_args(*models, tmp_path / "one"))
    assert single.sampled == 4

    out = tmp_path / "two"
    argv = small_args(*models, out)
    with pytest.raises(Exception, match="rank 1 killed"):  # rank 1 dies at its 2nd sample; the launcher stops rank 0
        _spawn(argv, tmp_path / "killed", fail_at=2)
    first = _calls(tmp_path / "killed")
    assert len(first[1]) == 2  # rank 1 finished one sample, died on the next
    parts = sorted((out / "parts").glob("samples.rank-*.csv"))
    finished = {(r["image_prompt"], r["audio_prompt"]) for p in parts for r in read_csv(p)}
    assert first[1][0] in {f"{i}|{a}" for i, a in finished}  # rank 1's first row was written
    assert not (out / "samples.csv").exists() or read_csv(out / "samples.csv") == []

    grid = [
        "--grid", str(tmp_path / "images.txt"), str(tmp_path / "audios.txt"), "--out", str(tmp_path / "grid"),
        "--image_model", str(tiny_sd), "--audio_model", str(tiny_auffusion), "--steps", "1",
        "--griffin_lim_iters", "2", "--batch_size", "1", "--no_video", "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip
    (tmp_path / "images.txt").write_text("\n".join(IMAGES) + "\n")
    (tmp_path / "audios.txt").write_text("\n".join(SENTENCES) + "\n")
    _spawn(argv, tmp_path / "resumed", grid=grid)
    second = _calls(tmp_path / "resumed")
    evaluated = second[0][: len(second[0]) - 2] + second[1][: len(second[1]) - 2]  # the last 2 per rank: the grid
    # nothing finished is sampled again, everything missing is sampled once, shared between the ranks
    assert sorted(evaluated + [f"{i}|{a}" for i, a in finished]) == sorted(
        f"{i}|{a}" for i in IMAGES for a in SENTENCES
    )
    assert abs(len(second[0]) - len(second[1])) <= 1
    assert not (out / "parts").exists()  # merged by rank 0

    one, two = read_csv(single.csv), read_csv(out / "samples.csv")
    key = ("kind", "image_index", "audio_index", "image_prompt", "audio_prompt", "seed", "settings_hash", "transcript")
    assert [tuple(r[k] for k in key) for r in two] == [tuple(r[k] for k in key) for r in one]  # same rows, same order
    for a, b in zip(one, two, strict=True):
        for column in SCORES:
            assert float(b[column]) == pytest.approx(float(a[column]), abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["complete"] and summary["kinds"]["combined"]["n"] == 4

    # sample --grid under the same two ranks: every pair written exactly once
    written = sorted(p.parent.parent.name for p in (tmp_path / "grid").glob("*/0/sample.json"))
    assert len(written) == len(set(written)) == 4
    assert sorted(second[0][-2:] + second[1][-2:]) == sorted(f"{i}|{a}" for i in IMAGES for a in SENTENCES)


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
