"""Running a trained checkpoint: in evaluation, and on a robot (`rdtflow.load_policy`).

Evaluation and a robot run the same object, so the policy a success rate was measured for is
the one that acts: the EMA weights when the run kept an EMA, the run's vision tower, its
normalisation statistics and its instruction embeddings, on the device and in the precision
the hardware profile trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rdtflow.data.cameras import camera_slots
from rdtflow.errors import MissingFile, RdtflowError
from rdtflow.evaluate.policies import DiffusionPolicy, Observations, slot_frames
from rdtflow.model.encoders import TextEncoder, VisionEncoder
from rdtflow.model.inputs import PolicyInputs
from rdtflow.model.language import load_language_table
from rdtflow.paths import CheckpointFile, RunPaths, encoder_dirs
from rdtflow.train.checkpoint import load_checkpoint_weights


def policy_device(hardware: dict) -> torch.device:
    """The GPU where the hardware profile has one (an error where this process sees none), else the CPU."""
    if hardware["device"] != "gpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RdtflowError(
            "the hardware profile has GPUs (device: gpu) but this process sees none (torch.cuda.is_available() is "
            "False): run the job where a GPU is (on Slurm its resources ask for one), or use a CPU profile"
        )
    return torch.device("cuda")


def load_diffusion_policy(checkpoint_dir: Path, vision_dir: Path, language_path: Path, control_frequency: float,
                          seed: int, hardware: dict) -> tuple[DiffusionPolicy, dict]:
    """(policy, normalisation stats) of a checkpoint, placed as the trainer placed it: the
    transformer in bf16 under param_dtype bf16, bf16 autocast under mixed_precision bf16."""
    device = policy_device(hardware)
    policy, stats = load_checkpoint_weights(checkpoint_dir)
    if device.type == "cuda" and hardware["param_dtype"] == "bf16":
        policy.model.to(torch.bfloat16)
    policy.to(device)
    vision = VisionEncoder.load(vision_dir)
    vision.tower.to(device)
    inputs = PolicyInputs.create(stats, load_language_table(language_path), vision, control_frequency)
    diffusion = DiffusionPolicy(policy, inputs, torch.Generator(device=device).manual_seed(seed), checkpoint_dir.name,
                                bf16_autocast=device.type == "cuda" and hardware["mixed_precision"] == "bf16")
    return diffusion, stats


class RobotPolicy:
    """A checkpoint that acts: `predict(frames, qpos, instruction)` -> action chunk (H, D) in the robot's units.

    - `frames`: camera name -> uint8 RGB images of each camera the run trained with
      (data.cameras), at the size the demonstrations recorded: the current image (H, W, 3),
      or the last model.img_history_size images, one per control step, oldest first
      (T, H, W, 3). Fewer than the history are padded as at the start of a training episode.
    - `qpos`: (D,) joint positions in the data's columns and units (data.state_names).
    - `instruction`: text; one the run did not see is encoded with the run's text encoder.

    Execute the first eval.execute_horizon actions of the chunk, then predict again.
    """

    def __init__(self, diffusion: DiffusionPolicy, slots: list[str | None], img_history: int, text_dir: Path,
                 max_lang_tokens: int) -> None:
        self.diffusion = diffusion
        self.slots = slots
        self.cameras = [camera for camera in slots if camera is not None]
        self.img_history = img_history
        self.text_dir, self.max_lang_tokens = text_dir, max_lang_tokens
        self.text_encoder: TextEncoder | None = None

    def predict(self, frames: dict[str, np.ndarray], qpos: np.ndarray, instruction: str) -> np.ndarray:
        history = {camera: self._history(frames, camera) for camera in self.cameras}
        lengths = {len(images) for images in history.values()}
        if len(lengths) != 1:
            raise ValueError(f"cameras give different numbers of history frames: { {c: len(h) for c, h in history.items()} }")
        present = lengths.pop()
        frames, valid = slot_frames([{camera: images[index:index + 1] for camera, images in history.items()}
                                     for index in range(present)], self.slots, self.img_history)
        self._embed(instruction)
        chunk = self.diffusion(Observations(
            qpos=np.asarray(qpos, dtype=np.float32)[None], frames=frames, frames_valid=valid,
            instructions=[instruction], steps=np.zeros(1, dtype=int)))
        return chunk[0]

    def _history(self, frames: dict[str, np.ndarray], camera: str) -> np.ndarray:
        """(T, H, W, 3) uint8, 1 <= T <= img_history, of one camera."""
        if camera not in frames:
            raise ValueError(f"frames lacks camera '{camera}'; this policy was trained with {self.cameras}")
        images = np.asarray(frames[camera], dtype=np.uint8)
        images = images[None] if images.ndim == 3 else images
        if images.ndim != 4 or images.shape[-1] != 3 or not 1 <= len(images) <= self.img_history:
            raise ValueError(f"frames['{camera}'] has shape {images.shape}; give (H, W, 3) or (T, H, W, 3) RGB with "
                             f"1 <= T <= {self.img_history} (model.img_history_size)")
        return images

    def _embed(self, instruction: str) -> None:
        language = self.diffusion.inputs.language
        if instruction not in language:
            if self.text_encoder is None:
                self.text_encoder = TextEncoder.load(self.text_dir, self.max_lang_tokens)
            language[instruction] = self.text_encoder.encode(instruction).float().cpu()


def _policy_files(checkpoint_dir: Path, config: dict, recorded: dict[str, str | None] | None) -> dict[str, Path | None]:
    """The encoder folders and instruction embeddings a checkpoint acts with. The training job
    recorded them relative to the workflow's folder, which is found from where the checkpoint is
    now (results_dir/run/train/checkpoint-STEP), so a moved workflow folder still works.
    Checkpoints written before that record kept them in their run folder."""
    run_root = checkpoint_dir.resolve().parents[1]
    if recorded is None:
        run = RunPaths(run_root)
        vision, text = encoder_dirs(config, run)
        return {"vision_dir": vision, "text_dir": text, "language_path": run.language}
    results = Path(config.get("results_dir", "results"), config["run"])
    workflow_dir = Path.cwd() if results.is_absolute() else run_root.parents[len(results.parts) - 1]
    return {name: None if path is None else workflow_dir / path for name, path in recorded.items()}


def load_policy(checkpoint_dir: str | Path, vision_dir: str | Path | None = None, text_dir: str | Path | None = None,
                seed: int = 0) -> RobotPolicy:
    """The policy of a checkpoint folder of an rdtflow run, ready to act (see RobotPolicy).

    The encoders and instruction embeddings are the run's: found from the run config the
    checkpoint stores, or given here when the run folder moved. It runs where the run's
    hardware profile trained (a GPU profile needs a GPU here).
    """
    checkpoint_dir = Path(checkpoint_dir)
    run_config_file = checkpoint_dir / CheckpointFile.RUN_CONFIG
    if not run_config_file.is_file():
        raise MissingFile(f"{checkpoint_dir} has no {CheckpointFile.RUN_CONFIG}: give the checkpoint folder of an rdtflow "
                          "run (results/RUN/train/checkpoint-STEP)")
    recorded = json.loads(run_config_file.read_text())
    config = recorded["config"]
    files = _policy_files(checkpoint_dir, config, recorded.get("policy_files"))
    vision = Path(vision_dir) if vision_dir else files["vision_dir"]
    text = Path(text_dir) if text_dir else files["text_dir"]
    diffusion, _ = load_diffusion_policy(checkpoint_dir, vision, files["language_path"],
                                         config["data"]["control_frequency"], seed, config["hardware"])
    return RobotPolicy(diffusion, camera_slots(config["data"]["cameras"]), config["model"]["img_history_size"], text,
                       config["encoders"]["max_lang_tokens"])
