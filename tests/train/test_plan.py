"""Hardware profiles, the memory model, `rdtflow plan` and the training-config lints."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rdtflow.cli import main as rdtflow
from rdtflow.config import ConfigError, validate_config
from rdtflow.machine import cpu_threads
from rdtflow.stages import stage_files
from rdtflow.train.hardware import LayoutError, load_profile, shipped_profiles
from rdtflow.train.launch import accelerate_launch_args
from rdtflow.train.layout import checkpoint_steps
from rdtflow.train.memory import ModelFootprint, estimate_peak, fit_calibration, measurements
from rdtflow.train.plan import StalePlan, read_plan, write_plan
from tests.helpers import training
from tests.helpers.plans import paper, plan_for

REPO = Path(__file__).resolve().parents[2]
RDT1B = ModelFootprint(params=1_228_319_872, hidden_size=2048, depth=28, action_tokens=67,
                       condition_tokens=4374 + 32, vision_params_in_loop=428_225_600)
PROFILES = ["cpu", "a800-80g-x8", "rtx4090-48g-x8", "gpu60-80g-x8", "h100-80g-x8", "gpu24g-x1", "h100-80g-2x8"]


def test_every_required_profile_ships():
    assert set(PROFILES) <= set(shipped_profiles())


@pytest.mark.parametrize("profile", PROFILES)
def test_plan_works_for_the_paper_config_on_every_profile(profile):
    plan = plan_for(validate_config(paper(hardware=profile)))
    layout = plan.layout
    assert plan.effective_batch == layout["micro_batch"] * layout["accumulation"] * layout["processes"] == 256
    assert "accelerate launch " in plan.launch_command and "-m rdtflow.cli train" in plan.launch_command
    assert plan.parameters == 1_228_319_872 and plan.peak_gib > 0
    assert "peak memory" in plan.text() and "256 =" in plan.text()


def readme_layout_table() -> dict[str, str]:
    """The README's hardware table: profile -> its layout cell."""
    lines = (REPO / "README.md").read_text().split("| profile | layout for the paper's effective batch 256 |")[1].splitlines()
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[2:])
    return {re.search(r"`([\w-]+)`", row)[1]: row.split("|")[2] for row in rows}


def layout_of(config: dict) -> tuple[int, int, int]:
    value = plan_for(validate_config(config)).layout
    return value["micro_batch"], value["accumulation"], value["processes"]


def test_the_readme_hardware_table_is_what_the_plan_chooses():
    table = readme_layout_table()
    assert set(table) == set(PROFILES)
    for profile, cell in table.items():
        paper_layout = next(tuple(map(int, match)) for match in re.findall(r"(\d+) x (\d+) x (\d+)", cell))  # the first
        assert layout_of(paper(hardware=profile)) == paper_layout, (profile, cell)
        assert ("auto:" in cell) == (load_profile(profile)["per_device_batch"] == "auto"), (profile, cell)
        assert ("two nodes" in cell) == (load_profile(profile)["nodes"] == 2), (profile, cell)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "the default run uses 64 x 1 x 1" in table["cpu"] and layout_of(default) == (64, 1, 1)
    assert "the plan suggests 32 x 1" in table["rtx4090-48g-x8"]
    suggestions = plan_for(validate_config(paper(hardware="rtx4090-48g-x8"))).suggestions
    assert "per_device_batch 32 x gradient_accumulation 1 also fits" in suggestions[0]


def test_auto_picks_the_largest_micro_batch_that_fits():
    assert layout_of(paper(hardware="gpu24g-x1")) == (8, 32, 1)  # 16 would not fit 24 GiB


def _measured_model(row: dict) -> ModelFootprint:
    return RDT1B if row["vision"] else replace(RDT1B, vision_params_in_loop=0)


def _dtype(row: dict) -> str:
    return "bf16" if row["mode"] == "bf16-params" else "fp32"


@pytest.mark.parametrize("row", measurements(), ids=lambda r: f"{r['mode']}-{r['batch']}x{r['accum']}-vision{r['vision']}")
def test_memory_model_predicts_each_measurement_left_out_of_its_fit(row):
    """Every row, the no-tower and accumulation rows included: within 1% when the row is left
    out of the fit (the README's claim), within 0.6% in sample."""
    others = [other for other in measurements() if other["mode"] == row["mode"] and other is not row]
    left_out = estimate_peak(_measured_model(row), row["batch"], row["accum"], 1, _dtype(row), fit_calibration(others))
    assert left_out.total_gib == pytest.approx(row["peak_alloc_gib"], rel=0.01)
    in_sample = estimate_peak(_measured_model(row), row["batch"], row["accum"], 1, _dtype(row))
    assert in_sample.total_gib == pytest.approx(row["peak_alloc_gib"], rel=0.006)


