"""rdtflow computes what upstream RDT computes from the same weights (tests/fixtures/README.md).

The golden checkpoint is loaded the way a user's fine-tune loads the published one: planned,
then built by the trainer's `model.pretrained` path, with a run config that describes its
architecture.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rdtflow.config import validate_config
from rdtflow.model.policy import RDTPolicy
from rdtflow.train.batches import loss_mask
from tests.helpers.plans import policy_for

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_rdt_golden"
INPUTS = load_file(str(GOLDEN / "inputs.safetensors"))
UPSTREAM = load_file(str(GOLDEN / "outputs.safetensors"))  # timm 1.0.3's norm, as upstream pins
TRUE_RMS = load_file(str(GOLDEN / "outputs_true_rms.safetensors"))
TOLERANCE = 1e-5  # fp32


def golden_run_config(tmp_path: Path, pretrained: Path, **model) -> dict:
    """A run whose model is the golden checkpoint's: 64 wide, 3 deep, 4 heads, horizon 16,
    64-d language tokens up to 24, 48-d image tokens, 2 frames x 3 cameras x 16 patches."""
    return validate_config({
        "run": "golden", "results_dir": str(tmp_path),
        "data": {"preset": "agilex"},
        "encoders": {"max_lang_tokens": 24,
                     # 32 px / patch 8 = 16 patches per image
                     "tiny_vision": {"image_size": 32, "hidden_size": 48, "num_attention_heads": 4, "patch_size": 8},
                     "tiny_text": {"d_model": 64}},
        "model": {"hidden_size": 64, "depth": 3, "num_heads": 4, "pred_horizon": 16, "img_history_size": 2,
                  "pretrained": str(pretrained), **model},
    })


def main_weights_only(tmp_path: Path) -> Path:
    """The golden checkpoint without its ema/, as the published rdt-1b comes: a run starts from
    a folder's EMA weights where it has them (rdtflow.model.weights.starting_weights)."""
    folder = tmp_path / "main_only"
    folder.mkdir(exist_ok=True)
    for name in ("config.json", "pytorch_model.bin"):
        shutil.copy(GOLDEN / "checkpoint" / name, folder / name)
    return folder


def load_golden(tmp_path: Path, folder: str | None = None, **model) -> RDTPolicy:
    """The policy model.pretrained builds from `folder` of the golden checkpoint (default: its main weights)."""
    source = GOLDEN / folder if folder else main_weights_only(tmp_path)
    return policy_for(golden_run_config(tmp_path, source, **model)).eval()


def transformer_output(policy: RDTPolicy) -> torch.Tensor:
    with torch.no_grad():
        return policy.model(INPUTS["x"], INPUTS["freq"], INPUTS["t"], INPUTS["lang_c"], INPUTS["lang_attn_mask"],
                            INPUTS["img_c"])


def conditions() -> dict[str, torch.Tensor]:
    return {
        "state": INPUTS["state_tokens"],
        "action_mask": INPUTS["action_mask"],
        "lang_tokens": INPUTS["lang_tokens"],
        "lang_mask": INPUTS["lang_attn_mask"],
        "img_tokens": INPUTS["img_tokens"],
        "control_frequency": INPUTS["ctrl_freqs"],
    }


def sampled_actions(policy: RDTPolicy, expected_noise: torch.Tensor) -> torch.Tensor:
    """predict_action with upstream's seed; its first draw must be upstream's sampling noise."""
    assert torch.equal(torch.randn(expected_noise.shape, generator=torch.Generator().manual_seed(1234)), expected_noise)
    return policy.predict_action(conditions(), generator=torch.Generator().manual_seed(1234))


def upstream_loss(policy: RDTPolicy, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss under train.loss upstream, with upstream's recorded noise and timesteps."""
    action = INPUTS["action_gt"]
    batch = {**conditions(), "action": action, "noise": outputs["loss_noise"], "timestep": outputs["loss_timesteps"],
             "loss_mask": loss_mask("upstream", INPUTS["action_mask"][0, 0].numpy()).expand(len(action), 1, -1)}
    with torch.no_grad():
        return policy.compute_loss(batch)


def max_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours - theirs).abs().max().item()


def test_upstream_checkpoint_reproduces_upstream_outputs(tmp_path):
    policy = load_golden(tmp_path)  # model.norm auto: upstream's config.json names no norm
    assert max_difference(transformer_output(policy), UPSTREAM["inner_main"]) < TOLERANCE
    assert max_difference(sampled_actions(policy, UPSTREAM["sample_noise"]), UPSTREAM["predict_action_main"]) < TOLERANCE
    assert max_difference(upstream_loss(policy, UPSTREAM), UPSTREAM["loss_main"][0]) < TOLERANCE


def test_upstream_ema_folder_loads_with_its_parents_config(tmp_path):
    assert not (GOLDEN / "checkpoint" / "ema" / "config.json").exists()
    policy = load_golden(tmp_path, "checkpoint/ema")
    assert max_difference(transformer_output(policy), UPSTREAM["inner_ema"]) < TOLERANCE


def test_a_checkpoint_folder_with_an_ema_starts_from_its_ema_weights(tmp_path):
    policy = load_golden(tmp_path, "checkpoint")
    assert max_difference(transformer_output(policy), UPSTREAM["inner_ema"]) < TOLERANCE
    assert max_difference(transformer_output(policy), UPSTREAM["inner_main"]) > 0.05


def test_true_rms_norm_reproduces_upstream_with_the_true_rms(tmp_path):
    policy = load_golden(tmp_path, norm="rms")
    assert max_difference(transformer_output(policy), TRUE_RMS["inner_main"]) < TOLERANCE
    assert max_difference(sampled_actions(policy, TRUE_RMS["sample_noise"]), TRUE_RMS["predict_action_main"]) < TOLERANCE
    assert max_difference(upstream_loss(policy, TRUE_RMS), TRUE_RMS["loss_main"][0]) < TOLERANCE


@pytest.mark.parametrize(("norm", "outputs"), [("rms", UPSTREAM), ("timm-1.0.3", TRUE_RMS)])
def test_the_other_norm_formula_does_not_reproduce_them(tmp_path, norm, outputs):
    """The comparison can fail: the two formulas differ by far more than the tolerance."""
    assert max_difference(transformer_output(load_golden(tmp_path, norm=norm)), outputs["inner_main"]) > 0.05


def test_masked_loss_differs_from_upstreams(tmp_path):
    policy = load_golden(tmp_path)
    masked = {**conditions(), "action": INPUTS["action_gt"], "noise": UPSTREAM["loss_noise"],
              "timestep": UPSTREAM["loss_timesteps"],
              "loss_mask": loss_mask("masked", INPUTS["action_mask"][0, 0].numpy()).expand(2, 1, -1)}
    with torch.no_grad():
        masked_loss = policy.compute_loss(masked)
    # upstream averages over 128 dimensions, 114 of them padding the model already predicts near 0
    assert abs(masked_loss.item() - UPSTREAM["loss_main"].item()) > 0.1
