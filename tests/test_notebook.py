"""``notebooks/images_that_speak.ipynb`` executes top to bottom on the tiny kit (nbclient, a real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "images_that_speak.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@pytest.mark.slow
def test_the_notebook_executes_offline_on_the_tiny_kit(tmp_path, tiny_root, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("SPEAKIMG_NOTEBOOK_STEPS", "4")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails

    code = [c for c in notebook.cells if c.cell_type == "code"]
    outputs = "\n".join(_text(c) for c in code)
    assert "picture (1, 256, 992, 3) spectrogram (1, 256, 992) audio (1, 158720) 16000 Hz" in outputs
    assert "vocoder cycle error" in outputs and "transcript:" in outputs and "WER:" in outputs
    kinds = {key for c in code for o in c.get("outputs", []) for key in o.get("data", {})}
    assert "image/png" in kinds and "text/html" in kinds  # the figure; the audio and video players
    assert (tmp_path / "outputs" / "notebook" / "video.mp4").stat().st_size > 1000
    assert (tmp_path / "outputs" / "notebook" / "audio.wav").is_file()
