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
from tests.helpers.damage import BYTE_DAMAGES, DAMAGES, EXPECTED, LAYOUTS, DamagedFile, Layout, write_corpus
from tests.helpers.episodes import REPO, documented_reasons, make_data_cfg, write_instruction_json, write_synthetic_episode

SEED = 20261202
FILES_PER_KIND = 6
# What a user cannot act on: a traceback, an object's repr, an h5py object, a message over lines.
INTERNALS = re.compile(r"Traceback|File \"|<HDF5|<h5py|<Closed| object at 0x|\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[DamagedFile]]:
    """The damaged files, in one folder per layout beside two good files of that layout (a
    folder where all are rejected is an error)."""
    folder = tmp_path_factory.mktemp("fuzz") / "demos"
    damaged = write_corpus(folder, SEED, FILES_PER_KIND)
    for name, layout in LAYOUTS.items():
        for index in range(2):
            layout.convert(write_synthetic_episode(folder / name / f"good_{index}.hdf5", seed=10_000 + index))
        write_instruction_json(folder / name)
    return folder, damaged


def layout_cfg(layout: Layout, validate_frames: str) -> dict:
    return make_data_cfg(validate_frames=validate_frames, **layout.data)


def validate_stage(demo_dir: Path, out: Path, data_cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Run the validate stage as the workflow runs it, from a run file."""
    outputs = {"validated_out": str(out / "validated.parquet"), "report_out": str(out / "validation.json")}
    config = {"run": "fuzz", "results_dir": str(out), "data": data_cfg,
              "demos": {"dir": str(demo_dir), "generate": False, "n_episodes": 1, "seed": 0, "workers": 1}}
    run_file = out / "validate.json"
    out.mkdir(parents=True)
    run_file.write_text(json.dumps({"stage": "validate", "step": None, "config": config,
                                    "inputs": {"demo_dir": str(demo_dir)}, "outputs": outputs}))
    assert rdtflow(["validate", "--run-config", str(run_file)]) == 0
    return pd.read_parquet(outputs["validated_out"]), json.loads(Path(outputs["report_out"]).read_text())


def accepted_is_usable(path: Path, group: str, data_cfg: dict) -> None:
    """What training needs of an accepted episode: its arrays finite and plausible, every frame decoding at one size."""
    episode = read_episode(path, data_cfg, group)
    for values in (episode.action, episode.qpos):
        assert np.isfinite(values).all() and np.abs(values).max() <= data_cfg["max_abs_value"]
    with episode_cameras(path, data_cfg, group) as cameras:
        for frames in cameras.values():
            assert len({frames.pixels(step).shape for step in range(len(frames))}) == 1


def damaged_episode(validated: pd.DataFrame, damaged: DamagedFile) -> tuple[pd.Series, pd.DataFrame]:
    """The row of the episode the damage was aimed at (the file's own row where the file was
    rejected whole), and the file's other rows (the other demos of a robomimic file)."""
    rows = validated[validated["path"] == str(damaged.path.resolve())]
    target = rows[rows["group"] == LAYOUTS[damaged.layout].target_group]
    row = (target if len(target) else rows[rows["group"] == ""]).iloc[0]
    return row, rows.drop(row.name)


@pytest.mark.parametrize("validate_frames", ["sample", "all"])
def test_damaged_files_never_stop_validation(corpus, tmp_path: Path, validate_frames: str, capsys) -> None:
    folder, damaged_files = corpus
    outcomes = Counter()
    for name, layout in LAYOUTS.items():
        data_cfg = layout_cfg(layout, validate_frames)
        validated, report = validate_stage(folder / name, tmp_path / name, data_cfg)
        in_layout = [damaged for damaged in damaged_files if damaged.layout == name]
        assert report["n_files"] == len(in_layout) + 2
        assert validated[validated["episode_id"].str.startswith("good_")]["valid"].all()
        details = {rejection["episode_id"]: rejection for rejection in report["rejected"]}
        for damaged in in_layout:
            row, bystanders = damaged_episode(validated, damaged)
            reason = "" if row["valid"] else row["reason"]
            outcomes[damaged.damage, reason or "accepted"] += 1
            if damaged.damage not in BYTE_DAMAGES:
                assert reason in EXPECTED[damaged.damage], (damaged, details.get(row["episode_id"]))
                assert bystanders["valid"].all(), (damaged, bystanders)  # the other demos of the file are unharmed
            for rejected in [row, *(b for _, b in bystanders.iterrows())]:
                if not rejected["valid"]:
                    detail = details[rejected["episode_id"]]
                    assert rejected["reason"] in documented_reasons() and detail["detail"].strip(), detail
                    assert not INTERNALS.search(detail["detail"]), detail
            if not reason and validate_frames == "all":
                accepted_is_usable(damaged.path, row["group"], data_cfg)
    readme = (REPO / "README.md").read_text()
    assert f"in {len(DAMAGES)} ways" in readme and f"{len(damaged_files)} files from a fixed seed" in readme
    assert f"episodes of {('one', 'two', 'three', 'four', 'five', 'six')[len(LAYOUTS) - 1]} layouts" in readme
    with capsys.disabled():
        kinds = "; ".join(f"{damage}: " + ", ".join(f"{reason} {n}" for (d, reason), n in sorted(outcomes.items())
                                                       if d == damage) for damage in DAMAGES)
        print(f"\nfuzz ({validate_frames}): {len(damaged_files)} damaged files, {len(DAMAGES)} kinds x {len(LAYOUTS)} "
              f"layouts x {FILES_PER_KIND}; {kinds}")
