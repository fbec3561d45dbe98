"""Damaged files at random (a fixed seed): the validate stage finishes, and every file is
accepted or rejected with a documented reason whose detail a user can act on."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdtflow.cli import main as rdtflow
from rdtflow.data.episode import episode_cameras, read_episode
from tests.helpers.damage import BYTE_DAMAGES, DAMAGES, EXPECTED, LAYOUTS, DamagedFile, write_corpus
from tests.helpers.episodes import REPO, documented_reasons, make_data_cfg, write_instruction_json, write_synthetic_episode

SEED = 20261202
FILES_PER_KIND = 6
# What a user cannot act on: a traceback, an object's repr, an h5py object, a message over lines.
INTERNALS = re.compile(r"Traceback|File \"|<HDF5|<h5py|<Closed| object at 0x|\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[DamagedFile], list[Path]]:
    """The damaged files, and two good ones beside them (a folder where all are rejected is an error)."""
    demo_dir = tmp_path_factory.mktemp("fuzz") / "demos"
    damaged = write_corpus(demo_dir / "damaged", SEED, FILES_PER_KIND)
    write_instruction_json(demo_dir)
    good = [write_synthetic_episode(demo_dir / f"good_{index}.hdf5", seed=10_000 + index) for index in range(2)]
    return demo_dir, damaged, good


def validate_stage(demo_dir: Path, out: Path, validate_frames: str) -> tuple[pd.DataFrame, dict]:
    """Run the validate stage as the workflow runs it, from a run file."""
    outputs = {"validated_out": str(out / "validated.parquet"), "report_out": str(out / "validation.json")}
    config = {"run": "fuzz", "results_dir": str(out), "data": make_data_cfg(validate_frames=validate_frames),
              "demos": {"dir": str(demo_dir), "generate": False, "n_episodes": 1, "seed": 0, "workers": 1}}
    run_file = out / "validate.json"
    out.mkdir(parents=True)
    run_file.write_text(json.dumps({"stage": "validate", "step": None, "config": config,
                                    "inputs": {"demo_dir": str(demo_dir)}, "outputs": outputs}))
    assert rdtflow(["validate", "--run-config", str(run_file)]) == 0
    return pd.read_parquet(outputs["validated_out"]).set_index("path"), json.loads(Path(outputs["report_out"]).read_text())


def accepted_is_usable(path: Path) -> None:
    """What training needs of an accepted file: its arrays finite and plausible, every frame decoding at one size."""
    episode = read_episode(path, make_data_cfg())
    for values in (episode.action, episode.qpos):
        assert np.isfinite(values).all() and np.abs(values).max() <= make_data_cfg()["max_abs_value"]
    with episode_cameras(path, make_data_cfg()) as cameras:
        for frames in cameras.values():
            assert len({frames.pixels(step).shape for step in range(len(frames))}) == 1


@pytest.mark.parametrize("validate_frames", ["sample", "all"])
def test_damaged_files_never_stop_validation(corpus, tmp_path: Path, validate_frames: str, capsys) -> None:
    demo_dir, damaged_files, good = corpus
    validated, report = validate_stage(demo_dir, tmp_path / "data", validate_frames)

    assert report["n_files"] == len(damaged_files) + len(good) == len(validated)
    assert all(validated.loc[str(path.resolve()), "valid"] for path in good)
    details = {rejection["path"]: rejection for rejection in report["rejected"]}
    outcomes = Counter()
    for damaged in damaged_files:
        path = str(damaged.path.resolve())
        reason = "" if validated.loc[path, "valid"] else validated.loc[path, "reason"]
        outcomes[damaged.damage, reason or "accepted"] += 1
        if damaged.damage not in BYTE_DAMAGES:
            assert reason in EXPECTED[damaged.damage], (damaged, details.get(path))
        if reason:
            assert reason in documented_reasons() and details[path]["detail"].strip(), details[path]
            assert not INTERNALS.search(details[path]["detail"]), details[path]
        elif validate_frames == "all":
            accepted_is_usable(damaged.path)
    readme = (REPO / "README.md").read_text()
    assert f"in {len(DAMAGES)} ways" in readme and f"{len(damaged_files)} files from a fixed seed" in readme
    assert f"episodes of {('one', 'two', 'three', 'four', 'five')[len(LAYOUTS) - 1]} storages" in readme
    with capsys.disabled():
        kinds = "; ".join(f"{damage}: " + ", ".join(f"{reason} {n}" for (d, reason), n in sorted(outcomes.items())
                                                       if d == damage) for damage in DAMAGES)
        print(f"\nfuzz ({validate_frames}): {len(damaged_files)} damaged files, {len(DAMAGES)} kinds x {len(LAYOUTS)} "
              f"layouts x {FILES_PER_KIND}; {kinds}")
