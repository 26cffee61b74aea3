"""``python -m speakimg.app``: the studio's functions (files, values, errors) and the app in a real browser.

The browser tests drive Debian's chromium (``apt-get install chromium``, scripts/setup.sh) with
Playwright's Python package pointed at it (nothing downloaded); on a machine without it they are skipped,
except in CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from speakimg.errors import ConfigError
from speakimg.sampling import METHODS, SampleDirs, SamplerSettings, SampleSettings, read_sample, register_method

pytest.importorskip("gradio", reason="the app needs the [app] extra: pip install 'speakimg[app]'")

from speakimg import app as studio_app
from speakimg.app import TINY_MODELS, Studio, build_app, serve, step_progress

IMAGE_PROMPT, SENTENCE = "A castle, grayscale", "The sea was calm."
SAMPLE_FILES = {"img.png", "spec.png", "spec_color.png", "audio.wav", "video.mp4", "log_mel.npy", "latents.npy",
                "sample.json"}  # fmt: skip
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def studio(tiny_root, tmp_path_factory) -> Studio:
    """The app's default models (the tiny kit), loaded once for the module."""
    return Studio(TINY_MODELS, tmp_path_factory.mktemp("app"), device="cpu", dtype="float32").load()


@pytest.fixture(scope="module")
def made(studio):
    """Two candidates (seeds 3 and 4) of one generation, 1 step, and the progress it reported."""
    reports: list[tuple[int, int, str]] = []
    samples = studio.generate(
        IMAGE_PROMPT, SENTENCE, studio.settings(steps=1), seed=3, n=2, progress=lambda *r: reports.append(r)
    )
    return samples, reports


# ------------------------------------------------------------------------------------------ functions
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_generate_writes_the_folders_that_sample_writes(made, studio):
    samples, _ = made
    root = samples[0].folder.parents[1]
    dirs = SampleDirs(root)
    expected = [SampleSettings(IMAGE_PROMPT, SENTENCE, seed, SamplerSettings(steps=1), TINY_MODELS) for seed in (3, 4)]
    assert [s.folder for s in samples] == [dirs(e) for e in expected]
    for sample, settings in zip(samples, expected, strict=True):
        assert {p.name for p in sample.folder.iterdir()} == SAMPLE_FILES
        resolved = replace(settings, sampler=settings.sampler.resolved())  # no null guidance in records
        assert read_sample(sample.folder / "sample.json") == resolved  # the settings round trip
        assert json.loads((sample.folder / "sample.json").read_text()) == sample.record
        with Image.open(sample.file("image")) as img:
            assert (img.mode, img.size) == ("RGB", (992, 256))
        assert sf.info(str(sample.file("audio"))).frames == 158720  # 9.92 s at 16 kHz
    assert samples[0].record["settings"]["image_guidance_scale"] == METHODS["denoise"].guidance_scale
    first, second = (np.load(s.folder / "latents.npy") for s in samples)
    assert not np.allclose(first, second, atol=1e-3)  # two seeds, two samples


def _word_errors(hypothesis: list[str], reference: list[str]) -> int:
    """Levenshtein distance over words (independent of torchmetrics)."""
    row = list(range(len(reference) + 1))
    for i, word in enumerate(hypothesis, 1):
        previous, row[0] = row[0], i
        for j, ref in enumerate(reference, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != ref))
    return row[-1]


def test_scores_match_an_independent_computation(made, studio):
    from speakimg.metrics import WindowedCLIPScore, normalize_transcript

    samples, _ = made
    reference = normalize_transcript(SENTENCE).split()
    clip = WindowedCLIPScore(studio.clip_name)
    for sample in samples:
        assert isinstance(sample.transcript, str)
        errors = _word_errors(normalize_transcript(sample.transcript).split(), reference)
        assert sample.wer == pytest.approx(100.0 * errors / len(reference))
        picture = np.asarray(Image.open(sample.file("image")).convert("RGB"))  # the PNG, read back
        assert sample.clip_score == pytest.approx(float(clip(picture[None], IMAGE_PROMPT)[0]), abs=0.5)
    assert _word_errors(["the", "sea", "is", "calm"], reference) == 1  # the reference computation itself


