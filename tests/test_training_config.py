"""Training setup from config: injected optimizers and schedules, quickstart overlays, logging defaults,
one-line config errors, a ``--help`` that needs no Lightning.

Only parsing and optimizer construction here (no training): each test takes a few seconds.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from speakimg.errors import ConfigError
from speakimg.fit import config_error_message, main, resolve_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SPEECH = ["--config", str(CONFIGS / "auffusion_lora.yaml")]
QUICK_SPEECH = [*SPEECH, "--config", str(CONFIGS / "quickstart_speech.yaml")]
SCRATCH = ["--config", str(CONFIGS / "hifigan_scratch.yaml")]
QUICK_VOCODER = [*SCRATCH, "--config", str(CONFIGS / "quickstart_vocoder.yaml")]
FINE = ["--config", str(CONFIGS / "hifigan.yaml")]
RUNS = {"speech": SPEECH, "quickstart speech": QUICK_SPEECH, "fine-tune": FINE, "scratch": SCRATCH}
RUNS["quickstart vocoder"] = QUICK_VOCODER


def reference_warmup_cosine(base: float, steps: int, warmup: int, total: int, min_ratio: float) -> np.ndarray:
    """The schedule written out independently: lr (i + 1) / warmup x base while warming up, then a half
    cosine from base to min_ratio x base at step ``total``, flat after."""
    i = np.arange(steps, dtype=np.float64)
    warm = (i + 1) / max(warmup, 1) * base
    t = np.clip((i - warmup) / max(1, total - warmup), 0.0, 1.0)
    cosine = base * (min_ratio + (1 - min_ratio) * (np.cos(np.pi * t) + 1) / 2)
    return np.where(i < warmup, warm, cosine)


def _rates(optimizer, scheduler, steps: int) -> np.ndarray:
    """Each group's learning rate at every step (read before the step, as the step uses it)."""
    rates = []
    for _ in range(steps):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


# ------------------------------------------------------------------------------ optimizers, schedules
@pytest.fixture(scope="module")
def speech_module(tiny_auffusion, tiny_plbert):
    from speakimg.modules.speech_lora import SpeechLoRAModule

    return SpeechLoRAModule(base_model=str(tiny_auffusion), plbert=str(tiny_plbert), lora_rank=4, max_phonemes=64)


def _callables(init_args: dict):
    """The optimizer and scheduler callables that LightningCLI makes from a resolved config's init args."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--optimizer", type=OptimizerCallable)
    parser.add_argument("--scheduler", type=LRSchedulerCallable)
    init = parser.instantiate(parser.parse_object({k: init_args[k] for k in ("optimizer", "scheduler")}))
    return init.optimizer, init.scheduler


def _configure(module, total_steps: int):
    module._trainer = SimpleNamespace(estimated_stepping_batches=total_steps)  # what configure_optimizers reads
    try:
        configured = module.configure_optimizers()
    finally:
        module._trainer = None
    return configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def test_default_speech_schedule_is_adamw_groups_with_warmup_cosine_step_by_step(speech_module):
    optimizer, scheduler = _configure(speech_module, total_steps=1200)
    assert type(optimizer) is torch.optim.AdamW
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {name: g["initial_lr"] for name, g in groups.items()} == {"lora": 1e-4, "unfrozen": 2e-5, "adapter": 1e-4}
    assert all(g["betas"] == (0.9, 0.999) and g["weight_decay"] == 0.01 for g in groups.values())
    rates = _rates(optimizer, scheduler, 1300)
    for j, group in enumerate(optimizer.param_groups):
        expected = reference_warmup_cosine(group["initial_lr"], 1300, warmup=500, total=1200, min_ratio=0.1)
        np.testing.assert_allclose(rates[:, j], expected, rtol=1e-12)
    # the curve libraries offer is not this one: transformers' warms up from 0 (step 0 trains at lr 0)
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    probe = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    get_cosine_with_min_lr_schedule_with_warmup(probe, 500, 1200, min_lr_rate=0.1)
    assert probe.param_groups[0]["lr"] == 0.0 != rates[0, 0]


def test_the_recipe_config_injects_the_default_optimizer_and_schedule(speech_module):
    """auffusion_lora.yaml spells the defaults out: resolved through the CLI they give the same optimizer state
    and the same rates at every step as the module's built-in default."""
    model = resolve_config(QUICK_SPEECH)["model"]["init_args"]  # the overlay changes warmup_steps to 5
    speech_module.optimizer_factory, speech_module.scheduler_factory = _callables(model)
    try:
        optimizer, scheduler = _configure(speech_module, total_steps=60)
    finally:
        speech_module.optimizer_factory = speech_module.scheduler_factory = None
    assert (
        model["scheduler"]["init_args"]["warmup_steps"] == 5 and model["scheduler"]["init_args"]["total_steps"] is None
    )
    # the groups keep their own rates (the optimizer's own lr, 1e-3 by AdamW's default, is not used)
    assert {g["name"]: g["initial_lr"] for g in optimizer.param_groups} == {
        "lora": 1e-4,
        "unfrozen": 2e-5,
        "adapter": 1e-4,
    }
    assert all(g["betas"] == (0.9, 0.999) and g["weight_decay"] == 0.01 for g in optimizer.param_groups)
    rates = _rates(optimizer, scheduler, 70)
    for j, group in enumerate(optimizer.param_groups):
        expected = reference_warmup_cosine(group["initial_lr"], 70, warmup=5, total=60, min_ratio=0.1)
        np.testing.assert_allclose(rates[:, j], expected, rtol=1e-12)


