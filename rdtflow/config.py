"""Loading and checking a run configuration (the schema documents every key).

Checks run when the workflow starts and when any stage loads its config, so a setting that
would be silently ignored, a typo, or a batch the hardware cannot reach stops the run before
any job (and any GPU hour) starts. Every message names the key and what to write instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from rdtflow.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


def _schema_error(error: Exception, prefix: str, where: str = "") -> Exception:
    """snakemake's validate wraps jsonschema's error in a WorkflowError whose text is a dump of
    the schema; the user needs the key path and the expected value (rdtflow.schema_messages)."""
    from jsonschema import ValidationError

    from rdtflow.schema_messages import describe

    cause = error.__context__
    return ConfigError(describe(cause, prefix) + where) if isinstance(cause, ValidationError) else error


def _validate_schema(config: dict) -> None:
    """Schema check that also fills in the defaults."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(SCHEMA_PATH), set_default=True)
    except WorkflowError as error:
        raise _schema_error(error, "") from None


def _load_hardware(spec: str | dict) -> dict:
    """The hardware profile with its defaults; a schema error names its key under `hardware`."""
    from snakemake.exceptions import WorkflowError

    from rdtflow.train.hardware import load_profile

    try:
        return load_profile(spec)
    except WorkflowError as error:
        where = "" if isinstance(spec, dict) else f" (in hardware profile {spec})"
        raise _schema_error(error, "hardware", where) from None


def _check_warmup(config: dict) -> None:
    """A warmup must be one the schedule performs and that ends before the run does."""
    train = config["train"]
    if train["lr_warmup_steps"] > 0 and train["lr_scheduler"] == "constant":
        raise ConfigError(
            f"train.lr_warmup_steps is {train['lr_warmup_steps']} but train.lr_scheduler 'constant' has no warmup "
            "(diffusers' constant schedule ignores it): use lr_scheduler 'constant_with_warmup', or set "
            "lr_warmup_steps to 0"
        )
    if train["lr_warmup_steps"] >= train["max_steps"]:
        raise ConfigError(
            f"train.lr_warmup_steps ({train['lr_warmup_steps']}) is not shorter than train.max_steps "
            f"({train['max_steps']}): the run would end before the learning rate reaches its peak"
        )


def _check_checkpoint_period(config: dict) -> None:
    """A period longer than the run would write no checkpoint before the last step."""
    train = config["train"]
    if train["checkpointing_period"] > train["max_steps"]:
        raise ConfigError(
            f"train.checkpointing_period ({train['checkpointing_period']}) is longer than train.max_steps "
            f"({train['max_steps']}): no checkpoint before the last step; lower the period"
        )


def _check_precomputed_features(config: dict) -> None:
    """Precomputed image features are only right for frames that never change and a frozen tower."""
    model = config["model"]
    if model["precompute_image_features"] and config["train"]["augment"]["image"]:
        raise ConfigError(
            "train.augment.image changes every frame, so its features cannot be precomputed: set "
            "model.precompute_image_features to false or train.augment.image to false"
        )
    if model["train_vision"]:
        raise ConfigError(
            "model.train_vision: true is not supported yet: rdtflow would neither save the trained tower with "
            "each checkpoint nor keep it in step across processes, so its training would be lost; set it to false "
            "(RDT keeps SigLIP frozen too)"
        )


def _check_divisors(config: dict) -> None:
    """Divisors must name every column once: a short list would silently shift the grippers."""
    data = config["data"]
    width = len(data["state_names"])
    for key in ("qpos_divisors", "action_divisors"):
        divisors = data["normalization"][key]
        if divisors is not None and len(divisors) != width:
            raise ConfigError(
                f"data.normalization.{key} has {len(divisors)} numbers but data.state_names has {width} columns: "
                f"give one divisor per column (1 leaves a column as it is)"
            )


def _check_state_names(config: dict) -> None:
    """Every column must name a slot of RDT's unified vector, each slot once."""
    from rdtflow.data.state_vector import check_state_names

    check_state_names(config["data"]["state_names"])


