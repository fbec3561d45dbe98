"""`rdtflow.load_policy(checkpoint).predict(frames, qpos, instruction)`: the policy evaluation runs, for a robot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rdtflow
from rdtflow.errors import RdtflowError
from rdtflow.evaluate.inference import load_diffusion_policy, policy_device
from rdtflow.evaluate.policies import Observations
from rdtflow.sim.pick_place import INSTRUCTION
from rdtflow.train.hardware import load_profile
from rdtflow.train.launch import eval_job_resources


def test_predict_is_what_evaluation_computes(one_process_checkpoint):
    run = one_process_checkpoint.parents[1]
    frame = np.random.default_rng(0).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    qpos = np.array([0.3, 0.6, 1.0], dtype=np.float32)

    chunk = rdtflow.load_policy(one_process_checkpoint).predict({"cam_high": frame}, qpos, INSTRUCTION)

    config = json.loads((one_process_checkpoint / "run_config.json").read_text())["config"]
    evaluation, stats = load_diffusion_policy(one_process_checkpoint, run / "encoders" / "vision",
                                              run / "lang" / "embeddings.safetensors",
                                              config["data"]["control_frequency"], 0, config["hardware"])
    expected = evaluation(Observations(qpos=qpos[None], frames=torch.from_numpy(frame[None, None]),
                                       frames_valid=torch.tensor([[True]]), instructions=[INSTRUCTION],
                                       steps=np.zeros(1, dtype=int)))[0]
    np.testing.assert_array_equal(chunk, expected)
    assert chunk.shape == (4, 3) and np.isfinite(chunk).all()
    assert stats["state_names"] == ["right_eef_pos_x", "right_eef_pos_y", "right_gripper_open"]


def test_a_history_of_frames_and_an_unseen_instruction(one_process_checkpoint):
    policy = rdtflow.load_policy(one_process_checkpoint)
    frames = np.random.default_rng(1).integers(0, 255, size=(1, 32, 32, 3), dtype=np.uint8)  # (T, H, W, 3), T = 1
    chunk = policy.predict({"cam_high": frames}, np.zeros(3, dtype=np.float32), "put the block somewhere else")
    assert chunk.shape == (4, 3) and np.isfinite(chunk).all()
    assert "put the block somewhere else" in policy.diffusion.inputs.language  # encoded with the run's text encoder


@pytest.mark.parametrize(("frames", "message"), [
    ({"cam_left_wrist": np.zeros((32, 32, 3), np.uint8)}, "frames lacks camera 'cam_high'"),
    ({"cam_high": np.zeros((2, 32, 32, 3), np.uint8)}, r"has shape \(2, 32, 32, 3\); give .* 1 <= T <= 1"),
])
def test_wrong_frames_are_explained(one_process_checkpoint, frames, message):
    with pytest.raises(ValueError, match=message):
        rdtflow.load_policy(one_process_checkpoint).predict(frames, np.zeros(3, dtype=np.float32), INSTRUCTION)


def test_a_folder_that_is_no_checkpoint_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no run_config.json: give the checkpoint folder of an rdtflow run"):
        rdtflow.load_policy(tmp_path)


def test_evaluation_asks_for_one_gpu_where_the_profile_has_gpus():
    assert eval_job_resources(load_profile("gpu60-80g-x8")) == {"gres": "gpu:1", "tasks_per_gpu": 0, "mem_mb": 32768}
    assert eval_job_resources(load_profile("cpu")) == {}
    assert policy_device(load_profile("cpu")).type == "cpu"


def test_a_gpu_profile_where_no_gpu_is_visible_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RdtflowError, match=r"the hardware profile has GPUs \(device: gpu\) but this process sees none"):
        policy_device(load_profile("gpu24g-x1"))