def test_warmup_cosine_refuses_bad_settings_and_a_missing_length():
    from speakimg.modules.optim import WarmupCosine, make_scheduler

    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        WarmupCosine(probe, min_lr_ratio=1.5)
    scheduler = WarmupCosine(probe, warmup_steps=2)  # no total_steps, nobody fills it in: step 0 only
    probe.step()
    with pytest.raises(ConfigError, match="total_steps is not set"):
        scheduler.step()
    filled = make_scheduler(None, probe, functools.partial(WarmupCosine, warmup_steps=0), lambda: 4)
    assert filled.total_steps == 4 and "total_steps" not in filled.state_dict()  # the run's length, not restored


def test_hifigan_defaults_and_the_config_give_jik876s_optimizers():
    from speakimg.modules.hifigan import HiFiGANModule
    from speakimg.vocoder import GeneratorConfig

    tiny = GeneratorConfig(upsample_initial_channel=16, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]])
    default = HiFiGANModule(generator=tiny, discriminator_width=1 / 16)
    optimizer, scheduler = _callables(resolve_config(FINE)["model"]["init_args"])
    injected = HiFiGANModule(generator=tiny, discriminator_width=1 / 16, optimizer=optimizer, scheduler=scheduler)
    for module in (default, injected):
        optimizers, schedulers = module.configure_optimizers()
        assert [type(o) for o in optimizers] == [torch.optim.AdamW] * 2
        for optimizer in optimizers:
            (group,) = optimizer.param_groups
            assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-4, (0.8, 0.99), 0.01)
        assert sum(p.numel() for p in optimizers[0].param_groups[0]["params"]) == sum(
            p.numel() for p in module.generator.parameters()
        )
        for optimizer, scheduler in zip(optimizers, schedulers, strict=True):
            rates = _rates(optimizer, scheduler, 5)[:, 0]
            np.testing.assert_allclose(rates, 2e-4 * 0.999 ** np.arange(5), rtol=1e-12)


