"""SpeechMelDataModule: batches from a real festival build, workers, Lightning, DDP, latent cache, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from speakimg.data import MANIFEST, CanvasFit, ManifestRecord, SpeechMelDataModule, read_manifest, write_records
from speakimg.data.latents import VAE_META, cache_latents, latents_dir, vae_key
from speakimg.errors import DataError

LO, HI = math.log(1e-5), math.log(200.0)


def expected_image(mel_path: Path) -> np.ndarray:
    """The VAE input computed independently from the stored mel: [3, 256, 1024] in [-1, 1]."""
    mel = np.load(mel_path, allow_pickle=False).astype(np.float32)
    x = (np.clip(mel, LO, HI) - LO) / (HI - LO)
    x = x[::-1]  # row 0 = highest mel bin: low frequencies at the bottom of the image
    return np.repeat(x[None], 3, axis=0) * 2.0 - 1.0


def copy_items(source: Path, dest: Path, n_train: int, n_val: int = 0) -> Path:
    """A writable copy of a built dataset with its first ``n_train`` train and ``n_val`` val items."""
    everything = read_manifest(source)
    records = [r for r in everything if r.split == "train"][:n_train] + [r for r in everything if r.split == "val"][
        :n_val
    ]
    records.sort(key=lambda r: r.index)
    for sub in ("audio", "mels"):
        (dest / sub).mkdir(parents=True)
    for record in records:
        shutil.copy(source / record.audio, dest / record.audio)
        shutil.copy(source / record.mel, dest / record.mel)
    write_records(dest, records)
    return dest


@pytest.fixture()
def dataset_copy(festival_dataset, tmp_path) -> Path:
    """A writable copy of 6 items of the session's festival build (5 train, 1 val)."""
    return copy_items(festival_dataset, tmp_path / "data", 5, 1)


@pytest.mark.slow
def test_batches_with_workers(festival_dataset):
    dm = SpeechMelDataModule(str(festival_dataset), batch_size=4, num_workers=2)
    dm.setup("fit")
    records = {r.id: r for r in read_manifest(festival_dataset)}
    train_ids = {i for i, r in records.items() if r.split == "train"}
    seen = []
    for batch in dm.train_dataloader():
        assert set(batch) == {"image", "phoneme_ids", "phoneme_mask", "text", "id"}
        image, ids, mask = batch["image"], batch["phoneme_ids"], batch["phoneme_mask"]
        b = image.shape[0]
        assert image.shape == (b, 3, 256, 1024) and image.dtype == torch.float32
        assert image.min() >= -1.0 and image.max() <= 1.0 and image.min() == -1.0  # silence at the canvas end
        assert ids.dtype == torch.long and mask.dtype == torch.long and ids.shape == mask.shape
        lengths = [len(records[i].phoneme_ids) for i in batch["id"]]
        assert ids.shape[1] == max(lengths)
        for row, uid in enumerate(batch["id"]):
            record = records[uid]
            n = len(record.phoneme_ids)
            assert batch["text"][row] == record.text
            assert ids[row, :n].tolist() == record.phoneme_ids and ids[row, n:].eq(0).all()
            assert mask[row].sum() == n and mask[row, :n].eq(1).all()
            assert np.allclose(image[row].numpy(), expected_image(festival_dataset / record.mel), atol=1e-6)
        seen += batch["id"]
    assert sorted(seen) == sorted(train_ids)  # one epoch = every train item once
    val = [uid for batch in dm.val_dataloader() for uid in batch["id"]]
    assert sorted(val) == sorted(i for i, r in records.items() if r.split == "val") and len(val) == 2


class _Recorder(LightningModule):
    """Consumes speech batches; remembers the ids each rank trained on."""

    def __init__(self, out: str | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.out = out
        self.ids: list[str] = []

    def training_step(self, batch, batch_idx):
        assert batch["image"].shape[1:] == (3, 256, 1024) and batch["phoneme_ids"].ndim == 2
        self.ids += batch["id"]
        return self.layer(batch["image"].mean(dim=(2, 3))).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch["image"].mean(dim=(2, 3))).mean(), batch_size=len(batch["id"]))

    def on_train_epoch_end(self) -> None:
        if self.out:
            Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(self.ids))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.slow
