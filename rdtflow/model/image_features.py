"""Precomputed vision-tower features of every training frame (model.precompute_image_features).

With a frozen tower and no image augmentation a frame's features never change, so computing
them once takes JPEG decoding and the tower out of every training step (measured on the
default: about a quarter of the CPU step time; RDT-1B on an H200: 2x throughput). The table
grows with frames x patches x width (729 x 1152 x 2 bytes = 1.6 MiB a frame for SigLIP-so400m),
so it suits small datasets; large ones keep the tower in the loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from rdtflow.data.episode import episode_cameras
from rdtflow.model.encoders import VisionEncoder

BLANK = "blank"
ENCODE_BATCH = 256


def feature_key(episode_id: str, camera: str) -> str:
    return f"{episode_id}|{camera}"


@torch.no_grad()
def encode_image_features(manifest_path: Path, data_cfg: dict, vision_dir: Path, out_path: Path) -> int:
    """Encode every frame of every training episode; returns the number of frames."""
    manifest = pd.read_parquet(manifest_path)
    episodes = manifest.drop_duplicates("episode_id")[["episode_id", "path", "group"]]
    vision = VisionEncoder.load(vision_dir)
    blank_frame = vision.mean_colour.expand(1, 8, 8, 3)
    table = {BLANK: vision.encode(blank_frame)[0].half()}
    for episode in tqdm(episodes.itertuples(), total=len(episodes), desc="encoding frames", unit="episode"):
        with episode_cameras(Path(episode.path), data_cfg, episode.group) as cameras:
            for camera, frames in cameras.items():
                batches = (range(start, min(start + ENCODE_BATCH, len(frames))) for start in range(0, len(frames), ENCODE_BATCH))
                tokens = [vision.encode(torch.from_numpy(np.stack([frames.pixels(step) for step in batch]))) for batch in batches]
                table[feature_key(episode.episode_id, camera)] = torch.cat(tokens).half().contiguous()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(table, str(out_path))
    size_mib = sum(t.numel() * 2 for t in table.values()) / 2**20
    print(f"encoded {sum(len(t) for k, t in table.items() if k != BLANK)} frames ({size_mib:.0f} MiB) into {out_path}")
    return len(table) - 1


class ImageFeatureTable:
    """Reads one frame's tokens at a time from the memory-mapped table."""

    def __init__(self, path: Path) -> None:
        self._file = safe_open(str(path), framework="pt")
        self.blank = self._file.get_tensor(BLANK)

    def tokens(self, episode_id: str, camera: str, step: int) -> torch.Tensor:
        """(P, D) float16 tokens of one frame."""
        return self._file.get_slice(feature_key(episode_id, camera))[step]
