"""Training samples from the full-step manifest, in an order that is a pure function of the seed.

Sample number k (counted over the whole run) is row `permutation(seed, epoch)[k % n]` of the
manifest, with epoch = k // n, and its diffusion noise and timestep come from a generator
seeded with (seed, k). So which samples an optimizer step sees, and the noise they get, do
not depend on the number of processes, the micro-batch or accumulation, or on where a run
was interrupted and resumed.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.data.episode import read_trajectory
from rdtflow.data.frames import CameraFrames
from rdtflow.model.image_features import ImageFeatureTable


class SampleOrder:
    """Global sample number -> manifest row, reshuffled every epoch."""

    def __init__(self, n_rows: int, seed: int) -> None:
        self.n_rows = n_rows
        self.seed = seed

    @lru_cache(maxsize=2)
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)

    def row(self, sample_number: int) -> int:
        epoch, offset = divmod(sample_number, self.n_rows)
        return int(self._permutation(epoch)[offset])

    def epoch(self, sample_number: int) -> float:
        return sample_number / self.n_rows


class EpisodeFrames:
    """Reads single frames from episode files, keeping a bounded set of files open.

    Trajectories are small and cached whole; frames are read one at a time so memory stays
    flat however many thousand episodes the manifest spans.
    """

    def __init__(self, data_cfg: dict, max_open_files: int = 32) -> None:
        self.data_cfg = data_cfg
        self.max_open_files = max_open_files
        self._files: OrderedDict[str, h5py.File] = OrderedDict()
        self._trajectories: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def trajectory(self, path: str, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(action, qpos, each qpos column's std over the episode) of an episode.

        The std is what RDT's state noise is scaled by (train.augment.recipe upstream).
        """
        if (path, group) not in self._trajectories:
            action, qpos = read_trajectory(Path(path), self.data_cfg, group)
            self._trajectories[path, group] = action, qpos, qpos.std(axis=0)
        return self._trajectories[path, group]

    def _file(self, path: str) -> h5py.File:
        if path in self._files:
            self._files.move_to_end(path)
        else:
            self._files[path] = h5py.File(path, "r")
            if len(self._files) > self.max_open_files:
                self._files.popitem(last=False)[1].close()
        return self._files[path]

    def frame(self, path: str, group: str, camera: str, step: int) -> np.ndarray:
        node = self._file(path)[group] if group else self._file(path)
        dataset = node[f"{self.data_cfg['image_group'].rstrip('/')}/{camera}"]
        return CameraFrames(dataset).pixels(step)


class StepSamples:
    """Builds one training/evaluation sample: state, action chunk, image slots, instruction."""

    def __init__(
        self,
        manifest: pd.DataFrame,
        data_cfg: dict,
        pred_horizon: int,
        img_history: int,
        image_features: Path | None = None,
    ) -> None:
        # Plain tuples: a pandas row lookup per sample would cost a fifth of a CPU training step.
        self.rows = list(manifest[["episode_id", "path", "group", "step", "instruction"]].itertuples(index=False, name="Row"))
        self.frames = EpisodeFrames(data_cfg)
        self.cameras = camera_slots(data_cfg["cameras"])  # None: a slot without a camera
        self.pred_horizon = pred_horizon
        self.img_history = img_history
        self.image_features_path = image_features
        self._image_features: ImageFeatureTable | None = None

    @property
    def image_features(self) -> ImageFeatureTable | None:
        """Opened lazily, so that each DataLoader worker maps the table itself."""
        if self.image_features_path is not None and self._image_features is None:
            self._image_features = ImageFeatureTable(self.image_features_path)
        return self._image_features

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, row_number: int) -> dict:
        row = self.rows[row_number]
        action, qpos, qpos_std = self.frames.trajectory(row.path, row.group)
        step = int(row.step)
        # Chunks running past the end repeat the last action: the robot holds its final pose.
        chunk_steps = np.minimum(np.arange(step, step + self.pred_horizon), len(action) - 1)
        # Slot order: frame-major, then camera, as RDT. Slots before the first step, and slots
        # without a camera, are invalid: they show the background image.
        slots = [(frame_step, camera) for frame_step in range(step - self.img_history + 1, step + 1) for camera in self.cameras]
        valid = [s >= 0 and camera is not None for s, camera in slots]
        sample = {"qpos": qpos[step], "qpos_std": qpos_std, "action": action[chunk_steps], "instruction": row.instruction}
        if self.image_features is not None:
            table = self.image_features
            tokens = [table.tokens(row.episode_id, camera, s) if ok else table.blank for (s, camera), ok in zip(slots, valid)]
            sample["image_tokens"] = torch.cat(tokens)  # (S * P, D), blank slots already encoded
        else:
            frames = [self.frames.frame(row.path, row.group, camera, max(s, 0)) if camera is not None else None
                      for s, camera in slots]
            placeholder = np.zeros_like(next(frame for frame in frames if frame is not None))  # masked out later
            sample["frames"] = np.stack([placeholder if frame is None else frame for frame in frames])
            sample["frames_valid"] = np.array(valid)
        return sample


def collate(samples: list[dict]) -> dict:
    batch = {
        "qpos": np.stack([s["qpos"] for s in samples]),
        "qpos_std": np.stack([s["qpos_std"] for s in samples]),
        "action": np.stack([s["action"] for s in samples]),
        "instruction": [s["instruction"] for s in samples],
    }
    if "image_tokens" in samples[0]:
        batch["image_tokens"] = torch.stack([s["image_tokens"] for s in samples]).float()
    else:
        batch["frames"] = torch.from_numpy(np.stack([s["frames"] for s in samples]))
        batch["frames_valid"] = torch.from_numpy(np.stack([s["frames_valid"] for s in samples]))
    return batch


def diffusion_draws(
    sample_numbers: range, seed: int, shape: tuple[int, int], num_train_timesteps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample noise (B, H, 128) and timestep (B,), each from its own seeded generator."""
    noises, timesteps = [], []
    for number in sample_numbers:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + number)
        timesteps.append(torch.randint(0, num_train_timesteps, (1,), generator=generator))
        noises.append(torch.randn(shape, generator=generator))
    return torch.stack(noises), torch.cat(timesteps)


class TrainingSamples(torch.utils.data.Dataset):
    """Map-style dataset indexed by global sample number, for a DataLoader with workers."""

    def __init__(self, samples: StepSamples, order: SampleOrder) -> None:
        self.samples = samples
        self.order = order

    def __len__(self) -> int:  # the DataLoader never iterates this; sample numbers come from the layout
        return len(self.samples)

    def __getitem__(self, sample_number: int) -> dict:
        return self.samples.sample(self.order.row(sample_number))
