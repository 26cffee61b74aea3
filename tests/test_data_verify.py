"""Verified datasets: checksums, broken files found and repaired byte-identically, guards on load.

Each test breaks a real festival build on purpose (a changed byte, a truncated .npy, a NaN in a mel, a
truncated latent, a string where the manifest needs ids, a killed writer's temporary file) and checks
that the break is found, named, and repaired.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_festival
from test_data_build import digest

from speakimg.data import MANIFEST, SpeechMelDataModule, read_manifest
from speakimg.data.build import main as build_main
from speakimg.data.integrity import repair_dataset, verify_dataset
from speakimg.data.latents import cache_latents, latents_dir
from speakimg.data.manifest import ManifestRecord, load_mel
from speakimg.data.store import DatasetStore
from speakimg.data.verify import main as verify_main
from speakimg.errors import DataError

pytestmark = [pytest.mark.slow, requires_festival]


@pytest.fixture()
def dataset(festival_dataset, tmp_path) -> Path:
    """A writable copy of the session's 30-sentence festival build."""
    return Path(shutil.copytree(festival_dataset, tmp_path / "data"))


def first(data: Path, split: str = "train") -> ManifestRecord:
    return next(r for r in read_manifest(data) if r.split == split)


def test_checksums_are_the_sha256_of_the_files(festival_dataset):
    for record in read_manifest(festival_dataset):
        assert set(record.checksums) == {record.audio, record.mel}
        for rel, expected in record.checksums.items():
            assert hashlib.sha256((festival_dataset / rel).read_bytes()).hexdigest() == expected
    result = verify_dataset(festival_dataset, progress=False)
    assert result.ok and result.checked == 30 and not result.broken and not result.not_built
    assert "all intact" in result.format()


