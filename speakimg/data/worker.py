"""Building one item: text -> phonemes -> TTS (the item's voice) -> 10 s canvas -> log-mel, into the store.

Runs in the builder's worker processes (or in the calling process with ``workers=0``): :func:`init_worker`
once per process, then :func:`build_item` per item. ``build_item`` never raises: a failure becomes an
error record saying why, and the build goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from speakimg.data.manifest import CANVAS_SAMPLES, ManifestRecord
from speakimg.data.plan import BuildConfig, Item
from speakimg.data.store import DatasetStore
from speakimg.errors import DataError

__all__ = ["build_item", "init_worker"]

log = logging.getLogger("speakimg.data.build")

_STATE: dict = {}


def init_worker(root: str, config: BuildConfig, threads: int = 1) -> None:
    """Per-process setup: the store, the settings, one torch thread; engines are created on first use."""
    torch.set_num_threads(threads)
    _STATE.clear()
    _STATE.update(store=DatasetStore(Path(root)), config=config, engines={})


class _EngineUnavailable(Exception):
    """The TTS engine could not be created in this process (its message says why and how to fix it)."""


def _engine(voice: str):
    """The engine of a voice spec, created once per process (or the error that prevents it, every time)."""
    engines: dict = _STATE["engines"]
    if voice not in engines:
        from speakimg.tts import get_voice

        try:
            engines[voice] = get_voice(voice, **_STATE["config"].tts_options)
        except Exception as error:  # a missing engine fails every item of this voice with the same message
            engines[voice] = _EngineUnavailable(f"{type(error).__name__}: {error}")
    engine = engines[voice]
    if isinstance(engine, _EngineUnavailable):
        raise engine
    return engine


def _voice_of(item: Item, config: BuildConfig) -> str:
    return item.voice or config.voices[0]


def _error_record(item: Item, config: BuildConfig, error: str, **fields) -> ManifestRecord:
    voice = _voice_of(item, config)
    return ManifestRecord(
        id=item.id,
        text=item.text,
        status="error",
        split=item.split,
        error=error,
        tts=voice.split(":", 1)[0],
        index=item.index,
        fit=config.fit.mode,
        voice=voice,
        **fields,
    )


def _text_fields(prepared) -> dict:
    if prepared is None:
        return {}
    return {"normalized": prepared.normalized, "phonemes": prepared.phonemes, "phoneme_ids": list(prepared.ids)}


def build_item(item: Item) -> ManifestRecord:
    """Build one item; never raises (failures become error records). Writes audio, mel, then the record."""
    from speakimg.audio import load_audio, log_mel
    from speakimg.data.canvas import speak_on_canvas
    from speakimg.errors import SpeakimgError
    from speakimg.text import prepare_text

    store: DatasetStore = _STATE["store"]
    config: BuildConfig = _STATE["config"]
    voice = _voice_of(item, config)
    prepared = None
    if item.error is not None:
        record = _error_record(item, config, item.error)
    else:
        try:
            prepared = prepare_text(item.text, language=config.language)
            engine = _engine(voice)
            fitted = speak_on_canvas(engine, prepared.normalized, config.fit, seed=item.seed)
            audio_rel, audio_sha = store.write_audio(item.id, fitted.audio)
            stored = load_audio(store.root / audio_rel)  # the mel is of exactly what was stored (16-bit PCM)
            if stored.shape[0] != CANVAS_SAMPLES:
                raise DataError(f"{store.root / audio_rel}: {stored.shape[0]} samples, expected {CANVAS_SAMPLES}")
            mel = log_mel(stored).numpy().astype(np.float16)
            if not np.isfinite(mel).all():
                raise DataError(f"the log-mel of {store.root / audio_rel} has NaN or infinite values")
            mel_rel, mel_sha = store.write_mel(item.id, mel)
            record = ManifestRecord(
                id=item.id,
                text=item.text,
                status="ok",
                split=item.split,
                normalized=prepared.normalized,
                phonemes=prepared.phonemes,
                phoneme_ids=list(prepared.ids),
                audio=audio_rel,
                mel=mel_rel,
                num_samples=CANVAS_SAMPLES,
                speech_seconds=round(fitted.seconds, 4),
                speech_start=fitted.start,
                tts=engine.name,
                index=item.index,
                fit=config.fit.mode,
                stretch=fitted.stretch,
                stretch_method=fitted.stretch_method,
                voice=voice,
                checksums={audio_rel: audio_sha, mel_rel: mel_sha},
                tts_settings=dict(getattr(engine, "settings", {"engine": engine.name})),
            )
        except _EngineUnavailable as error:
            record = _error_record(item, config, str(error), **_text_fields(prepared))
        except SpeakimgError as error:
            record = _error_record(item, config, f"{type(error).__name__}: {error}", **_text_fields(prepared))
        except Exception as error:  # an unexpected failure must not stop the build
            log.exception("item %s (%r) failed", item.id, item.text)
            record = _error_record(
                item, config, f"unexpected {type(error).__name__}: {error}", **_text_fields(prepared)
            )
    store.write_record(record)
    return record
