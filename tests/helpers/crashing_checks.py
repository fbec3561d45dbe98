"""Per-file checks that fail the way a damaged file can make a library fail, for the tests of
the validator's isolation. Module-level, so the validator's worker processes import them."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from unittest import mock

from rdtflow.data.validate import check_file


def raising_library(path: Path, demo_dir: Path, data_cfg: dict) -> list:
    """check_file, where reading crashing.hdf5 makes a library raise with internals in its message."""
    if path.name != "crashing.hdf5":
        return check_file(path, demo_dir, data_cfg)
    error = RuntimeError("internal state <h5py.h5d.DatasetID object at 0x7f00deadbeef> of\n<class 'h5py.Group'>")
    with mock.patch("rdtflow.data.validate.first_moving_step", side_effect=error):
        return check_file(path, demo_dir, data_cfg)


def segfaulting_library(path: Path, demo_dir: Path, data_cfg: dict) -> list:
    """check_file, where reading any file named segfault*.hdf5 kills the process as a segmentation fault does."""
    if path.name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return check_file(path, demo_dir, data_cfg)
