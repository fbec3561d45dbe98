"""A bad configuration stops the run at workflow start, naming the key path and the fix."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from rdtflow.cli import main
from rdtflow.config import ConfigError, validate_config
from rdtflow.train.hardware import LayoutError
from tests.helpers.episodes import write_synthetic_episode
from tests.helpers.workflow import ENV, REPO, SNAKEMAKE

# Valid as it stands; each test breaks one thing.
BASE = {
    "run": "bad",
    "sim": {"env": "builtin-pick-place"},
    "demos": {"generate": True, "n_episodes": 10},
    "split": {"held_out": 2},
    "hardware": {"device": "cpu", "per_device_batch": 4},
    "train": {"max_steps": 100, "checkpointing_period": 50, "effective_batch": 8, "lr_warmup_steps": 10},
}


def config_with(**sections: dict) -> dict:
    """BASE with the given sections' keys replaced."""
    config = copy.deepcopy(BASE)
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def demo_folder(folder: Path, n_files: int) -> Path:
    for index in range(n_files):
        write_synthetic_episode(folder / f"episode_{index}.hdf5", seed=index)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


SCHEMA_CASES = {
    "unknown key": (
        config_with(train={"lr_shceduler": "cosine"}),
        "train.lr_shceduler: unknown key; did you mean lr_scheduler?",
    ),
    "unknown section": ({**BASE, "trian": {}}, "trian: unknown key; did you mean train?"),
    "unknown nested key": (
        config_with(encoders={"tiny_vision": {"num_hidden_layer": 1}}),
        "encoders.tiny_vision.num_hidden_layer: unknown key; did you mean num_hidden_layers?",
    ),
    "unknown key without a near miss": (
        config_with(eval={"gpus": 2}),
        "eval.gpus: unknown key; valid: execute_horizon, open_loop_stride, seed, frame_codec, transfer, videos, threads",
    ),
    "wrong type": (config_with(train={"max_steps": "3k"}), "train.max_steps: got '3k', expected an integer >= 1"),
    "out of range": (
        config_with(data={"moving_threshold": -1}), "data.moving_threshold: got -1, expected a number >= 0"
    ),
    "misspelt choice": (
        config_with(train={"lr_scheduler": "cosin"}), "train.lr_scheduler: 'cosin' is not allowed; did you mean cosine?"
    ),
    "none of the alternatives": (
        config_with(split={"held_out": 1.5}),
        "split.held_out: got 1.5, expected an integer >= 1 or a number > 0 and < 1 or a list of at least 1 item(s) or a mapping",
    ),
    "wrong list item": (config_with(data={"cameras": ["cam_high", 3]}), "data.cameras[1]: got 3, expected a string"),
    "missing required key": (
        {key: value for key, value in BASE.items() if key != "run"}, "run: missing; this key is required"
    ),
    "inline hardware profile": (
        {**BASE, "hardware": {"device": "cpu", "per_device_bach": 4}},
        "hardware.per_device_bach: unknown key; did you mean per_device_batch?",
    ),
}


def open_mappings(node: object, path: str = "") -> list[str]:
    """Schema paths of mappings that would accept any key."""
    if isinstance(node, list):
        return [found for index, item in enumerate(node) for found in open_mappings(item, f"{path}[{index}]")]
    if not isinstance(node, dict):
        return []
    here = [path] if node.get("type") == "object" and node.get("additionalProperties") is not False else []
    return here + [found for key, value in node.items() for found in open_mappings(value, f"{path}.{key}")]


def test_every_mapping_in_the_schema_refuses_unknown_keys() -> None:
    schema = yaml.safe_load((REPO / "rdtflow" / "schemas" / "config.schema.yaml").read_text())
    # an inline hardware profile is checked against hardware.schema.yaml, which refuses them too;
    # sim.options by the environment it configures (rdtflow.sim.options, tested below); a sweep's
    # keys are config keys, each run checked against this schema (tests/test_sweep.py); the
    # resolved config of a run that model.pretrained names, validated as a config of its own
    # a sweep's named group: each setting of a name is a config key, checked the same way
    assert open_mappings(schema) == [".properties.pretraining.properties.run", ".properties.sweep",
                                     ".properties.sweep.additionalProperties.oneOf[1]",
                                     ".properties.sweep.additionalProperties.oneOf[1].additionalProperties",
                                     ".properties.hardware.oneOf[1]", ".properties.sim.properties.options"]


