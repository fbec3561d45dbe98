"""Progress in a log file is plain periodic lines; on a terminal it is a tqdm bar."""

from __future__ import annotations

import io
import sys

import pytest
from tqdm import tqdm

import rdtflow.progress
from rdtflow.progress import PlainProgress, progress


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(rdtflow.progress, "monotonic", fake)
    return fake


def run(bar: PlainProgress, clock: FakeClock, seconds_per_item: float) -> list[object]:
    seen = []
    for item in bar:
        clock.now += seconds_per_item
        seen.append(item)
    return seen


def test_a_line_per_tenth_without_carriage_returns(clock: FakeClock) -> None:
    stream = io.StringIO()
    bar = PlainProgress(range(1060), 1060, "validate", "file", every_s=30, stream=stream)

    assert run(bar, clock, 0.02) == list(range(1060))

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 10
    assert lines[0] == "validate: 106/1060 files (10%), 50.0 files/s, eta 19s"
    assert lines[-1] == "validate: 1060/1060 files (100%), 50.0 files/s, eta 0s"


def test_slow_items_give_a_line_every_period_between_tenths(clock: FakeClock) -> None:
    stream = io.StringIO()
    bar = PlainProgress(range(100), 100, "eval", "batch", every_s=30, stream=stream)
    run(bar, clock, 10.0)  # a tenth takes 100 s: lines at 30 s intervals in between
    lines = stream.getvalue().splitlines()
    assert lines[:4] == [
        "eval: 3/100 batches (3%), 0.1 batches/s, eta 16m10s",
        "eval: 6/100 batches (6%), 0.1 batches/s, eta 15m40s",
        "eval: 9/100 batches (9%), 0.1 batches/s, eta 15m10s",
        "eval: 10/100 batches (10%), 0.1 batches/s, eta 15m00s",
    ]
    assert lines[-1] == "eval: 100/100 batches (100%), 0.1 batches/s, eta 0s"


def test_unknown_total_and_postfix(clock: FakeClock) -> None:
    stream = io.StringIO()
    bar = PlainProgress(iter(range(5)), None, "train to step 5", "step", every_s=2, stream=stream)
    for _ in bar:
        clock.now += 1.0
        bar.set_postfix(loss="0.1234")
    assert stream.getvalue().splitlines() == [
        "train to step 5: 2 steps, 1.0 steps/s, loss 0.1234",
        "train to step 5: 4 steps, 1.0 steps/s, loss 0.1234",
    ]


def test_terminal_gets_tqdm_and_a_file_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    plain = progress([1, 2, 3], desc="x", unit="file")
    assert isinstance(plain, PlainProgress) and plain.total == 3 and list(plain) == [1, 2, 3]
    assert "x: 3/3 files (100%)" in sys.stderr.getvalue()

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert isinstance(progress([1, 2, 3]), tqdm)


def test_disabled_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert list(progress(range(4), desc="x", enabled=False)) == [0, 1, 2, 3]
    assert sys.stderr.getvalue() == ""
