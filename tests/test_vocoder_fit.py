"""The vocoder configs through ``python -m speakimg.fit``: quickstart learning, exact resume, 2-process DDP."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from vocoder_helpers import one_thread  # noqa: F401  (an autouse fixture)

from speakimg.fit import build_cli, main
from speakimg.modules.hifigan import HiFiGANModule
from speakimg.vocoder import Generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _config(tmp_path: Path, data_dir: Path, name: str = "run.yaml", **trainer) -> Path:
    """The quickstart overlay, made tinier for tests (and logging to CSV under tmp_path/logs), written to
    tmp_path/name; use it after the full config (:func:`_args`)."""
    config = yaml.safe_load((CONFIGS / "quickstart_vocoder.yaml").read_text())
    config["trainer"].update(default_root_dir=str(tmp_path), log_every_n_steps=1, **trainer)
    csv = {"save_dir": str(tmp_path / "logs"), "name": "hifigan"}
    config["trainer"]["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": csv}
    model = config["model"]["init_args"]
    model["generator"].update(
        upsample_initial_channel=16, resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5]] * 2
    )
    config["data"]["init_args"].update(data_dir=str(data_dir), segment_size=1600, batch_size=2, samples_per_epoch=8)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _args(config: Path) -> list[str]:
    """``--config`` arguments: the from-scratch recipe, then the (test) quickstart overlay."""
    return ["--config", str(CONFIGS / "hifigan_scratch.yaml"), "--config", str(config)]


def _checkpoint_callback(config: Path, **init_args) -> None:
    data = yaml.safe_load(config.read_text())
    data["trainer"]["callbacks"][0]["init_args"].update(init_args)
    config.write_text(yaml.safe_dump(data))


def _metrics(log_root: Path) -> list[dict]:
    (path,) = log_root.rglob("metrics.csv")
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_fine_tune_and_scratch_configs_instantiate(tiny_auffusion, vocoder_dataset, tmp_path):
    fine = build_cli(
        [
            "--config", str(CONFIGS / "hifigan.yaml"),
            "--model.init_args.pretrained", str(tiny_auffusion),
            "--data.init_args.data_dir", str(vocoder_dataset),
            "--data.init_args.mel_dir", "mels",
            "--trainer.logger", "false",
            "--trainer.strategy", "auto",
            "--trainer.default_root_dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert isinstance(fine.model, HiFiGANModule) and fine.model.generator.config.upsample_initial_channel == 32
    assert fine.datamodule.segment_size == 8000 and fine.datamodule.batch_size == 16
    scratch = build_cli(
        [
            "--config", str(CONFIGS / "hifigan_scratch.yaml"),
            "--data.init_args.data_dir", str(vocoder_dataset),
            "--trainer.logger", "false",
            "--trainer.strategy", "auto",
            "--trainer.default_root_dir", str(tmp_path),
        ]
    )  # fmt: skip
    generator = scratch.model.generator
    assert sum(p.numel() for p in generator.parameters()) == 13_682_178  # Auffusion's architecture
    assert scratch.model.hparams.generator["upsample_rates"] == [5, 4, 4, 2]


@pytest.mark.slow
def test_quickstart_learns_the_mel(vocoder_dataset, tmp_path):
    config = _config(tmp_path, vocoder_dataset, max_steps=80, val_check_interval=10)
    cli = main(_args(config))
    rows = [r for r in _metrics(tmp_path / "logs") if r.get("val/mel_error")]
    curve = [float(r["val/mel_error"]) for r in rows]
    assert len(curve) == 4
    assert curve[-1] < curve[0] - 1.0  # the validation mel error falls (6.x nats at start)
    assert cli.trainer.global_step == 80
    assert list((tmp_path / "logs").rglob("last.ckpt"))


@pytest.mark.slow
def test_resume_mid_epoch_is_exact(vocoder_dataset, tmp_path):
    # 4 batches per epoch; 8 batches straight vs 3 (a checkpoint mid-epoch) + resume, crossing an epoch end.
    straight = _config(tmp_path / "a", vocoder_dataset, max_steps=16, val_check_interval=2)
    main(_args(straight))
    first = _config(tmp_path / "b", vocoder_dataset, max_steps=6, val_check_interval=2)
    _checkpoint_callback(first, every_n_train_steps=6, dirpath=str(tmp_path / "b" / "ckpt"))
    main(_args(first))
    ckpt = tmp_path / "b" / "ckpt" / "epoch=0-step=6.ckpt"
    assert ckpt.is_file()
    resumed = _config(tmp_path / "c", vocoder_dataset, max_steps=16, val_check_interval=2)
    cli = main([*_args(resumed), "--ckpt_path", str(ckpt)])
    assert cli.trainer.global_step == 16

    a = torch.load(next((tmp_path / "a").rglob("last.ckpt")), weights_only=True)
    c = torch.load(next((tmp_path / "c").rglob("last.ckpt")), weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, c["state_dict"][key], atol=1e-6), key
    assert a["lr_schedulers"] == c["lr_schedulers"]
    # the losses logged after the resume point are those of the straight run
    losses = {}
    for run in ("a", "c"):
        rows = _metrics(tmp_path / run / "logs")
        losses[run] = {r["step"]: float(r["train/loss_g"]) for r in rows if r.get("train/loss_g")}
    after = [s for s in losses["c"] if int(s) >= 3]
    assert after and all(losses["a"][s] == pytest.approx(losses["c"][s], rel=1e-5) for s in after)


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_cpu_ddp_run_completes_and_checkpoints_once(vocoder_dataset, tmp_path):
    config = _config(tmp_path, vocoder_dataset, max_steps=8, val_check_interval=2)
    _checkpoint_callback(config, every_n_train_steps=8, dirpath=str(tmp_path / "ckpt"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [
            sys.executable, "-m", "speakimg.fit", *_args(config),
            "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
        ],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=1-step=8.ckpt", "last.ckpt"]
    generator = Generator.from_pretrained(tmp_path / "ckpt" / "last.ckpt")
    assert generator(torch.zeros(1, 256, 4) - 5).shape == (1, 1, 640)
    rows = _metrics(tmp_path / "logs")
    assert any(r.get("val/mel_error") for r in rows)
