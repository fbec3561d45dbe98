"""Fixtures of the data tests: a data config, a demo folder, valid episodes in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.episodes import make_data_cfg, write_instruction_json, write_synthetic_episode


@pytest.fixture
def data_cfg() -> dict:
    return make_data_cfg()


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """An empty demo folder that already has its instruction.json."""
    folder = tmp_path / "demos"
    write_instruction_json(folder)
    return folder


@pytest.fixture
def good_demos(demo_dir: Path) -> Callable[[int], list[Path]]:
    """Write ``n`` valid, distinct episodes named good_000.hdf5, ... into demo_dir."""

    def write(n: int) -> list[Path]:
        return [write_synthetic_episode(demo_dir / f"good_{i:03d}.hdf5", seed=i) for i in range(n)]

    return write
