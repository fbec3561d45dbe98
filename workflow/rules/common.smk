# Helpers shared by the rules: config validation and sweep expansion, each stage's files, and
# the run files that hand a job its config sections and paths.
#
# Every rule's paths start with the wildcard {root}: the folder that holds that stage's files
# for one run (rdtflow.stages.stage_paths). A plain config has one run, and every root is
# results/{run}; a sweep has one run per combination, and the stages its runs share live
# once under results/{sweep}/stages/ (rdtflow/sweep.py).
import json
import os
import re
from pathlib import Path

from rdtflow.data.episode import instruction_file
from rdtflow.paths import RunPaths, user_demo_dir
from rdtflow.pretraining import export_files, export_job_file, export_jobs, export_run_file, pretraining_runs
from rdtflow.stages import STAGE_SECTIONS, STEP_STAGES, active_jobs, run_file, stage_config_json, stage_files, stage_paths
from rdtflow.sweep import comparison_files, comparison_paths, comparison_run_file, expand_sweep
from rdtflow.train.layout import checkpoint_steps


# Schema (workflow/schemas/config.schema.yaml) with defaults, the hardware profile, the
# training lints, the folders the config names, the simulator and the split's size, for every
# run of a sweep: a bad config stops here, before any job runs. A job that Snakemake runs in
# its own process (a Slurm job re-reads this file) skips the file checks the main process
# made: they would only repeat, and building the simulator there costs seconds per job.
RUNS = expand_sweep(config, check_files=workflow.is_main_process)
SWEEP = "sweep" in config
# A run whose model.pretrained names another run (rdtflow/pretraining.py) brings that run's jobs
# and an export of the named checkpoint; only the runs of the config are the workflow's targets.
CONFIGS = [run.config for run in RUNS] + pretraining_runs([run.config for run in RUNS])
EXPORTS = export_jobs(CONFIGS)
# With --use-conda every rule runs in this pinned environment (relative to workflow/rules/).
CONDA_ENV = "../../envs/rdtflow.yaml"
PATTERN = RunPaths(Path("{root}"))  # a run folder's layout with its root as a wildcard


def _job_configs():
    """stage -> {root: the config of a run whose stage lives there}. Runs that share a stage's
    root give it the same settings (its root is named after them), so any one of them will do."""
    found = {stage: {} for stage in STAGE_SECTIONS}
    for run_config in CONFIGS:
        for stage, _ in active_jobs(run_config):
            found[stage].setdefault(str(stage_paths(run_config, stage).root), run_config)
    return found


JOB_CONFIGS = _job_configs()


def job_config(stage, wildcards):
    return JOB_CONFIGS[stage][wildcards.root]


def job_step(stage, wildcards):
    return int(wildcards.step) if stage in STEP_STAGES else None


def roots(stage):
    """The rule's {root} wildcard matches only the folders of its own jobs."""
    return "|".join(re.escape(root) for root in JOB_CONFIGS[stage]) or "(?!)"


wildcard_constraints:
    step=r"\d+",


def settings(stage):
    """The config sections a stage reads, as JSON: a change re-runs exactly that stage and its dependants."""
    return lambda wildcards: stage_config_json(job_config(stage, wildcards), stage)


def inputs(stage):
    """The rule's input: its stage's declared inputs (for one checkpoint step in step stages)."""
    return lambda wildcards: stage_files(job_config(stage, wildcards), stage, job_step(stage, wildcards)).inputs


def retention_inputs(wildcards):
    """Retention weighs the evaluations once they exist; an evaluation redone later (another
    eval setting) cannot bring back weights already pruned, so it does not redo retention."""
    files = inputs("retention")(wildcards)
    return {**files, "eval_files": ancient(files["eval_files"])}


def outputs(stage):
    """The stage's declared outputs with their root as the {root} wildcard."""
    run = next(iter(JOB_CONFIGS[stage].values()), RUNS[0].config)
    root = str(stage_paths(run, stage).root)
    files = stage_files(run, stage, "{step}" if stage in STEP_STAGES else None).outputs
    return {name: f"{{root}}{path.removeprefix(root)}" for name, path in files.items()}


def tracking_output(stage):
    """The job's tracker folder (train.report_to), a directory output; none without trackers."""
    folder = outputs(stage).get("tracking_out")
    return {"tracking_out": directory(folder)} if folder else {}


def run_config(stage):
    """The job's run file, which its shell command hands the stage."""
    return lambda wildcards: str(RunPaths(Path(wildcards.root)).job_config(stage, job_step(stage, wildcards)))


def log_file(stage):
    return str(PATTERN.job_log(stage, "{step}" if stage in STEP_STAGES else None))


def benchmark_file(stage):
    """Where Snakemake records the job's wall time and peak memory (scripts/run_benchmark.sh sums them per stage)."""
    return str(PATTERN.job_benchmark(stage, "{step}" if stage in STEP_STAGES else None))


def export_inputs(wildcards):
    """The checkpoint an export job writes out (every checkpoint and evaluation, for best)."""
    return export_files(EXPORTS[wildcards.root][wildcards.label], wildcards.label).inputs


def export_run_config(wildcards):
    return str(export_job_file(wildcards.root, wildcards.label))


def demo_inputs(wildcards):
    """Generated demos (a folder this workflow writes), or every *.hdf5 file of the user's folder
    and the instruction files beside them that exist, so that editing one re-runs validation."""
    run = job_config("validate", wildcards)
    if run["demos"]["generate"]:
        return str(stage_paths(run, "demos").demos)
    # expand_sweep(check_files=True) above has made sure the folder exists.
    episodes = sorted(user_demo_dir(run).rglob("*.hdf5"))
    instruction = run["data"]["instruction"]
    instructions = [instruction_file(path, instruction["file"]) for path in episodes] if instruction["source"] == "json" else []
    return [str(path) for path in episodes] + sorted({str(path) for path in instructions if path.is_file()})


def retention_records(run):
    """One record per checkpoint when train.checkpoints_total_limit prunes, else none."""
    if run["train"]["checkpoints_total_limit"] is None:
        return []
    return [str(stage_paths(run, "retention").retention(step)) for step in checkpoint_steps(run["train"])]


def final_outputs():
    """Every run's report and retention records, and a sweep's comparison of its runs."""
    targets = [path for run in RUNS for path in (str(stage_paths(run.config, "report").report), *retention_records(run.config))]
    if SWEEP:
        targets.append(comparison_files(config, RUNS).outputs["out_html"])
    return targets


def _write_if_changed(path, content):
    if not path.is_file() or path.read_text() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + f".{os.getpid()}.tmp")
        staging.write_text(content)
        staging.replace(path)


def write_run_files():
    """Every job's run file, rewritten only where its content changed."""
    for run_config in CONFIGS:
        for stage, step in active_jobs(run_config):
            content = json.dumps(run_file(run_config, stage, step), indent=1, sort_keys=True)
            _write_if_changed(stage_paths(run_config, stage).job_config(stage, step), content)
    for root, labels in EXPORTS.items():
        for label, pretraining in labels.items():
            content = json.dumps(export_run_file(pretraining, label), indent=1, sort_keys=True)
            _write_if_changed(export_job_file(root, label), content)
    if SWEEP:
        content = json.dumps(comparison_run_file(config, RUNS), indent=1, sort_keys=True)
        _write_if_changed(comparison_paths(config).job_config("compare"), content)


# Written when a run starts (never by a dry run), before any job.
onstart:
    write_run_files()
