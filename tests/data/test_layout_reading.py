"""Files of many demos, states without actions, state columns over several datasets and
per-episode instruction files: read in place, each demo accepted or rejected on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from rdtflow.config import validate_config
from rdtflow.data.episode import next_states, read_episode, read_trajectory
from rdtflow.data.split import split_episodes
from rdtflow.data.validate import DemoValidationError, validate_demos
from rdtflow.errors import ConfigError
from tests.helpers.episodes import write_instruction_json
from tests.helpers.layouts import write_robomimic_file, write_robotwin_episode


def preset(name: str, **overrides) -> dict:
    """The data section a run with ``data.preset: name`` gets."""
    return validate_config({"run": "layouts", "data": {"preset": name, **overrides}}, partial=True)["data"]


def validate(folder: Path, data_cfg: dict) -> tuple[pd.DataFrame, dict]:
    out = folder.parent / "data"
    validate_demos(folder, data_cfg, out / "validated.parquet", out / "validation.json")
    return pd.read_parquet(out / "validated.parquet"), json.loads((out / "validation.json").read_text())


@pytest.fixture
def robomimic_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lift"
    write_instruction_json(folder, "lift the cube")
    write_robomimic_file(folder / "image.hdf5", n_demos=12)
    return folder


def test_each_demo_of_a_robomimic_file_is_an_episode_accepted_or_rejected_alone(robomimic_folder: Path, capsys) -> None:
    with h5py.File(robomimic_folder / "image.hdf5", "a") as h5:
        h5["data/demo_3/obs/robot0_joint_pos"][5, 2] = np.nan
        del h5["data/demo_7/obs/agentview_image"]

    validated, report = validate(robomimic_folder, preset("robomimic"))

    assert validated["episode_id"].tolist() == [f"image/demo_{n}" for n in range(12)]  # demo_10 after demo_9
    assert validated["group"].tolist() == [f"/data/demo_{n}" for n in range(12)]
    assert report["n_files"] == 1 and report["n_episodes"] == 12 and report["n_valid"] == 10
    rejected = {r["episode_id"]: r for r in report["rejected"]}
    assert rejected["image/demo_3"]["reason"] == "nan_values"
    assert "'obs/robot0_joint_pos + obs/robot0_gripper_qpos' has 1 NaN value(s), first at step 5 column 2 " \
           "(right_arm_joint_2_pos)" in rejected["image/demo_3"]["detail"]
    assert rejected["image/demo_7"]["reason"] == "missing_camera"
    assert validated["masks"].tolist() == ["train"] * 11 + ["valid"]
    assert "validated 1 files holding 12 episodes: 10 accepted, 2 rejected" in capsys.readouterr().out


def test_a_demo_reads_the_joint_states_joined_and_the_next_state_as_its_action(robomimic_folder: Path) -> None:
    path, data_cfg = robomimic_folder / "image.hdf5", preset("robomimic")
    episode = read_episode(path, data_cfg, "/data/demo_2")
    with h5py.File(path) as h5:
        joints, fingers = h5["data/demo_2/obs/robot0_joint_pos"][()], h5["data/demo_2/obs/robot0_gripper_qpos"][()]
    np.testing.assert_array_equal(episode.qpos, np.concatenate([joints, fingers], axis=1).astype(np.float32))
    np.testing.assert_array_equal(episode.action[:-1], episode.qpos[1:])
    np.testing.assert_array_equal(episode.action[-1], episode.qpos[-1])  # the last step holds its state
    assert episode.attrs["num_samples"] == 40
    np.testing.assert_array_equal(read_trajectory(path, data_cfg, "/data/demo_2")[0], next_states(episode.qpos))


def test_robomimics_valid_mask_is_the_held_out_set(robomimic_folder: Path, tmp_path: Path) -> None:
    validate(robomimic_folder, preset("robomimic"))
    split_cfg = {"held_out": {"mask": "valid"}, "seed": 0, "train_episodes": None}
    index = split_episodes(tmp_path / "data" / "validated.parquet", split_cfg, tmp_path / "data" / "index.parquet")
    assert index.loc[index["split"] == "held_out", "episode_id"].tolist() == ["image/demo_11"]
    with pytest.raises(ConfigError, match=r"no valid episode is in mask 'test' \(the files' /mask groups hold train, valid\)"):
        split_episodes(tmp_path / "data" / "validated.parquet", {"held_out": {"mask": "test"}, "seed": 0, "train_episodes": None},
                       tmp_path / "data" / "other.parquet")


def test_a_file_without_the_demo_group_is_one_rejection(tmp_path: Path) -> None:
    folder = tmp_path / "lift"
    write_instruction_json(folder)
    write_robomimic_file(folder / "image.hdf5", n_demos=3)
    with h5py.File(folder / "other.hdf5", "w") as h5:
        h5["demos/demo_0/actions"] = np.zeros((40, 7))
    validated, report = validate(folder, preset("robomimic"))
    assert report["n_episodes"] == 4 and report["rejected"][0]["episode_id"] == "other"
    assert report["rejected"][0]["detail"].startswith("no group '/data' holding the demos; set data.episode_group")


def test_a_copied_demo_is_a_duplicate_even_inside_one_file(robomimic_folder: Path) -> None:
    with h5py.File(robomimic_folder / "image.hdf5", "a") as h5:
        h5.copy("data/demo_0", "data/demo_12")
    validated, report = validate(robomimic_folder, preset("robomimic"))
    duplicate = next(r for r in report["rejected"] if r["episode_id"] == "image/demo_12")
    assert duplicate["reason"] == "duplicate" and duplicate["detail"].endswith("image.hdf5:/data/demo_0; keeping that one")


def test_robotwin_episodes_take_their_own_instruction_file(tmp_path: Path) -> None:
    data = tmp_path / "stack_blocks" / "demo_clean" / "data"
    data.mkdir(parents=True)
    (data.parent / "instructions").mkdir()
    for index in range(3):
        write_robotwin_episode(data / f"episode{index}.hdf5", n_steps=40 + index)
    for index in range(2):
        (data.parent / "instructions" / f"episode{index}.json").write_text(
            json.dumps({"seen": [f"stack the blocks {index}", "other"], "unseen": ["never used"]}))

    validated, report = validate(data, preset("robotwin"))

    assert validated["instruction"].tolist()[:2] == ["stack the blocks 0", "stack the blocks 1"]
    assert report["rejected"][0]["episode_id"] == "episode2" and report["rejected"][0]["reason"] == "missing_instruction"
    assert f"key 'seen' in {data}/../instructions/episode2.json" in report["rejected"][0]["detail"]
    episode = read_episode(data / "episode0.hdf5", preset("robotwin"))
    assert episode.qpos.shape == (40, 14) and np.array_equal(episode.action[:-1], episode.qpos[1:])


def test_state_columns_over_several_datasets_must_add_up(tmp_path: Path) -> None:
    folder = tmp_path / "twin"
    write_instruction_json(folder)
    write_robotwin_episode(folder / "episode0.hdf5")
    write_robotwin_episode(folder / "episode1.hdf5", n_steps=41)
    keys = [f"/joint_action/{part}" for part in ("left_arm", "left_gripper", "right_arm", "right_gripper")]
    by_parts = preset("robotwin", qpos_key=keys, instruction={"file": "instruction.json", "key": "instruction"})
    validated, _ = validate(folder, by_parts)
    assert validated["valid"].all()
    np.testing.assert_array_equal(read_episode(folder / "episode0.hdf5", by_parts).qpos,
                                  read_episode(folder / "episode0.hdf5", preset("robotwin")).qpos)

    with pytest.raises(DemoValidationError, match=re.escape(
            "episode0: wrong_state_dim: '/joint_action/left_arm' (40, 6) + '/joint_action/left_gripper' (40,) + "
            "'/joint_action/right_arm' (40, 6) hold 13 columns but data.state_names lists 14 names")):
        validate(folder, by_parts | {"qpos_key": keys[:3]})
