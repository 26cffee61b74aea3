"""What ``speakimg.fit`` and ``speakimg.export`` say about checkpoints, and what they keep: a huge learning rate
stops the run with the last finite checkpoint kept under its own name (and a true message); resume and export
print short, true summaries instead of Lightning's list of the frozen keys a checkpoint does not hold."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import requires_festival

from speakimg.errors import TrainingError
from speakimg.fit import main

pytestmark = requires_festival

REPO = Path(__file__).resolve().parents[1]
FULL = REPO / "configs" / "auffusion_lora.yaml"


def _quickstart(tmp_path: Path, data_dir: Path, checkpoint: dict, **model) -> list[str]:
    """The speech quickstart (recipe + overlay) on ``data_dir``, without the sampling callback and logger."""
    overlay = yaml.safe_load((REPO / "configs" / "quickstart_speech.yaml").read_text())
    overlay["data"]["init_args"].update(data_dir=str(data_dir), num_workers=0)
    overlay["model"]["init_args"].update(model)
    overlay["trainer"].update(logger=False, limit_val_batches=0, enable_progress_bar=False)
    overlay["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": checkpoint}
    ]
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return ["--config", str(FULL), "--config", str(path), "--trainer.default_root_dir", str(tmp_path / "run")]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _loss(path: Path, batch: dict) -> float:
    """The training loss of ``batch`` from a checkpoint's weights (fixed draws), computed outside any run."""
    from speakimg.modules.speech_lora import SpeechLoRAModule

    module = SpeechLoRAModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    with torch.no_grad():
        return float(module.compute_loss(batch, torch.Generator().manual_seed(0), 0.0)["loss"])


@pytest.mark.slow
def test_a_huge_learning_rate_keeps_the_last_finite_checkpoint_and_says_so(tmp_path, speech_data, tiny_root):
    # only last.ckpt, rewritten every step: without the keeper, the diverged weights would be all that is left
    checkpoint = {"every_n_train_steps": 1, "save_top_k": 0, "save_last": True}
    huge = {"lora_lr": 30.0, "unfreeze_lr": 30.0, "adapter_lr": 30.0, "scheduler": {"init_args": {"warmup_steps": 0}}}
    args = _quickstart(tmp_path, speech_data, checkpoint, **huge)
    with pytest.raises(TrainingError) as error:
        main([*args, "--trainer.max_steps", "12"])
    message = str(error.value)
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last-finite.ckpt", "last.ckpt"]
    diverged = re.search(
        r"train/loss is \w+ at global step (\d+).*last\.ckpt \(step (\d+)\) holds the weights", message
    )
    kept = re.search(
        rf"the last finite checkpoint is kept as {re.escape(str(folder))}/last-finite\.ckpt \(step (\d+)\)", message
    )
    assert diverged and kept, message
    step, last_step, finite_step = int(diverged[1]), int(diverged[2]), int(kept[1])
    assert last_step == step and 0 < finite_step < step
    assert "last checkpoint is intact" not in message

    # the files hold what the message says: independent checks of their steps, values and losses
    finite, last = folder / "last-finite.ckpt", folder / "last.ckpt"
    assert torch.load(finite, weights_only=True)["global_step"] == finite_step
    assert torch.load(last, weights_only=True)["global_step"] == step
    assert all(torch.isfinite(v).all() for v in _state(finite).values())
    from speakimg.data import SpeechMelDataModule
    from speakimg.data.datamodule import collate_speech

    data = SpeechMelDataModule(str(speech_data), batch_size=2, num_workers=0, latents_vae="tiny:auffusion")
    data.prepare_data()
    data.setup("fit")
    batch = collate_speech([data.train_dataset[i] for i in range(2)])
    assert torch.isfinite(torch.tensor(_loss(finite, batch)))
    last_values_finite = all(torch.isfinite(v).all() for v in _state(last).values())
    assert ("NaN/inf values" in message) == (not last_values_finite)
    assert not last_values_finite or not torch.isfinite(torch.tensor(_loss(last, batch)))


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory, speech_data, tiny_root) -> tuple[list[str], Path]:
    """A 2-step quickstart run with ``last.ckpt`` at step 2; returns its arguments and the checkpoint."""
    tmp_path = tmp_path_factory.mktemp("summaries")
    args = _quickstart(tmp_path, speech_data, {"every_n_train_steps": 2, "save_last": True})
    main([*args, "--trainer.max_steps", "2"])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]  # a healthy run
    return args, ckpt


