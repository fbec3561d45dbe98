"""Assemble the run's report: one self-contained HTML page, its figures as PNG files, and
results/{run}/provenance.json.

The page answers a reviewer's questions in the order they ask them: which checkpoint, how good,
how sure, what fails; then how it trained, on what data, against what plan, made by what. It
is rendered from templates/report.html.j2 with Jinja2's autoescaping, so every string from a
user or a data file is escaped and the layout can be read and changed as HTML. CSS is inline,
figures, frames and videos are base64, and there is no script and no external link: the page
opens from a mail attachment.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2

from rdtflow.evaluate.stats import exact_mcnemar
from rdtflow.paths import CheckpointFile
from rdtflow.report.collect import (
    SUCCESS_NOT_MEASURED,
    best_checkpoint,
    episode_grid,
    evaluations_frame,
    is_missing,
    load_benchmarks,
    load_episode_lengths,
    load_split_counts,
    load_training_log,
    read_json,
    stage_rates_frame,
    thumbnail_frames,
)
from rdtflow.report.figures import plot_episode_lengths, plot_success, plot_training
from rdtflow.report.format import FILTERS, format_bytes, format_interval, format_rate
from rdtflow.report.provenance import collect_provenance

SIZE_BUDGET_BYTES = 10_000_000
"""The page's size budget with its videos: what a mail attachment may carry (README, "The report")."""

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("rdtflow.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a name the template expects but the page lacks fails the report
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(FILTERS)


def data_uri(content: bytes, media_type: str) -> str:
    """A file inlined into the page, so it stays one self-contained file."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


def paired_test(best: dict[str, Any], final: dict[str, Any]) -> dict[str, Any] | None:
    """Exact McNemar test of the best checkpoint against the final one on the same held-out
    states; None when they are the same checkpoint or success was not measured."""
    if best["step"] == final["step"] or is_missing(best.get("success_rate")):
        return None
    outcomes = {evaluation["step"]: {e["episode_id"]: bool(e["success"]) for e in evaluation["episodes"]}
                for evaluation in (best, final)}
    episodes = sorted(outcomes[best["step"]])
    test = exact_mcnemar([outcomes[best["step"]][e] for e in episodes], [outcomes[final["step"]][e] for e in episodes])
    return {**test, "n": len(episodes), "significant": test["p_value"] < 0.05}


def verdict(best: dict[str, Any], final: dict[str, Any], baseline: dict[str, Any], test: dict[str, Any] | None) -> str:
    """The run's answer in one sentence: the checkpoint to use, how sure, and against what."""
    if is_missing(best.get("success_rate")):
        return (f"No simulator measured success: checkpoint {best['step']} has the lowest open-loop action error, "
                "which predicts closed-loop success poorly; evaluate it on the robot before trusting it.")
    if best["success_rate"] == 0:
        return (f"No checkpoint succeeded on any of the {best['n_episodes']} held-out initial states: the success "
                f"rate is below {best['success_interval'][1]:.1%} with 95% confidence; train longer or on more "
                "demonstrations before comparing checkpoints.")
    sentence = (f"Use checkpoint {best['step']}: it succeeds on {format_interval(best)} of {best['n_episodes']} "
                "held-out initial states")
    baseline_high = (baseline.get("success_interval") or [baseline.get("success_rate")])[-1]
    if not is_missing(baseline_high):
        above = best["success_interval"][0] > baseline_high
        sentence += (f", clearly above the blind baseline ({format_rate(baseline['success_rate'])})" if above else
                     f", not clearly above the blind baseline ({format_rate(baseline['success_rate'])}): "
                     "their intervals overlap")
    if test is None:
        return sentence + "; it is the final checkpoint."
    if test["significant"]:
        return sentence + (f"; it is significantly better than the final checkpoint ({final['step']}, "
                           f"{format_rate(final['success_rate'])}), so training past it hurt.")
    return sentence + (f"; the final checkpoint ({final['step']}, {format_rate(final['success_rate'])}) may differ "
                       f"from it by chance alone (exact McNemar p = {test['p_value']:.3g}).")


def _plan_rows(plan: dict[str, Any], states: list[dict[str, Any]], benchmarks: Any,
               training_log: Any) -> list[tuple[str, str, str]]:
    """(quantity, planned, measured) for the batch layout, memory and throughput."""
    layout, measured_layout = plan["layout"], states[-1]["layout"]

    def spelled(value: dict[str, Any]) -> str:
        return f"{value['micro_batch']} x {value['accumulation']} x {value['processes']}"

    gpu_peaks = [state["peak_device_memory_gib"] for state in states if state.get("peak_device_memory_gib") is not None]
    train_jobs = benchmarks.loc[benchmarks["stage"] == "train"]
    if gpu_peaks:
        measured_memory = f"{max(gpu_peaks):.1f} GiB allocated on the device (largest of {len(gpu_peaks)} jobs)"
    elif train_jobs["max_rss_mb"].notna().any():
        measured_memory = (f"CPU run: {train_jobs['max_rss_mb'].max() / 1024:.1f} GiB resident in the largest training "
                           "job (the process, not only the model's tensors)")
    else:
        measured_memory = "not measured"
    train_seconds = train_jobs["seconds"].sum()
    samples = (int(states[-1]["step"]) - int(training_log["step"].min()) + 1) * int(states[-1]["effective_batch"])
    throughput = (f"{samples / train_seconds:.1f} samples/s over {len(train_jobs)} training jobs "
                  f"(start-up included); {training_log['samples_per_s'].iloc[-1]:.1f} samples/s in the last job's steps"
                  if train_seconds > 0 else "not measured")
    return [
        ("batch layout (micro-batch x accumulation x processes)", spelled(layout), spelled(measured_layout)),
        ("effective batch", str(plan["effective_batch"]), str(states[-1]["effective_batch"])),
        ("optimizer steps", str(plan["optimizer_steps"]), str(states[-1]["step"])),
        ("epochs of the full-step manifest", "—" if plan["epochs"] is None else f"{plan['epochs']:.2f}",
         f"{states[-1]['epoch']:.2f}"),
        ("peak memory per device", f"{plan['peak_gib']:.1f} GiB (estimate)"
         + ("" if plan["usable_gib"] is None else f" of {plan['usable_gib']:.1f} GiB usable"), measured_memory),
        ("throughput", "—", throughput),
    ]


def _videos(evaluation: dict[str, Any], video_dirs: list[Path]) -> list[dict[str, Any]]:
    """The best checkpoint's rollout videos (failures first), inlined."""
    [folder] = [Path(d) for d in video_dirs if Path(d).name == f"checkpoint-{evaluation['step']}"]
    return [{**video, "src": data_uri((folder / video["file"]).read_bytes(), "video/mp4")}
            for video in evaluation.get("videos") or []]


def _config_sections(config: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """One small key/value table per config section; top-level scalars (run, seed) go first."""
    def flatten(mapping: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
        for key, value in mapping.items():
            yield from flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    top_level = [(key, value) for key, value in config.items() if not isinstance(value, dict)]
    sections = [("run", top_level)] + [(name, list(flatten(value))) for name, value in config.items()
                                       if isinstance(value, dict)]
    return [(name, items) for name, items in sections if items]


def write_report(*, config: dict, validation_json: Path, index_parquet: Path, plan_json: Path,
                 checkpoint_dirs: list[Path], eval_files: list[Path], video_dirs: list[Path], baseline_json: Path,
                 benchmark_files: list[Path], out_html: Path, training_png: Path, success_png: Path,
                 episode_lengths_png: Path, provenance_out: Path) -> list[str]:
    """Write the report page, its figures (also shown by `snakemake --report`) and
    provenance.json; returns the warnings it printed (the page over its size budget)."""
    for out in (out_html, training_png, success_png, episode_lengths_png, provenance_out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    evaluation_list = [read_json(path) for path in eval_files]
    evaluations = {evaluation["step"]: evaluation for evaluation in evaluation_list}
    evals_df = evaluations_frame(evaluation_list)
    baseline = read_json(baseline_json)
    best = evaluations[int(best_checkpoint(evals_df)["step"])]
    final = evaluations[int(evals_df["step"].iloc[-1])]
    training_log = load_training_log(checkpoint_dirs)
    benchmarks = load_benchmarks(benchmark_files)
    states = [read_json(Path(folder) / CheckpointFile.TRAINER_STATE) for folder in checkpoint_dirs]

    plot_training(training_log, Path(training_png))
    plot_success(evals_df, stage_rates_frame(evaluation_list), baseline, Path(success_png))
    plot_episode_lengths(load_episode_lengths(index_parquet), Path(episode_lengths_png))
    provenance = collect_provenance(config, states, benchmarks)
    Path(provenance_out).write_text(json.dumps(provenance, indent=1), encoding="utf-8")

    test = paired_test(best, final)
    episode_ids, grid_columns = episode_grid([*evaluation_list, baseline])
    thumbnail_episode, thumbnails = thumbnail_frames(index_parquet, config["data"])
    plan = read_json(plan_json)
    page = {
        "title": f"rdtflow run {config['run']}",
        "measured": not is_missing(best.get("success_rate")),
        "not_measured_note": SUCCESS_NOT_MEASURED,
        "best": best, "final": final, "baseline": baseline, "test": test,
        "verdict": verdict(best, final, baseline, test),
        "training": states[-1],  # how the run trained: runs with equal effective batches compare
        "checkpoints": [evaluations[step] for step in evals_df["step"]],
        "mse_groups": list(evaluation_list[0].get("open_loop_mse_by_group", {})),
        "stage_names": list(best.get("stage_rates") or {}),
        "tasks": list(best["by_task"]) if len(best.get("by_task") or {}) > 1 else [],  # one task: the headline says it
        "grid": {"episodes": episode_ids, "columns": grid_columns},
        "videos": _videos(best, video_dirs),
        "figures": {name: data_uri(Path(png).read_bytes(), "image/png") for name, png in
                    (("success", success_png), ("training", training_png), ("lengths", episode_lengths_png))},
        "validation": read_json(validation_json),
        "split": load_split_counts(index_parquet),
        "thumbnails": {"episode": thumbnail_episode,
                       "cameras": {camera: [data_uri(frame, "image/jpeg") for frame in frames]
                                   for camera, frames in thumbnails.items()}},
        "plan": {"rows": _plan_rows(plan, states, benchmarks, training_log), "warnings": plan["warnings"]},
        "provenance": provenance,
        "config_sections": _config_sections(config),
        "budget": SIZE_BUDGET_BYTES,
        "oversize": None,
    }
    template = TEMPLATES.get_template("report.html.j2")
    html = template.render(page=page)
    warnings = []
    if len(html.encode("utf-8")) > SIZE_BUDGET_BYTES:
        page["oversize"] = len(html.encode("utf-8"))
        warnings.append(f"{out_html}: the page is {format_bytes(page['oversize'])}, over its "
                        f"{format_bytes(SIZE_BUDGET_BYTES)} budget (mail may refuse it): lower eval.videos")
        html = template.render(page=page)
    Path(out_html).write_text(html, encoding="utf-8")
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return warnings