# ----------------------------------------------------------------------------------------- overlays
def test_quickstart_overlays_resolve_to_what_the_quickstarts_need():
    speech = resolve_config(QUICK_SPEECH)
    trainer, model, data = speech["trainer"], speech["model"], speech["data"]
    assert (trainer["accelerator"], trainer["precision"], trainer["max_steps"]) == ("cpu", "32-true", 60)
    assert model["class_path"] == "speakimg.modules.speech_lora.SpeechLoRAModule"  # from the recipe
    init = model["init_args"]
    assert (init["base_model"], init["plbert"], init["lora_rank"], init["lora_alpha"]) == (
        "tiny:auffusion",
        "tiny:plbert",
        8,
        8,
    )
    assert init["lora_targets"] == ["to_q", "to_k", "to_v", "to_out.0"] and init["snr_gamma"] == 5.0  # the recipe's
    assert (
        init["optimizer"]["class_path"] == "torch.optim.AdamW" and init["scheduler"]["init_args"]["warmup_steps"] == 5
    )
    assert data["init_args"]["data_dir"] == "data/quickstart" and data["init_args"]["latents_vae"] == "tiny:auffusion"
    sampling = [c for c in trainer["callbacks"] if c["class_path"] == "callbacks.CombinedSamplingCallback"]
    assert sampling[0]["init_args"]["image_model"] == "tiny:stable-diffusion"
    logger = trainer["logger"]["init_args"]
    assert (logger["name"], logger["project"], logger["offline"]) == ("quickstart-speech", "speakimg", True)

    vocoder = resolve_config(QUICK_VOCODER)
    init = vocoder["model"]["init_args"]
    assert init["generator"]["upsample_initial_channel"] == 32
    assert init["generator"]["upsample_rates"] == [5, 4, 4, 2] and init["generator"]["num_mels"] == 256  # the recipe's
    assert init["discriminator_width"] == 0.0625
    assert init["optimizer"]["init_args"]["lr"] == 0.001 and init["optimizer"]["init_args"]["betas"] == [0.8, 0.99]
    assert vocoder["data"]["init_args"]["data_dir"] == "data/quickstart" == data["init_args"]["data_dir"]
    assert vocoder["data"]["init_args"]["mel_dir"] == "mels"  # what the builder writes (scratch training)
    assert (vocoder["trainer"]["strategy"], vocoder["trainer"]["devices"]) == ("auto", 1)

    # overlays, not copies: no class paths of their own for the model and data, no repeated recipe values
    for name in ("quickstart_speech.yaml", "quickstart_vocoder.yaml"):
        overlay = yaml.safe_load((CONFIGS / name).read_text())
        assert "class_path" not in overlay["model"] and "class_path" not in overlay["data"]
        assert "seed_everything" not in overlay and "class_path" not in overlay["trainer"]["logger"]


@pytest.mark.parametrize(
    ("section", "key", "nearest"),
    [("model", "lora_rnak", "lora_rank"), ("data", "batchsize", "batch_size"), ("trainer", "max_step", "max_steps")],
)
def test_an_unknown_key_in_an_overlay_is_one_line_naming_the_key_and_the_nearest(
    tmp_path, capsys, section, key, nearest
):
    overlay = yaml.safe_load((CONFIGS / "quickstart_speech.yaml").read_text())
    target = overlay[section] if section == "trainer" else overlay[section]["init_args"]
    target[key] = 3
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pytest.raises(SystemExit) as exit_info:
        main([*SPEECH, "--config", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m speakimg.fit: error:"), err
    assert key in err[0] and "not accepted" in err[0] and nearest in err[0].split("nearest accepted:")[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--model.init_args.optimizer.init_args.lrr", "1"],
            "optimizer.init_args.lrr is not accepted by torch.optim.AdamW; nearest accepted: lr",
        ),
        (["--trainer.max_steps", "many"], "trainer.max_steps: expected int, got 'many'"),
        (["--model.init_args.mode", "swap"], "model.init_args.mode: 'swap' is not one of 'replace', 'augment'"),
        (["--trainer.max_stepz", "3"], "--trainer.max_stepz is not accepted; nearest accepted: trainer.max_steps"),
    ],
)
def test_config_errors_are_one_line(args, expected, capsys):
    with pytest.raises(SystemExit):
        main([*QUICK_SPEECH, *args])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line


