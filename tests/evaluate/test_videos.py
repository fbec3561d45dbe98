"""Rollout videos: which episodes are filmed, side by side with the expert, as playable H.264."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np

from rdtflow.data.frames import encode_jpeg
from rdtflow.evaluate.videos import VIDEO_BUDGET_BYTES, choose_episodes, side_by_side, write_video


def test_failures_are_filmed_first_then_successes_in_episode_order():
    outcomes = [{"success": s} for s in (True, False, True, False, True)]
    assert choose_episodes(outcomes, 3) == [1, 3, 0]
    assert choose_episodes(outcomes, 10) == [1, 3, 0, 2, 4]


def test_side_by_side_holds_the_shorter_recording_and_pads_to_whole_blocks():
    policy = [encode_jpeg(np.full((30, 40, 3), 0, np.uint8)) for _ in range(3)]
    expert = [encode_jpeg(np.full((30, 40, 3), 200, np.uint8)) for _ in range(5)]
    frames = side_by_side(policy, expert)
    assert frames.shape == (5, 32, 96, 3)  # 30 x (40 + 4 + 40) padded to multiples of 16
    assert frames[4, 10, 10].max() < 30 and frames[4, 10, 60].min() > 170  # last policy frame held, expert right


def test_a_video_is_h264_and_within_the_budget(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(400, 128, 336, 3), dtype=np.uint8)  # 400 steps of an ALOHA-sized pair
    frames[:, :, :] = frames[:1]  # a mostly still scene, as rollouts are
    frames[:, 40:60, :, 0] = np.arange(400)[:, None, None] % 255
    path = tmp_path / "rollout.mp4"
    write_video(path, frames, fps=50)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "yuv420p" in probe.stderr and "336x128" in probe.stderr
    assert path.stat().st_size < VIDEO_BUDGET_BYTES
