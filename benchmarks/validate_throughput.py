"""Validation throughput against a plain h5py read of the same files, side by side in one run.

Writes agilex-layout episodes at the size researchers record (default: 1000 steps, three
480x640 JPEG cameras, 14 joints), then times, on the same files:
1. a raw h5py read of everything validation reads (action, qpos, every frame's bytes);
2. the validate stage with `data.validate_frames: sample` (the default) and, on request,
   `all`;
3. the split and manifest stages on validation's output.
It prints files/s and MB/s of each and validation's time as a ratio to the raw read, then the
time a 6000-episode dataset would take at the measured per-file rate (an extrapolation: 6000
such episodes are about 0.7 TB, more than the disk here holds).

Frames come from a pool of distinct encoded images per camera, so writing the episodes costs
disk bandwidth, not JPEG encoding. The files were just written, so the reads come from the
page cache for both the raw read and validation: the ratio is fair, and a cold disk or a
network file system adds its own bandwidth limit to both.

    python benchmarks/validate_throughput.py                      # 40 episodes, about 5 GB
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
import yaml

from rdtflow.data.frames import encode_jpeg, padded_byte_strings
from rdtflow.data.manifest import build_manifest
from rdtflow.data.split import split_episodes
from rdtflow.data.validate import validate_demos

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


def data_config(validate_frames: str) -> dict:
    """The agilex preset's data section, as a run resolves it."""
    from rdtflow.config import validate_config

    config = validate_config({"run": "bench", "data": {"preset": "agilex", "validate_frames": validate_frames}}, partial=True)
    return config["data"]


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
        for mode in ("sample", "all") if args.all else ("sample",):
            started = time.perf_counter()
            validate_demos(out / "demos", data_config(mode), out / mode / "validated.parquet", out / mode / "validation.json")
            timings[mode] = time.perf_counter() - started
            print(rate_line(f"validate ({mode})", timings[mode], len(files), n_bytes, raw_seconds))
        started = time.perf_counter()
        split_episodes(out / "sample" / "validated.parquet", {"held_out": 0.1, "seed": 0}, out / "index.parquet")
        build_manifest(out / "index.parquet", data_config("sample"), out / "manifest.parquet", out / "stats.json")
        index_seconds = time.perf_counter() - started
        print(f"{'split + manifest':<28} {index_seconds:8.1f} s")
        per_file = (timings["sample"] + index_seconds) / len(files)
        print(f"\n{DATASET_EPISODES} such episodes ({DATASET_EPISODES * args.steps / 1e6:.1f}M steps, "
              f"{n_bytes / len(files) * DATASET_EPISODES / 2**40:.2f} TiB), extrapolated at {per_file:.2f} s a file: "
              f"validate + split + manifest about {per_file * DATASET_EPISODES / 3600:.1f} h")
        print(yaml.safe_dump({"files": len(files), "bytes": n_bytes, "raw_read_s": round(raw_seconds, 2),
                              **{f"validate_{mode}_s": round(seconds, 2) for mode, seconds in timings.items()},
                              "split_manifest_s": round(index_seconds, 2)}, sort_keys=False))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
