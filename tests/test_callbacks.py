"""The training callbacks: sampling images that speak while the speech model trains, vocoder media.

The sampling callback runs inside the shipped quickstart (``python -m speakimg.fit``) on a festival
dataset: it must log spectrograms, pictures, audio, transcripts and a WER into the offline W&B run,
sample exactly what an export of the module gives through ``ImagesThatSpeakPipeline``, and log once
(without hanging) under 2-process DDP, in both of its distributed modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import requires_festival
from PIL import Image

from callbacks import CombinedSamplingCallback, VocoderMediaCallback
from speakimg.errors import ConfigError
from speakimg.metrics import word_error_rate
from speakimg.sampling import SamplerSettings

REPO = Path(__file__).resolve().parents[1]
PAIRS = [
    ("a painting of castle towers, grayscale", "The quick brown fox jumps over the lazy dog."),
    ("a kitten, black and white", "Seven bright kites float above the harbor."),
]


def _config(tmp_path: Path, data_dir: Path, **callback) -> list[str]:
    """``--config`` arguments of the shipped quickstart (the recipe + its overlay) with a faster sampling
    callback (the YAML's other settings unchanged)."""
    config = yaml.safe_load((REPO / "configs" / "quickstart_speech.yaml").read_text())
    config["data"]["init_args"].update(data_dir=str(data_dir), num_workers=0)
    sampling = [c for c in config["trainer"]["callbacks"] if c["class_path"] == "callbacks.CombinedSamplingCallback"]
    assert len(sampling) == 1, "the quickstart ships the sampling callback"
    sampling[0]["init_args"].update(
        image_prompts=[p for p, _ in PAIRS], sentences=[s for _, s in PAIRS], sampler={"steps": 3}, **callback
    )
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--config", str(REPO / "configs" / "auffusion_lora.yaml"), "--config", str(path)]


def _media(run: Path, kind: str, key: str, suffix: str) -> list[Path]:
    (offline,) = run.glob("wandb/offline-run-*")
    folder = "audio" if suffix == ".wav" else "images"
    return sorted(offline.glob(f"files/media/{folder}/samples/{kind}/{key}_*{suffix}"))


@requires_festival
@pytest.mark.slow
def test_quickstart_samples_log_media_and_wer_and_equal_the_exported_model(tmp_path, speech_data, tiny_root, tiny_sd):
    from speakimg.fit import main
    from speakimg.pipeline import ImagesThatSpeakPipeline

    run = tmp_path / "run"
    config = _config(tmp_path, speech_data, every_n_steps=2)
    cli = main([*config, "--trainer.default_root_dir", str(run), "--trainer.max_steps", "4"])
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, CombinedSamplingCallback)]

    # sampled at steps 2 and 4 (training ended at 4: not sampled twice); 2 pairs + 2 audio-only each
    assert [step for step, _ in callback.history] == [2, 4]
    for _, records in callback.history:
        assert [(r.kind, r.image_prompt, r.sentence) for r in records] == [
            *(("combined", p, s) for p, s in PAIRS),
            *(("audio_only", "", s) for _, s in PAIRS),
        ]
        for r in records:
            assert r.spectrogram.shape == (256, 992) and 0 <= r.spectrogram.min() <= r.spectrogram.max() <= 1
            assert r.audio.shape == (158720,) and np.isfinite(r.audio).all()
            assert (r.image is not None) == (r.kind == "combined")
            assert isinstance(r.transcript, str) and r.wer == word_error_rate([r.transcript], [r.sentence])
    final = callback.history[-1][1]
    # audio-only samples ignore the picture: they differ from the combined ones of the same seed
    assert not np.allclose(final[0].spectrogram, final[2].spectrogram)

    # the offline W&B run holds the media of both samplings, the transcript tables and the WERs
    assert len(_media(run, "combined", "spectrogram", ".png")) == 4
    assert len(_media(run, "combined", "image", ".png")) == 4
    assert len(_media(run, "audio_only", "spectrogram", ".png")) == 4
    wavs = _media(run, "combined", "audio", ".wav") + _media(run, "audio_only", "audio", ".wav")
    assert len(wavs) == 8 and sf.info(wavs[0]).samplerate == 16000 and sf.info(wavs[0]).frames == 158720
    with Image.open(_media(run, "combined", "spectrogram", ".png")[0]) as png:
        assert png.size == (992, 256)
    (offline,) = run.glob("wandb/offline-run-*")
    assert len(list(offline.glob("files/media/table/samples/transcripts_*.table.json"))) == 2
    record = next(offline.glob("run-*.wandb")).read_bytes()
    assert b"samples/wer_combined" in record and b"samples/wer_audio_only" in record
    assert b'"max_steps":4' in record  # the resolved config is the W&B run's config

    # what the callback logged at the last step is what the trained model, exported, samples
    exported = cli.model.export(tmp_path / "model")
    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, exported)  # default vocoder: the base's HiFi-GAN
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        [p for p, _ in PAIRS], [s for _, s in PAIRS], num_inference_steps=3, output_type="np",
        generator=[torch.Generator().manual_seed(0) for _ in PAIRS],
    )  # fmt: skip
    for j in range(len(PAIRS)):
        np.testing.assert_allclose(final[j].spectrogram, out.spectrograms[j], atol=1e-4)
        np.testing.assert_allclose(final[j].audio, out.audios[j], atol=1e-3)


