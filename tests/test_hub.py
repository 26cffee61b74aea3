"""Loaders resolve a local folder or a hub id through one code path, with clear errors."""

from __future__ import annotations

import pytest

from speakimg.errors import ModelNotFoundError
from speakimg.hub import resolve_dir, resolve_file


def test_local_folder_and_file(tmp_path):
    (tmp_path / "vocoder").mkdir()
    (tmp_path / "vocoder" / "config.json").write_text("{}")
    assert resolve_dir(tmp_path) == tmp_path
    assert resolve_dir(tmp_path, "vocoder") == tmp_path / "vocoder"
    assert resolve_file(tmp_path, "config.json", subfolder="vocoder") == tmp_path / "vocoder" / "config.json"
    assert resolve_file(tmp_path / "vocoder" / "config.json", "ignored") == tmp_path / "vocoder" / "config.json"


def test_missing_local_folder_names_it(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        resolve_dir(tmp_path / "missing" / "model")
    with pytest.raises(ModelNotFoundError, match="unet"):
        resolve_dir(tmp_path, "unet")
    with pytest.raises(ModelNotFoundError, match="vocoder.pt"):
        resolve_file(tmp_path, "vocoder.pt", subfolder=".")


def test_unreachable_hub_id_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a reachable"):
        resolve_dir("someone/not-a-cached-model")
    with pytest.raises(ModelNotFoundError, match="vocoder.pt"):
        resolve_file("someone/not-a-cached-model", "vocoder.pt", subfolder="vocoder")
