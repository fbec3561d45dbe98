"""A sweep's comparison page: every run's success per checkpoint, each setting's mean +- spread
over its seeds, a table of runs with links to their own reports; and where the runs train on
different numbers of demos (split.train_episodes), success against the number of demos per
arm (pretrained or from scratch), the two arms compared on the same held-out states, and what
the pretraining cost.

A paper states a result over seeds: on one machine every run is bitwise reproducible, but
another processor's float kernels give other numbers, so only the spread over seeds says how
sure a number is (README, "Reproducibility"). Spread here is the sample standard deviation
over a setting's seeds, shown with every seed's own value; a setting run with one seed shows
its Wilson 95% interval instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from rdtflow.evaluate.stats import exact_mcnemar
from rdtflow.report.collect import best_checkpoint, evaluations_frame, is_missing, load_benchmarks, read_json
from rdtflow.report.figures import DPI
from rdtflow.report.page import TEMPLATES, data_uri

ARM_COLORS = {"pretrained": "C0", "scratch": "C3"}

REPLICATE_KEY = "seed"
"""The swept key whose runs repeat one setting (rdtflow.sweep.REPLICATE_KEY)."""


def value_text(value: Any) -> str:
    """A swept value for people: a mapping (an inline hardware profile) as key=value pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _setting(values: dict[str, Any]) -> str:
    """A run's setting: its swept values other than the seed ("default" when only seeds vary)."""
    return "; ".join(f"{key}: {value_text(value)}" for key, value in values.items() if key != REPLICATE_KEY) or "default"


def layout_text(plan: dict[str, Any]) -> str:
    """The batch layout as micro-batch x accumulation x processes (and nodes, when more than one)."""
    layout = plan["layout"]
    text = f"{layout['micro_batch']}x{layout['accumulation']}x{layout['processes']}"
    return text + (f" on {layout['nodes']} nodes" if layout["nodes"] > 1 else "")