@requires_festival
@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.parametrize("distributed", ["rank_zero", "split"])
def test_two_process_ddp_logs_samples_once(tmp_path, speech_data, tiny_root, distributed):
    run = tmp_path / "run"
    config = _config(tmp_path, speech_data, every_n_steps=2, distributed=distributed)  # with tiny Whisper (WER)
    command = [
        sys.executable, "-m", "speakimg.fit", *config, "--trainer.strategy", "ddp",
        "--trainer.devices", "2", "--trainer.max_steps", "2", "--trainer.default_root_dir", str(run),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(run.glob("wandb/offline-run-*"))) == 1
    assert len(_media(run, "combined", "spectrogram", ".png")) == 2  # logged once, by rank 0
    assert len(_media(run, "audio_only", "audio", ".wav")) == 2
    (offline,) = run.glob("wandb/offline-run-*")
    assert b"samples/wer_combined" in next(offline.glob("run-*.wandb")).read_bytes()


def test_files_logger_gets_pngs_wavs_and_a_csv_table(tmp_path, tiny_auffusion):
    """Without W&B/TensorBoard, media land as files under the run folder (here: no logger at all)."""
    import lightning as L

    from speakimg.loggers import AudioCell, ImageCell, log_table

    trainer = L.Trainer(logger=False, default_root_dir=tmp_path, accelerator="cpu")
    image = np.random.default_rng(0).random((3, 16, 24))
    audio = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    log_table(trainer.loggers, "samples/x", ["name", "image", "audio"], [["a", ImageCell(image), AudioCell(audio)]],
              step=7, files_dir=Path(trainer.default_root_dir) / "media")  # fmt: skip
    folder = tmp_path / "media" / "samples_x"
    assert (folder / "step0000007.csv").read_text().splitlines() == [
        "name,image,audio",
        "a,step0000007_0_image.png,step0000007_0_audio.wav",
    ]
    with Image.open(folder / "step0000007_0_image.png") as png:
        assert png.size == (24, 16)
        assert np.abs(np.asarray(png, np.float32) / 255 - image.transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-6
    wav, rate = sf.read(folder / "step0000007_0_audio.wav", dtype="float32")
    assert rate == 16000 and np.abs(wav - audio).max() < 1e-4


def test_vocoder_media_callback_with_a_csv_logger(tmp_path, speech):
    from lightning.pytorch.loggers import CSVLogger
    from test_vocoder_module import Batches, _module, _trainer
    from torch.utils.data import DataLoader

    train, val = Batches(speech, n=1, segment=3200), Batches(speech, n=3, batch=1, segment=3200)
    logger = CSVLogger(tmp_path, name="csv")
    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=3, logger=logger, callbacks=[VocoderMediaCallback(2)])
    trainer.fit(_module(), DataLoader(train, batch_size=None), DataLoader(val, batch_size=None))
    media = Path(logger.log_dir) / "media"
    for clip in (0, 1):
        real, fake = (sf.read(media / f"val_clip{clip}_audio" / f"step0000001_{i}.wav")[0] for i in (0, 1))
        assert real.shape == fake.shape == (3200,) and not np.allclose(real, fake)
        np.testing.assert_allclose(real, val.items[clip]["audio"][0, 0].numpy(), atol=1 / 32768 + 1e-6)
        with Image.open(media / f"val_clip{clip}_mel" / "step0000001_0.png") as png:
            assert png.size == (20, 512)  # real above generated: 2 x 256 mel rows, 20 frames
    assert not (media / "val_clip2_audio").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_prompts": ["a", "b"], "sentences": ["x", "y", "z"]}, "paired element-wise"),
        ({"image_prompts": "no/such/file.txt", "sentences": ["x"]}, "is not a file"),
        ({"image_prompts": [""], "sentences": ["x"]}, "non-empty"),
        ({"image_prompts": ["a"], "sentences": ["x"], "seeds": []}, "at least one seed"),
        ({"image_prompts": ["a"], "sentences": ["x"], "distributed": "all"}, "rank_zero"),
        ({"image_prompts": ["a"], "sentences": ["x"], "every_n_steps": -1}, "every_n_steps"),
        ({"image_prompts": ["a"], "sentences": ["x"], "sampler": SamplerSettings(t_image=2.0)}, "t_image=2.0"),
        ({"image_prompts": ["a"], "sentences": ["x"], "sampler": SamplerSettings(method="euler")}, "method must be"),
    ],
)
def test_bad_sampling_settings_are_one_clear_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CombinedSamplingCallback(**kwargs)


