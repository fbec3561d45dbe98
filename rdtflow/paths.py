"""Where every stage's files live under results/{run}/ (formats in docs/formats.md).

The Snakefile and the CLI both use this, so a path is spelled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    def checkpoint(self, step: int) -> Path:
        return self.root / "train" / f"checkpoint-{step}"

    def evaluation(self, step: int) -> Path:
        return self.root / "eval" / f"checkpoint-{step}.json"

    @property
    def baseline(self) -> Path:
        return self.root / "eval" / "baseline.json"

    @property
    def report(self) -> Path:
        return self.root / "report" / "index.html"


def demo_dir(config: dict) -> Path:
    """The folder of episodes: generated ones, or the user's."""
    if config["demos"]["generate"]:
        return RunPaths.from_config(config).demos
    if not config["demos"]["dir"]:
        raise ValueError("demos.dir is not set: give the folder of *.hdf5 episodes, or set demos.generate: true")
    return Path(config["demos"]["dir"])


def encoder_dirs(config: dict) -> tuple[Path, Path]:
    """(vision, text) encoder folders: the configured ones or the pipeline-built small ones."""
    paths = RunPaths.from_config(config)
    encoders = config["encoders"]
    return (
        Path(encoders["vision_path"]) if encoders["vision_path"] else paths.vision_encoder,
        Path(encoders["text_path"]) if encoders["text_path"] else paths.text_encoder,
    )