def test_two_cpu_processes_launch_through_torchrun():
    two_cpu = load_profile({"device": "cpu", "processes_per_node": 2, "per_device_batch": 4})
    assert accelerate_launch_args(two_cpu).startswith("--multi_gpu --num_processes 2")  # gloo on CPU


def test_ddp_adds_the_gradient_copy_that_accumulation_was_measured_to_need():
    """DDP itself was not measured; its buckets are modelled as one more gradient copy, the
    extra memory measured for accumulation (4x8 over 4x1)."""
    rows = {(row["batch"], row["accum"]): row["peak_alloc_gib"] for row in measurements()
            if row["mode"] == "bf16-params" and row["vision"]}
    ddp = estimate_peak(RDT1B, 4, 1, 8, "bf16").total_gib - estimate_peak(RDT1B, 4, 1, 1, "bf16").total_gib
    assert ddp == pytest.approx(rows[(4, 8)] - rows[(4, 1)], abs=0.1)


def test_activations_scale_with_width_depth_and_tokens_and_weights_with_parameters():
    base = estimate_peak(RDT1B, 8, 1, 1, "bf16")
    for changed, factor in [
        (replace(RDT1B, hidden_size=1024), 0.5),
        (replace(RDT1B, depth=14), 0.5),
        (replace(RDT1B, hidden_size=1024, depth=14), 0.25),  # rdt-170m's width and depth
        (replace(RDT1B, condition_tokens=0), 67 / (67 + (4374 + 32) / 2)),  # condition tokens count half
    ]:
        assert estimate_peak(changed, 8, 1, 1, "bf16").activations_gib == pytest.approx(base.activations_gib * factor)
    half = estimate_peak(replace(RDT1B, params=RDT1B.params // 2), 8, 1, 1, "bf16")
    assert half.static_gib == pytest.approx(base.static_gib / 2, rel=1e-6) and half.activations_gib == base.activations_gib
    assert estimate_peak(RDT1B, 16, 1, 1, "bf16").activations_gib == pytest.approx(2 * base.activations_gib)


def test_a_profile_that_cannot_reach_the_effective_batch_names_the_numbers():
    profile = {"device": "gpu", "gpus_per_node": 8, "gpu_memory_gib": 80, "per_device_batch": 24}
    with pytest.raises(LayoutError, match=r"per_device_batch 24 x gradient_accumulation 1 x 8 processes = 192.*256"):
        validate_config(paper(hardware=profile))
    wrong_accumulation = {**profile, "per_device_batch": 16, "gradient_accumulation": 4}
    with pytest.raises(LayoutError, match=r"= 512.*set gradient_accumulation to 2"):
        validate_config(paper(hardware=wrong_accumulation))


def test_plan_warns_when_the_micro_batch_will_not_fit():
    profile = {"device": "gpu", "gpus_per_node": 8, "gpu_memory_gib": 48, "param_dtype": "bf16",
               "mixed_precision": "bf16", "per_device_batch": 32}
    plan = plan_for(validate_config(paper(hardware={**profile, "per_device_batch": 32}, train__effective_batch=256)))
    assert not plan.warnings  # 32 fits a 48 GB card (measured 38.7 GiB + DDP buckets)
    too_big = plan_for(validate_config(paper(hardware={**profile, "gpu_memory_gib": 24})))
    assert too_big.warnings and "will run out of memory" in too_big.warnings[0]
    assert "GiB usable of 24 GiB" in too_big.warnings[0]


def test_plan_says_when_a_larger_micro_batch_fits_and_is_faster():
    plan = plan_for(validate_config(paper(hardware="rtx4090-48g-x8")))
    assert len(plan.suggestions) == 1
    assert "per_device_batch 32 x gradient_accumulation 1 also fits" in plan.suggestions[0]
    assert "41.5 vs 34.9 samples/s" in plan.suggestions[0]
    eight_24gb = {"device": "gpu", "gpus_per_node": 8, "gpu_memory_gib": 24, "param_dtype": "bf16",
                  "mixed_precision": "bf16", "per_device_batch": 4}
    plan = plan_for(validate_config(paper(hardware=eight_24gb)))
    assert "per_device_batch 8 x gradient_accumulation 4 also fits" in plan.suggestions[0]


def test_auto_micro_batch_needs_the_card_memory():
    with pytest.raises(LayoutError, match="gpu_memory_gib"):
        plan_for(validate_config(paper(hardware={"device": "gpu", "gpus_per_node": 8, "per_device_batch": "auto"})))


def test_plan_is_recorded_in_the_run_results(tmp_path, capsys):
    config = validate_config(paper(results_dir=str(tmp_path)))
    files = stage_files(config, "plan")
    write_plan(config, **{name: Path(path) for name, path in (files.inputs | files.outputs).items()})
    recorded = json.loads((tmp_path / "rdt1b-finetune" / "plan.json").read_text())
    assert recorded["effective_batch"] == 256 and recorded["layout"]["micro_batch"] == 32
    assert (tmp_path / "rdt1b-finetune" / "plan.txt").read_text().strip() == capsys.readouterr().out.strip()


def test_launch_arguments_per_profile():
    assert accelerate_launch_args(load_profile("cpu")).startswith("--cpu --num_processes 1")
    assert accelerate_launch_args(load_profile("a800-80g-x8")).startswith("--multi_gpu --num_processes 8 --num_machines 1")
    assert "--num_machines 2" in accelerate_launch_args(load_profile("h100-80g-2x8"))
    two_cpu = load_profile({"device": "cpu", "processes_per_node": 2, "per_device_batch": 4})
    assert accelerate_launch_args(two_cpu).startswith("--multi_gpu --num_processes 2")  # torchrun, gloo on CPU


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="a800-80g-x8"):
        validate_config(paper(hardware="a100-typo"))


@pytest.mark.parametrize("warmup", [1, 5000])
def test_warmup_with_a_constant_schedule_is_an_error_that_names_the_fix(warmup):
    with pytest.raises(ConfigError, match=f"lr_warmup_steps is {warmup} .*constant_with_warmup"):
        validate_config(paper(train__lr_scheduler="constant", train__lr_warmup_steps=warmup))
    validate_config(paper(train__lr_scheduler="constant", train__lr_warmup_steps=0))
    validate_config(paper(train__lr_scheduler="constant_with_warmup", train__lr_warmup_steps=warmup))


def test_warmup_longer_than_the_run_is_an_error():
    with pytest.raises(ConfigError, match="lr_warmup_steps.*max_steps"):
        validate_config(paper(train__max_steps=4000))


@pytest.mark.parametrize(("period", "steps"), [(250, [250, 500, 750, 1000]), (300, [300, 600, 900, 1000])])
def test_a_checkpoint_every_period_and_at_the_last_step(period, steps):
    assert checkpoint_steps({"checkpointing_period": period, "max_steps": 1000}) == steps


def test_checkpoint_period_longer_than_the_run_is_an_error():
    with pytest.raises(ConfigError, match="checkpointing_period"):
        validate_config(paper(train__checkpointing_period=200_000))


def test_training_the_vision_tower_is_refused_until_its_training_would_be_kept():
    with pytest.raises(ConfigError, match="model.train_vision: true is not supported yet.*set it to false"):
        validate_config({"run": "x", "model": {"train_vision": True}})


def test_pretrained_weights_with_min_max_inputs_are_warned_about():
    raw = plan_for(validate_config(paper()))
    assert not any("normalization" in w for w in raw.warnings)
    min_max = plan_for(validate_config(paper(data={"preset": "agilex", "normalization": {"mode": "min_max"}})))
    assert any("data.normalization.mode is min_max" in w for w in min_max.warnings)


def test_the_paper_config_resolves_to_the_upstream_objective():
    config = validate_config(paper())
    assert config["train"]["loss"] == "upstream" and config["train"]["augment"]["recipe"] == "upstream"
    assert config["train"]["augment"]["cond_mask_prob"] == 0.1 and config["train"]["augment"]["state_noise_snr_db"] == 40
    assert config["train"]["augment"]["external_camera_mask_prob"] is None  # RDT's default: like every other camera
    plan = plan_for(config)
    assert plan.norm.startswith("timm-1.0.3 ")  # the published weights' numerics
    assert plan.objective == "loss upstream, augmentation recipe upstream"


def test_plan_prints_which_camera_fills_which_slot():
    text = plan_for(validate_config(paper())).text()
    assert "image slots        per frame: exterior: cam_high, right_wrist: cam_right_wrist, left_wrist: cam_left_wrist" in text
    one_wrist = paper(data={"preset": "agilex", "cameras": {"wrist": "cam_hand", "right_wrist": None, "left_wrist": None}})
    assert ("exterior: cam_high, right_wrist: cam_hand, left_wrist: no camera (background image)"
            in plan_for(validate_config(one_wrist)).text())


@pytest.mark.parametrize(("cameras", "warning"), [
    (["cam_high", "cam_left_wrist", "cam_right_wrist"], "cannot tell which camera is which"),
    ({"right_wrist": None, "left_wrist": "cam_hand"}, "only wrist camera cam_hand in the left-wrist slot"),
])
def test_plan_warns_when_pretrained_weights_meet_another_camera_order(cameras, warning):
    plan = plan_for(validate_config(paper(data={"preset": "agilex", "cameras": cameras})))
    assert [w for w in plan.warnings if warning in w]
    from_scratch = paper(data={"preset": "agilex", "cameras": cameras}, model__pretrained=None)
    assert not plan_for(validate_config(from_scratch)).warnings  # a layout of one's own is fine from scratch


def test_plan_warns_about_another_norm_and_another_architecture_than_the_pretrained(tmp_path):
    assert any("model.norm is rms but model.pretrained was trained with timm-1.0.3" in w
               for w in plan_for(validate_config(paper(model__norm="rms"))).warnings)
    folder = tmp_path / "rdt-1b"
    folder.mkdir()
    published = json.loads((REPO / "tests" / "fixtures" / "rdt1b_config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**published, "pred_horizon": 32}))
    plan = plan_for(validate_config(paper(model__pretrained=str(folder))))
    assert any("another architecture" in w and "pred_horizon: 32 vs 64" in w for w in plan.warnings)


def test_a_shipped_profile_can_be_changed_in_place():
    config = validate_config({"run": "x", "hardware": {"profile": "cpu", "per_device_batch": 16},
                              "train": {"effective_batch": 16}})
    assert config["hardware"]["per_device_batch"] == 16 and config["hardware"]["cpu_threads"] == "auto"
    assert plan_for(config).layout["micro_batch"] == 16
    with pytest.raises(LayoutError, match="64 x 1 processes = 64 does not divide 16"):
        validate_config({"run": "x", "hardware": "cpu", "train": {"effective_batch": 16}})


def test_cpu_threads_auto_take_what_snakemake_gives_the_job(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads("auto") == 1 and cpu_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "100000")
    assert cpu_threads("auto") == os.cpu_count()  # never more than the machine has
    two = load_profile({"device": "cpu", "processes_per_node": 2, "per_device_batch": 4})
    assert "--num_cpu_threads_per_process 4" in accelerate_launch_args(two, job_threads=8)  # each its share


def test_training_stops_on_a_plan_made_for_another_config(tmp_path):
    config = validate_config(paper(results_dir=str(tmp_path)))
    files = stage_files(config, "plan")
    write_plan(config, **{name: Path(path) for name, path in (files.inputs | files.outputs).items()})
    plan_file = Path(files.outputs["plan_out"])
    assert read_plan(plan_file, config).layout["micro_batch"] == 32
    with pytest.raises(StalePlan, match="sections train differ"):
        read_plan(plan_file, validate_config(paper(results_dir=str(tmp_path), train__learning_rate=0.5)))


def test_training_takes_its_batch_layout_and_its_model_from_the_plan(prepared_data, tmp_path):
    """A plan.json edited by hand (the config unchanged) is what the job trains: the layout and
    the model come from the plan, not from the config again."""
    results = tmp_path / "run"
    shutil.copytree(prepared_data, results)
    config = training.write_config(tmp_path / "config.json", results, training.LAYOUTS["one_process"])
    assert rdtflow(["plan", "--config", str(config)]) == 0
    plan_file = results / "equivalence" / "plan.json"
    plan = json.loads(plan_file.read_text())
    assert plan["layout"]["micro_batch"] == 8 and plan["rdt_config"]["rdt"]["depth"] != 1
    plan["layout"] |= {"micro_batch": 4, "accumulation": 2}
    plan["rdt_config"]["rdt"]["depth"] = 1
    plan_file.write_text(json.dumps(plan))
    subprocess.run([sys.executable, "-m", "rdtflow.cli", "train", "--config", str(config), "--until-step",
                    str(training.STEPS)], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = results / "equivalence" / "train" / f"checkpoint-{training.STEPS}"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["layout"] == {"micro_batch": 4, "accumulation": 2, "processes": 1}
    assert json.loads((checkpoint / "config.json").read_text())["rdt"]["depth"] == 1
