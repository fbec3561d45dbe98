"""The validator rejects each kind of broken file with its own reason and keeps the good ones."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from rdtflow.data.frames import encode_jpeg
from rdtflow.data.validate import DemoValidationError, first_moving_step, validate_demos, validate_files
from tests.helpers import crashing_checks
from tests.helpers.episodes import (
    IDLE_STEPS,
    INSTRUCTION,
    documented_reasons,
    replace_object,
    synthetic_frames,
    synthetic_trajectory,
    write_synthetic_episode,
)

BAD_SEED = 99


def run_validation(demo_dir: Path, data_cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Validate into the demo folder's parent; return the written table and report."""
    out = demo_dir.parent / "data"
    validate_demos(demo_dir, data_cfg, out / "validated.parquet", out / "validation.json")
    return pd.read_parquet(out / "validated.parquet"), json.loads((out / "validation.json").read_text())


def write_bad(path: Path, **replacements) -> Path:
    return write_synthetic_episode(path, seed=BAD_SEED, **replacements)


def rewrite(path: Path, key: str, data) -> None:
    """Replace one dataset of an episode file."""
    replace_object(path, key, lambda h5, name: h5.create_dataset(name, data=data))


def with_value(value: float) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        action, _ = synthetic_trajectory(20, 3, BAD_SEED)
        action[5, 1] = value
        return write_bad(path, action=action)

    write.__name__ = f"with_{value}"
    return write


def without(key: str) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        write_bad(path)
        with h5py.File(path, "a") as h5:
            del h5[key]
        return path

    write.__name__ = f"without_{key.strip('/').replace('/', '_')}"
    return write


def with_integers(values: np.ndarray) -> Callable[[Path], Path]:
    """The action stored as integers, e.g. 4294967295 (-1 wrapped by uint32) at step 5 column 1."""

    def write(path: Path) -> Path:
        write_bad(path)
        action = np.zeros((20, 3), values.dtype)
        action[5, 1] = values[0]
        rewrite(path, "/action", action)
        return path

    write.__name__ = f"with_{values.dtype}"
    return write


def mismatched_lengths(path: Path) -> Path:
    action, _ = synthetic_trajectory(19, 3, BAD_SEED)
    return write_bad(path, action=action)


def mismatched_frame_count(path: Path) -> Path:
    return write_bad(path, frames={"cam_high": synthetic_frames(18, BAD_SEED)})


