# What each job asks a cluster for. Rules without a `resources:` entry take the profile's
# default-resources; training's follow from the hardware profile (rdtflow/train/launch.py).
import shlex

from rdtflow.train.launch import train_command, train_job_resources

# Wall-clock minutes of one checkpoint period, first attempt. A period that hits the limit is
# repeated from its start (checkpoints are written only at period ends), so each retry gets
# that much more. Clusters with other limits set `set-resources: train: runtime:` in a profile.
TRAIN_PERIOD_MINUTES = 240

TRAIN_RESOURCES = train_job_resources(config["hardware"])


def train_runtime(wildcards, attempt):
    return TRAIN_PERIOD_MINUTES * attempt


def train_shell_command(wildcards, input):
    """The training job's command; on several nodes, one launcher per node through srun."""
    arguments = f"--config {shlex.quote(settings('train'))} --until-step {wildcards.step}"
    resume = resume_argument(wildcards, input)
    return train_command(config["hardware"], f"{arguments} {resume}" if resume else arguments)