def test_the_callback_takes_sampler_settings_from_its_yaml():
    """The YAML's ``sampler:`` mapping becomes a SamplerSettings (unset keys: the defaults, resolved)."""
    from jsonargparse import ArgumentParser

    from callbacks.sampling import CALLBACK_STEPS

    assert (
        CombinedSamplingCallback(image_prompts=["a"], sentences=["x"]).sampler
        == SamplerSettings(steps=CALLBACK_STEPS).resolved()
    )
    parser = ArgumentParser()
    parser.add_class_arguments(CombinedSamplingCallback, "callback")
    config = parser.parse_object({"callback": {"image_prompts": ["a"], "sentences": ["x"], "sampler": {"steps": 3}}})
    callback = parser.instantiate(config).callback
    assert callback.sampler == SamplerSettings(steps=3).resolved() and callback.sampler.image_guidance_scale == 10.0


def test_a_single_prompt_pairs_with_every_sentence_and_items_are_ordered():
    callback = CombinedSamplingCallback(image_prompts=["a castle"], sentences=["one", "two", "one"], seeds=[0, 1])
    items = callback.items()
    assert items[:2] == [("combined", "a castle", "one", 0), ("combined", "a castle", "one", 1)]
    assert len(items) == 6 + 4  # 3 pairs x 2 seeds, then each distinct sentence x 2 seeds alone
    assert items[6:] == [("audio_only", "", s, seed) for s in ("one", "two") for seed in (0, 1)]


def test_sampling_needs_a_speech_module(tmp_path):
    import lightning as L

    callback = CombinedSamplingCallback(image_prompts=["a"], sentences=["b"], whisper=None)
    trainer = L.Trainer(logger=False, default_root_dir=tmp_path, accelerator="cpu")
    with pytest.raises(ConfigError, match=r"\.model is a speech model"):
        callback.sample(trainer, L.LightningModule())
