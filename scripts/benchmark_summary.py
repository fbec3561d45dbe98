"""Print what a finished run measured: the expert's rates, success per checkpoint with its
Wilson 95% interval, the baseline, and the wall time per stage (Snakemake's benchmark files).

    python scripts/benchmark_summary.py config/benchmarks/aloha-transfer-cube.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from rdtflow.paths import RunPaths


def percent(evaluation: dict, key: str = "success") -> str:
    low, high = evaluation[f"{key}_interval"]
    return f"{evaluation[f'{key}_rate']:.1%} [{low:.1%}, {high:.1%}]"


def sweep_summary(config: dict) -> None:
    """A sweep's runs (runs.csv): final success with its interval, the best checkpoint, time."""
    table = pd.read_csv(RunPaths.from_config(config).root / "runs.csv")
    print("| init | demos | seed | final success [95% interval] | best (step) | training |")
    print("|---|---|---|---|---|---|")
    for row in table.sort_values(["init", "n_demos", "seed"]).itertuples():
        print(f"| {row.init} | {row.n_demos} | {row.seed} | {row.success:.1%} [{row.success_low:.1%}, "
              f"{row.success_high:.1%}] | {row.best_success:.1%} ({row.best_step}) | {row.train_seconds:.0f} s |")


def main(config_path: str) -> None:
    config = yaml.safe_load(Path(config_path).read_text())
    if "sweep" in config:
        sweep_summary(config)
        return
    run = RunPaths.from_config(config)
    expert = run.demos / "expert.json"
    if expert.is_file():
        rates = json.loads(expert.read_text())
        print(f"expert: success {rates['expert_success_rate']:.1%}, held at the end {rates['expert_held_at_end_rate']:.1%} "
              f"of {rates['n_episodes']} episodes, {rates['seconds']:.0f} s")
    print("| policy | success [95% interval] | held at the end | stages | eval wall time |")
    print("|---|---|---|---|---|")
    evaluations = sorted(run.root.glob("eval/checkpoint-*.json"), key=lambda path: int(path.stem.split("-")[1]))
    for path in [*evaluations, run.baseline]:
        evaluation = json.loads(path.read_text())
        stages = ", ".join(f"{name} {rate['rate']:.0%}" for name, rate in evaluation["stage_rates"].items())
        print(f"| {evaluation['policy']} | {percent(evaluation)} | {percent(evaluation, 'held_at_end')} | {stages} | "
              f"{evaluation['wall_seconds']:.0f} s |")
    timings = [(path.relative_to(run.root / "benchmarks").parts[0].removesuffix(".tsv"), pd.read_csv(path, sep="\t")["s"].sum())
               for path in sorted((run.root / "benchmarks").rglob("*.tsv"))]
    per_stage = pd.DataFrame(timings, columns=["stage", "seconds"]).groupby("stage", sort=False)["seconds"].sum()
    print("wall time per stage (s): " + ", ".join(f"{stage} {seconds:.0f}" for stage, seconds in per_stage.items()))


if __name__ == "__main__":
    main(sys.argv[1])
