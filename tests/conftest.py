"""Fixtures more than one test file uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.training import prepare_data


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """A run folder with every stage before the plan done (tests.helpers.training.BASE)."""
    return prepare_data(tmp_path_factory.mktemp("equivalence"))
