"""The validator rejects each kind of broken file with its own reason and keeps the good ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pandas as pd
import pytest

from rdtflow.data.episode import encode_jpeg
from rdtflow.data.validate import DemoValidationError, first_moving_step, validate_demos

from .conftest import IDLE_STEPS, INSTRUCTION, synthetic_frames, synthetic_trajectory, write_synthetic_episode

BAD_SEED = 99


def run_validation(demo_dir: Path, data_cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Validate into the demo folder's parent; return the written table and report."""
    out = demo_dir.parent / "data"
    validate_demos(demo_dir, data_cfg, out / "validated.parquet", out / "validation.json")
    return pd.read_parquet(out / "validated.parquet"), json.loads((out / "validation.json").read_text())


def write_bad(demo_dir: Path, **replacements) -> Path:
    return write_synthetic_episode(demo_dir / "bad.hdf5", seed=BAD_SEED, **replacements)


def with_value(value: float) -> Callable[[Path], Path]:
    def write(demo_dir: Path) -> Path:
        action, _ = synthetic_trajectory(20, 3, BAD_SEED)
        action[5, 1] = value
        return write_bad(demo_dir, action=action)

    return write


def missing_dataset(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    with h5py.File(path, "a") as h5:
        del h5["/observations/qpos"]
    return path


def mismatched_lengths(demo_dir: Path) -> Path:
    action, _ = synthetic_trajectory(19, 3, BAD_SEED)
    return write_bad(demo_dir, action=action)


def mismatched_frame_count(demo_dir: Path) -> Path:
    return write_bad(demo_dir, frames={"cam_high": synthetic_frames(18, BAD_SEED)})


def undecodable_jpeg(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    with h5py.File(path, "a") as h5:
        frames = list(h5["/observations/images/cam_high"][()])
        frames[7] = frames[7][: len(frames[7]) // 2]  # a truncated JPEG, as an interrupted recorder leaves it
        del h5["/observations/images/cam_high"]
        h5["/observations/images/cam_high"] = np.array(frames)
    return path


def not_hdf5(demo_dir: Path) -> Path:
    path = demo_dir / "bad.hdf5"
    path.write_text("this is a CSV export, not an HDF5 file\n")
    return path


def empty_file(demo_dir: Path) -> Path:
    path = demo_dir / "bad.hdf5"
    path.touch()
    return path


def truncated_file(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def duplicate(demo_dir: Path) -> Path:
    return Path(shutil.copy(demo_dir / "good_000.hdf5", demo_dir / "zz_copy_of_good_000.hdf5"))


def too_short(demo_dir: Path) -> Path:
    return write_synthetic_episode(demo_dir / "bad.hdf5", n_steps=8, seed=BAD_SEED)


def zero_steps(demo_dir: Path) -> Path:
    empty = np.zeros((0, 3), np.float32)
    return write_bad(demo_dir, action=empty, qpos=empty, frames={"cam_high": []})


def never_moves(demo_dir: Path) -> Path:
    still = np.tile(np.float32([0.1, 0.2, 1.0]), (20, 1))
    still[10] += 0.0005  # sensor noise below data.moving_threshold
    return write_bad(demo_dir, qpos=still)


def wrong_state_dim(demo_dir: Path) -> Path:
    return write_synthetic_episode(demo_dir / "bad.hdf5", n_cols=4, seed=BAD_SEED)


def bad_dtype(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    with h5py.File(path, "a") as h5:
        del h5["/action"]
        h5["/action"] = np.full((20, 3), b"x")
    return path


def raw_pixel_frames(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    with h5py.File(path, "a") as h5:
        del h5["/observations/images/cam_high"]
        h5["/observations/images/cam_high"] = np.stack(synthetic_frames(20, BAD_SEED))
    return path


def missing_camera(demo_dir: Path) -> Path:
    return write_synthetic_episode(demo_dir / "bad.hdf5", cameras=("cam_low",), seed=BAD_SEED)


def missing_image_group(demo_dir: Path) -> Path:
    path = write_bad(demo_dir)
    with h5py.File(path, "a") as h5:
        del h5["/observations/images"]
    return path


def missing_instruction(demo_dir: Path) -> Path:
    return write_synthetic_episode(demo_dir / "other_task" / "bad.hdf5", seed=BAD_SEED)


def frame_size_changes(demo_dir: Path) -> Path:
    frames = synthetic_frames(20, BAD_SEED)
    frames[12] = np.zeros((24, 24, 3), np.uint8)
    return write_bad(demo_dir, frames={"cam_high": frames})


CASES = [
    (missing_dataset, "missing_dataset", "'/observations/qpos'"),
    (missing_image_group, "missing_dataset", "data.image_group"),
    (mismatched_lengths, "length_mismatch", "'/action': 19"),
    (mismatched_frame_count, "length_mismatch", "camera cam_high': 18"),
    (with_value(np.nan), "nan_values", "first at step 5 column 1 (right_eef_pos_y)"),
    (with_value(np.inf), "inf_values", "first at step 5 column 1"),
    (undecodable_jpeg, "undecodable_jpeg", "camera 'cam_high' step 7"),
    (not_hdf5, "not_hdf5", "cannot be read as HDF5"),
    (empty_file, "not_hdf5", "cannot be read as HDF5"),
    (truncated_file, "not_hdf5", "truncated"),
    (duplicate, "duplicate", "good_000.hdf5"),
    (too_short, "too_short", "8 steps"),
    (zero_steps, "too_short", "0 steps"),
    (never_moves, "never_moves", "data.moving_threshold=0.001"),
    (wrong_state_dim, "wrong_state_dim", "(20, 4)"),
    (bad_dtype, "bad_dtype", "'/action' has dtype"),
    (raw_pixel_frames, "bad_dtype", "must be JPEG-encoded"),
    (missing_camera, "missing_camera", "cam_high not in '/observations/images' (it holds cam_low)"),
    (missing_instruction, "missing_instruction", "other_task/instruction.json"),
    (frame_size_changes, "frame_size_changes", "step 12 is 24x24 but step 0 is 16x16"),
]


@pytest.mark.parametrize(("write_broken", "reason", "detail"), CASES, ids=[case[0].__name__ for case in CASES])
def test_broken_file_is_rejected_and_good_ones_kept(
    demo_dir: Path, good_demos, data_cfg: dict, write_broken, reason: str, detail: str
) -> None:
    good = good_demos(2)
    broken = write_broken(demo_dir).resolve()

    validated, report = run_validation(demo_dir, data_cfg)

    rows = validated.set_index("path")
    assert rows.loc[str(broken), "reason"] == reason and not rows.loc[str(broken), "valid"]
    assert all(rows.loc[str(path.resolve()), "valid"] for path in good)
    assert report["n_files"] == 3 and report["n_valid"] == 2 and report["rejected_by_reason"] == {reason: 1}
    (rejection,) = report["rejected"]
    assert rejection["reason"] == reason and detail in rejection["detail"]


def test_valid_rows_describe_the_episode(demo_dir: Path, good_demos, data_cfg: dict, capsys) -> None:
    good_demos(2)
    write_synthetic_episode(demo_dir / "nested" / "deeper" / "episode.hdf5", seed=5)
    (demo_dir / "nested" / "deeper" / "instruction.json").write_text(json.dumps({"instruction": ["nested task"]}))

    validated, report = run_validation(demo_dir, data_cfg)

    assert list(validated.columns) == [
        "path", "episode_id", "n_steps", "first_moving_step", "content_hash", "instruction", "valid", "reason"
    ]
    assert validated["episode_id"].tolist() == ["good_000", "good_001", "nested/deeper/episode"]
    assert validated["n_steps"].tolist() == [20, 20, 20]
    assert validated["first_moving_step"].tolist() == [IDLE_STEPS] * 3
    assert validated["instruction"].tolist() == [INSTRUCTION, INSTRUCTION, "nested task"]
    assert validated["content_hash"].str.len().eq(64).all() and validated["content_hash"].is_unique
    assert validated["valid"].all() and (validated["reason"] == "").all()
    assert all(Path(path).is_absolute() for path in validated["path"])
    assert report == {"n_files": 3, "n_valid": 3, "n_rejected": 0, "rejected_by_reason": {}, "rejected": []}
    assert "validated 3 files: 3 accepted, 0 rejected" in capsys.readouterr().out


def test_summary_counts_rejections_by_reason(demo_dir: Path, good_demos, data_cfg: dict, capsys) -> None:
    good_demos(1)
    not_hdf5(demo_dir)
    (demo_dir / "empty.hdf5").touch()
    too_short(demo_dir / "short")
    run_validation(demo_dir, data_cfg)
    assert "validated 4 files: 1 accepted, 3 rejected (not_hdf5: 2, too_short: 1)" in capsys.readouterr().out


def test_instruction_from_attribute(demo_dir: Path, data_cfg: dict) -> None:
    write_synthetic_episode(demo_dir / "with.hdf5", seed=1, attrs={"instruction": "stack the blocks"})
    write_synthetic_episode(demo_dir / "without.hdf5", seed=2)
    attribute_cfg = data_cfg | {"instruction": {**data_cfg["instruction"], "source": "attribute"}}
    validated, report = run_validation(demo_dir, attribute_cfg)
    assert validated["instruction"][0] == "stack the blocks" and pd.isna(validated["instruction"][1])
    assert "root attribute 'instruction'" in report["rejected"][0]["detail"]


def test_empty_folder_is_an_error(demo_dir: Path, data_cfg: dict) -> None:
    with pytest.raises(DemoValidationError, match=rf"no \*\.hdf5 files were found under {demo_dir}"):
        run_validation(demo_dir, data_cfg)


def test_missing_folder_is_an_error(tmp_path: Path, data_cfg: dict) -> None:
    with pytest.raises(DemoValidationError, match="no \\*\\.hdf5 files.*does not exist"):
        run_validation(tmp_path / "nowhere", data_cfg)


def test_no_valid_episode_is_an_error_with_counts(demo_dir: Path, data_cfg: dict) -> None:
    not_hdf5(demo_dir)
    too_short(demo_dir / "short")
    with pytest.raises(DemoValidationError, match=r"no valid episode under .*all 2 files were rejected \(") as error:
        run_validation(demo_dir, data_cfg)
    assert "not_hdf5: 1" in str(error.value) and "too_short: 1" in str(error.value)
    assert not (demo_dir.parent / "data" / "validated.parquet").exists()


def test_strict_mode_makes_any_rejection_fatal(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    good_demos(2)
    with_value(np.nan)(demo_dir)
    with pytest.raises(DemoValidationError, match=r"1 of 3 files .* data.strict is true(.|\n)*bad: nan_values"):
        run_validation(demo_dir, data_cfg | {"strict": True})


def test_strict_mode_passes_clean_folders(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    good_demos(2)
    validated, _ = run_validation(demo_dir, data_cfg | {"strict": True})
    assert validated["valid"].all()


def test_unknown_state_name_fails_before_reading(demo_dir: Path, data_cfg: dict) -> None:
    with pytest.raises(ValueError, match=r"data.state_names: unknown unified state name 'right_eef_x'"):
        run_validation(demo_dir, data_cfg | {"state_names": ["right_eef_x", "right_eef_pos_y", "right_gripper_open"]})


def test_first_moving_step() -> None:
    qpos = np.zeros((6, 2), np.float32)
    qpos[2, 0] = 0.0005
    qpos[4, 1] = -0.01
    assert first_moving_step(qpos, 0.001) == 4
    assert first_moving_step(qpos, 0.0) == 2
    assert first_moving_step(qpos, 0.1) is None


def test_jpeg_padding_does_not_break_decoding(demo_dir: Path, data_cfg: dict) -> None:
    """A frame shorter than the longest one is padded with zeros; it must still validate."""
    frames = synthetic_frames(20, 3)
    frames[4] = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)  # noise: a long JPEG
    path = write_synthetic_episode(demo_dir / "padded.hdf5", seed=3, frames={"cam_high": frames})
    write_synthetic_episode(demo_dir / "other.hdf5", seed=4)
    with h5py.File(path, "r") as h5:
        assert len(encode_jpeg(frames[0])) < h5["/observations/images/cam_high"].dtype.itemsize
    validated, _ = run_validation(demo_dir, data_cfg)
    assert validated["valid"].all()
