"""Where every file lives: the run's folders under results/{run}/ and the files inside a
checkpoint (formats in docs/formats.md).

This is the one place that spells a path. The workflow's rules declare their inputs and
outputs from it (rdtflow/stages.py), and the stages receive those paths; no stage works a path
out for itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rdtflow.errors import ConfigError

CHECKPOINT_PREFIX = "checkpoint-"


class CheckpointFile:
    """Names of the files in a checkpoint folder: RDT's official layout plus what resuming needs."""

    CONFIG = "config.json"  # RDT's flat config
    WEIGHTS = "model.safetensors"
    UPSTREAM_WEIGHTS = "pytorch_model.bin"  # how upstream RDT saves its weights
    EMA_DIR = "ema"
    EMA_WEIGHTS = f"{EMA_DIR}/{WEIGHTS}"
    STATS = "stats.json"
    RUN_CONFIG = "run_config.json"  # the training stage's resolved config and the rdtflow version
    TRAINER_STATE = "trainer_state.json"
    TRAIN_LOG = "train_log.csv"
    OPTIMIZER = "state/optimizer.pt"
    SCHEDULER = "state/scheduler.pt"
    EMA_STATE = "state/ema.pt"
    PRUNED = "pruned.json"
    CHECKSUMS = "checksums.json"
    # What retention deletes: everything needed to act or to resume, nothing a report reads.
    LARGE = (WEIGHTS, EMA_WEIGHTS, OPTIMIZER, SCHEDULER, EMA_STATE)


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def from_config(cls, config: dict) -> "RunPaths":
        return cls(Path(config.get("results_dir", "results")) / config["run"])

    @property
    def demos(self) -> Path:
        return self.root / "demos"

    @property
    def validated(self) -> Path:
        return self.root / "data" / "validated.parquet"

    @property
    def validation_report(self) -> Path:
        return self.root / "data" / "validation.json"

    @property
    def index(self) -> Path:
        return self.root / "data" / "index.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / "data" / "manifest.parquet"

    @property
    def stats(self) -> Path:
        return self.root / "data" / "stats.json"

    @property
    def vision_encoder(self) -> Path:
        return self.root / "encoders" / "vision"

    @property
    def text_encoder(self) -> Path:
        return self.root / "encoders" / "text"

    @property
    def image_features(self) -> Path:
        return self.root / "features" / "images.safetensors"

    @property
    def language(self) -> Path:
        return self.root / "lang" / "embeddings.safetensors"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def plan_text(self) -> Path:
        return self.root / "plan.txt"

    def checkpoint(self, step: int | str) -> Path:
        """`step` may be a number or a wildcard pattern such as "{step}"."""
        return self.root / "train" / f"{CHECKPOINT_PREFIX}{step}"

    def evaluation(self, step: int | str) -> Path:
        return self.root / "eval" / f"checkpoint-{step}.json"

    def videos(self, step: int | str | None) -> Path:
        """The rollout videos of checkpoint `step`'s evaluation, or of the baseline's (None)."""
        return self.root / "eval" / "videos" / ("baseline" if step is None else f"checkpoint-{step}")

    def tracking(self, stage: str, step: int | str) -> Path:
        """The experiment trackers' files (train.report_to) of one train or eval job."""
        return self.root / "tracking" / stage / f"{CHECKPOINT_PREFIX}{step}"

    def retention(self, step: int | str) -> Path:
        """What checkpoint retention did once checkpoint `step` was evaluated."""
        return self.root / "train" / f"retention-{step}.json"

    def export(self, label: str) -> Path:
        """A checkpoint written in the official layout for another run to start from: final,
        best or checkpoint-STEP (rdtflow.pretraining)."""
        return self.root / "export" / label

    def transfer(self, name: str) -> Path:
        """An evaluation across runs (eval.transfer): start-own, start-pretraining, final-pretraining."""
        return self.root / "eval" / "transfer" / f"{name}.json"

    @property
    def baseline(self) -> Path:
        return self.root / "eval" / "baseline.json"

    @property
    def report(self) -> Path:
        return self.root / "report" / "index.html"

    @property
    def training_figure(self) -> Path:
        return self.root / "report" / "training.png"

    @property
    def episode_lengths_figure(self) -> Path:
        return self.root / "report" / "episode_lengths.png"

    @property
    def provenance(self) -> Path:
        """What made the run: code, packages, config hash, machine and each stage's wall time."""
        return self.root / "provenance.json"

    @property
    def success_figure(self) -> Path:
        return self.root / "report" / "success.png"

    def job_config(self, stage: str, step: int | str | None = None) -> Path:
        """The run file the workflow hands one job: its stage's config sections and its paths.
        Jobs of a checkpoint step (train, eval, retention) have one each."""
        return self.root / "config" / _job_file(stage, step, ".json")

    def job_log(self, stage: str, step: int | str | None = None) -> Path:
        return self.root / "logs" / _job_file(stage, step, ".log")

    def job_benchmark(self, stage: str, step: int | str | None = None) -> Path:
        """Snakemake's measurement of a job (wall seconds, peak memory), one TSV per job."""
        return self.root / "benchmarks" / _job_file(stage, step, ".tsv")


def _job_file(stage: str, step: int | str | None, suffix: str) -> str:
    return f"{stage}{suffix}" if step is None else f"{stage}/{CHECKPOINT_PREFIX}{step}{suffix}"


def checkpoint_step(folder: Path) -> int | None:
    """The step of a checkpoint folder from its name (RunPaths.checkpoint), None for other folders."""
    step = Path(folder).name.removeprefix(CHECKPOINT_PREFIX)
    return int(step) if Path(folder).name.startswith(CHECKPOINT_PREFIX) and step.isdigit() else None


def user_demo_dir(config: dict) -> Path:
    """The user's folder of episodes (demos.generate false)."""
    if not config["demos"]["dir"]:
        raise ConfigError("demos.dir is not set: give the folder of *.hdf5 episodes, or set demos.generate: true")
    return Path(config["demos"]["dir"])


def encoder_dirs(config: dict, built: RunPaths) -> tuple[Path, Path]:
    """(vision, text) encoder folders: the configured ones, or the small ones the encoders stage
    built under `built` (its folder: rdtflow.stages.stage_paths)."""
    encoders = config["encoders"]
    return (
        Path(encoders["vision_path"]) if encoders["vision_path"] else built.vision_encoder,
        Path(encoders["text_path"]) if encoders["text_path"] else built.text_encoder,
    )
