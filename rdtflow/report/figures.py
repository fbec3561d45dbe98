"""Matplotlib figures of the report: training loss and success rate per checkpoint.

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
                bbox_to_anchor=(0.5, -0.16), ncol=len(labelled), fontsize="small", frameon=False)


def _save(figure: Figure, out_png: Path) -> None:
    """Write the PNG, creating its folder, with a tight layout so labels are not cut."""
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out_png, dpi=DPI)


def plot_loss(log_df: pd.DataFrame, out_png: Path) -> None:
    """Diffusion loss per optimizer step (log scale) with the learning rate on a twin axis.

    Per-step diffusion loss is very noisy (random timesteps and noise), so a moving average is
    drawn over the raw curve to make the trend readable.
    """
    figure, axis = _new_figure()
    window = max(1, len(log_df) // SMOOTHING_POINTS)
    smoothed = log_df["loss"].rolling(window, min_periods=1).mean()
    axis.plot(log_df["step"], log_df["loss"], color=PRIMARY_COLOR, alpha=0.3, linewidth=0.8, label="loss")
    axis.plot(log_df["step"], smoothed, color=PRIMARY_COLOR, linewidth=1.8,
              label=f"loss, moving average of {window} steps")
    axis.set_yscale("log")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss (log scale)", color=PRIMARY_COLOR)

    lr_axis = axis.twinx()
    lr_axis.plot(log_df["step"], log_df["lr"], color=SECONDARY_COLOR, linestyle="--", linewidth=1.2,
                 label="learning rate")
    lr_axis.set_ylabel("learning rate", color=SECONDARY_COLOR)
    lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))

    axis.set_title("Training loss and learning rate")
    _legend_below(axis, lr_axis)
    _save(figure, out_png)


def plot_success(evals_df: pd.DataFrame, baseline: dict[str, Any], out_png: Path) -> None:
    """Closed-loop success rate per checkpoint, with its 95% interval, against the baseline,
    open-loop MSE on a twin axis.

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
