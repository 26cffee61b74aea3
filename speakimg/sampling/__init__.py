"""The sampling library: settings, methods, the sample-folder format and batched generation.

- :class:`SamplerSettings`: THE list of sampler settings (the papers' defaults, ``validate()``,
  ``resolved()``); :class:`PipelineModels`; :class:`SampleSettings` (one sample, ``sample.json["settings"]``).
- :data:`METHODS` / :func:`register_method` / :func:`sample_batch`: the methods (``denoise``, ``imprint``, ``controlnet``, ``reference``...).
- :class:`RerankSettings` / :func:`rank_candidates`: re-ranking N candidates (``sample --keep K --rank clip,wer``).
- :class:`SampleDirs`, :func:`write_sample`, :func:`read_sample`, :func:`check_new_folders`: sample folders.
- :func:`generate`, :func:`run_batch`, :func:`load_pipeline`: batched generation (``python -m speakimg.sample``).

Nothing here imports torch until it samples: settings validate in a blink.
"""

from speakimg.sampling.folders import (
    SAMPLE_JSON,
    SampleDirs,
    check_new_folders,
    read_prompts,
    read_sample,
    slugify,
    write_sample,
)
from speakimg.sampling.generation import check_model_names, generate, load_pipeline, run_batch
from speakimg.sampling.methods import METHODS, Method, get_method, register_method, sample_batch
from speakimg.sampling.rerank import RerankSettings, rank_candidates
from speakimg.sampling.settings import (
    PipelineModels,
    SamplerSettings,
    SampleSettings,
    check_fraction,
    check_guidance,
    from_flat,
    settings_table,
    to_flat,
)

__all__ = [
    "METHODS",
    "SAMPLE_JSON",
    "Method",
    "PipelineModels",
    "RerankSettings",
    "SampleDirs",
    "SampleSettings",
    "SamplerSettings",
    "check_fraction",
    "check_guidance",
    "check_model_names",
    "check_new_folders",
    "from_flat",
    "generate",
    "get_method",
    "load_pipeline",
    "read_prompts",
    "rank_candidates",
    "read_sample",
    "register_method",
    "run_batch",
    "sample_batch",
    "settings_table",
    "slugify",
    "to_flat",
    "write_sample",
]
