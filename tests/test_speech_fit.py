"""``python -m speakimg.fit`` with the speech quickstart: CLI overrides, run folder, reruns, errors, DDP.

The quickstart config points at ``speakimg.data.SpeechMelDataModule`` (issue 3); these tests run it with
the stand-in data module of ``tests/speech_standin.py``, which yields the same batch contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import speech_standin as standin
import torch
import yaml
from conftest import requires_festival

from speakimg.errors import DataError, ModelNotFoundError
from speakimg.fit import main

pytestmark = requires_festival

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart_speech.yaml"


@pytest.fixture(scope="session")
def examples(tmp_path_factory) -> Path:
    return standin.make_examples(tmp_path_factory.mktemp("fit-speech") / "examples.pt")


def quickstart(tmp_path: Path, examples: Path, every_n_train_steps: int | None = None, **data) -> Path:
    """The quickstart config with the stand-in data module (and optionally more frequent checkpoints)."""
    config = yaml.safe_load(QUICKSTART.read_text())
    init = {"data_file": str(examples), "latents_vae": "tiny:auffusion", "batch_size": 1, "limit": 2, **data}
    config["data"] = {"class_path": "speech_standin.StandInSpeechData", "init_args": init}
    if every_n_train_steps is not None:
        config["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = every_n_train_steps
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_quickstart_config_mirrors_the_module():
    import inspect

    from speakimg.modules.speech_lora import SpeechLoRAModule

    config = yaml.safe_load(QUICKSTART.read_text())
    assert config["model"]["class_path"] == "speakimg.modules.speech_lora.SpeechLoRAModule"
    assert set(config["model"]["init_args"]) <= set(inspect.signature(SpeechLoRAModule).parameters)
    assert config["data"]["class_path"] == "speakimg.data.SpeechMelDataModule"
    recipe = yaml.safe_load((REPO / "configs" / "auffusion_lora.yaml").read_text())
    assert set(recipe["model"]["init_args"]) <= set(inspect.signature(SpeechLoRAModule).parameters)
    assert recipe["trainer"]["precision"] == "bf16-mixed" and recipe["trainer"]["max_steps"] == 16000


@pytest.mark.slow
def test_quickstart_trains_and_reruns_in_the_same_folder(tmp_path, examples, tiny_root):
    config = quickstart(tmp_path, examples)
    run = tmp_path / "run"
    args = ["--config", str(config), "--trainer.default_root_dir", str(run), "--trainer.val_check_interval", "2"]
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


def test_unknown_config_key_is_one_clear_error(tmp_path, examples, capsys):
    config = quickstart(tmp_path, examples)
    with pytest.raises(SystemExit):
        main(["--config", str(config), "--model.init_args.lora_rnak", "4"])
    err = capsys.readouterr().err
    assert "lora_rnak" in err and "not accepted" in err
    data = yaml.safe_load(config.read_text())
    data["trainer"]["max_step"] = 10
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "max_step" in capsys.readouterr().err


def test_missing_model_folder_is_one_clear_error(tmp_path, examples, tiny_root):
    config = quickstart(tmp_path, examples)
    missing = tmp_path / "no-such-auffusion"
    with pytest.raises(ModelNotFoundError, match=f"{missing}: no such model folder"):
        main(["--config", str(config), "--model.init_args.base_model", str(missing)])


def test_dataset_of_the_wrong_shape_stops_before_training(tmp_path, examples, tiny_root):
    config = quickstart(tmp_path, examples, latents_vae=None, height=128)
    with pytest.raises(DataError, match=r"'image' has shape \(1, 3, 128, 1024\)"):
        main(["--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_writes_each_checkpoint_once(tmp_path, examples, tiny_root):
    config = quickstart(tmp_path, examples, every_n_train_steps=1)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "speakimg.fit",
        "--config",
        str(config),
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
