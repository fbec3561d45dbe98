# Helpers shared by the rules: config validation, each stage's files, and the run files that
# hand a job its config sections and paths.
import json
import os

from rdtflow.config import validate_config
from rdtflow.paths import RunPaths, demo_dir
from rdtflow.stages import STEP_STAGES, active_jobs, run_file, stage_config_json, stage_files
from rdtflow.train.layout import checkpoint_steps


# Schema (workflow/schemas/config.schema.yaml) with defaults, the hardware profile, the
# training lints, the folders the config names, the simulator and the split's size: a bad
# config stops here, before any job runs. A job that Snakemake runs in its own process (a
# Slurm job re-reads this file) skips the file checks the main process made: they would only
# repeat, and building the simulator there costs seconds per job.
validate_config(config, check_files=workflow.is_main_process)

PATHS = RunPaths.from_config(config)
CHECKPOINT_STEPS = checkpoint_steps(config["train"])
# With --use-conda every rule runs in this pinned environment (relative to workflow/rules/).
CONDA_ENV = "../../envs/rdtflow.yaml"


wildcard_constraints:
    step=r"\d+",


def settings(stage):
    """The config sections a stage reads, as JSON: a change re-runs exactly that stage and its dependants."""
    return stage_config_json(config, stage)


def inputs(stage):
    """The rule's input: its stage's declared inputs (for one checkpoint step in step stages)."""
    if stage in STEP_STAGES:
        return lambda wildcards: stage_files(config, stage, int(wildcards.step)).inputs
    return stage_files(config, stage).inputs


def retention_inputs(wildcards):
    """Retention weighs the evaluations once they exist; an evaluation redone later (another
    eval setting) cannot bring back weights already pruned, so it does not redo retention."""
    files = inputs("retention")(wildcards)
    return {**files, "eval_files": ancient(files["eval_files"])}


def outputs(stage):
    return stage_files(config, stage, "{step}" if stage in STEP_STAGES else None).outputs


def tracking_output(stage):
    """The job's tracker folder (train.report_to), a directory output; none without trackers."""
    folder = outputs(stage).get("tracking_out")
    return {"tracking_out": directory(folder)} if folder else {}


def run_config(stage):
    """The job's run file, which its shell command hands the stage."""
    if stage in STEP_STAGES:
        return lambda wildcards: str(PATHS.job_config(stage, wildcards.step))
    return str(PATHS.job_config(stage))


def log_file(stage):
    return str(PATHS.job_log(stage, "{step}" if stage in STEP_STAGES else None))


def benchmark_file(stage):
    """Where Snakemake records the job's wall time and peak memory (scripts/run_benchmark.sh sums them per stage)."""
    return str(PATHS.job_benchmark(stage, "{step}" if stage in STEP_STAGES else None))


def demo_inputs():
    """Generated demos (a folder this workflow writes) or every *.hdf5 file of the user's folder."""
    if config["demos"]["generate"]:
        return str(PATHS.demos)
    # validate_config(check_files=True) above has made sure the folder exists.
    return sorted(str(path) for path in demo_dir(config).rglob("*.hdf5"))


def retention_records():
    """One record per checkpoint when train.checkpoints_total_limit prunes, else none."""
    if config["train"]["checkpoints_total_limit"] is None:
        return []
    return [str(PATHS.retention(step)) for step in CHECKPOINT_STEPS]


def final_outputs():
    return [str(PATHS.report), *retention_records()]


def write_run_files():
    """Every job's run file, rewritten only where its content changed."""
    for stage, step in active_jobs(config):
        path = PATHS.job_config(stage, step)
        content = json.dumps(run_file(config, stage, step), indent=1, sort_keys=True)
        if not path.is_file() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(path.name + f".{os.getpid()}.tmp")
            staging.write_text(content)
            staging.replace(path)


# Written when a run starts (never by a dry run), before any job.
onstart:
    write_run_files()