@pytest.mark.parametrize(("config", "message"), SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_schema_errors_name_the_key_path_and_the_fix(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value) == message


def test_a_hardware_profile_file_is_named_in_its_errors(tmp_path: Path) -> None:
    profile = tmp_path / "cluster.yaml"
    profile.write_text(yaml.safe_dump({"device": "gpu", "gpus_per_node": "eight", "per_device_batch": 4}))
    message = rf"hardware.gpus_per_node: got 'eight', expected an integer >= 1 \(in hardware profile {profile}\)"
    with pytest.raises(ConfigError, match=message):
        validate_config({**BASE, "hardware": str(profile)})


FILE_CASES = {
    "demo folder not set": (config_with(demos={"generate": False}), "demos.dir is not set"),
    "demo folder missing": (
        config_with(demos={"generate": False, "dir": "no/such/demos"}),
        r"demos.dir: folder .*/no/such/demos does not exist; point it at your \*.hdf5 episodes, or set demos.generate",
    ),
    "pretrained folder missing": (
        config_with(model={"pretrained": "no/rdt-1b"}),
        "model.pretrained: folder .*/no/rdt-1b does not exist; give the local RDT checkpoint folder",
    ),
    "encoder folder missing": (
        config_with(encoders={"text_path": "no/t5"}),
        "encoders.text_path: folder .*/no/t5 does not exist; give a local from_pretrained folder of a T5 encoder",
    ),
    "unknown simulator": (config_with(sim={"env": "mujoco-cartpole"}),
                          "sim.env 'mujoco-cartpole' is not a known simulator: use one of builtin-pick-place, "
                          'aloha-transfer-cube, aloha-insertion, "package.module:factory"'),
    "factory module does not import": (
        config_with(sim={"env": "no_such_package.sims:make_env"}),
        r"sim.env 'no_such_package.sims:make_env': module 'no_such_package.sims' does not import .*PYTHONPATH",
    ),
    "factory is not a function": (config_with(sim={"env": "tests.helpers.bad_sims:not_a_function"}),
                                  "module 'tests.helpers.bad_sims' has no function 'not_a_function'"),
    "observation with the wrong camera": (
        config_with(sim={"env": "tests.helpers.bad_sims:renamed_camera"}, demos={"generate": False, "dir": "x"}),
        r"reset\(\) broke the observation contract .*frames has cameras \['top'\]; data.cameras needs exactly "
        r"\['cam_high'\]",
    ),
    "generated demos without a simulator": (config_with(sim={"env": None}),
                                            "demos.generate: true needs a simulator with a scripted expert"),
    "user simulator has no expert": (config_with(sim={"env": "rdtflow.sim.builtin:make_env"}),
                                     "demos.generate: true needs a simulator with a scripted expert"),
    "unknown option": (config_with(sim={"options": {"image_szie": 32}}),
                       "sim.options.image_szie is not an option of builtin-pick-place; its options are image_size, "
                       "max_speed"),
    "option of the wrong type": (config_with(sim={"options": {"max_steps": "70"}}),
                                 "sim.options.max_steps of builtin-pick-place is '70'; it must be an integer"),
    "option out of range": (config_with(sim={"options": {"max_steps": 0}}),
                            "sim.options of builtin-pick-place: max_steps must be greater than 0, not 0"),
    "camera the simulator does not render": (
        config_with(data={"cameras": ["cam_high", "cam_left_wrist"]}),
        r"builtin-pick-place renders only 'cam_high' .*set data.cameras to \[cam_high\]",
    ),
    "nothing left to train on": (
        config_with(split={"held_out": 10}),
        r"split does not fit the demos.n_episodes=10 generated episodes: .*hold out between 1 and 9",
    ),
}


@pytest.mark.parametrize(("config", "message"), FILE_CASES.values(), ids=FILE_CASES.keys())
def test_folders_and_episode_counts_are_checked_at_workflow_start(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(copy.deepcopy(config), check_files=True)
    validate_config(config)  # stages (rdtflow plan) may run where the data is not


@pytest.mark.parametrize(
    ("n_files", "held_out", "message"),
    [
        (3, 3, r"the 3 \*.hdf5 files under demos.dir .*holds out 3 of 3 .*hold out between 1 and 2"),
        (1, 0.2, r"the 1 \*.hdf5 files under demos.dir .*only 1 valid episode\(s\), but the split needs at least 2"),
        (3, ["episode_0", "episode_7"], r"split.held_out names ids that are not valid episodes: episode_7"),
        (0, 1, r"no \*.hdf5 files were found under .*; set demos.dir to the episode folder"),
    ],
)
def test_the_split_is_checked_against_the_files_in_the_demo_folder(
    tmp_path: Path, n_files: int, held_out: object, message: str
) -> None:
    folder = demo_folder(tmp_path / "demos", n_files)
    config = config_with(demos={"generate": False, "dir": str(folder)}, split={"held_out": held_out})
    with pytest.raises(ConfigError, match=message):
        validate_config(config, check_files=True)


def test_a_split_that_fits_the_folder_passes(tmp_path: Path) -> None:
    folder = demo_folder(tmp_path / "demos", 3)
    config = config_with(demos={"generate": False, "dir": str(folder)}, split={"held_out": ["episode_1"]})
    validate_config(config, check_files=True)


def test_an_unreachable_effective_batch_names_the_keys_and_the_fix() -> None:
    with pytest.raises(LayoutError, match=r"cannot reach train.effective_batch 10: per_device_batch 4 .*choose a"):
        validate_config(config_with(train={"effective_batch": 10}))
    with pytest.raises(LayoutError, match="set gradient_accumulation to 2"):
        validate_config({**BASE, "hardware": {"device": "cpu", "per_device_batch": 4, "gradient_accumulation": 3}})


def test_a_checkpoint_period_longer_than_the_run() -> None:
    message = r"train.checkpointing_period \(500\) is longer than train.max_steps \(100\).*lower the period"
    with pytest.raises(ConfigError, match=message):
        validate_config(config_with(train={"checkpointing_period": 500}))


def test_a_partial_config_runs_only_the_checks_its_sections_allow() -> None:
    """A stage gets some sections: checks that read others must not run on defaults."""
    split_only = validate_config({"run": "x", "split": {"held_out": 500}}, partial=True, check_files=True)
    assert set(split_only) == {"run", "results_dir", "split"}
    train_only = {"run": "x", "train": {"augment": {"image": True}}}
    assert validate_config(train_only, partial=True)["train"]["augment"]["image"]  # model section absent
    with pytest.raises(ConfigError, match="train.checkpointing_period"):
        validate_config({"run": "x", "train": {"max_steps": 200, "lr_warmup_steps": 0}}, partial=True)


def test_the_cli_prints_the_message_instead_of_a_traceback(tmp_path: Path, capsys) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config_with(train={"lr_shceduler": "cosine"})))
    assert main(["plan", "--config", str(config_file)]) == 2
    assert "train.lr_shceduler: unknown key; did you mean lr_scheduler?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": {"lr_shceduler": "cosine"}}, "train.lr_shceduler: unknown key; did you mean lr_scheduler?"),
        ({"demos": {"generate": False, "dir": "no/such/demos"}}, "demos.dir: folder"),
        ({"sim": {"env": "aloha-transfer-cub"}}, "sim.env 'aloha-transfer-cub' is not a known simulator"),
    ],
    ids=["schema", "folder", "simulator"],
)
def test_snakemake_stops_before_any_job(tmp_path: Path, changes: dict, message: str) -> None:
    config = copy.deepcopy(BASE) | {"results_dir": str(tmp_path / "results")}
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))

    command = [*SNAKEMAKE, "--configfile", str(config_file), "--dry-run"]
    result = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, env=ENV)

    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert "Job stats" not in output and not (tmp_path / "results").exists()
