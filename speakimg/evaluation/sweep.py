"""Sweeps: the evaluation over a grid of sampler settings, and CLIP against WER per setting.

``sweep: {t_image: [0.8, 0.9], audio_weight: [0.3, 0.5]}`` in the config (``--sweep '{...}'`` on the
command line) evaluates every combination. The sweepable keys are the fields of
:class:`~speakimg.sampling.SamplerSettings` (read from the dataclass, not listed here). Each setting is an
ordinary evaluation in ``OUT/sweep/<key>-<value>_.../`` (its own ``samples.csv``, summary and
``eval_settings.json``: resumable, and rerunnable alone with the same keys), without a logger of its own;
the sweep writes ``OUT/sweep.json``, ``OUT/sweep.md``, ``OUT/clip_vs_wer.png`` and logs the table and
the plot to one run of the configured logger.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from speakimg.errors import ConfigError
from speakimg.io import write_json, write_text
from speakimg.sampling.settings import SamplerSettings

__all__ = ["PLOT_NAME", "SWEEP_DIR", "evaluate_sweep", "plot_sweep", "sweep_settings"]

log = logging.getLogger("speakimg.evaluate")

SWEEP_DIR = "sweep"
PLOT_NAME = "clip_vs_wer.png"


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_name(values: dict[str, Any]) -> str:
    """The folder name of one setting: ``t_image-0.8_audio_weight-0.3``."""
    import re

    text = "_".join(f"{key}-{_format_value(value)}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


def sweep_settings(base: SamplerSettings, sweep: dict[str, list[Any]]) -> list[tuple[dict[str, Any], SamplerSettings]]:
    """Every combination of ``sweep`` (the last key varies fastest) applied to ``base``, each validated.

    Raises:
        ConfigError: a key that is not a sampler setting, a value that is not a non-empty list, a value
            repeated, or a combination that is not a valid setting (naming the key and value).
    """
    known = [f.name for f in fields(SamplerSettings)]
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError(
            f"sweep must map sampler settings to lists of values, e.g. {{t_image: [0.8, 0.9]}}; got {sweep!r}"
        )
    for key, values in sweep.items():
        if key not in known:
            raise ConfigError(f"sweep: {key!r} is not a sampler setting; the settings are {', '.join(known)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"sweep: {key} must be a non-empty list of values, e.g. {key}: [..., ...]; got {values!r}"
            )
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"sweep: {key} lists a value twice ({values}): each value is one setting")
    combos = []
    for chosen in itertools.product(*sweep.values()):
        values = dict(zip(sweep, chosen, strict=True))
        try:
            combos.append((values, replace(base, **values).validate()))
        except ConfigError as error:
            raise ConfigError(f"sweep setting {values}: {error}") from None
    return combos


def _stat(entry: dict[str, Any] | None, name: str) -> tuple[float | None, float | None]:
    stat = (entry or {}).get(name)
    if isinstance(stat, dict):
        return stat.get("mean"), stat.get("ci95")
    return stat, None


def plot_sweep(points: list[dict[str, Any]], protocol: str, path: Path) -> Path:
    """Write the CLIP-against-WER (speech) or CLIP-against-CLAP (sound) scatter of ``points`` to ``path``.

    Each point is ``{"label", "kinds": summary["kinds"]}``; combined samples are labelled with their
    setting, the references (each model alone) drawn in grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, title = ("wer_corpus", "WER corpus (%) ↓") if protocol == "speech" else ("clap", "CLAP ↑")
    figure, axes = plt.subplots(figsize=(7, 5), dpi=100)
    styles = {"combined": ("o", None), "audio_only": ("s", "0.6"), "image_only": ("^", "0.3")}
    for kind, (marker, color) in styles.items():
        xs, ys, xerr, labels = [], [], [], []
        for point in points:
            entry = point["kinds"].get(kind)
            x, dx = _stat(entry, "clip")
            y, _ = _stat(entry, metric)
            if x is None or y is None:
                continue
            xs.append(x)
            ys.append(y)
            xerr.append(dx or 0.0)
            labels.append(point["label"])
        if not xs:
            continue
        axes.errorbar(xs, ys, xerr=xerr, fmt=marker, color=color, capsize=3, label=kind.replace("_", " "))
        if kind == "combined":
            for x, y, label in zip(xs, ys, labels, strict=True):
                axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_xlabel("CLIP ↑ (± 95% interval)")
    axes.set_ylabel(title)
    axes.set_title("sweep: CLIP against " + ("WER" if protocol == "speech" else "CLAP") + " per setting")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _markdown(points: list[dict[str, Any]], keys: list[str], protocol: str) -> str:
    metric = "WER corpus ↓" if protocol == "speech" else "CLAP ↑"
    header = [*keys, "combined CLIP ↑", f"combined {metric}", "rows", "folder"]
    lines = ["# Sweep", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        entry = point["kinds"].get("combined", {})
        clip, ci = _stat(entry, "clip")
        other, _ = _stat(entry, "wer_corpus" if protocol == "speech" else "clap")
        cells = [_format_value(point["settings"][k]) for k in keys]
        cells += ["–" if clip is None else f"{clip:.1f}" + ("" if ci is None else f" ± {ci:.1f}")]
        cells += ["–" if other is None else f"{other:.1f}", str(point["rows"]), point["folder"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_sweep(config, resolved_yaml: str | None = None):
    """Evaluate every setting of ``config.sweep`` (each an ordinary, resumable evaluation), then write
    and log the sweep's table and plot; returns the :class:`EvalResult` of the sweep folder (its
    ``rows`` are every setting's rows, its ``summary`` the sweep's)."""
    import yaml

    from speakimg.evaluation.runner import EvalResult, _evaluate
    from speakimg.loggers import finish_logger, log_images, log_table
    from speakimg.sampling.distributed import setup_ranks

    combos = sweep_settings(config.sampler, config.sweep)
    ranks = setup_ranks(config.device)
    out = Path(config.out)
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resolved_yaml is not None:
            write_text(out / "config.yaml", resolved_yaml)
    log.info("sweep over %s: %d settings", ", ".join(config.sweep), len(combos))
    points, rows = [], []
    loaded: dict[tuple, Any] = {}  # the pipeline and metric models, loaded once for every setting
    sampled = written = 0
    for values, sampler in combos:
        folder = out / SWEEP_DIR / setting_name(values)
        sub = replace(config, sampler=sampler, sweep=None, out=str(folder), logger="none")
        log.info("sweep setting %s -> %s", values, folder)
        text = yaml.safe_dump(sub.to_dict(), sort_keys=False, allow_unicode=True)
        result = _evaluate(sub, text, ranks, loaded)
        sampled, written = sampled + result.sampled, written + result.written
        rows += [{**row, **{f"sweep_{k}": v for k, v in values.items()}} for row in result.rows]
        points.append({
            "settings": values,
            "label": ", ".join(f"{k}={_format_value(v)}" for k, v in values.items()),
            "folder": folder.relative_to(out).as_posix(),
            "rows": len(result.rows),
            "complete": result.summary["run"]["complete"],
            "kinds": result.summary["kinds"],
        })  # fmt: skip
    summary = {"protocol": config.protocol, "sweep": config.sweep, "settings": points}
    if ranks.is_main:
        write_json(out / "sweep.json", summary)
        write_text(out / "sweep.md", _markdown(points, list(config.sweep), config.protocol))
        plot = plot_sweep(points, config.protocol, out / PLOT_NAME)
        logger = config.make_logger(out, "eval-sweep", world_size=ranks.world_size)
        if logger is not None:
            metric = "wer_corpus" if config.protocol == "speech" else "clap"
            columns = [*config.sweep, "combined_clip", "combined_clip_ci95", f"combined_{metric}", "rows", "folder"]
            table = []
            for point in points:
                clip, ci = _stat(point["kinds"].get("combined"), "clip")
                other, _ = _stat(point["kinds"].get("combined"), metric)
                table.append([*point["settings"].values(), clip, ci, other, point["rows"], point["folder"]])
            try:
                log_table(logger, "sweep", columns, table)
                log_images(logger, "sweep/clip_vs_wer", [str(plot)], ["CLIP against WER per setting"])
            finally:
                finish_logger(logger, "success")
        log.info("wrote %s, %s and %s", out / "sweep.json", out / "sweep.md", plot)
    return EvalResult(out=out, rows=rows, summary=summary, sampled=sampled, written=written)
