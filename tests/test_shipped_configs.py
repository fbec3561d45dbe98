"""What the shipped configs, presets, profiles and pins say, as the README states it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from rdtflow.config import validate_config
from rdtflow.sweep import expand_sweep
from tests.helpers.plans import paper, plan_for

REPO = Path(__file__).resolve().parents[1]


def shipped(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_the_embedded_default_is_the_run_the_readme_describes():
    config = validate_config(shipped("config/config.yaml"))
    plan = plan_for(config)
    assert config["demos"]["generate"] and config["demos"]["n_episodes"] == 1060 and config["split"]["held_out"] == 60
    assert (plan.rdt_config["rdt"]["hidden_size"], plan.rdt_config["rdt"]["depth"]) == (128, 6)
    assert plan.parameters == 1_251_968
    assert plan.optimizer_steps == 1000 and plan.checkpoint_steps == [250, 500, 750, 1000]
    assert plan.effective_batch == 64 and config["model"]["precompute_image_features"]
    assert plan.norm.startswith("rms")  # model.norm auto, from scratch


def test_the_example_sweeps_vary_only_what_they_say_on_top_of_the_default():
    default = shipped("config/config.yaml")
    seeds = expand_sweep({**default, **shipped("config/sweeps/default-seeds.yaml")})
    assert [run.config["seed"] for run in seeds] == [0, 1, 2]
    layouts = expand_sweep({**default, **shipped("config/sweeps/default-batch-layout.yaml")})
    plans = [plan_for(run.config) for run in layouts]
    assert [(plan.layout["micro_batch"], plan.layout["accumulation"], plan.layout["processes"]) for plan in plans] == [
        (64, 1, 1), (8, 4, 2)]
    assert {plan.effective_batch for plan in plans} == {64} and {run.config["seed"] for run in layouts} == {0}


@pytest.mark.parametrize("name", ["aloha-transfer-cube", "aloha-insertion"])
def test_each_benchmark_config_passes_the_start_up_check_and_holds_out_50_initial_states(name):
    config = validate_config(shipped(f"config/benchmarks/{name}.yaml"), check_files=True)  # builds the ALOHA scene
    assert config["sim"]["env"] == name and config["run"] == name and config["hardware"]["device"] == "cpu"
    assert config["split"]["held_out"] == 50 and config["demos"]["n_episodes"] == 250
    assert config["data"]["cameras"] == ["cam_high"] and len(config["data"]["state_names"]) == 14
    assert config["data"]["control_frequency"] == 50  # gym-aloha steps at 50 Hz


def test_the_gpu_benchmark_sees_all_three_cameras_whole_and_fits_a_24_gb_card_in_one_micro_batch():
    config = validate_config(shipped("config/benchmarks/aloha-transfer-cube-gpu.yaml"))
    plan = plan_for(config)
    assert config["sim"]["env"] == "aloha-transfer-cube" and config["hardware"]["device"] == "gpu"
    cpu_run = validate_config(shipped("config/benchmarks/aloha-transfer-cube.yaml"))
    assert config["split"] == cpu_run["split"]  # the CPU run's held-out states
    assert plan.image_slots == ["exterior: cam_high", "right_wrist: cam_right_wrist", "left_wrist: cam_left_wrist"]
    assert config["encoders"]["tiny_vision"]["image_size"] == config["sim"]["options"]["image_width"]  # not downscaled
    assert not config["model"]["precompute_image_features"]
    assert (plan.layout["micro_batch"], plan.layout["accumulation"]) == (128, 1) and plan.peak_gib < plan.usable_gib


def test_the_paper_config_is_the_seed_recipe():
    config = validate_config(paper())
    train, hardware = config["train"], config["hardware"]
    assert (train["effective_batch"], train["learning_rate"], train["lr_warmup_steps"]) == (256, 1e-4, 5000)
    assert train["lr_scheduler"] == "constant_with_warmup"  # a schedule that performs the warmup
    assert (train["max_steps"], train["checkpointing_period"], train["checkpoints_total_limit"]) == (100_000, 2000, 30)
    assert train["ema_decay"] is not None and train["loss"] == "upstream" and train["augment"]["recipe"] == "upstream"
    assert (hardware["param_dtype"], hardware["mixed_precision"], hardware["dataloader_workers"]) == ("bf16", "bf16", 8)
    assert config["model"]["norm"] == "auto"


def test_rdt_170m_is_the_published_architecture():
    plan = plan_for(validate_config(paper(model__size="rdt-170m")))
    rdt = plan.rdt_config["rdt"]
    assert (rdt["hidden_size"], rdt["depth"], rdt["num_heads"], plan.parameters) == (1024, 14, 32, 166_229_888)


def test_the_agilex_preset_carries_rdts_agilex_constants():
    data = validate_config({"run": "x", "data": {"preset": "agilex"}})["data"]
    assert data["control_frequency"] == 25 and data["min_episode_steps"] == 128
    assert data["instruction"]["file"] == "expanded_instruction_gpt-4-turbo.json"
    normalization = data["normalization"]
    assert normalization["mode"] == "raw"
    assert (normalization["qpos_divisors"][6], normalization["qpos_divisors"][13]) == (4.7908, 4.7888)
    assert (normalization["action_divisors"][6], normalization["action_divisors"][13]) == (11.8997, 13.9231)
    assert set(normalization["qpos_divisors"][:6] + normalization["action_divisors"][7:13]) == {1}


def test_the_workflow_profile_and_its_link():
    profile = shipped("workflow/profiles/default/config.yaml")
    assert profile["cores"] == "all" and profile["printshellcmds"] and profile["show-failed-logs"]
    assert profile["rerun-incomplete"]
    assert (REPO / "profiles").is_symlink() and (REPO / "profiles").resolve() == (REPO / "workflow" / "profiles").resolve()


def test_the_slurm_profiles():
    slurm = shipped("workflow/profiles/slurm/config.yaml")
    assert slurm["default-resources"] == {"mem_mb": 4096, "runtime": 60}  # no cpus_per_task: it would override threads
    assert slurm["retries"] == 2 and slurm["slurm-status-command"] == "sacct"
    ci = shipped("workflow/profiles/slurm-ci/config.yaml")
    assert ci["slurm-status-command"] == "squeue" and ci["slurm-init-seconds-before-status-checks"] == 5


def test_the_pins_the_readme_names():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert "snakemake-executor-plugin-slurm==2.8.0" in project["optional-dependencies"]["slurm"]


def _properties(schema: dict, where: str = ""):
    for name, node in schema.get("properties", {}).items():
        yield f"{where}{name}", node
        yield from _properties(node, f"{where}{name}.")


@pytest.mark.parametrize("schema", ["rdtflow/schemas/config.schema.yaml", "rdtflow/schemas/hardware.schema.yaml"])
def test_every_config_key_is_documented(schema):
    undocumented = [key for key, node in _properties(shipped(schema))
                    if not str(node.get("description", "")).strip() and "properties" not in node]
    assert undocumented == []


def test_the_fine_tune_study_configs_compare_a_fine_tune_with_the_same_run_from_scratch():
    pretraining = validate_config(shipped("config/benchmarks/relations-pretrain.yaml"), check_files=True)
    fine_tune = validate_config(shipped("config/benchmarks/relations-finetune.yaml"), check_files=True)
    scratch = validate_config(shipped("config/benchmarks/relations-scratch.yaml"), check_files=True)
    drawn = {"on", "left of", "right of", "above", "below"} - set(pretraining["sim"]["options"]["exclude_relations"])
    assert drawn == {"on", "left of", "right of", "above"} and fine_tune["sim"]["options"]["relations"] == ["below"]
    assert fine_tune["model"]["pretrained"] == "results/relations-pretrain/export/final"
    assert fine_tune["encoders"]["vision_path"] == "results/relations-pretrain/encoders/vision"
    assert scratch["model"]["pretrained"] is None
    for section in ("sim", "demos", "split", "data"):  # the same demos and held-out states
        assert fine_tune[section] == scratch[section], section
    architecture = ("hidden_size", "depth", "num_heads", "pred_horizon", "img_history_size")
    assert [fine_tune["model"][key] for key in architecture] == [pretraining["model"][key] for key in architecture] == [
        scratch["model"][key] for key in architecture]
    assert fine_tune["train"]["max_steps"] == scratch["train"]["max_steps"] == 1200
    assert fine_tune["demos"]["n_episodes"] - fine_tune["split"]["held_out"] == 50
    for config in (pretraining, fine_tune, scratch):  # the units and warmup a user of the published weights keeps
        assert config["data"]["normalization"]["mode"] == "raw" and config["train"]["lr_scheduler"] == "cosine"
    assert fine_tune["train"]["learning_rate"] < pretraining["train"]["learning_rate"]
