"""Test helpers for the vocoder: small speech datasets in the built-dataset layout, and a reference HiFi-GAN.

``write_speech_dataset`` writes what ``python -m speakimg.data.build`` writes (manifest.jsonl,
audio/<id>.wav canvas audio, mels/<id>.npy = log_mel of it) from festival sentences, so the vocoder's
data code is tested on real speech without depending on the builder.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speakimg.audio import load_audio, log_mel, peak_normalize, save_audio
from speakimg.data.manifest import CANVAS_SAMPLES, ManifestRecord, write_records


@pytest.fixture(autouse=True)
def one_thread():
    """Autouse in every module that imports it: tiny models are op-overhead bound, so one intra-op thread
    is as fast as two, and it is immune to a busy (oversubscribed) machine, where two can be 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things from the store.",
    "A small boat drifted slowly across the quiet lake at dawn.",
    "We will meet at the old library after lunch on Thursday.",
    "Seven bright stars appeared above the hills as the night fell.",
    "She opened the window and listened to the rain on the roof.",
    "The children painted a large mural on the wall of the school.",
    "My grandfather grows tomatoes and beans in his garden every summer.",
]


def write_speech_dataset(
    folder: str | os.PathLike,
    sentences: list[str] = SENTENCES,
    val: int = 0,
    speech_start: int = 0,
    tts=None,
) -> Path:
    """Speak ``sentences`` with festival into a dataset folder; the last ``val`` go to the 'val' split."""
    from speakimg.tts import FestivalTTS

    folder = Path(folder)
    tts = tts or FestivalTTS()
    records = []
    for i, text in enumerate(sentences):
        rid = f"utt{i:03d}"
        speech = peak_normalize(tts.synthesize(text), 0.95)
        speech = speech[: CANVAS_SAMPLES - speech_start]
        canvas = torch.zeros(CANVAS_SAMPLES)
        canvas[speech_start : speech_start + speech.numel()] = speech
        save_audio(folder / "audio" / f"{rid}.wav", canvas)
        audio = load_audio(folder / "audio" / f"{rid}.wav")  # the 16-bit audio the readers see
        (folder / "mels").mkdir(parents=True, exist_ok=True)
        np.save(folder / "mels" / f"{rid}.npy", log_mel(audio).numpy().astype(np.float16))
        records.append(
            ManifestRecord(
                id=rid,
                text=text,
                split="val" if i >= len(sentences) - val else "train",
                audio=f"audio/{rid}.wav",
                mel=f"mels/{rid}.npy",
                num_samples=CANVAS_SAMPLES,
                speech_seconds=speech.numel() / 16000,
                speech_start=speech_start,
                tts="festival",
            )
        )
    write_records(folder, records)
    return folder


# --------------------------------------------------------------------------------------------------
# An independent reference of the original HiFi-GAN modules, written from docs/method.md sections 3-4 with the
# *legacy* weight_norm / spectral_norm hooks, so that its state dicts have the original checkpoints' keys.
# speakimg's modules must load these state dicts, save into them, and compute the same outputs.
# --------------------------------------------------------------------------------------------------


def _wn(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module)


class RefResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dilations: list[int]) -> None:
        super().__init__()
        same = lambda d: (k * d - d) // 2  # noqa: E731
        self.convs1 = nn.ModuleList(_wn(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=same(d))) for d in dilations)
        self.convs2 = nn.ModuleList(_wn(nn.Conv1d(ch, ch, k, 1, dilation=1, padding=same(1))) for _ in dilations)

    def forward(self, x):
        for a, b in zip(self.convs1, self.convs2, strict=True):
            xt = F.leaky_relu(x, 0.1)
            xt = a(xt)
            xt = F.leaky_relu(xt, 0.1)
            x = b(xt) + x
        return x


class RefGenerator(nn.Module):
    """HiFi-GAN V1 generator, resblock '1', as in the original checkpoints (legacy weight norm)."""

    def __init__(self, h: dict) -> None:
        super().__init__()
        c0 = h["upsample_initial_channel"]
        self.n_k = len(h["resblock_kernel_sizes"])
        self.conv_pre = _wn(nn.Conv1d(h["num_mels"], c0, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True)):
            self.ups.append(_wn(nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True):
                self.resblocks.append(RefResBlock1(c0 // 2 ** (i + 1), k, d))
        self.conv_post = _wn(nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            acc = 0
            for j in range(self.n_k):
                acc = acc + self.resblocks[i * self.n_k + j](x)
            x = acc / self.n_k
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class RefDiscriminatorP(nn.Module):
    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = period
        ch = [1, 32, 128, 512, 1024]
        self.convs = nn.ModuleList(
            [_wn(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))) for a, b in zip(ch, ch[1:], strict=False)]
            + [_wn(nn.Conv2d(1024, 1024, (5, 1), 1, padding=(2, 0)))]
        )
        self.conv_post = _wn(nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class RefDiscriminatorS(nn.Module):
    def __init__(self, spectral: bool) -> None:
        super().__init__()
        norm = nn.utils.spectral_norm if spectral else _wn
        self.convs = nn.ModuleList(
            [
                norm(nn.Conv1d(1, 128, 15, 1, padding=7)),
                norm(nn.Conv1d(128, 128, 41, 2, groups=4, padding=20)),
                norm(nn.Conv1d(128, 256, 41, 2, groups=16, padding=20)),
                norm(nn.Conv1d(256, 512, 41, 4, groups=16, padding=20)),
                norm(nn.Conv1d(512, 1024, 41, 4, groups=16, padding=20)),
                norm(nn.Conv1d(1024, 1024, 41, 1, groups=16, padding=20)),
                norm(nn.Conv1d(1024, 1024, 5, 1, padding=2)),
            ]
        )
        self.conv_post = norm(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x):
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class RefMPD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(RefDiscriminatorP(p) for p in (2, 3, 5, 7, 11))

    def forward(self, y, y_hat):
        out = [[], [], [], []]
        for d in self.discriminators:
            (r, fr), (g, fg) = d(y), d(y_hat)
            for lst, v in zip(out, (r, g, fr, fg), strict=True):
                lst.append(v)
        return tuple(out)


class RefMSD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [RefDiscriminatorS(True), RefDiscriminatorS(False), RefDiscriminatorS(False)]
        )
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, y, y_hat):
        out = [[], [], [], []]
        for i, d in enumerate(self.discriminators):
            if i:
                y, y_hat = self.meanpools[i - 1](y), self.meanpools[i - 1](y_hat)
            (r, fr), (g, fg) = d(y), d(y_hat)
            for lst, v in zip(out, (r, g, fr, fg), strict=True):
                lst.append(v)
        return tuple(out)