def _counts(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    return len(state), sum(v.numel() for v in state.values())


@pytest.mark.slow
def test_resume_says_what_it_restores(two_steps, tmp_path, caplog):
    args, ckpt = two_steps
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as seen:  # every warning recorded: none may list missing keys
        warnings.simplefilter("always")
        resume = ["--trainer.max_steps", "3", "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path)]
        cli = main([*args, *resume])  # into another run folder: the fixture's checkpoint stays at step 2
    assert cli.trainer.global_step == 3
    assert not [w for w in seen if "not in the checkpoint" in str(w.message)]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming from")]
    tensors, parameters = _counts(_state(ckpt))
    total = sum(v.numel() for v in cli.model.state_dict().values())
    assert f"resuming from {ckpt} at global step 2" in line
    assert f"weights: {tensors} tensors, {_fmt(parameters)} parameters" in line
    assert "1 optimizer and 1 scheduler state(s)" in line
    assert f"The other {_fmt(total - parameters)} parameters are frozen" in line
    assert "missing" not in caplog.text.lower() and "not in the checkpoint" not in caplog.text

    # loaded outside a run, the checkpoint is whole too: no list of the frozen weights as missing
    from speakimg.modules.speech_lora import SpeechLoRAModule

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        module = SpeechLoRAModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    assert not [w for w in seen if "not in the checkpoint" in str(w.message)]
    trained = _state(ckpt)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in trained.items())  # the trained weights loaded


def _fmt(n: int) -> str:
    """Independent of speakimg's formatter: 52113 -> 52.1 K, 1_016_164 -> 1.0 M."""
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


@pytest.mark.slow
def test_export_prints_a_short_true_summary(two_steps, tmp_path, caplog, capsys):
    from speakimg.export import main as export

    _, ckpt = two_steps
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = export([str(ckpt), str(tmp_path / "model")])
    assert not [w for w in seen if "not in the checkpoint" in str(w.message)]
    lines = [r.getMessage() for r in caplog.records if r.name == "speakimg.export"]
    assert len(lines) == 3, lines
    tensors, parameters = _counts(_state(ckpt))
    assert lines[0].startswith(
        f"read {ckpt} (global step 2, raw weights): {tensors} tensors, {_fmt(parameters)} parameters"
    )
    written = sorted(p.name for p in out.iterdir())
    assert written and all(name in lines[1] for name in written)
    assert lines[1].startswith(f"wrote {out}: ")
    assert "not in the checkpoint" not in caplog.text + capsys.readouterr().err


def test_export_of_a_wrong_file_is_one_line(tmp_path, capsys):
    from speakimg import cli
    from speakimg.export import main as export

    bogus = tmp_path / "vocoder.ckpt"
    torch.save({"state_dict": {}, "vocoder_config": {}}, bogus)  # a checkpoint of another kind
    assert cli.main(export, [str(bogus), str(tmp_path / "out")], prog="python -m speakimg.export") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m speakimg.export: error:") and str(bogus) in line and "not a speech" in line
    # --debug: the traceback of the error itself, then the same line
    assert cli.main(export, [str(bogus), str(tmp_path / "out"), "--debug"], prog="python -m speakimg.export") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Traceback") and "CheckpointError" in "\n".join(err)
    assert err[-1].startswith("python -m speakimg.export: error:")
    assert not (tmp_path / "out").exists()  # nothing written
