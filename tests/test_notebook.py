"""``notebooks/images_that_speak.ipynb`` executes top to bottom on the tiny kit (nbclient, a real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import requires_festival

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "images_that_speak.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@requires_festival
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
    # real ears: festival's sentence is heard, the random-weight sample is not (the metric can fail)
    assert _percent(outputs, r"festival\s+transcript: .*WER: ([\d.]+)%") <= 0.35
    assert _percent(outputs, r"WER: ([\d.]+)%\s+\(random weights") >= 0.8
    assert "imprint -> Griffin-Lim" in outputs
    assert _percent(outputs, r"dataset WER \(4 clips\): stored audio ([\d.]+)%") <= 0.25


def _percent(outputs: str, pattern: str) -> float:
    """The percentage captured by ``pattern`` in the printed outputs, as a fraction."""
    import re

    found = re.search(pattern, outputs)
    assert found, pattern
    return float(found.group(1)) / 100


def test_the_committed_notebook_holds_the_outputs_of_a_run():
    """Saved with outputs (figures, players, real WER figures): readable on GitHub without running it."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("outputs") for c in code[2:]), [c.source[:40] for c in code if not c.get("outputs")]
    assert all(c.get("execution_count") for c in code)
    outputs = "\n".join(_text(c) for c in code)
    assert "transcript:" in outputs and "dataset WER" in outputs and "imprint -> Griffin-Lim" in outputs
