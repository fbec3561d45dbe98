"""Assemble the run's report: one self-contained HTML page plus its figures as PNG files.

Everything a reviewer needs to judge the run sits on one page that can be mailed or archived
on its own: CSS is inline, figures are base64 PNGs, there is no script and no external link.
Every string that came from a user or a data file goes through `html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rdtflow.evaluate.stats import exact_mcnemar
from rdtflow.paths import CheckpointFile
from rdtflow.report.collect import (
    SUCCESS_NOT_MEASURED,
    best_checkpoint,
    evaluations_frame,
    is_missing,
    load_split_counts,
    load_training_log,
    read_json,
)
from rdtflow.report.figures import plot_loss, plot_success

MISSING = "—"
NUMERIC_CLASS = ' class="num"'

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { margin: 0.3em 0; font-size: 1em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fff3bf; font-weight: 600; }
.headline { border: 1px solid #b6d4fe; border-left: 6px solid #0d6efd; background: #f1f7ff;
            padding: 0.8em 1.2em; margin: 1em 0; }
.headline p { margin: 0.3em 0; }
.big { font-size: 1.35em; font-weight: 600; }
.note { color: #8a5a00; font-style: italic; }
.config { display: flex; flex-wrap: wrap; gap: 0 1.5em; }
.config td { word-break: break-all; }
img { max-width: 100%; border: 1px solid #eee; }
.videos { display: flex; flex-wrap: wrap; gap: 1em; }
.videos figure { margin: 0; }
video { width: 320px; max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
""".strip()


def format_rate(rate: Any) -> str:
    """A success rate as a percentage; a null one is said to be unmeasured, never shown as 0."""
    return "not measured" if is_missing(rate) else f"{rate:.1%}"


def format_interval(evaluation: dict[str, Any], key: str = "success") -> str:
    """A rate with its Wilson 95% interval, "83.3% [72.0%, 90.7%]"; the rate alone where none was recorded."""
    rate, interval = evaluation.get(f"{key}_rate"), evaluation.get(f"{key}_interval")
    if is_missing(rate) or not interval:
        return format_rate(rate)
    return f"{rate:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def format_number(value: Any) -> str:
    """A measured float with 4 significant digits (MSE, distances), a dash when absent."""
    return MISSING if is_missing(value) else f"{value:#.4g}"


def format_count(value: Any) -> str:
    """An integer count (episode steps), a dash when the evaluation did not record it."""
    return MISSING if is_missing(value) else str(int(value))


def format_success(success: Any) -> str:
    """One episode's outcome as a mark a reader scans faster than true/false."""
    return MISSING if success is None else ("✓" if success else "✗")


