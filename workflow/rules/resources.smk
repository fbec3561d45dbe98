# What each job asks a cluster for, and the threads it takes. Rules without a `resources:`
# entry take the profile's default-resources; training's follow from the hardware profile
# (rdtflow/train/launch.py).
import os

from rdtflow.train.launch import train_command, train_job_resources

# Wall-clock minutes of one checkpoint period, first attempt. A period that hits the limit is
# repeated from its start (checkpoints are written only at period ends), so each retry gets
# that much more. Clusters with other limits set `set-resources: train: runtime:` in a profile.
TRAIN_PERIOD_MINUTES = 240

TRAIN_RESOURCES = train_job_resources(config["hardware"])
# eval.threads auto: all of this machine's cores, which Snakemake lowers to its --cores.
EVAL_THREADS = os.cpu_count() if config["eval"]["threads"] == "auto" else config["eval"]["threads"]


def train_runtime(wildcards, attempt):
    return TRAIN_PERIOD_MINUTES * attempt


def train_shell_command(wildcards, threads):
    """The training job's command (one launcher per node through srun on several nodes), with
    the threads Snakemake gave the job shared among its CPU processes."""
    return train_command(config["hardware"], f"--run-config {PATHS.job_config('train', wildcards.step)}", threads)
