"""Matplotlib figures of the report: training curves, success per checkpoint, episode lengths.

Figures are built on `matplotlib.figure.Figure` with an Agg canvas rather than pyplot, so a
report job keeps no global figure state and never needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from rdtflow.report.collect import SUCCESS_NOT_MEASURED, is_missing

DPI = 110
FIGSIZE = (8.0, 4.2)
PRIMARY_COLOR = "tab:blue"
SECONDARY_COLOR = "tab:orange"
STAGE_SHADES = (0.75, 0.55, 0.4, 0.3, 0.2)
"""Opacity of each task stage's line, earliest stage darkest, under the success line."""
SMOOTHING_POINTS = 50
"""Target number of windows across the run for the loss moving average."""


def _new_figure() -> tuple[Figure, Axes]:
    """A figure with one axis, rendered by Agg."""
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    axis.grid(True, alpha=0.3)
    return figure, axis


def _legend_below(axis: Axes, twin: Axes) -> None:
    """One legend for the lines of both y axes, under the plot so it never hides a data point.

    It is attached to the twin axis because that one is drawn last (on top).
    """
    lines = axis.get_lines() + twin.get_lines()
    labelled = [line for line in lines if not line.get_label().startswith("_")]
    twin.legend(labelled, [line.get_label() for line in labelled], loc="upper center",
                bbox_to_anchor=(0.5, -0.16), ncol=min(len(labelled), 4), fontsize="small", frameon=False)


def _save(figure: Figure, out_png: Path) -> None:
    """Write the PNG, creating its folder, with a tight layout so labels are not cut."""
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_png, dpi=DPI)


def _smoothed(values: pd.Series) -> tuple[pd.Series, int]:
    """A moving average over about SMOOTHING_POINTS windows, and its window: per-step diffusion
    loss and gradient norm are very noisy (random timesteps and noise)."""
    window = max(1, len(values) // SMOOTHING_POINTS)
    return values.rolling(window, min_periods=1).mean(), window


def _noisy_curve(axis: Axes, steps: pd.Series, values: pd.Series, label: str) -> None:
    """The raw per-step values faint, their moving average on top."""
    smoothed, window = _smoothed(values)
    axis.plot(steps, values, color=PRIMARY_COLOR, alpha=0.3, linewidth=0.8)
    label = f"moving average of {window} steps" if window > 1 else "each step (too few to average)"
    axis.plot(steps, smoothed, color=PRIMARY_COLOR, linewidth=1.6, label=label)
    axis.set_ylabel(label)
    axis.legend(fontsize="small", frameon=False)


def plot_training(log_df: pd.DataFrame, out_png: Path) -> None:
    """Four panels over optimizer steps: loss (log scale), learning rate, gradient norm before
    clipping, and samples per second. Logs written before rdtflow recorded the gradient norm
    leave its panel saying so."""
    figure = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 1.6), dpi=DPI)
    FigureCanvasAgg(figure)
    (loss, lr), (grad, speed) = figure.subplots(2, 2, sharex=True)
    steps = log_df["step"]
    _noisy_curve(loss, steps, log_df["loss"], "training loss")
    loss.set_yscale("log")
    lr.plot(steps, log_df["lr"], color=SECONDARY_COLOR)
    lr.set_ylabel("learning rate")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if "grad_norm" in log_df and log_df["grad_norm"].notna().any():
        _noisy_curve(grad, steps, log_df["grad_norm"], "gradient norm (before clipping)")
        grad.set_yscale("log")
    else:
        grad.text(0.5, 0.5, "gradient norm not logged", transform=grad.transAxes, ha="center", color="dimgray")
    speed.plot(steps, log_df["samples_per_s"], color=SECONDARY_COLOR)
    speed.set_ylabel("samples / s (mean over the job so far)")
    speed.set_ylim(bottom=0)
    for axis in (loss, lr, grad, speed):
        axis.grid(True, alpha=0.3)
    for axis in (grad, speed):
        axis.set_xlabel("optimizer step")
    figure.suptitle("Training")
    _save(figure, out_png)


def plot_episode_lengths(lengths: pd.DataFrame, out_png: Path) -> None:
    """Histogram of valid episodes' steps, training and held-out episodes stacked."""
    figure, axis = _new_figure()
    by_split = [lengths.loc[lengths["split"] == split, "n_steps"] for split in ("train", "held_out")]
    axis.hist(by_split, bins=min(30, max(5, len(lengths) // 4)), stacked=True, color=[PRIMARY_COLOR, SECONDARY_COLOR],
              label=[f"train ({len(by_split[0])})", f"held out ({len(by_split[1])})"])
    axis.set_xlabel("episode length (steps)")
    axis.set_ylabel("episodes")
    axis.legend(fontsize="small", frameon=False)
    axis.set_title("Episode lengths")
    _save(figure, out_png)


def plot_success(evals_df: pd.DataFrame, stage_rates: pd.DataFrame, baseline: dict[str, Any], out_png: Path) -> None:
    """Closed-loop success rate per checkpoint, with its 95% interval, the rate of each task
    stage reached (`stage_rates`: one column per stage, indexed by step), against the
    baseline; open-loop MSE on a twin axis.

    Null success rates (no simulator) are not drawn as zeros: the plot says they were not
    measured and only the open-loop MSE is shown.
    """
    figure, axis = _new_figure()
    if evals_df["success_rate"].isna().all():
        axis.text(0.5, 0.5, SUCCESS_NOT_MEASURED, transform=axis.transAxes, ha="center", va="center",
                  color="dimgray", fontsize="large")
    else:
        axis.plot(evals_df["step"], evals_df["success_rate"], color=PRIMARY_COLOR, marker="o",
                  clip_on=False, label="checkpoint success rate")
        if evals_df["success_low"].notna().any():
            axis.fill_between(evals_df["step"], evals_df["success_low"], evals_df["success_high"], color=PRIMARY_COLOR,
                              alpha=0.15, linewidth=0, label="Wilson 95% interval")
        for shade, (stage, rates) in zip(STAGE_SHADES, stage_rates.items()):
            axis.plot(rates.index, rates.values, color=PRIMARY_COLOR, alpha=shade, linewidth=1, marker=".",
                      label=f"reached {stage}")
    baseline_rate = baseline.get("success_rate")
    if not is_missing(baseline_rate):
        axis.axhline(baseline_rate, color="dimgray", linestyle="--", linewidth=1.2,
                     label=f"{baseline.get('policy', 'baseline')} ({baseline_rate:.1%})")
    axis.set_ylim(0, 1)
    axis.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    axis.set_xlabel("checkpoint (optimizer step)")
    axis.set_ylabel("success rate on held-out episodes", color=PRIMARY_COLOR)

    mse_axis = axis.twinx()
    mse_axis.plot(evals_df["step"], evals_df["open_loop_mse"], color=SECONDARY_COLOR, marker="s",
                  linestyle=":", label="open-loop MSE")
    mse_axis.set_ylabel("open-loop action MSE", color=SECONDARY_COLOR)

    axis.set_title("Closed-loop success per checkpoint")
    _legend_below(axis, mse_axis)
    _save(figure, out_png)
