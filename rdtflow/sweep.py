"""Sweeps: one config whose `sweep:` names keys and their values becomes one run per
combination, as a paper reports a result over seeds and settings (mean +- spread).

Each run is an ordinary run under results/{sweep}/{label}/, with `shared_dir` set to
results/{sweep}/stages/: the stages it shares with other runs (rdtflow.stages.SHARED_STAGES)
are computed once, so runs that differ only in the training seed share their demos, split,
manifest and encodings, and a run added to the sweep later computes only itself. The
comparison of the runs (rdtflow.report.compare) is results/{sweep}/index.html.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rdtflow.config import FILE_CHECKS, SCHEMA_PATH, validate_config
from rdtflow.errors import ConfigError
from rdtflow.paths import RunPaths
from rdtflow.stages import TRANSFER_EVALUATIONS, StageFiles, active_jobs, stage_paths
from rdtflow.train.launch import eval_job_resources, train_job_resources
from rdtflow.train.layout import checkpoint_steps

RESERVED_KEYS = ("run", "results_dir", "shared_dir", "sweep", "pretraining")
FILE_CHECK_SECTIONS = sorted({section for sections, _ in FILE_CHECKS for section in sections})


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep (or the only run of a plain config)."""

    label: str  # its folder under results/{sweep}/ (a plain run: its name)
    values: dict[str, Any]  # swept key -> this run's value ({} for a plain run)
    config: dict  # its validated config


def expand_sweep(config: dict, check_files: bool = False) -> list[SweepRun]:
    """The runs of a config: one per combination of its `sweep:` values, else the config itself.

    Every run's config is validated like a plain run's; the checks of files and simulators
    (check_files) run once for each distinct setting of the sections they read.
    """
    if "sweep" not in config:
        return [SweepRun(config["run"], {}, validate_config(config, check_files=check_files))]
    validate_config(copy.deepcopy(config))  # the base and the sweep's shape, with the usual messages
    sweep = config["sweep"]
    set_keys = [name for key, values in sweep.items()
                for name in ([key] if isinstance(values, list) else [k for group in values.values() for k in group])]
    reserved = sorted({key for key in set_keys if key.split(".")[0] in RESERVED_KEYS})
    if reserved:
        raise ConfigError(f"sweep cannot vary {', '.join(reserved)}: they name where the sweep's runs go")
    base = {key: value for key, value in config.items() if key != "sweep"}
    results = Path(base.get("results_dir", "results")) / base["run"]
    runs, checked = [], set()
    choices = [list(values) if isinstance(values, dict) else values for values in sweep.values()]
    for combination in itertools.product(*choices):
        values = dict(zip(sweep, combination))
        label = "_".join(f"{key}-{_slug(value)}" for key, value in values.items())
        run = copy.deepcopy(base)
        for key, value in values.items():
            for name, setting in (sweep[key][value].items() if isinstance(sweep[key], dict) else [(key, value)]):
                _set_key(run, name, setting)
        run |= {"run": label, "results_dir": str(results), "shared_dir": str(results / "stages")}
        fingerprint = json.dumps({section: run.get(section) for section in FILE_CHECK_SECTIONS}, sort_keys=True,
                                 default=str)
        try:
            validate_config(run, check_files=check_files and fingerprint not in checked)
        except ConfigError as error:
            raise ConfigError(f"sweep run {label} ({_describe(values)}): {error}") from None
        checked.add(fingerprint)
        runs.append(SweepRun(label, values, run))
    _check_labels(runs)
    _check_same_rules(runs)
    return runs


def _slug(value: Any) -> str:
    """A swept value as part of a folder name: a mapping (an inline hardware profile) as its items."""
    text = "-".join(f"{key}-{item}" for key, item in value.items()) if isinstance(value, dict) else str(value)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in values.items())


def _set_key(config: dict, key: str, value: Any) -> None:
    """Set a dotted key; a `hardware` profile named by a string becomes an inline mapping of it."""
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if depth == 0 and part == "hardware" and not isinstance(child, dict):
            child = {"profile": child or _schema_default("hardware")}
        elif child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"sweep key {key}: {'.'.join(parts[:depth + 1])} is {child!r}, not a section of keys")
        node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _schema_default(key: str) -> Any:
    return yaml.safe_load(SCHEMA_PATH.read_text())["properties"][key]["default"]


def _check_labels(runs: list[SweepRun]) -> None:
    labels = [run.label for run in runs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"sweep values give the same run folder twice ({', '.join(repeated)}): give distinct values")


def _check_same_rules(runs: list[SweepRun]) -> None:
    """One Snakemake rule serves every run, so the runs must agree on what its jobs declare:
    tracker folders (train.report_to) and the kind of device a job asks the cluster for."""
    def shape(run: SweepRun) -> tuple:
        hardware = run.config["hardware"]
        return (bool(run.config["train"]["report_to"]), tuple(sorted(train_job_resources(hardware))),
                tuple(sorted(eval_job_resources(hardware))))

    if len({shape(run) for run in runs}) > 1:
        raise ConfigError("the runs of one sweep must all train on CPUs or all on GPUs, and all or none report to "
                          "trackers (train.report_to): split the sweep in two")


def comparison_paths(sweep_config: dict) -> RunPaths:
    """results/{sweep}/: the comparison page, its figure, table and run file live there."""
    return RunPaths.from_config(sweep_config)


def comparison_files(sweep_config: dict, runs: list[SweepRun]) -> StageFiles:
    """What the comparison reads: each run's evaluations, baseline, report, plan and job times."""
    paths = comparison_paths(sweep_config)
    inputs = []
    for run in runs:
        own, baseline, plan, split = (stage_paths(run.config, stage) for stage in ("eval", "baseline", "plan", "split"))
        steps = checkpoint_steps(run.config["train"])
        pretraining = (run.config.get("pretraining") or {}).get("run")
        inputs.append({
            "label": run.label, "values": run.values,
            "facts": {"seed": run.config["seed"], "init": "pretrained" if run.config["model"]["pretrained"] else "scratch",
                      "pretraining": None if pretraining is None else pretraining["run"]},
            "eval_files": [str(own.evaluation(step)) for step in steps],
            "baseline_json": str(baseline.baseline),
            "report_html": str(own.report),
            "plan_json": str(plan.plan),
            "index_parquet": str(split.index),
            "transfer_files": [str(own.transfer(name)) for name in TRANSFER_EVALUATIONS]
            if ("transfer", None) in active_jobs(run.config) else [],
            "benchmark_files": [str(own.job_benchmark(stage, step)) for stage, step in active_jobs(run.config)
                                if stage in ("train", "eval")],
            # what the run it starts from cost: its demos and training, paid once for every run
            "pretraining_benchmark_files": [] if pretraining is None else [
                str(stage_paths(pretraining, stage).job_benchmark(stage, step)) for stage, step in active_jobs(pretraining)
                if stage in ("demos", "train")],
        })
    return StageFiles({"runs": inputs}, {"out_html": str(paths.root / "index.html"),
                                         "figure_png": str(paths.root / "comparison.png"),
                                         "scaling_png": str(paths.root / "scaling.png"),
                                         "table_csv": str(paths.root / "runs.csv")})


def comparison_run_file(sweep_config: dict, runs: list[SweepRun]) -> dict:
    """The comparison job's run file (format in docs/formats.md)."""
    files = comparison_files(sweep_config, runs)
    return {"stage": "compare", "step": None,
            "config": {key: sweep_config[key] for key in ("run", "results_dir", "sweep") if key in sweep_config},
            "inputs": files.inputs, "outputs": files.outputs}
