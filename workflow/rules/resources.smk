# What each job asks a cluster for, and the threads it takes. Rules without a `resources:`
# entry take the profile's default-resources; training's follow from the hardware profile
# (rdtflow/train/launch.py).
import os

from rdtflow.train.launch import eval_job_resources, train_command, train_job_resources, train_runtime_minutes

TRAIN_RESOURCES = train_job_resources(config["hardware"])
# An evaluation job runs its policy on one GPU where the profile has GPUs.
EVAL_RESOURCES = eval_job_resources(config["hardware"])
# eval.threads auto: all of this machine's cores, which Snakemake lowers to its --cores.
EVAL_THREADS = os.cpu_count() if config["eval"]["threads"] == "auto" else config["eval"]["threads"]


def train_runtime(wildcards, attempt):
    return train_runtime_minutes(attempt)


def train_shell_command(wildcards, threads):
    """The training job's command (one launcher per node through srun on several nodes), with
    the threads Snakemake gave the job shared among its CPU processes."""
    return train_command(config["hardware"], f"--run-config {PATHS.job_config('train', wildcards.step)}", threads)
