"""Rollout videos: the policy's camera view beside the expert's recorded episode from the same state.

A success rate says how often; a reviewer also wants to see *how* a policy fails. For a few
held-out episodes per checkpoint (failures first) the evaluation writes one H.264 MP4 each
(imageio-ffmpeg's wheel ships ffmpeg), small enough to embed in the report: at the frame
sizes rdtflow's simulators render, a video stays under VIDEO_BUDGET_BYTES.
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np

from rdtflow.data.frames import decode_jpeg

VIDEO_BUDGET_BYTES = 1_000_000  # each video; the report embeds them
MACRO_BLOCK = 16  # H.264 codes 16x16 blocks: frames are padded to it rather than resized
SEPARATOR_PX = 4


def choose_episodes(outcomes: list[dict], count: int) -> list[int]:
    """Indices of `count` episodes to film: failures first, then successes, each in episode order."""
    failures = [index for index, outcome in enumerate(outcomes) if not outcome["success"]]
    successes = [index for index, outcome in enumerate(outcomes) if outcome["success"]]
    return (failures + successes)[:count]


def side_by_side(policy_jpegs: list[bytes], expert_jpegs: list[bytes]) -> np.ndarray:
    """(T, H, W, 3) frames: the policy's view left, the expert's right; the shorter one holds its last frame."""
    length = max(len(policy_jpegs), len(expert_jpegs))
    frames = []
    for step in range(length):
        left = decode_jpeg(policy_jpegs[min(step, len(policy_jpegs) - 1)])
        right = decode_jpeg(expert_jpegs[min(step, len(expert_jpegs) - 1)])
        gap = np.full((left.shape[0], SEPARATOR_PX, 3), 255, dtype=np.uint8)
        frames.append(np.concatenate([left, gap, right], axis=1))
    return _pad_to_blocks(np.stack(frames))


def _pad_to_blocks(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    pad_h, pad_w = -height % MACRO_BLOCK, -width % MACRO_BLOCK
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=255)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """An H.264 MP4 (yuv420p, which browsers play) of uint8 frames (T, H, W, 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=MACRO_BLOCK,
                                         output_params=["-crf", "28", "-movflags", "+faststart"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