def test_lightning_fit_with_workers(festival_dataset, tmp_path):
    dm = SpeechMelDataModule(str(festival_dataset), batch_size=4, num_workers=2)
    model = _Recorder()
    trainer = Trainer(accelerator="cpu", fast_dev_run=2, logger=False, enable_progress_bar=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert len(model.ids) == 8


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_ranks_share_an_epoch(festival_dataset, tmp_path):
    dm = SpeechMelDataModule(str(festival_dataset), batch_size=2, num_workers=0)
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_val_batches=0,
                      logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(_Recorder(str(tmp_path)), datamodule=dm)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    train = {r.id for r in read_manifest(festival_dataset) if r.split == "train"}
    assert len(ranks[0]) == len(ranks[1]) == len(train) // 2  # the DistributedSampler halves the epoch
    assert not set(ranks[0]) & set(ranks[1]) and set(ranks[0]) | set(ranks[1]) == train


# ---------------------------------------------------------------- latent cache


@pytest.mark.slow
def test_latent_cache_with_the_tiny_vae(dataset_copy, tiny_sd):
    from diffusers import AutoencoderKL

    dm = SpeechMelDataModule(str(dataset_copy), batch_size=3, num_workers=2, latents_vae=str(tiny_sd))
    dm.prepare_data()
    folder = latents_dir(dataset_copy, str(tiny_sd))
    assert folder.parent == dataset_copy / "latents" and folder.name == vae_key(str(tiny_sd))
    records = read_manifest(dataset_copy)
    assert sorted(p.name for p in folder.glob("*.npy")) == sorted(f"{r.id}.npy" for r in records)
    meta = json.loads((folder / VAE_META).read_text())
    assert meta["scaling_factor"] == 0.18215 and meta["vae"] == str(tiny_sd)
    mtimes = {p: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
    dm.prepare_data()  # complete cache: nothing is recomputed
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.npy")} == mtimes

    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"latents", "phoneme_ids", "phoneme_mask", "text", "id"}
    assert batch["latents"].shape == (3, 4, 32, 128) and batch["latents"].dtype == torch.float32
    # equal to an independent encode: posterior mean of the stored mel's image, times scaling_factor
    vae = AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae").eval()
    record = next(r for r in records if r.id == batch["id"][0])
    image = torch.from_numpy(expected_image(dataset_copy / record.mel).copy())[None]
    with torch.no_grad():
        expected = vae.encode(image).latent_dist.mean[0] * vae.config.scaling_factor
    assert torch.allclose(batch["latents"][0], expected, atol=2e-3, rtol=2e-3)  # stored as float16
    assert batch["latents"].abs().max() > 0


@pytest.mark.slow
def test_latent_cache_of_another_vae_is_refused(festival_dataset, tmp_path, tiny_sd):
    dataset = copy_items(festival_dataset, tmp_path / "two", 2)
    folder = cache_latents(dataset, str(tiny_sd), progress=False)
    meta = json.loads((folder / VAE_META).read_text())
    (folder / VAE_META).write_text(json.dumps({**meta, "fingerprint": "0123456789abcdef"}))
    next(folder.glob("*.npy")).unlink()
    with pytest.raises(DataError, match="latents of another VAE"):
        cache_latents(dataset, str(tiny_sd), progress=False)


def test_missing_latents_are_a_clear_error(dataset_copy):
    dm = SpeechMelDataModule(str(dataset_copy), latents_vae="some-org/some-vae")
    with pytest.raises(DataError, match=r"no latent cache for VAE 'some-org/some-vae'; run `python -m speakimg.data"):
        dm.setup("fit")


# ---------------------------------------------------------------- validation in setup


def _fake_dataset(folder: Path, splits: list[str], mel_shape=(256, 1024)) -> list[ManifestRecord]:
    (folder / "mels").mkdir(parents=True)
    records = []
    for i, split in enumerate(splits):
        uid = f"item{i}"
        np.save(folder / "mels" / f"{uid}.npy", np.full(mel_shape, -5.0, np.float16))
        records.append(ManifestRecord(id=uid, text=f"sentence {i}", split=split, phoneme_ids=[0, 20 + i, 16, 30],
                                      mel=f"mels/{uid}.npy", index=i))  # fmt: skip
    write_records(folder, records)
    return records


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match=r"manifest.jsonl: no manifest\. Build the dataset first: python -m speakimg"):
        SpeechMelDataModule(str(tmp_path / "nowhere")).setup("fit")


def test_no_train_items(tmp_path):
    _fake_dataset(tmp_path, ["val", "val"])
    with pytest.raises(DataError, match="no 'train' items among 2 ok items"):
        SpeechMelDataModule(str(tmp_path)).setup("fit")


def test_a_mel_of_the_wrong_shape_is_named(tmp_path):
    _fake_dataset(tmp_path, ["train", "train"])
    np.save(tmp_path / "mels" / "item1.npy", np.zeros((80, 1000), np.float16))
    with pytest.raises(DataError, match=r"item1\.npy: a mel of shape \(80, 1000\)"):
        SpeechMelDataModule(str(tmp_path)).setup("fit")
    (tmp_path / "mels" / "item1.npy").unlink()
    with pytest.raises(DataError, match=r"item1\.npy: the mel of item item1 is missing"):
        SpeechMelDataModule(str(tmp_path)).setup("fit")


