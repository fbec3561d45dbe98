# What each job asks a cluster for, and the threads it takes. Rules without a `resources:`
# entry take the profile's default-resources; training's follow from its run's hardware profile
# (rdtflow/train/launch.py). The runs of a sweep may differ in hardware, so each value is
# looked up from the job's run; they agree on which resources they name (rdtflow/sweep.py).
import os

from rdtflow.train.launch import eval_job_resources, train_command, train_job_resources, train_runtime_minutes


def _per_job(stage, resources_of):
    """Snakemake resources of `stage`'s jobs, each a function of the job's wildcards."""
    def value(name):
        return lambda wildcards: resources_of(job_config(stage, wildcards)["hardware"])[name]

    return {name: value(name) for name in resources_of(RUNS[0].config["hardware"])}


TRAIN_RESOURCES = _per_job("train", train_job_resources)
# An evaluation job runs its policy on one GPU where the profile has GPUs.
EVAL_RESOURCES = _per_job("eval", eval_job_resources)


def train_threads(wildcards):
    return train_job_resources(job_config("train", wildcards)["hardware"])["cpus_per_task"]


def eval_threads(wildcards):
    """eval.threads auto: all of this machine's cores, which Snakemake lowers to its --cores."""
    threads = job_config("eval", wildcards)["eval"]["threads"]
    return os.cpu_count() if threads == "auto" else threads


def validate_threads(wildcards):
    """data.validate_workers auto: all of this machine's cores, which Snakemake lowers to its --cores."""
    workers = job_config("validate", wildcards)["data"]["validate_workers"]
    return os.cpu_count() if workers == "auto" else workers


def train_runtime(wildcards, attempt):
    return train_runtime_minutes(attempt)


def train_shell_command(wildcards, threads):
    """The training job's command (one launcher per node through srun on several nodes), with
    the threads Snakemake gave the job shared among its CPU processes."""
    run_file = RunPaths(Path(wildcards.root)).job_config("train", wildcards.step)
    return train_command(job_config("train", wildcards)["hardware"], f"--run-config {run_file}", threads)
