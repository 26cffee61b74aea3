"""``speakimg.sampling``: the one settings object (defaults, validation, warnings, flat records), the
method registry, the documentation of every setting, the layering around the library."""

from __future__ import annotations

import ast
import dataclasses
import warnings
from pathlib import Path

import pytest

from speakimg.audio import CANVAS
from speakimg.errors import ConfigError, SpeakimgWarning
from speakimg.sampling import (
    METHODS,
    PipelineModels,
    SamplerSettings,
    SampleSettings,
    from_flat,
    register_method,
    sample_batch,
    settings_table,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_defaults_are_the_papers():
    """Images that Sound (combined: 100 DDIM steps, CFG 10/10, t_image 0.9, t_audio 1, weight 0.5; imprint:
    CFG 7.5, 50 picture steps, rho 0.5) on Auffusion's 256 x 1024 canvas, cropped."""
    s = SamplerSettings().resolved()
    assert (s.method, s.steps, s.image_guidance_scale, s.audio_guidance_scale) == ("denoise", 100, 10.0, 10.0)
    assert (s.t_image, s.t_audio, s.audio_weight, s.crop_padding) == (0.9, 1.0, 0.5, True)
    assert (s.height, s.width) == (CANVAS.height, CANVAS.width) == (256, 1024)
    i = SamplerSettings(method="imprint").resolved()
    assert (i.image_guidance_scale, i.audio_guidance_scale, i.imprint_image_steps, i.imprint_rho) == (7.5, 7.5, 50, 0.5)
    # an explicit scale is kept; "null = the method's default" never survives resolution
    assert SamplerSettings(method="imprint", image_guidance_scale=3).resolved().image_guidance_scale == 3.0
    assert None not in dataclasses.asdict(SamplerSettings().resolved()).values()


def test_the_pipeline_and_imprint_read_their_defaults_from_the_settings(tiny_pipeline):
    import inspect

    import torch

    from speakimg.pipeline import ImagesThatSpeakPipeline

    call = inspect.signature(ImagesThatSpeakPipeline.__call__).parameters
    s = SamplerSettings().resolved()
    assert call["num_inference_steps"].default == s.steps and call["t_image"].default == s.t_image
    assert call["image_guidance_scale"].default == s.image_guidance_scale and call["width"].default == s.width
    # imprint takes SamplerSettings (its fields as keywords): by default the imprint method's CFG 7.5

    def imprint(settings=None, **changes):
        generator = torch.Generator().manual_seed(2)
        return tiny_pipeline.imprint("a", "b", settings, generator=generator, output_type="pt", **changes).spectrograms

    quick = dict(steps=1, imprint_image_steps=1, crop_padding=False)
    default = imprint(**quick)
    explicit = SamplerSettings(steps=1, imprint_image_steps=1, crop_padding=False, image_guidance_scale=7.5,
                               audio_guidance_scale=7.5)  # fmt: skip
    assert torch.equal(default, imprint(explicit))
    assert not torch.equal(default, imprint(**quick, audio_guidance_scale=10.0))
    with pytest.raises(ConfigError, match="imprint: .*unexpected keyword argument 'image_steps'"):
        imprint(image_steps=2)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"method": "sds-typo"}, r"method must be one of \[.*'denoise', 'imprint'"),
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"steps": 2.5}, "steps must be an int"),
        ({"steps": True}, "steps must be an int"),
        ({"image_guidance_scale": float("nan")}, "image_guidance_scale must be a finite number"),
        ({"audio_guidance_scale": "10"}, "audio_guidance_scale must be a finite number"),
        ({"t_image": 0.0}, "t_image=0.0 is outside"),
        ({"t_audio": 1.5}, "t_audio=1.5 is outside"),
        ({"audio_weight": -0.1}, "audio_weight must be a number in"),
        ({"negative_image_prompt": None}, "negative_image_prompt must be a string"),
        ({"height": 250}, "height must be a positive multiple of 8"),
        ({"width": 0}, "width must be a positive multiple of 8"),
        ({"height": 512}, "height=512 but the spectrogram has 256 mel bins"),
        ({"width": 32}, "too small to crop 32 columns"),
        ({"crop_padding": "yes"}, "crop_padding must be true or false"),
        ({"griffin_lim_iters": 0}, "griffin_lim_iters must be an int >= 1"),
        ({"imprint_rho": 1.5}, "imprint_rho must be a number in"),
        ({"imprint_image_steps": -1}, "imprint_image_steps must be an int >= 1"),
    ],
)
def test_each_bad_value_is_one_clear_error(changes, match):
    with pytest.raises(ConfigError, match=match):
        SamplerSettings(**changes).validate()
    with pytest.raises(ConfigError, match=match):  # resolving validates first
        SamplerSettings(**changes).resolved()


def test_edge_values_are_accepted():
    edges = SamplerSettings(steps=1, t_image=1.0, t_audio=1.0, audio_weight=0.0, width=40, imprint_rho=1.0)
    assert edges.validate() is edges
    SamplerSettings(width=32, crop_padding=False).validate()  # nothing to crop


@pytest.mark.parametrize(("scale", "match"), [(-1.0, "negative"), (60.0, "above 50")])
def test_unusual_guidance_scales_warn_and_go_on(scale, match):
    with pytest.warns(SpeakimgWarning, match=f"audio_guidance_scale={scale:g} is {match}"):
        resolved = SamplerSettings(audio_guidance_scale=scale).resolved()
    assert resolved.audio_guidance_scale == scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SamplerSettings(audio_guidance_scale=0.0).resolved()  # the range's ends are usual
        SamplerSettings(audio_guidance_scale=50.0).resolved()