def undecodable_jpeg(path: Path) -> Path:
    write_bad(path)
    with h5py.File(path, "r") as h5:
        frames = list(h5["/observations/images/cam_high"][()])
    frames[7] = frames[7][: len(frames[7]) // 2]  # a truncated JPEG, as an interrupted recorder leaves it
    rewrite(path, "/observations/images/cam_high", np.array(frames))
    return path


def bogus_huffman_table(jpeg: bytes) -> bytes:
    """A JPEG whose markers and header are sound but whose Huffman table cannot be decoded."""
    damaged = bytearray(jpeg)
    table = damaged.index(b"\xff\xc4")
    damaged[table + 5 : table + 21] = bytes([255] * 16)  # code counts summing far beyond 256
    return bytes(damaged)


def undecodable_middle_frame(path: Path) -> Path:
    """Frame 10 of 20 (the middle one, which validate_frames: sample decodes) fails only when decoded."""
    write_bad(path)
    with h5py.File(path, "r") as h5:
        frames = list(h5["/observations/images/cam_high"][()])
    frames[10] = bogus_huffman_table(frames[10].rstrip(b"\0"))
    rewrite(path, "/observations/images/cam_high", np.array(frames))
    return path


def soft_link_cycle(path: Path) -> Path:
    def cycle(h5: h5py.File, key: str) -> None:
        h5[key] = h5py.SoftLink("/loop")
        h5["/loop"] = h5py.SoftLink(key)

    replace_object(write_bad(path), "/action", cycle)
    return path


def dangling_soft_link(path: Path) -> Path:
    link = h5py.SoftLink("/recordings/cam_high")
    replace_object(write_bad(path), "/observations/images/cam_high", lambda h5, key: h5.__setitem__(key, link))
    return path


def action_as_group(path: Path) -> Path:
    replace_object(write_bad(path), "/action", lambda h5, key: h5.create_group(key))
    return path


def damaged_chunk(path: Path) -> Path:
    """The action compressed, with its one chunk's bytes overwritten: HDF5 opens the file but cannot read it."""
    write_bad(path)
    with h5py.File(path, "a") as h5:
        action = h5["/action"][()]
        del h5["/action"]
        h5.create_dataset("action", data=action, chunks=action.shape, compression="gzip")
        chunk = h5["/action"].id.get_chunk_info(0)
    with path.open("r+b") as file:
        file.seek(chunk.byte_offset)
        file.write(b"\xff" * chunk.size)
    return path


def not_hdf5(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a CSV export, not an HDF5 file\n")
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def truncated_file(path: Path) -> Path:
    write_bad(path)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def duplicate(path: Path) -> Path:
    """A copy of good_000; named after it so that it sorts after the original, which is kept."""
    return Path(shutil.copy(path.parent / "good_000.hdf5", path.parent / "good_000_copy.hdf5"))


def too_short(path: Path) -> Path:
    return write_synthetic_episode(path, n_steps=8, seed=BAD_SEED)


def zero_steps(path: Path) -> Path:
    empty = np.zeros((0, 3), np.float32)
    return write_bad(path, action=empty, qpos=empty, frames={"cam_high": []})


def never_moves(path: Path) -> Path:
    still = np.tile(np.float32([0.1, 0.2, 1.0]), (20, 1))
    still[10] += 0.0005  # sensor noise below data.moving_threshold
    return write_bad(path, qpos=still)


def wrong_state_dim(path: Path) -> Path:
    return write_synthetic_episode(path, n_cols=4, seed=BAD_SEED)


def text_action(path: Path) -> Path:
    write_bad(path)
    rewrite(path, "/action", np.full((20, 3), b"x"))
    return path


def float_pixel_frames(path: Path) -> Path:
    write_bad(path)
    rewrite(path, "/observations/images/cam_high", np.stack(synthetic_frames(20, BAD_SEED)).astype(np.float32) / 255)
    return path


def missing_camera(path: Path) -> Path:
    return write_synthetic_episode(path, cameras=("cam_low",), seed=BAD_SEED)


def missing_instruction(path: Path) -> Path:
    return write_synthetic_episode(path.parent / "other_task" / path.name, seed=BAD_SEED)


def frame_size_changes(path: Path) -> Path:
    frames = synthetic_frames(20, BAD_SEED)
    frames[12] = np.zeros((24, 24, 3), np.uint8)
    return write_bad(path, frames={"cam_high": frames})


def outside_file(path: Path) -> Path:
    """A file with a valid action array next to (not inside) the demo folder."""
    outside = path.parent.parent / "elsewhere" / f"{path.stem}_source.h5"
    outside.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(outside, "w") as h5:
        h5["action"] = synthetic_trajectory(20, 3, BAD_SEED)[0]
    return outside


def external_link(path: Path, target: Path | None = None) -> Path:
    """The action is an HDF5 external link to another file (outside the demo folder by default)."""
    target = target or outside_file(path)
    write_bad(path)
    with h5py.File(path, "a") as h5:
        del h5["/action"]
        h5["/action"] = h5py.ExternalLink(os.path.relpath(target, path.parent), "action")
    return path


def external_storage(path: Path) -> Path:
    """The action's raw bytes live in a file outside the demo folder (HDF5 external storage)."""
    action = synthetic_trajectory(20, 3, BAD_SEED)[0].astype("<f4")
    raw = path.parent.parent / "elsewhere" / f"{path.stem}_action.raw"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(action.tobytes())
    write_bad(path)
    with h5py.File(path, "a") as h5:
        del h5["/action"]
        h5.create_dataset("action", shape=action.shape, dtype="<f4", external=[(str(raw), 0, action.nbytes)])
    return path


def float64_beyond_float32(path: Path) -> Path:
    action = synthetic_trajectory(20, 3, BAD_SEED)[0].astype(np.float64)
    action[5, 1] = 1e300
    write_bad(path)
    rewrite(path, "/action", action)
    return path


def virtual_dataset(path: Path) -> Path:
    """The action is a virtual dataset whose source is a file outside the demo folder."""
    source = outside_file(path)
    write_bad(path)
    layout = h5py.VirtualLayout(shape=(20, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "action", shape=(20, 3))
    with h5py.File(path, "a") as h5:
        del h5["/action"]
        h5.create_virtual_dataset("action", layout)
    return path


CASES = [
    (not_hdf5, "not_hdf5", "no HDF5 signature"),
    (truncated_file, "truncated_file", "cut short"),
    (empty_file, "empty_file", "0 bytes"),
    (without("/action"), "missing_dataset", "no dataset '/action'"),
    (without("/observations/qpos"), "missing_dataset", "'/observations/qpos'"),
    (without("/observations/images"), "missing_dataset", "data.image_group"),
    (soft_link_cycle, "broken_link", "'/action' is reached through soft links that form a cycle"),
    (dangling_soft_link, "broken_link", "soft link to '/recordings/cam_high', which does not exist"),
    (action_as_group, "missing_dataset", "'/action' is a group, not a dataset"),
    (missing_camera, "missing_camera", "cam_high not in '/observations/images' (it holds cam_low)"),
    (mismatched_lengths, "length_mismatch", "'/action': 19"),
    (mismatched_frame_count, "length_mismatch", "camera cam_high': 18"),
    (wrong_state_dim, "wrong_state_dim", "(20, 4)"),
    (text_action, "bad_dtype", "'/action' has dtype"),
    (float_pixel_frames, "bad_dtype", "float32 and shape (20, 16, 16, 3); expected one JPEG per step"),
    (with_integers(np.array([2**32 - 1], np.uint32)), "integer_overflow", "holds 4294967295 at step 5 column 1"),
    (with_integers(np.array([2**40], np.int64)), "integer_overflow", "'/action' (int64) holds 1099511627776"),
    (with_value(np.nan), "nan_values", "first at step 5 column 1 (right_eef_pos_y)"),
    (with_value(np.inf), "inf_values", "first at step 5 column 1"),
    (float64_beyond_float32, "inf_values", "'/action' (float64) holds 1e+300 at step 5 column 1, beyond the +-3.4e+38"),
    (with_value(1e30), "implausible_values", "'/action' holds 1e+30 at step 5 column 1 (right_eef_pos_y)"),
    (zero_steps, "zero_steps", "0 steps"),
    (too_short, "too_short", "8 steps"),
    (never_moves, "never_moves", "data.moving_threshold=0.001"),
    (undecodable_jpeg, "undecodable_jpeg", "camera 'cam_high' step 7 is cut short"),
    (undecodable_middle_frame, "undecodable_jpeg", "camera 'cam_high' step 10 does not decode"),
    (frame_size_changes, "frame_size_changes", "step 12 is 24x24 but step 0 is 16x16"),
    (duplicate, "duplicate", "good_000.hdf5"),
    (missing_instruction, "missing_instruction", "other_task/instruction.json"),
    (external_link, "external_link", "outside the demo folder"),
    (virtual_dataset, "virtual_dataset", "outside the demo folder"),
    (external_storage, "external_storage", "outside the demo folder"),
    (damaged_chunk, "unreadable", "checking it failed (OSError: Can't synchronously read data"),
]
CASE_IDS = [case[0].__name__ for case in CASES]


def test_every_documented_reason_has_a_case() -> None:
    assert documented_reasons() == {reason for _, reason, _ in CASES}


@pytest.mark.parametrize(("write_broken", "reason", "detail"), CASES, ids=CASE_IDS)
def test_broken_file_is_rejected_and_good_ones_kept(
    demo_dir: Path, good_demos, data_cfg: dict, write_broken, reason: str, detail: str
) -> None:
    good = good_demos(2)
    broken = write_broken(demo_dir / "bad.hdf5").resolve()

    validated, report = run_validation(demo_dir, data_cfg)

    rows = validated.set_index("path")
    assert rows.loc[str(broken), "reason"] == reason and not rows.loc[str(broken), "valid"]
    assert all(rows.loc[str(path.resolve()), "valid"] for path in good)
    assert report["n_files"] == 3 and report["n_valid"] == 2 and report["rejected_by_reason"] == {reason: 1}
    (rejection,) = report["rejected"]
    assert rejection["reason"] == reason and detail in rejection["detail"]


def test_a_folder_with_every_kind_of_bad_file(demo_dir: Path, good_demos, data_cfg: dict, capsys) -> None:
    """One folder as a real one looks: every bad kind next to good episodes, each named with its reason."""
    good = good_demos(3)
    expected = {write(demo_dir / f"{name}.hdf5").resolve(): reason for (write, reason, _), name in zip(CASES, CASE_IDS)}

    validated, report = run_validation(demo_dir, data_cfg)

    assert {Path(r["path"]): r["reason"] for r in report["rejected"]} == expected
    assert sorted(validated.loc[validated["valid"], "path"]) == sorted(str(path.resolve()) for path in good)
    assert report["n_files"] == len(CASES) + 3 and report["n_valid"] == 3
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"validated {len(CASES) + 3} files: 3 accepted, {len(CASES)} rejected (")
    assert "missing_dataset: 4" in summary and "integer_overflow: 2" in summary and "zero_steps: 1" in summary


def test_external_data_inside_the_folder_or_allowed_is_read(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    good_demos(1)
    external_link(demo_dir / "inside.hdf5", target=outside_file(demo_dir / "sources" / "x.hdf5"))  # demos/elsewhere/
    external_link(demo_dir / "outside.hdf5")

    validated, _ = run_validation(demo_dir, data_cfg)
    reasons = validated.set_index("episode_id")["reason"].to_dict()
    assert reasons == {"good_000": "", "inside": "", "outside": "external_link"}
    validated, _ = run_validation(demo_dir, data_cfg | {"allow_external_files": True})
    # now read through its link: the same arrays as `inside`, so recognised as a copy of it
    reasons = validated.set_index("episode_id")["reason"].to_dict()
    assert reasons == {"good_000": "", "inside": "", "outside": "duplicate"}


def test_external_data_whose_file_is_missing_is_rejected_even_when_allowed(
    demo_dir: Path, good_demos, data_cfg: dict
) -> None:
    good_demos(2)
    virtual_dataset(demo_dir / "bad.hdf5")
    next((demo_dir.parent / "elsewhere").glob("*.h5")).unlink()  # HDF5 would read the fill value, 0
    _, report = run_validation(demo_dir, data_cfg | {"allow_external_files": True})
    (rejection,) = report["rejected"]
    assert rejection["reason"] == "virtual_dataset" and "which does not exist" in rejection["detail"]


def test_the_limits_are_inclusive(demo_dir: Path, data_cfg: dict) -> None:
    """data.min_episode_steps steps are enough; 2**24, the largest integer float32 holds with
    all below it, is accepted, and one more is integer_overflow."""
    write_synthetic_episode(demo_dir / "exactly_min.hdf5", n_steps=data_cfg["min_episode_steps"], seed=1)
    for name, value in (("largest_exact", 2**24), ("one_more", 2**24 + 1)):
        write_bad(demo_dir / f"{name}.hdf5")
        action = np.zeros((20, 3), np.int64)
        action[5, 1] = value
        rewrite(demo_dir / f"{name}.hdf5", "/action", action)
    validated, _ = run_validation(demo_dir, data_cfg | {"max_abs_value": 2**25})  # counts in the millions
    reasons = validated.set_index("episode_id")["reason"].to_dict()
    assert reasons == {"exactly_min": "", "largest_exact": "", "one_more": "integer_overflow"}


def test_max_abs_value_is_inclusive(demo_dir: Path, data_cfg: dict) -> None:
    limit = data_cfg["max_abs_value"]
    assert limit == 1e4
    for name, value in (("at_the_limit", -limit), ("beyond", np.nextafter(np.float32(limit), np.float32(np.inf)))):
        action, _ = synthetic_trajectory(20, 3, BAD_SEED)
        action[5, 1] = value
        write_synthetic_episode(demo_dir / f"{name}.hdf5", seed=len(name), action=action)
    validated, _ = run_validation(demo_dir, data_cfg)
    assert validated.set_index("episode_id")["reason"].to_dict() == {"at_the_limit": "", "beyond": "implausible_values"}


def test_integers_that_float32_holds_are_accepted(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    good_demos(1)
    path = write_bad(demo_dir / "encoder_ticks.hdf5")
    action, qpos = synthetic_trajectory(20, 3, BAD_SEED)
    rewrite(path, "/action", np.round(action * 1000).astype(np.int32))
    rewrite(path, "/observations/qpos", np.round(qpos * 1000).astype(np.int32))
    validated, _ = run_validation(demo_dir, data_cfg)
    assert validated["valid"].all()


def test_valid_rows_describe_the_episode(demo_dir: Path, good_demos, data_cfg: dict, capsys) -> None:
    good_demos(2)
    write_synthetic_episode(demo_dir / "nested" / "deeper" / "episode.hdf5", seed=5)
    (demo_dir / "nested" / "deeper" / "instruction.json").write_text(json.dumps({"instruction": ["nested task"]}))

    validated, report = run_validation(demo_dir, data_cfg)

    assert list(validated.columns) == [
        "path", "group", "episode_id", "task", "n_steps", "first_moving_step", "content_hash", "instruction", "masks",
        "valid", "reason"
    ]
    assert validated["task"].tolist() == ["demos", "demos", "nested/deeper"]
    assert validated["episode_id"].tolist() == ["good_000", "good_001", "nested/deeper/episode"]
    assert validated["n_steps"].tolist() == [20, 20, 20]
    assert validated["first_moving_step"].tolist() == [IDLE_STEPS] * 3
    assert validated["instruction"].tolist() == [INSTRUCTION, INSTRUCTION, "nested task"]
    assert validated["content_hash"].str.len().eq(64).all() and validated["content_hash"].is_unique
    assert validated["valid"].all() and (validated["reason"] == "").all() and (validated["group"] == "").all()
    assert all(Path(path).is_absolute() for path in validated["path"])
    assert report == {"n_files": 3, "n_episodes": 3, "n_valid": 3, "n_rejected": 0, "rejected_by_reason": {},
                      "frames_decoded": "sample", "rejected": []}
    assert "validated 3 files: 3 accepted, 0 rejected" in capsys.readouterr().out


def test_summary_counts_rejections_by_reason(demo_dir: Path, good_demos, data_cfg: dict, capsys) -> None:
    good_demos(1)
    not_hdf5(demo_dir / "a.hdf5")
    not_hdf5(demo_dir / "b.hdf5")
    too_short(demo_dir / "short" / "c.hdf5")
    run_validation(demo_dir, data_cfg)
    assert "validated 4 files: 1 accepted, 3 rejected (not_hdf5: 2, too_short: 1)" in capsys.readouterr().out


def test_instruction_from_attribute(demo_dir: Path, data_cfg: dict) -> None:
    write_synthetic_episode(demo_dir / "with.hdf5", seed=1, attrs={"instruction": "stack the blocks"})
    write_synthetic_episode(demo_dir / "without.hdf5", seed=2)
    attribute_cfg = data_cfg | {"instruction": {**data_cfg["instruction"], "source": "attribute"}}
    validated, report = run_validation(demo_dir, attribute_cfg)
    assert validated["instruction"][0] == "stack the blocks" and pd.isna(validated["instruction"][1])
    assert "attribute 'instruction' of the episode" in report["rejected"][0]["detail"]


def test_empty_folder_is_an_error(demo_dir: Path, data_cfg: dict) -> None:
    with pytest.raises(DemoValidationError, match=rf"no \*\.hdf5 files were found under {demo_dir}"):
        run_validation(demo_dir, data_cfg)


def test_missing_folder_is_an_error(tmp_path: Path, data_cfg: dict) -> None:
    with pytest.raises(DemoValidationError, match="no \\*\\.hdf5 files.*does not exist"):
        run_validation(tmp_path / "nowhere", data_cfg)


def test_no_valid_episode_is_an_error_with_counts(demo_dir: Path, data_cfg: dict) -> None:
    not_hdf5(demo_dir / "bad.hdf5")
    too_short(demo_dir / "short" / "bad.hdf5")
    with pytest.raises(DemoValidationError, match=r"no valid episode under .*all 2 episodes were rejected \(") as error:
        run_validation(demo_dir, data_cfg)
    assert "not_hdf5: 1" in str(error.value) and "too_short: 1" in str(error.value)
    assert not (demo_dir.parent / "data" / "validated.parquet").exists()


def test_strict_mode_makes_any_rejection_fatal(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    good_demos(2)
    with_value(np.nan)(demo_dir / "bad.hdf5")
    with pytest.raises(DemoValidationError, match=r"1 of 3 episodes .* data.strict is true(.|\n)*bad: nan_values"):
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


def test_a_crash_inside_a_check_rejects_only_that_file(demo_dir: Path, good_demos, data_cfg: dict) -> None:
    """Whatever a damaged file makes a library raise becomes its `unreadable` rejection, in plain words."""
    files = sorted([*good_demos(2), write_bad(demo_dir / "crashing.hdf5")])
    rows, rejections = validate_files(files, demo_dir, data_cfg, check=crashing_checks.raising_library)

    (rejection,) = rejections
    assert (Path(rejection["path"]).name, rejection["reason"]) == ("crashing.hdf5", "unreadable")
    assert sum(row["valid"] for row in rows) == 2
    assert rejection["detail"].startswith("checking it failed (RuntimeError: internal state an object of")
    assert "0x" not in rejection["detail"] and "\n" not in rejection["detail"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_that_kills_its_reader_is_rejected_and_validation_goes_on(demo_dir: Path, good_demos, data_cfg: dict,
                                                                         workers: int) -> None:
    """A segmentation fault inside HDF5 cannot be caught: the file's check runs in a worker
    process, and the file that kills it again when checked alone is the one rejected."""
    good = good_demos(5)
    files = sorted([*good, write_bad(demo_dir / "segfault_a.hdf5"), write_bad(demo_dir / "segfault_b.hdf5", n_steps=21)])
    rows, rejections = validate_files(files, demo_dir, data_cfg | {"validate_workers": workers},
                                      check=crashing_checks.segfaulting_library)

    assert [row["episode_id"] for row in rows] == [path.stem for path in files]  # every file, in order
    assert {r["episode_id"]: r["reason"] for r in rejections} == {"segfault_a": "unreadable", "segfault_b": "unreadable"}
    assert rejections[0]["detail"].startswith("checking it crashed the process reading it")
    assert all(row["valid"] for row in rows if row["episode_id"].startswith("good_"))


def test_sample_decodes_first_middle_and_last_frames_and_all_decodes_every_frame(
    demo_dir: Path, data_cfg: dict
) -> None:
    path = write_bad(demo_dir / "episode.hdf5")
    with h5py.File(path, "r") as h5:
        frames = list(h5["/observations/images/cam_high"][()])
    frames[7] = bogus_huffman_table(frames[7].rstrip(b"\0"))  # sound markers and header, not decodable
    rewrite(path, "/observations/images/cam_high", np.array(frames))
    write_synthetic_episode(demo_dir / "good.hdf5", seed=1)

    validated, report = run_validation(demo_dir, data_cfg)
    assert report["frames_decoded"] == "sample" and validated["valid"].all()
    _, report = run_validation(demo_dir, data_cfg | {"validate_frames": "all"})
    assert report["frames_decoded"] == "all"
    assert report["rejected"][0]["detail"].startswith("camera 'cam_high' step 7 does not decode")
