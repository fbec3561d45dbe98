"""Validation throughput against a plain h5py read of the same files, side by side in one run.

Writes agilex-layout episodes at the size researchers record (default: 1000 steps, three
480x640 JPEG cameras, 14 joints), then times, on the same files:
1. a raw h5py read of everything validation reads (action, qpos, every frame's bytes), in
   one process;
2. the validate stage with `data.validate_frames: sample` (the default) in one worker
   process, and in `data.validate_workers: auto` (the machine's cores), and on request
   `validate_frames: all`;
3. the split and manifest stages on validation's output, and on a 6000-row validated table
   whose episodes hold 1000-step trajectories (those stages read no frames, so this part of
   the 6000-episode figure is measured, not extrapolated).
It prints files/s and MB/s of each and validation's time as a ratio to the raw read, then the
time a 6000-episode dataset takes: validation extrapolated at the measured per-file rate
(6000 such episodes are about 1.1 TiB, more than the disk here holds; each file's check is
independent of the others, so the time is linear in the count), split and manifest measured.

Frames come from a pool of distinct encoded images per camera, so writing the episodes costs
disk bandwidth, not JPEG encoding. The files were just written, so the reads come from the
page cache for both the raw read and validation: the ratio is fair, and a cold disk or a
network file system adds its own bandwidth limit to both.

    python benchmarks/validate_throughput.py                      # 40 episodes, about 8 GB
    python benchmarks/validate_throughput.py --episodes 4 --steps 200 --height 48 --width 64   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from rdtflow.data.frames import encode_jpeg, padded_byte_strings
from rdtflow.data.manifest import build_manifest
from rdtflow.data.split import split_episodes
from rdtflow.data.validate import VALIDATED_COLUMNS, validate_demos
from rdtflow.machine import cpu_threads

CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
DATASET_EPISODES = 6000


def frame_pool(count: int, height: int, width: int, rng: np.random.Generator) -> list[bytes]:
    """Distinct JPEG frames with a camera image's texture: smooth shading plus sensor noise."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = []
    for _ in range(count):
        base = rng.uniform(40, 200, 3) + 40 * np.sin(rows[..., None] / rng.uniform(20, 80) + cols[..., None] / 50)
        pixels = np.clip(base + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
        frames.append(encode_jpeg(pixels))
    return frames


def write_dataset(folder: Path, episodes: int, steps: int, pools: dict[str, list[bytes]], rng: np.random.Generator) -> int:
    """Write the episodes and their instruction file; returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "expanded_instruction_gpt-4-turbo.json").write_text(json.dumps({"instruction": "fold the towel"}))  # agilex
    for index in range(episodes):
        qpos = np.cumsum(rng.normal(0, 0.01, (steps, 14)), axis=0).astype(np.float32)
        with h5py.File(folder / f"episode_{index}.hdf5", "w") as h5:
            h5["action"] = np.roll(qpos, -1, axis=0)
            h5["observations/qpos"] = qpos
            for camera, pool in pools.items():
                order = (np.arange(steps) + 7 * index) % len(pool)
                h5[f"observations/images/{camera}"] = padded_byte_strings([pool[i] for i in order])
    return sum(path.stat().st_size for path in folder.glob("*.hdf5"))


def raw_read(files: list[Path]) -> float:
    """Seconds to read, with h5py alone, every array and frame validation reads."""
    started = time.perf_counter()
    for path in files:
        with h5py.File(path, "r") as h5:
            h5["action"][()], h5["observations/qpos"][()]
            for camera in CAMERAS:
                h5[f"observations/images/{camera}"][()]
    return time.perf_counter() - started


def data_config(validate_frames: str, workers: int | str = "auto") -> dict:
    """The agilex preset's data section, as a run resolves it."""
    from rdtflow.config import validate_config

    data = {"preset": "agilex", "validate_frames": validate_frames, "validate_workers": workers}
    return validate_config({"run": "bench", "data": data}, partial=True)["data"]


def index_at_scale(folder: Path, episodes: int, steps: int, rng: np.random.Generator) -> float:
    """Seconds of split + manifest over ``episodes`` trajectory-only episodes, from a validated
    table as validation writes it (these stages read each episode's action and qpos only)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(episodes):
        path = folder / f"episode_{index}.hdf5"
        qpos = np.cumsum(rng.normal(0, 0.01, (steps, 14)), axis=0).astype(np.float32)
        with h5py.File(path, "w") as h5:
            h5["action"] = np.roll(qpos, -1, axis=0)
            h5["observations/qpos"] = qpos
        rows.append({"path": str(path), "group": "", "episode_id": path.stem, "task": folder.name, "n_steps": steps,
                     "first_moving_step": 1, "content_hash": f"{index:064x}", "instruction": "fold the towel",
                     "masks": "", "valid": True, "reason": ""})
    pd.DataFrame(rows, columns=VALIDATED_COLUMNS).astype({"n_steps": "Int64", "first_moving_step": "Int64"}).to_parquet(
        folder / "validated.parquet", index=False)
    started = time.perf_counter()
    split_episodes(folder / "validated.parquet", {"held_out": 0.1, "seed": 0}, folder / "index.parquet")
    build_manifest(folder / "index.parquet", data_config("sample"), folder / "manifest.parquet", folder / "stats.json")
    return time.perf_counter() - started


def rate_line(name: str, seconds: float, n_files: int, n_bytes: int, raw_seconds: float) -> str:
    return (f"{name:<28} {seconds:8.1f} s  {n_files / seconds:7.2f} files/s  {n_bytes / 2**20 / seconds:8.1f} MB/s  "
            f"{seconds / raw_seconds:5.2f}x the raw read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--pool", type=int, default=48, help="distinct frames per camera")
    parser.add_argument("--all", action="store_true", help="also time validate_frames: all (decodes every frame)")
    parser.add_argument("--out", type=Path, help="folder for the episodes (default: a temporary one, removed after)")
    parser.add_argument("--index-episodes", type=int, default=DATASET_EPISODES,
                        help="episodes of the measured split + manifest at scale (0: skip)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="rdtflow-validate-"))
    try:
        rng = np.random.default_rng(0)
        pools = {camera: frame_pool(args.pool, args.height, args.width, rng) for camera in CAMERAS}
        frame_kb = np.mean([len(frame) for pool in pools.values() for frame in pool]) / 1000
        started = time.perf_counter()
        n_bytes = write_dataset(out / "demos", args.episodes, args.steps, pools, rng)
        files = sorted((out / "demos").glob("*.hdf5"))
        print(f"wrote {len(files)} episodes of {args.steps} steps, 3 cameras {args.width}x{args.height} "
              f"(JPEG {frame_kb:.0f} kB a frame): {n_bytes / 2**30:.2f} GiB in {time.perf_counter() - started:.0f} s")
        raw_seconds = raw_read(files)
        print(rate_line("raw h5py read", raw_seconds, len(files), n_bytes, raw_seconds))
        timings = {}
        runs = [("sample", 1), ("sample", "auto"), *((("all", "auto"),) if args.all else ())]
        for mode, workers in runs:
            name = f"{mode}_{workers}_workers" if workers == 1 else f"{mode}_{cpu_threads('auto')}_workers"
            started = time.perf_counter()
            validate_demos(out / "demos", data_config(mode, workers), out / name / "validated.parquet",
                           out / name / "validation.json")
            timings[name] = time.perf_counter() - started
            print(rate_line(f"validate ({name.replace('_', ' ')})", timings[name], len(files), n_bytes, raw_seconds))
        parallel = f"sample_{cpu_threads('auto')}_workers"
        started = time.perf_counter()
        split_episodes(out / parallel / "validated.parquet", {"held_out": 0.1, "seed": 0}, out / "index.parquet")
        build_manifest(out / "index.parquet", data_config("sample"), out / "manifest.parquet", out / "stats.json")
        index_seconds = time.perf_counter() - started
        print(f"{'split + manifest':<28} {index_seconds:8.1f} s")
        figures = {"files": len(files), "bytes": n_bytes, "raw_read_s": round(raw_seconds, 2),
                   **{f"validate_{name}_s": round(seconds, 2) for name, seconds in timings.items()},
                   "split_manifest_s": round(index_seconds, 2)}
        if args.index_episodes:
            scale_seconds = index_at_scale(out / "scale", args.index_episodes, args.steps, rng)
            figures[f"split_manifest_{args.index_episodes}_episodes_s"] = round(scale_seconds, 1)
            validate_seconds = timings[parallel] / len(files) * DATASET_EPISODES
            print(f"split + manifest, {args.index_episodes} episodes x {args.steps} steps: {scale_seconds:.1f} s (measured)")
            print(f"\n{DATASET_EPISODES} such episodes ({DATASET_EPISODES * args.steps / 1e6:.1f}M steps, "
                  f"{n_bytes / len(files) * DATASET_EPISODES / 2**40:.2f} TiB) on {cpu_threads('auto')} cores: validate "
                  f"{validate_seconds / 60:.0f} min (extrapolated at {timings[parallel] / len(files):.2f} s a file), "
                  f"split + manifest {scale_seconds / 60:.1f} min (measured at {args.index_episodes} episodes)")
        print(yaml.safe_dump(figures, sort_keys=False))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