def test_the_pipeline_warns_for_an_unusual_guidance_scale(tiny_pipeline):
    with pytest.warns(SpeakimgWarning, match="image_guidance_scale=-2 is negative"):
        tiny_pipeline("a", "b", num_inference_steps=1, image_guidance_scale=-2.0, output_type="latent")


def test_sample_settings_are_one_flat_record_both_ways():
    sample = SampleSettings("a cat", "bells", 7, SamplerSettings(steps=3, t_image=0.8), PipelineModels(vocoder="gl"))
    flat = sample.to_dict()
    assert flat["image_prompt"] == "a cat" and flat["steps"] == 3 and flat["vocoder"] == "gl"
    assert flat["image_guidance_scale"] == 10.0  # the value used, not null
    assert set(flat) == {"image_prompt", "audio_prompt", "seed"} | {
        f.name for f in dataclasses.fields(SamplerSettings)
    } | {f.name for f in dataclasses.fields(PipelineModels)}
    back = SampleSettings.from_dict(flat)
    assert back.to_dict() == flat and back.sampler == sample.sampler.resolved() and back.models == sample.models
    # a sample.json of an older version (guidance null) still reads, with the method's default
    older = {**flat, "image_guidance_scale": None}
    assert SampleSettings.from_dict(older).to_dict() == flat
    with pytest.raises(ConfigError, match=r"unknown sample settings \['sampler'\]"):
        SampleSettings.from_dict({**flat, "sampler": "euler"})
    with pytest.raises(ConfigError, match="audio_prompt"):
        from_flat(SampleSettings, {"image_prompt": "a"}, "sample settings")


def test_a_new_method_is_one_registered_function(tiny_pipeline):
    calls = []

    @register_method("test-scaled", guidance_scale=3.0, summary="for this test")
    def scaled(pipe, settings, image_prompts, audio_prompts, generators, *, output_type="pt"):
        calls.append((settings.image_guidance_scale, image_prompts, audio_prompts, output_type))
        return "output"

    try:
        settings = SamplerSettings(method="test-scaled")
        assert settings.resolved().audio_guidance_scale == 3.0  # the method's own default
        assert sample_batch(tiny_pipeline, settings, ["a"], ["b"], None, output_type="np") == "output"
        assert calls == [(3.0, ["a"], ["b"], "np")]
    finally:
        METHODS.pop("test-scaled")
    with pytest.raises(ConfigError, match="method must be one of"):
        SamplerSettings(method="test-scaled").validate()


def test_sample_batch_runs_the_pipeline_with_the_settings(tiny_pipeline):
    import torch

    settings = SamplerSettings(steps=2, t_image=0.5, audio_weight=0.3, image_guidance_scale=4.0)
    got = sample_batch(tiny_pipeline, settings, ["a castle"], ["bells"], [torch.Generator().manual_seed(1)],
                       output_type="latent")  # fmt: skip
    direct = tiny_pipeline(
        "a castle", "bells", num_inference_steps=2, t_image=0.5, audio_weight=0.3, image_guidance_scale=4.0,
        generator=torch.Generator().manual_seed(1), output_type="latent",
    )  # fmt: skip
    assert torch.equal(got.latents, direct.latents)
    other = sample_batch(tiny_pipeline, SamplerSettings(steps=2), ["a castle"], ["bells"],
                         [torch.Generator().manual_seed(1)], output_type="latent")  # fmt: skip
    assert not torch.equal(other.latents, direct.latents)


def test_every_setting_is_documented_in_the_docs():
    """docs/sampling.md holds the table generated from the dataclass (regenerate it with
    ``speakimg.sampling.settings_table()`` when a field changes), and every field has a meaning."""
    table = settings_table(SamplerSettings)
    rows = table.splitlines()[2:]
    assert len(rows) == len(dataclasses.fields(SamplerSettings))
    assert all(not row.endswith("|  |") for row in rows), "a field without an Args: line in the docstring"
    assert table in (REPO / "docs" / "sampling.md").read_text(encoding="utf-8")

    @dataclasses.dataclass
    class Undocumented(SamplerSettings):
        """Args:
        steps: steps.
        """

        brand_new: int = 3

    assert "| `brand_new` | `3` |  |" in settings_table(Undocumented)  # what the check above catches


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_libraries_never_import_a_command_line_and_imprint_does_not_import_the_pipeline():
    libraries = [*(REPO / "speakimg" / "evaluation").glob("*.py"), *(REPO / "speakimg" / "sampling").rglob("*.py")]
    libraries += [REPO / "speakimg" / "demo.py", *(REPO / "callbacks").glob("*.py")]
    for path in libraries:
        assert not {"speakimg.sample", "speakimg.evaluate"} & _imports(path), path
    assert "speakimg.pipeline.combined" not in _imports(REPO / "speakimg" / "pipeline" / "imprint.py")
    # the settings module and the method registry import nothing heavy (command lines start fast)
    for name in ("settings.py", "methods/__init__.py", "methods/denoise.py", "methods/imprint.py"):
        imported = _imports(REPO / "speakimg" / "sampling" / name)
        assert not [n for n in imported if n == "torch" or n.startswith(("torch.", "speakimg.pipeline"))], name


def test_importing_the_settings_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; import speakimg.sampling, speakimg.sample; assert 'torch' not in sys.modules, 'torch'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