def test_an_overlay_alone_says_it_needs_the_full_config_and_debug_shows_the_report(capsys):
    with pytest.raises(SystemExit):
        main(["--config", str(CONFIGS / "quickstart_vocoder.yaml")])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "names no class" in line and "overlays" in line
    with pytest.raises(ConfigError) as error:  # --debug: the error itself, with jsonargparse's report as cause
        main(["--config", str(CONFIGS / "quickstart_vocoder.yaml"), "--debug"])
    assert "Does not validate against any of the Union subtypes" in str(error.value.__cause__)


def test_error_message_for_reports_it_does_not_know_stays_one_line():
    report = 'Parser key "x":\n  Something new went wrong\n    - deep detail\n'
    assert "\n" not in config_error_message(report) and "Something new went wrong" in config_error_message(report)


# ------------------------------------------------------------------------------------------ logging
def test_every_config_logs_offline_into_its_run_folder(tmp_path):
    fit_configs = {p.name for p in CONFIGS.glob("*.yaml") if "trainer" in (yaml.safe_load(p.read_text()) or {})}
    assert fit_configs == {
        "auffusion_lora.yaml",
        "hifigan.yaml",
        "hifigan_scratch.yaml",
        "quickstart_speech.yaml",
        "quickstart_vocoder.yaml",
    }
    for name, args in RUNS.items():
        for root in (None, tmp_path / name):
            config = resolve_config(args + ([] if root is None else ["--trainer.default_root_dir", str(root)]))
            trainer = config["trainer"]
            root = str(root or trainer["default_root_dir"])
            logger = trainer["logger"]
            assert logger["class_path"] == "lightning.pytorch.loggers.WandbLogger", name
            assert logger["init_args"]["offline"] is True, name
            assert logger["init_args"]["save_dir"] == root, name
            (checkpoint,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
            assert checkpoint["init_args"]["dirpath"] == str(Path(root) / "checkpoints"), name
    # online is one documented flag away
    online = resolve_config([*FINE, "--trainer.logger.init_args.offline", "false"])
    assert online["trainer"]["logger"]["init_args"]["offline"] is False
    for name in ("eval.yaml", "eval_its.yaml"):  # the evaluation configs (not LightningCLI) are offline too
        assert yaml.safe_load((CONFIGS / name).read_text())["wandb_offline"] is True


def test_a_hard_coded_save_dir_would_not_follow_the_run_folder(tmp_path):
    """The deliberately broken config of issue 17 (hifigan.yaml with save_dir): W&B stays behind."""
    config = yaml.safe_load((CONFIGS / "hifigan.yaml").read_text())
    config["trainer"]["logger"]["init_args"]["save_dir"] = "outputs/hifigan"
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    resolved = resolve_config(["--config", str(path), "--trainer.default_root_dir", str(tmp_path / "run")])
    assert resolved["trainer"]["logger"]["init_args"]["save_dir"] == "outputs/hifigan" != str(tmp_path / "run")


# ------------------------------------------------------------------------------------- fast --help
@pytest.mark.parametrize(("module", "heavy"), [("speakimg.fit", "lightning"), ("speakimg.export", "torch")])
def test_help_comes_back_without_importing_the_heavy_libraries(module, heavy):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['{module}', '--help']\n"
        "try:\n"
        f"    runpy.run_module('{module}', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        f"print('HEAVY' if '{heavy}' in sys.modules else 'LIGHT')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("LIGHT") and "usage: python -m" in result.stdout


def test_schedule_reference_is_not_trivially_equal():
    """The independent schedule differs from a constant rate, so the step-by-step checks can fail."""
    curve = reference_warmup_cosine(1.0, 20, warmup=5, total=15, min_ratio=0.1)
    assert curve[0] == pytest.approx(0.2) and curve[4] == 1.0 and curve[-1] == pytest.approx(0.1)
    assert not math.isclose(curve[10], curve[5])
