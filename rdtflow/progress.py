"""Progress of long stages: a tqdm bar on a terminal, plain periodic lines in a log file.

The workflow's rules redirect stdout and stderr to ``logs/{stage}.log``. There a tqdm bar's
carriage returns pile up into one endless line that ``tail`` and ``less`` show badly, while
the person watching a long job wants a line now and then:
``validate: 120/1060 files (11%), 35.2 files/s, eta 27s``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sized
from time import monotonic
from typing import Generic, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

LINE_EVERY_S = 30.0  # a log never stays silent longer than this while items complete
LINES_PER_RUN = 10  # and gets a line at every tenth of the total, however fast


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


def _duration(seconds: float) -> str:
    """'27s', '4m05s', '2h03m': short enough for every line."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class PlainProgress(Generic[T]):
    """Iterates ``items`` and writes one plain line per tenth of ``total`` and at least every
    ``every_s`` seconds; ``set_postfix`` works as tqdm's, so callers need not care which they got."""

    def __init__(self, items: Iterable[T], total: int | None, desc: str, unit: str, every_s: float,
                 stream: TextIO) -> None:
        self.items = items
        self.total = total
        self.desc = desc
        self.unit = unit
        self.every_s = every_s
        self.stream = stream
        self.postfix = ""

    def set_postfix(self, **values: object) -> None:
        """Values (a loss, a learning rate) appended to the following lines."""
        self.postfix = ", ".join(f"{name} {value}" for name, value in values.items())

    def line(self, done: int, elapsed: float) -> str:
        """``desc: done/total units (pct%), rate units/s, eta …`` (no total: count and rate only)."""
        rate = done / elapsed if elapsed > 0 else float("nan")
        units = _plural(self.unit)
        parts = [f"{done}/{self.total} {units} ({100 * done // self.total}%)" if self.total else f"{done} {units}",
                 f"{rate:.1f} {units}/s"]
        if self.total and rate > 0:
            parts.append(f"eta {_duration((self.total - done) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: {', '.join(parts)}"

    def __iter__(self) -> Iterator[T]:
        started = last_line = monotonic()
        tenths_written = 0
        for done, item in enumerate(self.items, start=1):
            yield item  # the caller's work on this item happens here, so `done` counts finished items
            now = monotonic()
            tenths = done * LINES_PER_RUN // self.total if self.total else 0
            if tenths > tenths_written or now - last_line >= self.every_s:
                self.stream.write(self.line(done, now - started) + "\n")
                self.stream.flush()
                tenths_written, last_line = tenths, now


def progress(
    items: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "item",
    enabled: bool = True,
    every_s: float = LINE_EVERY_S,
) -> tqdm | PlainProgress[T]:
    """Iterate ``items`` showing progress on stderr: a tqdm bar when stderr is a terminal, plain
    periodic lines when it is a file. ``total`` defaults to ``len(items)``; ``enabled=False``
    (e.g. on all but the main process) shows nothing. Both results have ``set_postfix(**values)``."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    if not enabled or sys.stderr.isatty():
        return tqdm(items, total=total, desc=desc, unit=unit, disable=not enabled)
    return PlainProgress(items, total, desc, unit, every_s, sys.stderr)