def run_rows(runs: list[dict[str, Any]], page_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run (best and final checkpoint, baseline, train and eval time, report link)
    and every run's success per checkpoint (label, setting, step, success_rate)."""
    rows, curves = [], []
    for run in runs:
        evals = evaluations_frame([read_json(path) for path in run["eval_files"]])
        best, final = best_checkpoint(evals), evals.iloc[-1].to_dict()
        times = load_benchmarks(run["benchmark_files"]).groupby("stage")["seconds"].sum()
        setting = _setting(run["values"])
        splits = pd.read_parquet(run["index_parquet"], columns=["split"])["split"]
        transfer = [read_json(path)["success_rate"] for path in run["transfer_files"]] or [None] * 3
        rows.append({
            "label": run["label"], "setting": setting, **{key: value_text(value) for key, value in run["values"].items()},
            "seed": run["facts"]["seed"], "init": run["facts"]["init"], "n_demos": int((splits == "train").sum()),
            "layout": layout_text(read_json(run["plan_json"])),
            "best_step": best["step"], "best_success": best["success_rate"],
            "best_low": best["success_low"], "best_high": best["success_high"],
            "final_step": int(final["step"]), "success": final["success_rate"],
            "success_low": final["success_low"], "success_high": final["success_high"],
            "n_episodes": int(final["n_episodes"]), "baseline_success": read_json(run["baseline_json"])["success_rate"],
            # eval.transfer: the starting weights on this run's states (zero-shot), and the starting
            # weights and the final checkpoint on the pretraining's states (what it kept)
            "zero_shot": transfer[0], "pretraining_tasks_start": transfer[1], "pretraining_tasks_final": transfer[2],
            "train_seconds": times.get("train"), "eval_seconds": times.get("eval"),
            "report": os.path.relpath(run["report_html"], page_dir),
        })
        curves.append(evals.assign(label=run["label"], setting=setting)[["label", "setting", "step", "success_rate"]])
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def setting_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per setting: its seeds, final and best success mean and sample standard deviation, min
    and max, and mean training time."""
    grouped = rows.groupby("setting", sort=False)
    summary = grouped.agg(
        runs=("label", "size"),
        final_mean=("success", "mean"), final_std=("success", "std"),
        final_min=("success", "min"), final_max=("success", "max"),
        best_mean=("best_success", "mean"), best_std=("best_success", "std"),
        train_seconds=("train_seconds", "mean"), eval_seconds=("eval_seconds", "mean"),
    )
    return summary.reset_index()


# Marker and line style of a setting's first, second, ... run.
RUN_STYLES = [{"marker": marker, "linestyle": line}
              for marker, line in zip(("o", "s", "^", "D", "v", "P"), ("-", "--", ":", "-.", "-", "--"))]


def plot_comparison(curves: pd.DataFrame, rows: pd.DataFrame, out_png: Path) -> None:
    """Left: every run's success per checkpoint, one colour per setting and one marker and line
    style per seed within it, so each run can be told apart. Right: each setting's final
    success, every seed a dot, the mean with +- one standard deviation."""
    figure = Figure(figsize=(10.0, 4.2), dpi=DPI)
    FigureCanvasAgg(figure)
    by_step, by_setting = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    settings = list(dict.fromkeys(rows["setting"]))
    colors = {setting: f"C{index % 10}" for index, setting in enumerate(settings)}
    replicate = {label: index for setting in settings
                 for index, label in enumerate(dict.fromkeys(curves.loc[curves["setting"] == setting, "label"]))}
    for label, curve in curves.groupby("label", sort=False):
        style = RUN_STYLES[replicate[label] % len(RUN_STYLES)]
        by_step.plot(curve["step"], curve["success_rate"], color=colors[curve["setting"].iloc[0]], alpha=0.85, label=label,
                     **style)
    by_step.set(xlabel="optimizer step", ylabel="held-out success", title="success per checkpoint, every run")
    by_step.legend(fontsize="x-small", frameon=False)
    for position, setting in enumerate(settings):
        final = rows.loc[rows["setting"] == setting, "success"].astype(float)
        by_setting.scatter([position] * len(final), final, color=colors[setting], alpha=0.7, zorder=3)
        spread = final.std() if len(final) > 1 else 0.0
        by_setting.errorbar([position], [final.mean()], yerr=[spread], color="black", capsize=6, marker="_",
                            markersize=20, zorder=4)
    by_setting.set_xticks(range(len(settings)), [setting.replace(", ", "\n") for setting in settings],
                          fontsize="x-small")
    by_setting.set(ylabel="final checkpoint's success", title="mean ± sd over seeds")
    for axis in (by_step, by_setting):
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        axis.set_ylim(-0.02, 1.02)
        axis.grid(True, alpha=0.3)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_png, dpi=DPI)


def plot_scaling(rows: pd.DataFrame, out_png: Path) -> None:
    """Final held-out success against the number of training demos, one line per arm through
    the mean over seeds, each seed a dot, and the Wilson 95% band of a count run with one seed."""
    figure = Figure(figsize=(6.4, 4.2), dpi=DPI)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for init, arm in rows.groupby("init", sort=False):
        color = ARM_COLORS.get(init, "C2")
        by_count = arm.groupby("n_demos").agg(mean=("success", "mean"), runs=("success", "size"),
                                              low=("success_low", "first"), high=("success_high", "first"))
        axis.plot(by_count.index, by_count["mean"], color=color, marker="o", label=f"{init} (mean over seeds)")
        single = by_count.loc[by_count["runs"] == 1].astype(float)
        axis.fill_between(single.index, single["low"], single["high"], color=color, alpha=0.15, linewidth=0)
        axis.scatter(arm["n_demos"], arm["success"].astype(float), color=color, alpha=0.6, s=14, zorder=3)
    if rows["n_demos"].nunique() > 2:
        axis.set_xscale("log")
    counts = sorted(rows["n_demos"].unique())
    axis.set_xticks(counts, [str(count) for count in counts])
    axis.set(xlabel="training demos", ylabel="final checkpoint's held-out success",
             title="success against demos (band: Wilson 95%)")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.set_ylim(-0.02, 1.02)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small", frameon=False)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_png, dpi=DPI)


def paired_arms(runs: list[dict[str, Any]], rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (demos, seed) run from both a pretrained checkpoint and scratch: their final
    checkpoints on the same held-out states, with the exact McNemar test."""
    finals = {run["label"]: {e["episode_id"]: bool(e["success"]) for e in read_json(run["eval_files"][-1])["episodes"]}
              for run in runs}
    pairs = []
    for (count, seed), group in rows.groupby(["n_demos", "seed"]):
        arms = {row.init: row for row in group.itertuples()}
        if not {"pretrained", "scratch"} <= set(arms):
            continue
        pretrained, scratch = finals[arms["pretrained"].label], finals[arms["scratch"].label]
        episodes = sorted(pretrained)
        if sorted(scratch) != episodes:
            raise ValueError(f"{arms['pretrained'].label} and {arms['scratch'].label} were evaluated on other held-out "
                             "states: give both arms the same demos and split")
        test = exact_mcnemar([pretrained[e] for e in episodes], [scratch[e] for e in episodes])
        pairs.append({"n_demos": int(count), "seed": int(seed), "n": len(episodes),
                      "pretrained": arms["pretrained"].success, "scratch": arms["scratch"].success, **test})
    return pairs


def pretraining_cost(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run the sweep's runs start from, with the wall time of its demos and its training."""
    costs = {}
    for run in runs:
        name = run["facts"]["pretraining"]
        if name is not None and name not in costs:
            times = load_benchmarks(run["pretraining_benchmark_files"]).groupby("stage")["seconds"].sum()
            costs[name] = {"run": name, "demos_seconds": times.get("demos"), "train_seconds": times.get("train")}
    return list(costs.values())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the template, with NaN as None (shown as missing)."""
    return [{key: None if is_missing(value) else value for key, value in row.items()} for row in frame.to_dict("records")]


def write_comparison(*, config: dict, runs: list[dict[str, Any]], out_html: Path, figure_png: Path,
                     scaling_png: Path, table_csv: Path) -> None:
    """Write the comparison page, its figures and the table of runs (CSV)."""
    out_html = Path(out_html)
    rows, curves = run_rows(runs, out_html.parent)
    summary = setting_summary(rows)
    plot_comparison(curves, rows, figure_png)
    plot_scaling(rows, scaling_png)
    Path(table_csv).parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(table_csv, index=False)
    page = {
        "title": f"rdtflow sweep {config['run']}",
        "sweep": config["sweep"],
        "swept_keys": list(config["sweep"]),
        "summary": _records(summary),
        "runs": _records(rows),
        "figure": data_uri(Path(figure_png).read_bytes(), "image/png"),
        "scaling": (data_uri(Path(scaling_png).read_bytes(), "image/png") if rows["n_demos"].nunique() > 1 else None),
        "pairs": paired_arms(runs, rows),
        "pretraining": pretraining_cost(runs),
    }
    out_html.write_text(TEMPLATES.get_template("compare.html.j2").render(page=page), encoding="utf-8")
