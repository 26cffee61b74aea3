"""Evaluation by a fixed protocol (``python -m speakimg.evaluate``): sample a prompt grid, score, summarise.

- :class:`EvalConfig`: the config (``configs/eval.yaml``, ``configs/eval_its.yaml``); :func:`parse_config`.
- :func:`evaluate`: run or resume an evaluation; returns an :class:`EvalResult`.
- :class:`ResultsCSV`, :func:`summarize`: ``samples.csv`` and the summary computed from it.
- :func:`plan_units`, :func:`kind_settings`: what is sampled (combined samples and the references).
"""

from speakimg.evaluation.config import EvalConfig, parse_config, settings_hash
from speakimg.evaluation.plan import KINDS, Row, Unit, kind_settings, plan_units
from speakimg.evaluation.results import ANCHORS, COLUMNS, ResultsCSV, interval, summarize, summary_markdown
from speakimg.evaluation.runner import EvalResult, evaluate

__all__ = [
    "ANCHORS",
    "COLUMNS",
    "KINDS",
    "EvalConfig",
    "EvalResult",
    "ResultsCSV",
    "Row",
    "Unit",
    "evaluate",
    "interval",
    "kind_settings",
    "parse_config",
    "plan_units",
    "settings_hash",
    "summarize",
    "summary_markdown",
]