def _check_cameras(config: dict) -> None:
    """A role mapping must place each camera in one of RDT's slots, unambiguously."""
    from rdtflow.data.cameras import role_conflicts

    problems = role_conflicts(config["data"]["cameras"])
    if problems:
        raise ConfigError(f"data.cameras {config['data']['cameras']}: {'; '.join(problems)}")


def _check_batch_layout(config: dict) -> None:
    """A fixed micro-batch must reach train.effective_batch exactly (LayoutError names the numbers);
    an `auto` one is chosen, and checked against memory, by the plan stage."""
    from rdtflow.train.hardware import fixed_layout

    if config["hardware"]["per_device_batch"] != "auto":
        fixed_layout(config["hardware"], config["train"]["effective_batch"])


TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""The package each train.report_to tracker needs (the extra rdtflow[tracking] installs them)."""


def _check_trackers(config: dict) -> None:
    """A tracker whose package is missing would fail the first training job, after the data stages."""
    from importlib.util import find_spec

    missing = [name for name in config["train"]["report_to"] if find_spec(TRACKER_PACKAGES[name]) is None]
    if missing:
        raise ConfigError(f"train.report_to names {', '.join(missing)}, which is not installed: "
                          "pip install -e '.[tracking]' (or remove it from train.report_to)")


def _missing_folder(key: str, folder: str | Path, fix: str) -> ConfigError:
    return ConfigError(f"{key}: folder {Path(folder).resolve()} does not exist; {fix}")


def _check_simulator(config: dict) -> None:
    """sim.env must name a simulator that builds and keeps the observation contract (checked by
    resetting one episode), and generated demos need one with a scripted expert, whose
    instructions the data config reads where that expert writes them."""
    from rdtflow.data.cameras import recorded_cameras
    from rdtflow.sim.builtin import NAME as BUILTIN_NAME
    from rdtflow.sim.builtin import check_instruction_source
    from rdtflow.sim.registry import demo_writer, probe_env

    if config["sim"]["env"] is not None:
        probe_env(config["sim"], recorded_cameras(config["data"]["cameras"]))
    if config["demos"]["generate"]:
        demo_writer(config["sim"])
        if config["sim"]["env"] == BUILTIN_NAME:
            check_instruction_source(config["sim"], config["data"])


def _check_demo_folder(config: dict) -> None:
    """The user's episode folder must exist when the demos are not generated."""
    from rdtflow.paths import user_demo_dir

    if config["demos"]["generate"]:
        return
    try:
        folder = user_demo_dir(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if not folder.is_dir():
        raise _missing_folder("demos.dir", folder, "point it at your *.hdf5 episodes, or set demos.generate: true")


def _check_pretrained_folder(config: dict) -> None:
    pretrained = config["model"]["pretrained"]
    if isinstance(pretrained, str) and not Path(pretrained).is_dir():
        raise _missing_folder(
            "model.pretrained", pretrained,
            "give the local RDT checkpoint folder (config.json and its weights), or null to start from random weights",
        )


def _check_encoder_folders(config: dict) -> None:
    encoders = config["encoders"]
    for key, model in (("vision_path", "SigLIP vision model"), ("text_path", "T5 encoder")):
        if encoders[key] and not Path(encoders[key]).is_dir():
            raise _missing_folder(
                f"encoders.{key}", encoders[key],
                f"give a local from_pretrained folder of a {model}, or null to build a small one",
            )


def _check_split_sizes(config: dict) -> None:
    """split.held_out must leave episodes both to train on and to evaluate, counted before any job
    runs: demos.n_episodes when generating, else the *.hdf5 files under demos.dir (rejected files
    only lower the count; the split stage checks the valid ones again with the same function)."""
    from rdtflow.data.split import choose_held_out, choose_training
    from rdtflow.data.validate import (
        DemoValidationError,
        episode_id,
        find_episode_files,
    )
    from rdtflow.paths import user_demo_dir

    demos, held_out = config["demos"], config["split"]["held_out"]
    if isinstance(held_out, dict) or (config.get("data") or {}).get("episode_group") is not None:
        return  # the episodes are known only once validation has listed the demos inside the files
    if demos["generate"]:
        if isinstance(held_out, list):
            return  # generated episodes get their ids (file names) only in the demos stage
        ids = [str(index) for index in range(demos["n_episodes"])]
        source = f"the demos.n_episodes={demos['n_episodes']} generated episodes"
    else:
        folder = user_demo_dir(config).resolve()
        try:
            ids = [episode_id(path, folder) for path in find_episode_files(folder)]
        except DemoValidationError as error:
            raise ConfigError(str(error)) from None
        source = f"the {len(ids)} *.hdf5 files under demos.dir {folder}"
    try:
        chosen = choose_held_out(ids, held_out, config["split"]["seed"])
        choose_training(ids, chosen, config["split"]["train_episodes"], config["split"]["seed"])
    except ValueError as error:
        raise ConfigError(f"split does not fit {source}: {error}") from None


Check = Callable[[dict], None]

# Each check reads the sections listed with it and runs only when the config has all of them:
# a stage's partial config lacks the others, and a default must not stand in for them.
CHECKS: tuple[tuple[tuple[str, ...], Check], ...] = (
    (("data",), _check_divisors),
    (("data",), _check_cameras),
    (("data",), _check_state_names),
    (("train",), _check_warmup),
    (("train",), _check_checkpoint_period),
    (("train", "model"), _check_precomputed_features),
    (("train", "hardware"), _check_batch_layout),
)

# Checks of the simulator, of the folders the config names and of the number of episodes in
# them: they run at workflow start, not in every stage, since `rdtflow plan` may run where the
# data (or the simulator's packages) are not.
FILE_CHECKS: tuple[tuple[tuple[str, ...], Check], ...] = (
    (("demos", "sim", "data"), _check_simulator),
    (("demos",), _check_demo_folder),
    (("model",), _check_pretrained_folder),
    (("encoders",), _check_encoder_folders),
    (("demos", "split"), _check_split_sizes),
    (("train",), _check_trackers),
)


def validate_config(config: dict, partial: bool = False, check_files: bool = False,
                    chain: tuple[str, ...] = ()) -> dict:
    """Validate against the schema, fill in defaults, resolve the hardware profile, lint, and
    resolve a model.pretrained that names another run (rdtflow.pretraining; `chain`: the runs
    that led to this one, to refuse a cycle).

    The same function runs at workflow start (with `check_files`) and in every CLI stage. A
    `partial` config (the sections the workflow passes one stage) keeps only the sections it
    was given, so a default never stands in for a section the stage did not receive.
    """
    from rdtflow.presets import expand_presets
    from rdtflow.pretraining import resolve_pretraining

    expand_presets(config)
    given = set(config)
    _validate_schema(config)
    if partial:
        for key in set(config) - given - {"results_dir"}:
            del config[key]
    if "hardware" in config:
        config["hardware"] = _load_hardware(config["hardware"])
    for sections, check in (CHECKS + FILE_CHECKS) if check_files else CHECKS:
        if all(section in config for section in sections):
            check(config)
    if not partial:
        resolve_pretraining(config, validate_config, check_files, chain)
    return config


def load_config(path: Path) -> dict:
    """A whole run config from a YAML/JSON file, validated, with every default filled in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return validate_config(yaml.safe_load(path.read_text()) or {})


def load_run_file(path: Path, stage: str) -> dict:
    """A job's run file (rdtflow.stages.run_file), its config sections validated again. They
    are only the stage's: no default stands in for a section it was not given."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run file {path} does not exist; the workflow writes it when it starts (snakemake)")
    run = json.loads(path.read_text())
    if run.get("stage") != stage:
        raise ConfigError(f"run file {path} is for stage {run.get('stage')!r}, not {stage!r}")
    return {**run, "config": validate_config(run["config"], partial=True)}