def format_config_value(value: Any) -> str:
    """Config values written the way they look in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(format_config_value(item) for item in value)
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
           numeric_columns: frozenset[int] = frozenset(), row_classes: Sequence[str] = ()) -> str:
    """An HTML table whose every cell is escaped; numeric columns are right-aligned."""
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    body = []
    for index, row in enumerate(rows):
        has_class = index < len(row_classes) and row_classes[index]
        class_attribute = f' class="{row_classes[index]}"' if has_class else ""
        cells = "".join(
            f"<td{NUMERIC_CLASS if column in numeric_columns else ''}>{html.escape(str(cell))}</td>"
            for column, cell in enumerate(row)
        )
        body.append(f"<tr{class_attribute}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(title: str, body: str) -> str:
    """A titled block of the page."""
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _paired_test_line(best: dict[str, Any], final: dict[str, Any]) -> str:
    """Whether the best checkpoint beats the final one on the same held-out states (exact McNemar)."""
    if best["step"] == final["step"] or is_missing(best.get("success_rate")):
        return ""
    outcomes = {evaluation["step"]: {e["episode_id"]: bool(e["success"]) for e in evaluation["episodes"]}
                for evaluation in (best, final)}
    episodes = sorted(outcomes[best["step"]])
    test = exact_mcnemar([outcomes[best["step"]][e] for e in episodes], [outcomes[final["step"]][e] for e in episodes])
    verdict = "significantly better" if test["p_value"] < 0.05 else "not significantly different"
    return (f"<p>Best against final on the same {len(episodes)} initial states: {verdict} (exact McNemar "
            f"p = {test['p_value']:.3g}; only the best succeeds on {test['only_first']}, only the final on "
            f"{test['only_second']})</p>")


def _headline(best: dict[str, Any], final: dict[str, Any], baseline: dict[str, Any], training: str) -> str:
    """The answer first: which checkpoint to use, how often it succeeds (with its 95% interval),
    against what baseline, and whether it beats the final checkpoint beyond chance."""
    baseline_name = html.escape(str(baseline.get("policy", "baseline")))
    if is_missing(best["success_rate"]):
        best_line = (f"Best checkpoint: <b>step {best['step']}</b> (lowest open-loop MSE "
                     f"{format_number(best['open_loop_mse'])}) — "
                     f"<span class=\"note\">{html.escape(SUCCESS_NOT_MEASURED)}</span>")
    else:
        best_line = (f"Best checkpoint: <b>step {best['step']}</b> — "
                     f"{format_interval(best)} success on {best['n_episodes']} held-out episodes")
    return (
        '<div class="headline">'
        f'<p class="big">{best_line}</p>'
        f"<p>Baseline ({baseline_name}): success rate {format_interval(baseline)}, "
        f"open-loop MSE {format_number(baseline.get('open_loop_mse'))}</p>"
        f"<p>Final checkpoint (step {final['step']}): success rate {format_interval(final)}, "
        f"open-loop MSE {format_number(final['open_loop_mse'])}</p>"
        f"{_paired_test_line(best, final)}"
        f"{training}"
        "</div>"
    )


def _training_line(checkpoint_dirs: list[Path]) -> str:
    """How the run trained, from the last checkpoint: runs with equal effective batches compare."""
    state = read_json(Path(checkpoint_dirs[-1]) / CheckpointFile.TRAINER_STATE)
    layout = state["layout"]
    return (
        f"<p>Trained {state['step']} optimizer steps ({state['epoch']:.2f} epochs of the full-step manifest), "
        f"effective batch {state['effective_batch']} = {layout['micro_batch']} per device x "
        f"{layout['accumulation']} accumulation x {layout['processes']} processes</p>"
    )


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested config keys as dotted names (sim.max_steps) so each section fits one small table."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        items.extend(_flatten(value, f"{name}.") if isinstance(value, dict) else [(name, value)])
    return items


def _config_section(config: dict[str, Any]) -> str:
    """One small key/value table per config section; top-level scalars (run, seed) go first."""
    top_level = [(key, value) for key, value in config.items() if not isinstance(value, dict)]
    sections = [("run", top_level)] + [
        (name, _flatten(value)) for name, value in config.items() if isinstance(value, dict)
    ]
    tables = "".join(
        f"<div><h3>{html.escape(name)}</h3>"
        + _table(["key", "value"], [(key, format_config_value(value)) for key, value in items])
        + "</div>"
        for name, items in sections if items
    )
    return _section("Configuration", f'<div class="config">{tables}</div>')


def _validation_section(validation: dict[str, Any]) -> str:
    """How many episode files were read, accepted and rejected, and why each rejection happened."""
    by_reason = validation.get("rejected_by_reason", {})
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(by_reason.items()))
    summary = (f"<p>{validation['n_files']} files read, {validation['n_valid']} accepted, "
               f"{validation['n_rejected']} rejected{html.escape(f' ({reasons})' if reasons else '')}.</p>")
    rejected = validation.get("rejected", [])
    if not rejected:
        return _section("Validation", summary + "<p>none rejected</p>")
    rows = [(item.get("episode_id", ""), item.get("reason", ""), item.get("detail", ""), item.get("path", ""))
            for item in rejected]
    return _section("Validation", summary + _table(["episode", "reason", "detail", "path"], rows))


def _split_section(split_counts: dict[str, int]) -> str:
    """Train / held-out / rejected episode counts, the denominators of every later number."""
    rows = [(split.replace("_", "-"), count) for split, count in split_counts.items()]
    return _section("Data split", _table(["split", "episodes"], rows, numeric_columns=frozenset({1})))


def _figure_section(title: str, png: Path, caption: str) -> str:
    """A figure inlined as base64 so the page stays self-contained."""
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    return _section(title, f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
                           f"<p>{html.escape(caption)}</p>")


def _checkpoints_section(evals: list[dict[str, Any]], by_step: dict[int, dict[str, Any]], best_step: int) -> str:
    """Every checkpoint's numbers, the chosen one highlighted; open-loop error per dimension
    group too, since arm joints and grippers fail differently."""
    groups = list(by_step[evals[0]["step"]].get("open_loop_mse_by_group", {}))
    rows = [(row["step"], format_interval(by_step[row["step"]]), format_interval(by_step[row["step"]], "held_at_end"),
             row["n_episodes"], format_number(row["open_loop_mse"]),
             *(format_number(by_step[row["step"]]["open_loop_mse_by_group"].get(g)) for g in groups))
            for row in evals]
    classes = ["best" if row["step"] == best_step else "" for row in evals]
    note = (f'<p class="note">{html.escape(SUCCESS_NOT_MEASURED)}</p>'
            if all(is_missing(row["success_rate"]) for row in evals) else "")
    headers = ["step", "success [Wilson interval]", "held at the end", "held-out episodes", "open-loop MSE",
               *(f"MSE {g}" for g in groups)]
    table = _table(headers, rows, numeric_columns=frozenset(range(len(headers))), row_classes=classes)
    return _section("Checkpoints", note + table)


def _episodes_section(best_evaluation: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Per-episode outcomes of the best checkpoint next to the baseline's on the same episode."""
    baseline_by_episode = {episode["episode_id"]: episode for episode in baseline.get("episodes", [])}
    rows = []
    simulated = best_evaluation.get("simulator") is not None
    for episode in best_evaluation.get("episodes", []):
        reference = baseline_by_episode.get(episode["episode_id"], {})
        outcome = (
            [format_success(episode.get("success")), format_success(episode.get("held_at_end")),
             html.escape(str(episode.get("stage") or MISSING)), format_count(episode.get("steps")),
             format_success(reference.get("success"))]
            if simulated else []
        )
        rows.append((episode["episode_id"], *outcome, format_number(episode.get("open_loop_mse")),
                     format_number(reference.get("open_loop_mse"))))
    headers = (["episode"] + (["success", "held at end", "stage reached", "steps", "baseline success"] if simulated else [])
               + ["open-loop MSE", "baseline open-loop MSE"])
    numeric = frozenset(range(1, len(headers))) - ({1, 2, 3, 5} if simulated else set())
    title = f"Held-out episodes, checkpoint {best_evaluation['step']}"
    if not simulated:
        title += f" ({SUCCESS_NOT_MEASURED})"
    return _section(title, _table(headers, rows, numeric_columns=numeric))


