"""Shared stages: a stage's folder changes with every setting its files depend on, and with no other.

The README's sweep claims ("stages whose settings are equal run once"; "a data setting shares
only the stages before it") hold only if every key of every section a shared stage reads
reaches its folder's name. The keys are read from the schema, so a key added later is
covered without touching this test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rdtflow.config import SCHEMA_PATH, validate_config
from rdtflow.stages import SHARED_STAGES, active_jobs, stage_config_json, stage_files, stage_paths
from rdtflow.sweep import RESERVED_KEYS, expand_sweep
from tests.helpers.workflow import REDUCED, snakemake

# What each shared stage's files are made from: the sections it reads and those of every stage
# whose files it reads (demos -> validate -> split -> manifest -> encodings, baseline). Written
# out here, not derived from rdtflow.stages, so that a section dropped there shows up here.
DATA = {"demos", "sim", "data"}
DEPENDS_ON: dict[str, set[str]] = {
    "demos": DATA,
    "encoders": {"encoders"},
    "validate": DATA,
    "split": DATA | {"split"},
    "manifest": DATA | {"split"},
    "encode_lang": DATA | {"split", "encoders"},
    "encode_images": DATA | {"split", "encoders"},
    "baseline": DATA | {"split", "model", "eval"},
}


def schema_keys(node: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every settable key of the config schema, as a path of names (a mapping without listed
    properties, such as sim.options or an inline hardware profile, is one key)."""
    properties = node.get("properties")
    if not properties:
        yield prefix
        return
    for name, child in properties.items():
        yield from schema_keys(child, (*prefix, name))


KEYS = [key for key in schema_keys(yaml.safe_load(SCHEMA_PATH.read_text())) if key[0] not in RESERVED_KEYS]


def other_value(value: Any) -> Any:
    """A value unequal to `value`. The stage key hashes settings without validating them, so
    any different value tests whether the key sees the setting."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, list):
        return [*value, "changed"]
    if isinstance(value, dict):
        return {**value, "changed": True}
    return "changed"


def changed(config: dict, key: tuple[str, ...]) -> dict:
    copy = json.loads(json.dumps(config))
    *sections, name = key
    mapping = copy
    for section in sections:
        mapping = mapping.setdefault(section, {})
    mapping[name] = other_value(mapping.get(name))
    return copy


@pytest.fixture(scope="module")
def shared_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = tmp_path_factory.mktemp("results")
    return validate_config({**json.loads(json.dumps(REDUCED)), "results_dir": str(results),
                            "shared_dir": str(results / "stages")})


def test_the_schema_lists_the_keys_every_section_holds():
    assert ("data", "moving_threshold") in KEYS and ("data", "normalization", "mode") in KEYS
    assert ("sim", "options") in KEYS and ("seed",) in KEYS and ("hardware",) in KEYS
    assert {key[0] for key in KEYS} >= set().union(*DEPENDS_ON.values())


@pytest.mark.parametrize("stage", SHARED_STAGES)
def test_every_key_a_shared_stage_depends_on_names_its_own_folder_and_no_other_key_does(shared_config, stage):
    folder = stage_paths(shared_config, stage).root
    assert folder.parent == Path(shared_config["shared_dir"])
    moved = {".".join(key) for key in KEYS if stage_paths(changed(shared_config, key), stage).root != folder}
    expected = {".".join(key) for key in KEYS if key[0] in DEPENDS_ON[stage]}
    assert sorted(expected - moved) == [], f"{stage}: these settings do not reach its folder"
    assert sorted(moved - expected) == [], f"{stage}: these settings split its folder but do not change its files"


def test_a_sweep_over_a_data_key_computes_one_folder_per_distinct_stage_config(tmp_path):
    """A real run of the data stages of a sweep over data.moving_threshold: each setting gets
    its own demos, validation, split and manifest, and each manifest starts where its own
    threshold says the robot first moves."""
    results = tmp_path / "results"
    sweep = {**json.loads(json.dumps(REDUCED)), "run": "sweep", "results_dir": str(results),
             "sweep": {"data.moving_threshold": [0.001, 0.05]}}
    runs = expand_sweep(json.loads(json.dumps(sweep)))
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(sweep))
    manifests = [stage_files(run.config, "manifest").outputs["manifest_out"] for run in runs]
    snakemake(config_file, "--until", "manifest")

    for stage in ("demos", "validate", "split", "manifest"):
        folders = {stage_paths(run.config, stage).root for run in runs}
        assert set((results / "sweep" / "stages").glob(f"{stage}-*")) == folders, stage
        assert len(folders) == len({stage_config_json(run.config, stage) for run in runs}) == 2, stage
        assert all(Path(path).exists() for run in runs for path in stage_files(run.config, stage).outputs.values())

    lengths = []
    for run, manifest in zip(runs, manifests):
        index = pd.read_parquet(stage_files(run.config, "split").outputs["index_out"])
        train = index[index["split"] == "train"]
        lengths.append(len(pd.read_parquet(manifest)))
        assert lengths[-1] == int((train["n_steps"] - train["first_moving_step"]).sum()), run.label
    assert lengths[0] > lengths[1]  # the higher threshold finds the first motion later


@pytest.mark.parametrize("vision_path, text_path, builds", [
    (None, None, True), ("siglip", None, True), (None, "t5", True), ("siglip", "t5", False)])
def test_the_encoders_stage_runs_unless_both_encoders_are_given(shared_config, vision_path, text_path, builds):
    config = json.loads(json.dumps(shared_config))
    config["encoders"] |= {"vision_path": vision_path, "text_path": text_path}
    assert (("encoders", None) in active_jobs(config)) == builds
