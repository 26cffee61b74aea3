"""``python -m speakimg.fit`` with the speech quickstart: CLI overrides, run folder, reruns, errors, DDP.

The quickstart config as shipped (tiny kit, ``SpeechMelDataModule`` with a tiny-VAE latent cache), on a
dataset built by ``python -m speakimg.data.build`` (the session's festival dataset).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import requires_festival

from speakimg.errors import DataError, ModelNotFoundError
from speakimg.fit import main

pytestmark = requires_festival

REPO = Path(__file__).resolve().parents[1]
FULL = REPO / "configs" / "auffusion_lora.yaml"
QUICKSTART = REPO / "configs" / "quickstart_speech.yaml"  # an overlay on FULL


def quickstart(tmp_path: Path, data_dir: Path, every_n_train_steps: int | None = None, **data) -> list[str]:
    """``--config`` arguments of the quickstart (the full recipe + its overlay) on ``data_dir`` (no loader
    workers: faster in tests), optionally more checkpoints. The overlay is written to ``quickstart.yaml``."""
    config = yaml.safe_load(QUICKSTART.read_text())
    config["data"]["init_args"].update(data_dir=str(data_dir), num_workers=0, **data)
    if every_n_train_steps is not None:
        config["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = every_n_train_steps
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--config", str(FULL), "--config", str(path)]


def test_quickstart_config_mirrors_the_module():
    import inspect

    from speakimg.data import SpeechMelDataModule
    from speakimg.fit import resolve_config
    from speakimg.modules.speech_lora import SpeechLoRAModule

    for args in (["--config", str(FULL), "--config", str(QUICKSTART)], ["--config", str(FULL)]):
        config = resolve_config(args)
        assert config["model"]["class_path"] == "speakimg.modules.speech_lora.SpeechLoRAModule"
        assert set(config["model"]["init_args"]) <= set(inspect.signature(SpeechLoRAModule).parameters)
        assert config["data"]["class_path"] == "speakimg.data.SpeechMelDataModule"
        assert set(config["data"]["init_args"]) <= set(inspect.signature(SpeechMelDataModule).parameters)
        assert config["data"]["init_args"]["max_phonemes"] == config["model"]["init_args"]["max_phonemes"]
    assert config["trainer"]["precision"] == "bf16-mixed" and config["trainer"]["max_steps"] == 16000


@pytest.mark.slow
def test_quickstart_trains_and_reruns_in_the_same_folder(tmp_path, speech_data, tiny_root):
    config = quickstart(tmp_path, speech_data)
    run = tmp_path / "run"
    args = [*config, "--trainer.default_root_dir", str(run), "--trainer.val_check_interval", "2"]
    cli = main([*args, "--trainer.max_steps", "4"])
    assert cli.trainer.global_step == 4
    assert {"train/loss", "val/loss"} <= set(cli.trainer.callback_metrics)
    saved = yaml.safe_load((run / "config.yaml").read_text())  # the resolved config, with the override
    assert saved["trainer"]["max_steps"] == 4 and saved["model"]["init_args"]["base_model"] == "tiny:auffusion"
    assert saved["trainer"]["callbacks"][0]["init_args"]["dirpath"] == str(run / "checkpoints")
    assert (run / "checkpoints" / "last.ckpt").is_file()
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))

    again = main([*args, "--trainer.max_steps", "6", "--ckpt_path", "last"])  # resume in the same folder
    assert again.trainer.global_step == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 6


def test_unknown_config_key_is_one_clear_error(tmp_path, capsys):
    config = quickstart(tmp_path, tmp_path / "data")
    with pytest.raises(SystemExit):
        main([*config, "--model.init_args.lora_rnak", "4"])
    err = capsys.readouterr().err
    assert "lora_rnak" in err and "not accepted" in err
    overlay = Path(config[-1])
    data = yaml.safe_load(overlay.read_text())
    data["trainer"]["max_step"] = 10
    overlay.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit):
        main(config)
    assert "max_step" in capsys.readouterr().err


def test_missing_model_folder_is_one_clear_error(tmp_path, tiny_root):
    config = quickstart(tmp_path, tmp_path / "data")
    missing = tmp_path / "no-such-auffusion"
    with pytest.raises(ModelNotFoundError, match=f"{missing}: no such model folder"):
        main([*config, "--model.init_args.base_model", str(missing)])


def test_dataset_of_the_wrong_shape_stops_before_training(tmp_path, festival_dataset, tiny_root):
    data = tmp_path / "data"
    shutil.copytree(festival_dataset, data)
    bad = sorted((data / "mels").glob("*.npy"))[0]
    np.save(bad, np.zeros((128, 1024), dtype=np.float16))  # a mel of the wrong shape
    config = quickstart(tmp_path, data, latents_vae=None)
    with pytest.raises(DataError, match=rf"{bad.name}: a mel of shape \(128, 1024\)"):
        main([*config, "--trainer.default_root_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_writes_each_checkpoint_once(tmp_path, speech_data, tiny_root):
    config = quickstart(tmp_path, speech_data, every_n_train_steps=1)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "speakimg.fit",
        *config,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.max_steps",
        "2",
        "--trainer.default_root_dir",
        str(run),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last.ckpt",
        "step000001.ckpt",
        "step000002.ckpt",
    ]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 and all(k.startswith("model.") for k in checkpoint["state_dict"])
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # one W&B run (rank 0)


def test_run_folder_defaults_fill_only_what_is_unset():
    from jsonargparse import Namespace

    from speakimg.fit import _run_folder_defaults

    def checkpoint(dirpath):
        return Namespace(class_path="lightning.pytorch.callbacks.ModelCheckpoint", init_args=Namespace(dirpath=dirpath))

    def logger(name, save_dir):
        return Namespace(class_path=f"lightning.pytorch.loggers.{name}", init_args=Namespace(save_dir=save_dir))

    def config(loggers):
        callbacks = [checkpoint(None), checkpoint("elsewhere")]
        return Namespace(trainer=Namespace(default_root_dir="runs/a", callbacks=callbacks, logger=loggers))

    wandb = config(logger("WandbLogger", "."))
    _run_folder_defaults(wandb)
    assert [c.init_args.dirpath for c in wandb.trainer.callbacks] == [str(Path("runs/a/checkpoints")), "elsewhere"]
    assert wandb.trainer.logger.init_args.save_dir == "runs/a"
    csv = config([logger("CSVLogger", "logs")])  # other loggers keep Lightning's defaults
    _run_folder_defaults(csv)
    assert [c.init_args.dirpath for c in csv.trainer.callbacks] == [None, "elsewhere"]
    assert csv.trainer.logger[0].init_args.save_dir == "logs"
