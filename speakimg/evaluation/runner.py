"""Running an evaluation: plan, resume, sample in batches, score, write rows, summarise, log."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakimg.errors import ConfigError, quote
from speakimg.evaluation.config import EvalConfig, settings_hash
from speakimg.evaluation.plan import Unit, plan_units
from speakimg.evaluation.results import ResultsCSV, summarize, summary_markdown, write_summary
from speakimg.io import write_json, write_text
from speakimg.sampling import SampleSettings, read_prompts
from speakimg.sampling.distributed import Ranks

__all__ = ["EvalResult", "evaluate", "merge_parts"]

log = logging.getLogger("speakimg.evaluate")

CSV_NAME = "samples.csv"
SETTINGS_NAME = "eval_settings.json"
CONFIG_NAME = "config.yaml"
PARTS_DIR = "parts"
"""Where the ranks of a distributed run write their rows until rank 0 merges them into samples.csv."""


@dataclass
class EvalResult:
    """What :func:`evaluate` did.

    Attributes:
        out: the output folder.
        rows: the parsed CSV rows of this run's grid (rows of other grids in the CSV are kept, not included).
        summary: the summary written to ``summary.json``.
        sampled: samples the pipeline made in this run (0 when everything was already done).
        written: CSV rows written in this run.
    """

    out: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    sampled: int
    written: int

    @property
    def csv(self) -> Path:
        return self.out / CSV_NAME


def _prompts(path: str, limit: int | None, what: str) -> list[str]:
    prompts = read_prompts(path)
    seen: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        if prompt in seen:
            raise ConfigError(
                f"{path}: the {what} {quote(prompt)} is listed twice (prompts {seen[prompt] + 1} and {i + 1}); "
                "rows are keyed by their prompts, so each must be unique"
            )
        seen[prompt] = i
    return prompts[:limit] if limit is not None else prompts


def _check_resumable(out: Path, done: list[dict[str, Any]], settings: dict[str, Any], digest: str) -> None:
    """Refuse to mix rows made with other result settings into ``out``."""
    if not done:
        return
    stored_path = out / SETTINGS_NAME
    others = sorted({r["settings_hash"] for r in done} - {digest})
    if not others:
        return
    detail = ""
    if stored_path.is_file():
        stored = json.loads(stored_path.read_text())["settings"]
        changed = [
            f"{key}: {stored.get(key)!r} -> {settings.get(key)!r}"
            for key in sorted(set(stored) | set(settings))
            if stored.get(key) != settings.get(key)
        ]
        if changed:
            detail = " Changed: " + "; ".join(changed) + "."
    raise ConfigError(
        f"{out / CSV_NAME} holds {sum(r['settings_hash'] != digest for r in done)} rows made with other result "
        f"settings (hash {', '.join(others)}; this config: {digest}).{detail} Rows of different settings are never "
        "mixed: evaluate into another `out` folder (e.g. --out outputs/eval-<what changed>), or move samples.csv "
        "away to start over. (Prompts, limits, seeds, references, batch size, media and logging may change freely.)"
    )


def _relative(out: Path, path: Path | None) -> str:
    return path.relative_to(out).as_posix() if path is not None else ""


def evaluate(config: EvalConfig, resolved_yaml: str | None = None) -> EvalResult:
    """Run (or resume) the evaluation ``config`` describes; returns what it did.

    Writes ``out/samples.csv`` (row by row), ``out/summary.json`` + ``out/summary.md`` (recomputed from
    the CSV at the end, also when the run fails or is interrupted), ``out/config.yaml``,
    ``out/eval_settings.json``, media under ``out/media/`` and the logger's files. With a ``sweep``,
    one such folder per setting under ``out/sweep/`` and the sweep's table and plot
    (:func:`speakimg.evaluation.sweep.evaluate_sweep`).

    Under ``torchrun`` / ``srun`` every process runs this function: each samples and scores its share of
    the missing rows (writing them to ``out/parts/samples.rank-<r>.csv``), and rank 0 merges the parts
    into ``samples.csv`` in plan order, then writes the summary and logs (:mod:`speakimg.sampling.distributed`).
    """
    from speakimg.sampling.distributed import setup_ranks

    config.validate()
    if config.sweep:
        from speakimg.evaluation.sweep import evaluate_sweep

        return evaluate_sweep(config, resolved_yaml)
    return _evaluate(config, resolved_yaml, setup_ranks(config.device))


def _row_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return (row["kind"], row["image_prompt"], row["audio_prompt"], row["seed"])


def merge_parts(store: ResultsCSV, order: dict[tuple, int]) -> int:
    """Append the rows of ``parts/samples.rank-*.csv`` next to ``store`` (the per-rank files of a
    distributed run) that ``store`` lacks, in plan ``order`` (unknown keys last), then delete the
    parts; returns the rows added. A cut last line of a killed rank is dropped, as in ``store``."""
    folder = store.path.parent / PARTS_DIR
    parts = sorted(folder.glob("samples.rank-*.csv")) if folder.is_dir() else []
    if not parts:
        return 0
    have = {(*_row_key(r), r["settings_hash"]) for r in store.load()}
    new: list[dict[str, Any]] = []
    for part in parts:
        for row in ResultsCSV(part).load():
            if (*_row_key(row), row["settings_hash"]) not in have:
                have.add((*_row_key(row), row["settings_hash"]))
                new.append(row)
    new.sort(key=lambda r: order.get(_row_key(r), len(order)))
    if new:
        store.append(new)
    for part in parts:
        part.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
    log.info("merged %d rows of %d rank file(s) into %s", len(new), len(parts), store.path)
    return len(new)


def _evaluate(
    config: EvalConfig, resolved_yaml: str | None, ranks: Ranks, loaded: dict[tuple, Any] | None = None
) -> EvalResult:
    """One evaluation on this rank; ``loaded`` keeps the pipeline and metric models between the
    evaluations of a sweep (loaded once, reused while their key is the same)."""
    from speakimg.loggers import finish_logger
    from speakimg.runtime import dtype_name, select_dtype

    out = Path(config.out)
    images = _prompts(config.image_prompts, config.limit_image_prompts, "image prompt")
    audios = _prompts(config.audio_prompts, config.limit_audio_prompts, "audio prompt")
    device = ranks.device(config.device)
    dtype = select_dtype(config.dtype, device)
    settings = config.result_settings(dtype_name(dtype))
    digest = settings_hash(settings)
    if config.protocol == "speech" and config.clap is not None and ranks.is_main:
        log.warning("clap is set but protocol is speech: CLAP is only computed by the sound protocol")

    base = SampleSettings(image_prompt="", audio_prompt="", sampler=config.sampler, models=config.models)
    units = plan_units(
        base,
        images,
        audios,
        list(config.seeds),
        references=config.references,
        media_root=out / "media",
        save_media=config.save_media,
        methods=config.methods,
    )
    order = {row.key: n for n, row in enumerate(row for unit in units for row in unit.rows)}
    plan_keys = set(order)
    store = ResultsCSV(out / CSV_NAME)

    def prepare() -> None:  # rank 0, while the others wait: repair, merge a killed run's parts, check
        out.mkdir(parents=True, exist_ok=True)
        merge_parts(store, order)
        _check_resumable(out, store.load(), settings, digest)
        write_json(out / SETTINGS_NAME, {"settings_hash": digest, "settings": settings})
        if resolved_yaml is not None:
            write_text(out / CONFIG_NAME, resolved_yaml)

    ranks.main_first(prepare)
    done = store.load()
    done_keys = {_row_key(r) for r in done}
    todo = [u for u in units if any(row.key not in done_keys for row in u.rows)]
    mine = ranks.share(todo)
    outside = len(done_keys - plan_keys)
    log.info(
        "%s protocol: %d image prompts x %d audio prompts x %d seed(s), kinds %s: %d rows, %d already in %s%s%s",
        config.protocol,
        len(images),
        len(audios),
        len(config.seeds),
        ", ".join(dict.fromkeys(u.kind for u in units)),
        len(plan_keys),
        len(plan_keys & done_keys),
        store.path,
        f" ({outside} rows of other prompts/seeds kept, not summarised)" if outside else "",
        f"; rank {ranks.rank} of {ranks.world_size} makes {len(mine)} of {len(todo)} samples"
        if ranks.distributed
        else "",
    )
    if mine and config.video and any(u.folder is not None for u in mine):
        from speakimg.errors import MissingDependencyError
        from speakimg.media import require_program

        try:
            require_program("ffmpeg")
        except MissingDependencyError as error:
            raise MissingDependencyError(f"{error} For the evaluation: set video: false.") from None

    logger = None
    if ranks.is_main:
        logger = config.make_logger(out, "eval", settings_hash=digest, world_size=ranks.world_size)
    # one process writes samples.csv; under torchrun/srun each rank writes its own part, merged by rank 0
    writer = ResultsCSV(out / PARTS_DIR / f"samples.rank-{ranks.rank}.csv") if ranks.distributed else store
    status = "failed"
    sampled = written = 0
    try:
        if mine:
            sampled, written = _run_units(config, mine, done_keys, writer, out, digest, device, dtype, loaded)
        if ranks.distributed:
            counts = ranks.gather((sampled, written))
            sampled, written = sum(c[0] for c in counts), sum(c[1] for c in counts)
            ranks.main_first(lambda: merge_parts(store, order))
        status = "success"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        rows = [r for r in store.load() if _row_key(r) in plan_keys] if ranks.is_main or status == "success" else []
        summary = summarize(rows, config.protocol)
        summary["run"] = {
            "settings_hash": digest,
            "settings": settings,
            "image_prompts": len(images),
            "audio_prompts": len(audios),
            "seeds": len(config.seeds),
            "references": config.references,
            "rows_expected": len(plan_keys),
            "rows_done": len(rows),
            "complete": len(rows) == len(plan_keys),
        }
        if ranks.is_main:
            write_summary(out, summary)
            if logger is not None:
                from speakimg.evaluation.report import log_evaluation

                try:
                    log_evaluation(logger, out, rows, summary, summary_markdown(summary))
                finally:
                    finish_logger(logger, status)
    if ranks.is_main:
        log.info("\n%s", summary_markdown(summary))
        log.info("wrote %s, %s and %s", out / CSV_NAME, out / "summary.json", out / "summary.md")
    return EvalResult(out=out, rows=rows, summary=summary, sampled=sampled, written=written)


def _run_units(
    config: EvalConfig,
    todo: list[Unit],
    done_keys: set[tuple],
    store: ResultsCSV,
    out: Path,
    digest: str,
    device,
    dtype,
    loaded: dict[tuple, Any] | None = None,
) -> tuple[int, int]:
    """Sample, score and write every unit of ``todo``; returns (samples made, rows written)."""
    from tqdm.auto import tqdm

    from speakimg.evaluation.scoring import Scorers
    from speakimg.metrics import vocoder_cycle_error
    from speakimg.runtime import default_batch_size, dtype_name
    from speakimg.sampling import load_pipeline, run_batch, write_sample

    loaded = {} if loaded is None else loaded
    scorer_key = (
        "scorers",
        config.protocol,
        config.clip,
        config.whisper,
        config.clap,
        config.whisper_batch_size,
        str(device),
    )
    if scorer_key not in loaded:
        for key in [k for k in loaded if k[0] == "scorers"]:
            del loaded[key]
        loaded[scorer_key] = Scorers(
            config.protocol,
            config.clip,
            whisper=config.whisper,
            clap=config.clap,
            whisper_batch_size=config.whisper_batch_size,
            device=device,
        )
    scorers = loaded[scorer_key]
    first = todo[0].settings
    pipe_key = ("pipeline", first.model_key(), str(device), str(dtype), config.compile)
    if pipe_key not in loaded:
        for key in [k for k in loaded if k[0] == "pipeline"]:
            del loaded[key]  # one pipeline in memory at a time
        log.info("loading the pipeline (%s, %s)", device, dtype_name(dtype))
        pipe = load_pipeline(first.models, first.sampler.griffin_lim_iters, device, dtype)
        pipe.set_progress_bar_config(disable=True)
        if config.compile:
            pipe.compile()
        loaded[pipe_key] = pipe
    pipe = loaded[pipe_key]
    batch_size = config.batch_size or default_batch_size(device)
    sampled = written = 0
    with tqdm(total=len(todo), desc="evaluate", unit="sample") as progress:
        for kind in dict.fromkeys(u.kind for u in todo):
            units = [u for u in todo if u.kind == kind]
            for start in range(0, len(units), batch_size):
                batch = units[start : start + batch_size]
                progress.set_postfix_str(kind)
                began = time.perf_counter()
                output = run_batch(pipe, [u.settings for u in batch])
                sample_s = (time.perf_counter() - began) / len(batch)
                cycle = vocoder_cycle_error(output.log_mels, output.audios, pipe.mel_config).tolist()
                began = time.perf_counter()
                scores = scorers.score(batch, output)
                metrics_s = (time.perf_counter() - began) / len(batch)
                sampled += len(batch)
                for j, unit in enumerate(batch):
                    files: dict[str, str] = {}
                    if unit.folder is not None:
                        timings = {"batch_size": len(batch), "pipeline_s_per_sample": sample_s}
                        record = write_sample(
                            unit.folder, unit.settings, output, j, pipe, timings, video=config.video,
                            cycle_error=cycle[j],
                        )  # fmt: skip
                        names = record["files"]
                        files = {
                            "folder": _relative(out, unit.folder),
                            "image": _relative(out, unit.folder / names["image"]),
                            "spectrogram": _relative(out, unit.folder / names["spectrogram"]),
                            "audio": _relative(out, unit.folder / names["audio"]),
                            "video": _relative(out, unit.folder / names["video"]) if "video" in names else "",
                        }
                    rows = []
                    for row, row_scores in zip(unit.rows, scores[j], strict=True):
                        if row.key in done_keys:
                            continue
                        rows.append(
                            {
                                "kind": row.kind,
                                "image_index": row.image_index,
                                "audio_index": row.audio_index,
                                "image_prompt": row.image_prompt,
                                "audio_prompt": row.audio_prompt,
                                "seed": row.seed,
                                "settings_hash": digest,
                                **row_scores,
                                "vocoder_cycle_error": cycle[j],
                                "sample_s": sample_s,
                                "metrics_s": metrics_s,
                                **files,
                            }
                        )
                    store.append(rows)
                    written += len(rows)
                    progress.update()
    return sampled, written