def test_progress_reports_every_step(made, studio):
    _, reports = made
    writing = [(0, 2, studio_app.WRITING), (1, 2, studio_app.WRITING), (2, 2, studio_app.SCORING)]
    assert reports == [(0, 1, "denoising"), (1, 1, "denoising"), *writing]  # the steps, then the samples
    assert "progress_bar" not in vars(studio.pipeline())  # the hook is gone after the block


def test_step_progress_follows_every_bar_and_restores_the_pipeline():
    class Bar:
        def __init__(self, total, desc):
            self.updates = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, n=1):
            self.updates += n

    class Pipe:
        def progress_bar(self, total, desc="denoising"):
            return Bar(total, desc)

    pipe, reports = Pipe(), []
    with step_progress(pipe, lambda *r: reports.append(r)):
        for total, desc in ((2, "imprint"), (3, "imprint")):  # imprint: the picture's bar, then the spectrogram's
            with pipe.progress_bar(total, desc) as bar:
                for _ in range(total):
                    bar.update()
            assert bar.inner.updates == total  # the terminal bar still counts
    assert reports == [(i, 2, "imprint") for i in range(3)] + [(i, 3, "imprint") for i in range(4)]
    assert isinstance(pipe.progress_bar(1), Bar)  # the method again


def test_the_zip_is_the_sample_folder(made, tmp_path):
    samples, _ = made
    for sample in samples:
        root = sample.folder.parents[1]
        with zipfile.ZipFile(sample.archive) as archive:
            archive.extractall(tmp_path)
        copy = tmp_path / sample.folder.relative_to(root)
        assert {p.name for p in copy.iterdir()} == {p.name for p in sample.folder.iterdir()}
        for path in sample.folder.iterdir():
            assert (copy / path.name).read_bytes() == path.read_bytes()
        assert read_sample(copy / "sample.json") == read_sample(sample.folder / "sample.json")


@pytest.mark.parametrize(
    ("changes", "culprit"),
    [
        ({"image_prompt": "  "}, "image prompt is empty"),
        ({"audio_prompt": ""}, "audio prompt is empty"),
        ({"t_image": 0.0}, "t_image"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"method": "nope"}, "method must be one of"),
        ({"n": studio_app.MAX_CANDIDATES + 1}, "at most"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"more": '{"t_audio": 0}'}, "t_audio"),
        ({"more": '{"colour": 1}'}, "unknown sampler settings"),
        ({"more": "t_audio=1"}, "not a JSON object"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(studio, changes, culprit):
    form = {"image_prompt": IMAGE_PROMPT, "audio_prompt": SENTENCE, "method": "denoise", "steps": 1, "t_image": 0.9,
            "seed": 0, "n": 1, "more": "{}"} | changes  # fmt: skip
    before = sorted(studio.out.rglob("*"))
    with pytest.raises(ConfigError, match=culprit) as error:
        settings = studio.settings(form["method"], form["steps"], t_image=form["t_image"], more=form["more"])
        studio.generate(form["image_prompt"], form["audio_prompt"], settings, form["seed"], form["n"])
    assert "\n" not in str(error.value)
    assert sorted(studio.out.rglob("*")) == before


def test_more_settings_reach_every_other_field():
    settings = Studio.settings("imprint", 3.0, more='{"t_audio": 0.95, "negative_image_prompt": "blurry"}')
    assert (settings.method, settings.steps, settings.t_audio, settings.negative_image_prompt) == (
        "imprint", 3, 0.95, "blurry"
    )  # fmt: skip
    assert Studio.settings(more="") == SamplerSettings()  # the defaults of the dataclass


def test_the_browser_gets_the_one_line_message():
    import gradio as gr

    shown = studio_app._user_error(ConfigError("t_image=0 is outside (0, 1]"))
    assert isinstance(shown, gr.Error) and shown.message == "t_image=0 is outside (0, 1]"
    broken = studio_app._user_error(RuntimeError("CUDA out of memory\nmore"))
    assert broken.message == r"generation failed: RuntimeError: 'CUDA out of memory\\nmore'"


def _components(app) -> dict[str, dict]:
    return {c["props"].get("elem_id"): c for c in app.config["components"] if c["props"].get("elem_id")}


def test_the_form_reads_the_settings_and_the_methods_registry(studio):
    @register_method("studio-test", guidance_scale=3.0, summary="a method added after the app was written")
    def _method(*args, **kwargs):
        raise NotImplementedError

    try:
        components = _components(build_app(studio))
    finally:
        del METHODS["studio-test"]
    defaults = SamplerSettings()
    choices = [c[0] if isinstance(c, (list, tuple)) else c for c in components["method"]["props"]["choices"]]
    assert choices == sorted([*METHODS, "studio-test"])
    assert components["method"]["props"]["value"] == defaults.method
    for elem_id, name in (("steps", "steps"), ("t-image", "t_image"), ("audio-weight", "audio_weight")):
        assert components[elem_id]["props"]["value"] == getattr(defaults, name)
    guidance = METHODS[defaults.method].guidance_scale
    assert components["image-guidance"]["props"]["value"] == components["audio-guidance"]["props"]["value"] == guidance
    assert components["audio-prompt"]["props"]["label"] == "sentence"  # the tiny kit's audio model is a speech model
    sources = studio.pipeline().sources
    sources["audio_model_kind"] = "diffusers"  # as a plain Auffusion model would say
    try:
        assert _components(build_app(studio))["audio-prompt"]["props"]["label"] == "sound caption"
    finally:
        sources["audio_model_kind"] = "speech"


def test_without_gradio_the_message_says_what_to_install(monkeypatch):
    import importlib.util

    from speakimg.errors import MissingDependencyError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "gradio" else find_spec(name))
    with pytest.raises(MissingDependencyError, match=r"pip install 'speakimg\[app\]'"):
        studio_app.require_gradio()


