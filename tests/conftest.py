"""Shared fixtures: offline environment, the tiny-model kit in a session folder, festival speech."""

from __future__ import annotations

import os

# No network in tests: hub loaders must fail fast (or use local folders), W&B stays offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (the default: ``-n 2`` in pyproject) each worker is one process on one core.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
torch.set_num_threads(1 if XDIST_WORKER else min(2, os.cpu_count() or 1))


LONG_FILES = (
    "test_callbacks.py", "test_speech_fit.py", "test_real_ears.py", "test_speech_training.py",
    "test_evaluate_scale.py", "test_data_resume.py", "test_documented_commands.py", "test_notebook.py",
    "test_demo.py", "test_reliability.py", "test_pipeline_combined.py", "test_evaluate.py",
    "test_data_build.py", "test_vocoder_fit.py", "test_data_datamodule.py",
)  # fmt: skip
"""Test files of a minute or more (``--durations`` on 2 cores), longest first."""


def pytest_collection_modifyitems(config, items) -> None:
    """The long files first (longest first, :data:`LONG_FILES`), then the others (a file's own order kept):
    xdist hands whole files to the workers in this order (``--no-loadscope-reorder``), so a long file does
    not start last while the other worker sits idle."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: the rest keep their order


def _shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder every xdist worker of this run shares (built once, under a lock), else this session's own."""
    if not XDIST_WORKER:
        return tmp_path_factory.mktemp(name)
    path = tmp_path_factory.getbasetemp().parent / name
    path.mkdir(exist_ok=True)
    return path


_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Tests are offline: a socket connection to anything but this machine fails at once, naming the address
    (local sockets, gloo DDP and the app's browser test use the loopback). Subprocesses are not covered."""
    import errno
    import socket

    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not str(address[0]).startswith(_LOOPBACK):
            raise OSError(errno.ENETUNREACH, f"tests are offline: a connection to {address!r} was refused")

    def guarded_connect(sock, address):
        check(sock, address)
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        check(sock, address)
        return connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Folder holding this session's tiny models (built once per session, in the real layouts)."""
    # shared by the xdist workers: the kit builds each model atomically (concurrent builders do not clash)
    root = Path(os.environ.get("SPEAKIMG_TEST_TINY_DIR") or _shared_dir(tmp_path_factory, "tiny"))
    os.environ["SPEAKIMG_TINY_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def tiny_sd(tiny_root) -> Path:
    from speakimg.testing import tiny_stable_diffusion

    return tiny_stable_diffusion(tiny_root)


@pytest.fixture(scope="session")
def tiny_auffusion(tiny_root) -> Path:
    from speakimg.testing import tiny_auffusion

    return tiny_auffusion(tiny_root)


@pytest.fixture(scope="session")
def tiny_whisper(tiny_root) -> Path:
    from speakimg.testing import tiny_whisper

    return tiny_whisper(tiny_root)


@pytest.fixture(scope="session")
def tiny_clip(tiny_root) -> Path:
    from speakimg.testing import tiny_clip

    return tiny_clip(tiny_root)


def _have(program: str) -> bool:
    return shutil.which(program) is not None


requires_festival = pytest.mark.skipif(
    not _have("text2wave") and not os.environ.get("CI"), reason="festival is not installed (apt-get install festival)"
)


@pytest.fixture(scope="session")
def speech() -> torch.Tensor:
    """A real sentence spoken by festival's HTS voice: 16 kHz float32 [T], peak 0.95."""
    from speakimg.audio import peak_normalize
    from speakimg.tts import FestivalTTS

    wav = FestivalTTS().synthesize("The quick brown fox jumps over the lazy dog near the river bank.")
    return peak_normalize(wav, 0.95)


@pytest.fixture(scope="session")
def tiny_clap(tiny_root) -> Path:
    from speakimg.testing import tiny_clap

    return tiny_clap(tiny_root)


@pytest.fixture(scope="session")
def vocoder_dataset(tmp_path_factory) -> Path:
    """A small built-layout speech dataset (6 festival sentences, the last one in split 'val')."""
    from vocoder_helpers import SENTENCES, write_speech_dataset

    return write_speech_dataset(tmp_path_factory.mktemp("vocoder-data"), SENTENCES[:6], val=1, speech_start=1600)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_sd, tiny_auffusion):
    """ImagesThatSpeakPipeline on the tiny SD + tiny Auffusion, with a 2-iteration Griffin-Lim (fast).

    Shared by the session: tests must not move, compile or otherwise change it.
    """
    from speakimg.pipeline import ImagesThatSpeakPipeline
    from speakimg.vocoder import GriffinLimVocoder

    pipe = ImagesThatSpeakPipeline.from_pretrained(tiny_sd, tiny_auffusion, GriffinLimVocoder(n_iter=2))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_vits(tiny_root) -> Path:
    """A tiny random-weight VITS folder (transformers layout), for the ``transformers`` TTS engine."""
    from speakimg.testing import tiny_vits

    return tiny_vits(tiny_root)


REPO = Path(__file__).resolve().parents[1]
BUILD_SENTENCES = 30


@pytest.fixture(scope="session")
def sentences_file(tmp_path_factory) -> Path:
    """The first 30 sentences of the shipped training set, as a builder input file."""
    lines = (REPO / "configs" / "data" / "train_sentences.txt").read_text("utf-8").splitlines()[:BUILD_SENTENCES]
    from speakimg.io import write_text

    path = _shared_dir(tmp_path_factory, "sentences") / "sentences.txt"
    write_text(path, "\n".join(lines) + "\n")  # atomic: xdist workers may write it at once
    return path


@pytest.fixture(scope="session")
def festival_dataset(sentences_file, tmp_path_factory) -> Path:
    """A dataset of 30 sentences built once per session by the CLI with festival and 2 workers (read-only)."""
    from filelock import FileLock

    from speakimg.data.build import main

    folder = _shared_dir(tmp_path_factory, "datasets")
    out = folder / "festival30"
    with FileLock(folder / "festival30.lock"):  # one worker builds; the others find it done (a resumed build)
        assert main(["--texts", str(sentences_file), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_plbert(tiny_root) -> Path:
    """PL-BERT in its original folder format (config.yml + several step_N.t7)."""
    from speakimg.testing import tiny_plbert

    return tiny_plbert(tiny_root)


@pytest.fixture(scope="session")
def speech_data(festival_dataset, tmp_path_factory) -> Path:
    """A writable copy of the festival dataset for training tests (the data module caches latents in it)."""
    copy = tmp_path_factory.mktemp("speech-data") / "festival30"
    shutil.copytree(festival_dataset, copy)
    return copy