def test_a_changed_byte_is_found_and_rebuilt_identically(dataset, festival_dataset, sentences_file, capsys):
    record = first(dataset)
    path = dataset / record.mel
    mel = np.load(path)
    mel[100, 10] += 1  # still a readable, finite float16 [256, 1024] mel: only the checksum can tell
    np.save(path, mel)
    assert verify_main([str(dataset), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN {record.id}" in out and "checksum mismatch" in out and "--repair" in out
    # a rerun of the build command rebuilds the broken item (it used to skip it: the file existed)
    args = ["--texts", str(sentences_file), "--out", str(dataset), "--workers", "0", "--quiet"]
    assert build_main(args) == 0
    out = capsys.readouterr().out
    assert "built 1, skipped 29" in out and "rebuilt 1 broken item" in out and record.id in out
    assert digest(dataset) == digest(festival_dataset)


def test_a_truncated_mel_is_named_on_load_and_repaired(dataset, festival_dataset, capsys):
    record = first(dataset)
    path = dataset / record.mel
    path.write_bytes(path.read_bytes()[:5000])  # a killed copy: header intact, data cut
    with pytest.raises(DataError, match=rf"{record.id}\.npy: not a readable \.npy mel .*verify {dataset} --repair"):
        SpeechMelDataModule(str(dataset), num_workers=0).setup("fit")
    with pytest.raises(DataError, match=rf"{record.id}\.npy: cannot read the stored mel .*--repair"):
        load_mel(dataset, record)
    before, summary, after = repair_dataset(dataset, workers=1, progress=False)
    assert list(before.broken) == [record.id] and summary.built == 1 and after.ok
    assert digest(dataset) == digest(festival_dataset)


def test_a_nan_mel_never_reaches_the_latent_cache_or_training(dataset, tiny_sd):
    record = first(dataset)
    path = dataset / record.mel
    mel = np.load(path)
    mel[5, 7] = np.nan
    np.save(path, mel)
    with pytest.raises(DataError, match=rf"{record.id}\.npy: the stored mel of {record.id} has 1 NaN or infinite"):
        cache_latents(dataset, str(tiny_sd), progress=False)
    assert not (latents_dir(dataset, str(tiny_sd)) / f"{record.id}.npy").exists()
    dm = SpeechMelDataModule(str(dataset), num_workers=0)
    dm.setup("fit")  # headers only; the item fails when it is read, naming the file
    index = [r.id for r in dm.train_dataset.records].index(record.id)
    with pytest.raises(DataError, match=rf"{record.id}\.npy: .*NaN"):
        dm.train_dataset[index]
    # verify names it too, even without a checksum to compare (a dataset built before checksums)
    store = DatasetStore(dataset)
    old = store.read_record(record.id)
    old.checksums = {}
    store.write_record(old)
    problems = store.check_item(old)
    assert problems == [f"{path}: 1 NaN or infinite values"]


def test_a_truncated_latent_is_named_and_a_repair_removes_it(festival_dataset, tmp_path, tiny_sd):
    from test_data_datamodule import copy_items

    data = copy_items(festival_dataset, tmp_path / "small", 3)
    dm = SpeechMelDataModule(str(data), batch_size=2, num_workers=0, latents_vae=str(tiny_sd))
    dm.prepare_data()
    folder = latents_dir(data, str(tiny_sd))
    latents = sorted(folder.glob("*.npy"))
    good = {p.name: np.load(p).astype(np.float32) for p in latents}
    broken = latents[0]
    broken.write_bytes(broken.read_bytes()[:300])
    stale = folder / "0123456789abcdef.npy"  # a latent of an item no longer in the dataset
    shutil.copy(latents[1], stale)
    with pytest.raises(DataError, match=rf"{broken.name}: not a readable latent .*--repair"):
        SpeechMelDataModule(str(data), num_workers=0, latents_vae=str(tiny_sd)).setup("fit")
    result = verify_dataset(data, progress=False)
    (check,) = result.latents
    assert not result.ok and list(check.broken) == [broken] and check.stale == [stale] and check.cached == 2
    # removing what is broken or stale (what --repair does), then prepare_data computes the latent again
    for path in [*check.stale, *check.broken]:
        path.unlink()
    dm.prepare_data()
    again = {p.name: np.load(p).astype(np.float32) for p in folder.glob("*.npy")}
    assert again.keys() == good.keys()  # recomputed alone, not in a batch of 3: equal to float16 rounding
    assert all(np.allclose(again[k], good[k], atol=2e-3, rtol=2e-3) for k in good)
    # in the middle of training: a latent truncated after setup fails when read, naming the file
    dm = SpeechMelDataModule(str(data), num_workers=0, latents_vae=str(tiny_sd))
    dm.setup("fit")
    broken.write_bytes(broken.read_bytes()[:300])
    index = [r.id for r in dm.train_dataset.records].index(broken.stem)
    with pytest.raises(DataError, match=rf"{broken.name}: cannot read the cached latent"):
        dm.train_dataset[index]


def test_string_phoneme_ids_name_the_manifest_line_and_the_repair_rewrites_it(dataset, festival_dataset):
    lines = (dataset / MANIFEST).read_text("utf-8").splitlines()
    row = json.loads(lines[3])
    row["phoneme_ids"] = " ".join(str(i) for i in row["phoneme_ids"])  # hand-edited into a string
    lines[3] = json.dumps(row, ensure_ascii=False)
    (dataset / MANIFEST).write_text("\n".join(lines) + "\n", "utf-8")
    message = r"manifest\.jsonl:4: not a manifest record \(field 'phoneme_ids' must be a list of integers"
    with pytest.raises(DataError, match=message):
        read_manifest(dataset)
    with pytest.raises(DataError, match=message):
        SpeechMelDataModule(str(dataset), num_workers=0).setup("fit")
    before, _, after = repair_dataset(dataset, workers=0, progress=False)
    assert any("manifest.jsonl:4" in p for p in before.manifest) and after.ok
    assert digest(dataset) == digest(festival_dataset)


def test_the_record_fields_are_type_checked():
    good = {"id": "a", "text": "A sentence.", "phoneme_ids": [0, 12, 16]}
    assert ManifestRecord.from_dict(good).phoneme_ids == [0, 12, 16]
    for field, value in [("phoneme_ids", "0 12 16"), ("phoneme_ids", [0, 1.5]), ("speech_start", "0"),
                         ("mel", 3), ("checksums", ["x"]), ("index", True)]:  # fmt: skip
        with pytest.raises(TypeError, match=f"field '{field}' must"):
            ManifestRecord.from_dict({**good, field: value})
    with pytest.raises(TypeError, match="field 'text' is missing"):
        ManifestRecord.from_dict({"id": "a"})


def test_a_killed_writers_temporary_file_is_removed(dataset, festival_dataset, sentences_file, capsys):
    leftover = dataset / "mels" / ".0123456789abcdef.npy.tmp-4242-0a1b2c3d.npy"
    leftover.write_bytes(b"\x93NUMPY half a file")
    young = dataset / "audio" / ".fedcba9876543210.wav.tmp-4243-0a1b2c3d.wav"  # a writer may still be at it
    young.write_bytes(b"RIFF")
    legacy = dataset / "audio" / ".0123456789abcdef.wav.4242.tmp.tmp"  # what builds before speakimg.io left
    legacy.write_bytes(b"RIFF")
    old = time.time() - 3600
    for path in (leftover, legacy):
        os.utime(path, (old, old))
    result = verify_dataset(dataset, progress=False)
    assert not result.ok and result.temp_files == [legacy, young, leftover]
    args = ["--texts", str(sentences_file), "--out", str(dataset), "--workers", "0", "--quiet"]
    assert build_main(args) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert not leftover.exists() and not legacy.exists() and young.exists()
    assert verify_main([str(dataset), "--repair", "--workers", "0", "--quiet"]) == 0  # removes any age
    assert not young.exists() and digest(dataset) == digest(festival_dataset)


def test_verify_of_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    assert verify_main([str(tmp_path / "nowhere")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert verify_main([str(tmp_path / "empty"), "--quiet"]) == 1  # no manifest
    assert "no manifest" in capsys.readouterr().out
    assert verify_main([str(tmp_path / "empty"), "--repair"]) == 2
    assert "cannot be rebuilt" in capsys.readouterr().err