def test_whisper_default_falls_back_to_the_tiny_kit(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert studio_app.default_whisper() == "tiny:whisper"
    assert studio_app.default_clip("tiny:stable-diffusion") == "tiny:clip"


def test_command_line_errors_are_one_line(capsys, tiny_root, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        studio_app.main(["--port", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --port must be in 1..65535")
    with socket.socket() as busy:  # a port in use: said before any model loads
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert studio_app.main(["--port", str(busy.getsockname()[1]), "--audio-model", "/nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot listen on 127.0.0.1:") and "--port" in err[0]
    missing = tmp_path / "no-such-model"
    assert studio_app.main(["--audio-model", str(missing), "--device", "cpu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "no-such-model" in err[-1]


# ------------------------------------------------------------------------------------------ browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's chromium, headless, driven by Playwright (no browser download), fresh profile."""
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/setup.sh installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=flags,
            viewport={"width": 1400, "height": 2200},
        )  # fmt: skip
        context.set_default_timeout(120_000)  # page loads and clicks on a loaded 2-core machine
        yield context
        context.close()


@pytest.fixture(scope="module")
def server(studio):
    app = build_app(studio)
    port = _free_port()
    serve(app, studio, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


GENERATION_TIMEOUT_MS = 240_000  # 2 tiny steps take seconds; a loaded 2-core CI machine is slow
DURATION = 158720 / 16000  # 9.92 s: the cropped canvas

MEASURE = """async ({selector, timeout}) => {
    const load = (element, event) => new Promise((resolve, reject) => {
        element.addEventListener(event, () => resolve(element.duration), {once: true});
        element.addEventListener("error", () => reject(new Error("cannot load " + element.src)), {once: true});
        setTimeout(() => reject(new Error("timed out loading " + element.src)), timeout);
    });
    const image = document.querySelector(selector.picture + " img");
    const video = document.querySelector(selector.video + " video");
    const link = document.querySelector(selector.audio + " a[download]");
    const audio = new Audio();  // the file the audio player plays, decoded by the browser
    audio.preload = "metadata";
    const audioDuration = load(audio, "loadedmetadata");
    audio.src = link.href;
    const videoDuration = video.readyState >= 1 ? video.duration : await load(video, "loadedmetadata");
    return {width: image.naturalWidth, height: image.naturalHeight, complete: image.complete,
            audio: await audioDuration, video: videoDuration, audioName: link.getAttribute("download")};
}"""


def _generate(page, url: str, steps: int = 1, n: int = 1) -> None:
    page.goto(url)
    page.wait_for_selector("#generate")
    page.fill("#image-prompt textarea", IMAGE_PROMPT)
    page.fill("#audio-prompt textarea", SENTENCE)
    for selector, value in (("#steps input[type=number]", steps), ("#n input", n)):
        page.fill(selector, str(value))
        page.press(selector, "Tab")
    page.click("#generate")


def _expect_sample(page, timeout_ms: int = GENERATION_TIMEOUT_MS) -> dict:
    """Wait for the picture, then measure picture, audio and video as the browser loaded them."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.wait_for_function(
            "() => { const i = document.querySelector('#picture img'); return i && i.complete && i.naturalWidth > 0; }",
            timeout=timeout_ms,
        )
        page.wait_for_selector("#audio a[download]", timeout=timeout_ms)
        page.wait_for_selector("#video video", timeout=timeout_ms)
        selector = {"picture": "#picture", "audio": "#audio", "video": "#video"}
        return page.evaluate(MEASURE, {"selector": selector, "timeout": 30_000})
    except PlaywrightError as error:  # a timeout or a failed load: the sample is not there
        raise AssertionError(f"no sample in the page: {error}") from None


@pytest.mark.slow
def test_the_browser_shows_picture_audio_and_video(browser, server, studio):
    from urllib.parse import urlsplit

    page = browser.new_page()
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc or urlsplit(request.url).scheme))
    _generate(page, server, n=2)
    measured = _expect_sample(page)
    assert (measured["width"], measured["height"]) == (992, 256)
    assert measured["audio"] == pytest.approx(DURATION, abs=1e-3)  # WAV: exact up to rounding
    assert measured["video"] == pytest.approx(DURATION, abs=1 / 25 + 0.03)  # the container: within a frame
    assert measured["audioName"] == "audio.wav"
    page.wait_for_function("() => document.querySelector('#wer input').value !== ''")
    assert page.locator('#download a[href$="__0.zip"]').count() == 1  # the first candidate: seed 0
    assert page.locator('#archives a[href$=".zip"]').count() == 2
    assert page.locator("#gallery img").count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)"
    )
    page.screenshot(path=str(studio.out / "app.png"), full_page=True)
    if os.environ.get("SPEAKIMG_UPDATE_SCREENSHOT"):  # refresh the README's picture: docs/app.png
        with Image.open(studio.out / "app.png") as shot:  # 256 colours: a third of the bytes in the repository
            shot.convert("RGB").quantize(256).save(
                Path(__file__).resolve().parents[1] / "docs" / "app.png", optimize=True
            )
    page.locator("#gallery img").nth(1).click()  # the second candidate replaces the first in the outputs
    page.wait_for_selector('#download a[href$="__1.zip"]')
    assert hosts <= {urlsplit(server).netloc, "data", "blob"}  # nothing fetched from outside the app
    page.close()


@pytest.mark.slow
def test_a_broken_generation_shows_the_error_and_no_picture(browser, server, studio, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("the denoiser broke on purpose")

    monkeypatch.setattr(type(studio.pipeline()), "__call__", broken)
    page = browser.new_page()
    _generate(page, server)
    page.get_by_text("generation failed: RuntimeError: 'the denoiser broke on purpose'").wait_for()
    assert page.locator("#picture img").count() == 0
    with pytest.raises(AssertionError, match="no sample in the page"):  # the check of the test above fails
        _expect_sample(page, timeout_ms=3_000)
    page.close()


@pytest.mark.slow
def test_bad_input_in_the_browser_is_one_message(browser, server):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#generate")
    page.fill("#image-prompt textarea", "")
    page.click("#generate")
    page.get_by_text("the image prompt is empty").wait_for()
    assert page.locator("#picture img").count() == 0
    page.close()
