"""How the report writes numbers: the template's filters (rdtflow/report/templates/report.html.j2).

A missing number is said to be missing (a dash, or "not measured" for a success rate), never
shown as 0; a rate always carries its Wilson 95% interval where one was recorded.
"""

from __future__ import annotations

from typing import Any

from rdtflow.report.collect import is_missing

MISSING = "—"


def format_rate(rate: Any) -> str:
    """A success rate as a percentage; a null one is said to be unmeasured, never shown as 0."""
    return "not measured" if is_missing(rate) else f"{rate:.1%}"


def format_interval(evaluation: dict[str, Any], key: str = "success") -> str:
    """A rate with its Wilson 95% interval, "83.3% [72.0%, 90.7%]"; the rate alone where none was recorded."""
    rate, interval = evaluation.get(f"{key}_rate"), evaluation.get(f"{key}_interval")
    if is_missing(rate) or not interval:
        return format_rate(rate)
    return f"{rate:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def format_stage_rate(rate: dict[str, Any]) -> str:
    """One entry of an evaluation's stage_rates with its interval."""
    return format_interval({"stage_rate": rate["rate"], "stage_interval": rate.get("interval")}, "stage")


def format_number(value: Any) -> str:
    """A measured float with 4 significant digits (MSE, distances), a dash when absent."""
    return MISSING if is_missing(value) else f"{value:#.4g}"


def format_count(value: Any) -> str:
    """An integer count (episode steps), a dash when the evaluation did not record it."""
    return MISSING if is_missing(value) else str(int(value))


def format_success(success: Any) -> str:
    """One episode's outcome as a mark a reader scans faster than true/false."""
    return MISSING if success is None else ("✓" if success else "✗")


def format_seconds(seconds: Any) -> str:
    """A wall time as people say it: 42 s, 12 min 5 s, 2 h 4 min."""
    if is_missing(seconds):
        return MISSING
    seconds = round(float(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_bytes(size: float) -> str:
    """A file size in kB or MB (powers of 1000, as browsers and mail clients show them)."""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def format_config_value(value: Any) -> str:
    """Config values written the way they look in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(format_config_value(item) for item in value)
    return str(value)


def breakable(name: Any) -> str:
    """A long folder name (or a swept value) that may wrap after each "_" (a zero-width space
    there), not inside words."""
    return str(name).replace("_", "_\u200b")


FILTERS = {"rate": format_rate, "interval": format_interval, "stage_rate": format_stage_rate, "number": format_number,
           "count": format_count, "mark": format_success, "seconds": format_seconds, "bytes": format_bytes,
           "config_value": format_config_value, "breakable": breakable}
