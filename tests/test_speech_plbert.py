"""PL-BERT loads from its original checkpoint format (docs/method.md 7) with every key checked."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from speakimg.errors import CheckpointError, ModelNotFoundError
from speakimg.speech import PLBert
from speakimg.speech.plbert import latest_step_file, read_plbert_state_dict
from speakimg.testing import TINY_PLBERT_PARAMS, TINY_PLBERT_STEPS
from speakimg.testing.plbert import plbert_checkpoint


def _albert_from(checkpoint: dict):
    """An independent reference: transformers' AlbertModel loaded by hand from the raw checkpoint."""
    from transformers import AlbertConfig, AlbertModel

    reference = AlbertModel(AlbertConfig(**TINY_PLBERT_PARAMS), add_pooling_layer=False).eval()
    prefix = "module.encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["net"].items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    state.pop("embeddings.position_ids", None)
    reference.load_state_dict(state, strict=True)
    return reference


def _ids():
    ids = torch.tensor([[0, 50, 83, 16, 61, 102, 4, 0, 0], [0, 61, 57, 47, 16, 44, 56, 102, 4]])
    mask = (torch.arange(9)[None] < torch.tensor([[7], [9]])).long()
    return ids, mask


def test_loads_the_highest_step_and_matches_an_independent_albert(tiny_plbert):
    assert latest_step_file(tiny_plbert).name == f"step_{max(TINY_PLBERT_STEPS)}.t7"  # 2000, not "step_300"
    model = PLBert.from_pretrained(tiny_plbert)
    seed = TINY_PLBERT_STEPS.index(max(TINY_PLBERT_STEPS))
    reference = _albert_from(plbert_checkpoint(TINY_PLBERT_PARAMS, seed=seed, step=max(TINY_PLBERT_STEPS)))
    ids, mask = _ids()
    with torch.no_grad():
        out = model(ids, mask)
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape == (2, 9, TINY_PLBERT_PARAMS["hidden_size"]) == (2, 9, model.hidden_size)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    other = _albert_from(plbert_checkpoint(TINY_PLBERT_PARAMS, seed=0, step=300))
    with torch.no_grad():
        assert not torch.allclose(out, other(input_ids=ids, attention_mask=mask).last_hidden_state)
    assert not model.training


def test_real_format_loads_under_weights_only(tiny_plbert):
    raw = torch.load(tiny_plbert / f"step_{max(TINY_PLBERT_STEPS)}.t7", weights_only=True)
    assert {"net", "step", "optimizer"} <= set(raw)  # optimizer state and plain values, still safe to load
    assert "module.encoder.embeddings.position_ids" in raw["net"] and "module.mask_predictor.weight" in raw["net"]
    state = read_plbert_state_dict(tiny_plbert / f"step_{max(TINY_PLBERT_STEPS)}.t7")
    assert "embeddings.position_ids" not in state and not any(k.startswith("mask_predictor") for k in state)


@pytest.mark.parametrize(
    "layout",
    ["module.encoder.", "encoder.", ""],  # DataParallel-saved, plain MultiTaskModel, bare ALBERT
)
@pytest.mark.parametrize("position_ids", [True, False])
def test_key_layouts_with_and_without_position_ids(tmp_path, layout, position_ids):
    checkpoint = plbert_checkpoint(TINY_PLBERT_PARAMS, seed=7, step=10, position_ids=position_ids)
    net = {}
    for key, value in checkpoint["net"].items():
        if key.startswith("module.encoder."):
            net[layout + key[len("module.encoder.") :]] = value
        elif layout:  # heads only exist next to an encoder
            net[key if layout.startswith("module.") else key[len("module.") :]] = value
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"model_params": TINY_PLBERT_PARAMS}))
    torch.save({"net": net, "step": 10}, tmp_path / "step_10.t7")
    model = PLBert.from_pretrained(tmp_path)
    reference = _albert_from(checkpoint)
    ids, mask = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask), reference(input_ids=ids, attention_mask=mask).last_hidden_state)


def test_missing_weights_are_named(tmp_path, tiny_plbert):
    shutil.copy(tiny_plbert / "config.yml", tmp_path / "config.yml")
    checkpoint = plbert_checkpoint(TINY_PLBERT_PARAMS, seed=1, step=5)
    del checkpoint["net"]["module.encoder.encoder.embedding_hidden_mapping_in.weight"]
    torch.save(checkpoint, tmp_path / "step_5.t7")
    with pytest.raises(CheckpointError, match=r"Missing 1: \['encoder\.embedding_hidden_mapping_in\.weight'\]"):
        PLBert.from_pretrained(tmp_path)


def test_config_that_does_not_fit_the_weights(tmp_path, tiny_plbert):
    shutil.copy(tiny_plbert / f"step_{max(TINY_PLBERT_STEPS)}.t7", tmp_path)
    params = {**TINY_PLBERT_PARAMS, "hidden_size": 32}
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"model_params": params}))
    with pytest.raises(CheckpointError, match="do not fit its config.yml"):
        PLBert.from_pretrained(tmp_path)


class _Payload:
    def __reduce__(self):
        return (print, ("unsafe code ran",))


def test_unsafe_pickle_is_refused(tmp_path, tiny_plbert, capsys):
    shutil.copy(tiny_plbert / "config.yml", tmp_path / "config.yml")
    torch.save({"net": {}, "payload": _Payload()}, tmp_path / "step_1.t7")
    with pytest.raises(CheckpointError, match="weights_only"):
        PLBert.from_pretrained(tmp_path)
    assert "unsafe code ran" not in capsys.readouterr().out


def test_missing_folder_or_weights(tmp_path, tiny_plbert):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        PLBert.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="config.yml"):
        PLBert.from_pretrained(tmp_path)
    shutil.copy(tiny_plbert / "config.yml", tmp_path / "config.yml")
    with pytest.raises(ModelNotFoundError, match=r"step_<N>\.t7"):
        PLBert.from_pretrained(tmp_path)


def test_save_pretrained_round_trip_is_standalone(tmp_path, tiny_plbert):
    model = PLBert.from_pretrained("tiny:plbert")  # the kit reference resolves to the same folder
    out = model.save_pretrained(tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == ["config.yml", "plbert.safetensors"]
    again = PLBert.from_pretrained(out)
    ids, mask = _ids()
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask), model(ids, mask), rtol=0, atol=0)
    assert yaml.safe_load((out / "config.yml").read_text())["model_params"] == TINY_PLBERT_PARAMS