def _videos_section(evaluation: dict[str, Any], video_dir: Path) -> str:
    """The best checkpoint's rollout videos (failures first), embedded so the page stays one file."""
    videos = evaluation.get("videos") or []
    if not videos:
        return ""
    items = []
    for video in videos:
        data = base64.b64encode((Path(video_dir) / video["file"]).read_bytes()).decode("ascii")
        outcome = "success" if video["success"] else "failure"
        items.append(f'<figure><video controls loop muted playsinline src="data:video/mp4;base64,{data}"></video>'
                     f"<figcaption>{html.escape(video['episode_id'])}: {outcome}</figcaption></figure>")
    caption = ("<p>Left: the policy's camera view in closed loop. Right: the expert's recorded episode from the same "
               "initial state.</p>")
    return _section(f"Rollouts, checkpoint {evaluation['step']}", caption + f'<div class="videos">{"".join(items)}</div>')


def _video_dir(video_dirs: list[Path], step: int) -> Path:
    """The video folder of checkpoint `step` among the declared ones (eval/videos/checkpoint-{step})."""
    [folder] = [Path(d) for d in video_dirs if Path(d).name == f"checkpoint-{step}"]
    return folder


def _page(title: str, sections: list[str]) -> str:
    """The HTML document around the sections."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def write_report(*, config: dict, validation_json: Path, index_parquet: Path, checkpoint_dirs: list[Path],
                 eval_files: list[Path], video_dirs: list[Path], baseline_json: Path, out_html: Path, loss_png: Path,
                 success_png: Path) -> None:
    """Write the report page and its two figures (also shown by `snakemake --report`)."""
    for out in (out_html, loss_png, success_png):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    evaluations = {evaluation["step"]: evaluation for evaluation in map(read_json, eval_files)}
    evals_df = evaluations_frame(list(evaluations.values()))
    baseline = read_json(baseline_json)
    best = best_checkpoint(evals_df)
    eval_rows = evals_df.to_dict("records")

    plot_loss(load_training_log(checkpoint_dirs), Path(loss_png))
    plot_success(evals_df, baseline, Path(success_png))

    sections = [
        _headline({**evaluations[best["step"]], **best}, evaluations[eval_rows[-1]["step"]], baseline,
                  _training_line(checkpoint_dirs)),
        _config_section(config),
        _validation_section(read_json(validation_json)),
        _split_section(load_split_counts(index_parquet)),
        _figure_section("Training loss", Path(loss_png),
                        "Diffusion loss per optimizer step (log scale) and learning rate."),
        _figure_section("Success per checkpoint", Path(success_png),
                        "Closed-loop success on the held-out episodes per checkpoint, the baseline "
                        "(dashed) and the open-loop action MSE."),
        _checkpoints_section(eval_rows, evaluations, best["step"]),
        _videos_section(evaluations[best["step"]], _video_dir(video_dirs, best["step"])),
        _episodes_section(evaluations[best["step"]], baseline),
    ]
    Path(out_html).write_text(_page(f"rdtflow run {config['run']}", sections), encoding="utf-8")