def test_no_val_split_skips_validation_and_small_batches_work(tmp_path):
    _fake_dataset(tmp_path, ["train"] * 3)
    dm = SpeechMelDataModule(str(tmp_path), batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.val_dataloader() == []
    batches = list(dm.train_dataloader())
    assert [b["image"].shape[0] for b in batches] == [2, 1]
    value = (-5.0 - LO) / (HI - LO) * 2 - 1
    assert torch.allclose(batches[1]["image"], torch.full((1, 3, 256, 1024), value), atol=1e-3)
    assert (tmp_path / MANIFEST).is_file()


def test_vae_keys_are_file_safe_and_stable():
    assert vae_key("runwayml/stable-diffusion-v1-5") == "runwayml--stable-diffusion-v1-5"
    key = vae_key("/models/sd15/")
    assert key.startswith("sd15-") and len(key) == len("sd15-") + 8 and key == vae_key("/models/sd15")
    assert vae_key("/other/sd15") != key and "/" not in vae_key("./a b/c")


@pytest.mark.slow
def test_latents_cli(festival_dataset, tmp_path, tiny_sd, capsys):
    from speakimg.data.latents import main

    dataset = copy_items(festival_dataset, tmp_path / "cli", 2)
    main([str(dataset), "--vae", str(tiny_sd), "--device", "cpu", "--batch-size", "2"])
    folder = latents_dir(dataset, str(tiny_sd))
    assert f"latents: {folder}" in capsys.readouterr().out
    assert len(list(folder.glob("*.npy"))) == 2
    assert np.load(next(folder.glob("*.npy")), allow_pickle=False).dtype == np.float16


# ---------------------------------------------------------------- prepare_data builds a missing dataset

PREPARE_SENTENCES = [
    "A tired boy chewed cheese while the choir sang.",
    "Thin wet leaves fell softly on the quiet path.",
    "Seven bright kites float above the harbor today.",
    "The old clock in the hall struck nine at last.",
]


@pytest.fixture()
def sentences_txt(tmp_path) -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(PREPARE_SENTENCES) + "\n", "utf-8")
    return path


def test_prepare_data_builds_the_missing_dataset_once(tmp_path, sentences_txt):
    from test_data_build import digest

    from speakimg.data import BuildConfig, build_dataset

    build = {"tts": "espeak", "val_fraction": 0.25, "fit": {"placement": "center"}}
    dm = SpeechMelDataModule(str(tmp_path / "new"), batch_size=2, num_workers=0, sentences=str(sentences_txt),
                             build=build, build_workers=0)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 1
    # the same dataset as the builder library makes from the same settings
    config = BuildConfig(tts="espeak", val_fraction=0.25, fit=CanvasFit(placement="center"))
    build_dataset(PREPARE_SENTENCES, tmp_path / "library", config, workers=0, progress=False)
    assert digest(tmp_path / "new") == digest(tmp_path / "library")
    stamp = (tmp_path / "new" / MANIFEST).stat().st_mtime_ns
    SpeechMelDataModule(str(tmp_path / "new"), sentences=str(sentences_txt), build=build).prepare_data()
    assert (tmp_path / "new" / MANIFEST).stat().st_mtime_ns == stamp  # there: not built again


def test_bad_build_settings_fail_when_the_module_is_made(tmp_path):
    from speakimg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.build: unknown setting\(s\) \['ttz'\]; accepted: .*'tts'"):
        SpeechMelDataModule(str(tmp_path), build={"ttz": "espeak"})
    with pytest.raises(ConfigError, match="unknown TTS engine 'nope'"):
        SpeechMelDataModule(str(tmp_path), build={"tts": "nope"})
    with pytest.raises(DataError, match="or set the data module's `sentences`"):
        SpeechMelDataModule(str(tmp_path / "missing")).setup("fit")


class _BuildOnce(SpeechMelDataModule):
    """Records which rank built the dataset."""

    def _build(self) -> None:
        import os

        with open(Path(self.data_dir).parent / "built-by.txt", "a") as handle:
            handle.write(f"{os.environ.get('LOCAL_RANK', '0')},{self.trainer.global_rank}\n")
        super()._build()


@pytest.mark.slow
@pytest.mark.ddp
def test_prepare_data_builds_on_rank_zero_only_under_ddp(tmp_path, sentences_txt):
    dm = _BuildOnce(str(tmp_path / "ddp"), batch_size=1, num_workers=0, sentences=str(sentences_txt),
                    build={"tts": "espeak", "val_fraction": 0.0}, build_workers=1)  # fmt: skip
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_val_batches=0,
                      logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(_Recorder(str(tmp_path)), datamodule=dm)
    assert (tmp_path / "built-by.txt").read_text().splitlines() == ["0,0"]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(r.id for r in read_manifest(tmp_path / "ddp"))
    assert len(ranks[0]) == len(ranks[1]) == 2


def test_prepare_data_resumes_an_interrupted_build(tmp_path, sentences_txt):
    from speakimg.data import BuildConfig, build_dataset

    config = BuildConfig(tts="espeak", val_fraction=0.0)
    build_dataset(PREPARE_SENTENCES, tmp_path / "d", config, workers=0, shard=(0, 2), progress=False)
    assert len(read_manifest(tmp_path / "d")) == 2  # half built, manifest written: an interrupted build
    dm = SpeechMelDataModule(str(tmp_path / "d"), num_workers=0, sentences=str(sentences_txt),
                             build={"tts": "espeak", "val_fraction": 0.0}, build_workers=0)  # fmt: skip
    dm.prepare_data()
    assert [r.text for r in read_manifest(tmp_path / "d")] == PREPARE_SENTENCES
