"""`rdtflow`: one subcommand per pipeline stage, usable with or without Snakemake.

A stage runs from one of two files:
- `--run-config results/RUN/config/JOB.json`, the run file the workflow writes for each job:
  the stage's config sections and the paths its rule declares (rdtflow.stages.run_file);
- `--config FILE`, a whole run config (config/config.yaml), to run a stage by hand: its paths
  are then the ones the workflow would declare for it.

Either way a stage function receives its paths as arguments and reads nothing else. Files are
described in docs/formats.md.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rdtflow.config import load_config, load_run_file
from rdtflow.errors import ConfigError, RdtflowError
from rdtflow.stages import STEP_STAGES, stage_config, stage_files


@dataclass(frozen=True)
class Job:
    """One run of a stage: the config sections it declares, its paths, its checkpoint step."""

    config: dict
    inputs: dict
    outputs: dict
    step: int | None


def _demos(job: Job) -> None:
    from rdtflow.data.cameras import recorded_cameras
    from rdtflow.sim.registry import demo_writer

    demos, sim = job.config["demos"], job.config["sim"]
    out = Path(job.outputs["out_dir"])
    summary = demo_writer(sim)(out, demos["n_episodes"], demos["seed"], recorded_cameras(job.config["data"]["cameras"]),
                               sim["options"], demos["workers"])
    stages = ", ".join(f"{name} {rate:.0%}" for name, rate in summary["stage_rates"].items())
    print(f"wrote {demos['n_episodes']} {sim['env']} episodes to {out} in {summary['seconds']:.0f} s; expert success "
          f"{summary['expert_success_rate']:.1%}, held at the end {summary['expert_held_at_end_rate']:.1%} ({stages})")


def _encoders(job: Job) -> None:
    from rdtflow.model.encoders import build_small_text_encoder, build_small_vision_tower

    encoders = job.config["encoders"]
    if encoders["vision_path"] is None:
        tiny = dict(encoders["tiny_vision"])
        build_small_vision_tower(Path(job.outputs["vision_dir"]), tiny.pop("image_size"), tiny, encoders["seed"])
    if encoders["text_path"] is None:
        build_small_text_encoder(Path(job.outputs["text_dir"]), encoders["tiny_text"], encoders["max_lang_tokens"],
                                 encoders["seed"])
    print(f"vision encoder: {job.outputs['vision_dir']}\ntext encoder: {job.outputs['text_dir']}")


def _validate(job: Job) -> None:
    from rdtflow.data.validate import validate_demos

    validate_demos(data_cfg=job.config["data"], **_paths(job))


def _split(job: Job) -> None:
    from rdtflow.data.split import split_episodes

    index = split_episodes(split_cfg=job.config["split"], **_paths(job))
    print(f"split: {index['split'].value_counts().to_dict()}")


def _manifest(job: Job) -> None:
    from rdtflow.data.manifest import build_manifest

    manifest = build_manifest(data_cfg=job.config["data"], **_paths(job))
    print(f"manifest: {len(manifest)} samples from {manifest['episode_id'].nunique()} training episodes")


def _encode_lang(job: Job) -> None:
    from rdtflow.model.language import encode_instructions

    count = encode_instructions(encoders_cfg=job.config["encoders"], **_paths(job))
    print(f"encoded {count} distinct instructions and the empty one into {job.outputs['out_path']}")


def _encode_images(job: Job) -> None:
    from rdtflow.model.image_features import encode_image_features

    encode_image_features(data_cfg=job.config["data"], **_paths(job))


def _plan(job: Job) -> None:
    from rdtflow.train.plan import write_plan

    write_plan(job.config, **_paths(job))


def _train(job: Job) -> None:
    from rdtflow.train.trainer import train_until

    out = train_until(job.config, job.step, **_paths(job))
    print(f"checkpoint written: {out}")


def _success_text(result: dict) -> str:
    if result["success_rate"] is None:
        return "no simulator, so no success rate"
    low, high = result["success_interval"]
    return (f"success {result['success_rate']:.1%} [95% interval {low:.1%}-{high:.1%}], "
            f"held at the end {result['held_at_end_rate']:.1%}")


def _eval(job: Job) -> None:
    from rdtflow.evaluate.run import evaluate_checkpoint

    result = evaluate_checkpoint(job.config, **_paths(job))
    print(f"checkpoint-{result['step']}: {_success_text(result)} on {result['n_episodes']} held-out episodes, "
          f"open-loop MSE {result['open_loop_mse']:.4f}")


def _retention(job: Job) -> None:
    from rdtflow.train.retention import apply_retention

    apply_retention(job.config["train"]["checkpoints_total_limit"], job.step, **_paths(job))


def _baseline(job: Job) -> None:
    from rdtflow.evaluate.run import evaluate_baseline

    result = evaluate_baseline(job.config, **_paths(job))
    print(f"baseline: {_success_text(result)} on {result['n_episodes']} held-out episodes, "
          f"open-loop MSE {result['open_loop_mse']:.4f}")


def _report(job: Job) -> None:
    from rdtflow.report.page import write_report

    write_report(config=job.config, **_paths(job))
    print(f"report: {Path(job.outputs['out_html']).resolve()}")


def _transfer(job: Job) -> None:
    from rdtflow.evaluate.run import evaluate_transfer

    for name, result in evaluate_transfer(config=job.config, **_paths(job)).items():
        print(f"{name}: success {result['success_rate']:.1%} on {result['n_episodes']} held-out episodes")


def _compare(job: Job) -> None:
    from rdtflow.report.compare import write_comparison

    write_comparison(config=job.config, runs=job.inputs["runs"], **{name: Path(path) for name, path in job.outputs.items()})
    print(f"comparison of {len(job.inputs['runs'])} runs: {Path(job.outputs['out_html']).resolve()}")


def _export(args: argparse.Namespace) -> None:
    """By hand (--checkpoint, --out), or as the workflow's export job (--run-config, rdtflow.pretraining)."""
    if args.run_config is not None:
        from rdtflow.train.export import export_run_checkpoint

        run = load_run_file(args.run_config, "export")
        record = export_run_checkpoint(**_paths(Job(run["config"], run["inputs"], run["outputs"], None)))
        print(f"exported checkpoint {record['step']} ({record['chosen_by']}) to {run['outputs']['out_dir']}"
              f"{' with its EMA weights' if record['ema'] else ''}")
        return
    if args.checkpoint is None or args.out is None:
        raise ConfigError("rdtflow export needs --checkpoint and --out (or a workflow's --run-config)")
    from rdtflow.model.weights import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} to {out} (official RDT layout: config.json + model.safetensors, ema/, "
          "with the run's config and rdtflow version)")


def _inspect(args: argparse.Namespace) -> int:
    from rdtflow.inspection import inspect_file

    text, fits = inspect_file(args.path)
    print(text)
    return 0 if fits else 1


def _paths(job: Job) -> dict:
    """The job's inputs and outputs as keyword arguments of its stage function, as Paths."""
    def as_path(value: str | list[str]) -> Path | list[Path]:
        return [Path(item) for item in value] if isinstance(value, list) else Path(value)

    return {name: as_path(value) for name, value in (job.inputs | job.outputs).items()}


STAGES: dict[str, tuple[Callable[[Job], None], str]] = {
    "demos": (_demos, "Generate scripted-expert episodes of the built-in pick-and-place task into results/{run}/demos."),
    "encoders": (_encoders, "Build the small SigLIP/T5 encoders (when the config gives no encoder paths)."),
    "validate": (_validate, "Check every *.hdf5 episode; write data/validated.parquet and data/validation.json."),
    "split": (_split, "Deterministic train / held-out split of the valid episodes; write data/index.parquet."),
    "manifest": (_manifest, "Full-step sample manifest and training-set statistics: data/manifest.parquet, "
                 "data/stats.json."),
    "encode-lang": (_encode_lang, "Embed each distinct instruction once with the text encoder: "
                    "lang/embeddings.safetensors."),
    "encode-images": (_encode_images, "Encode every training frame once with the frozen vision tower: "
                      "features/images.safetensors (model.precompute_image_features)."),
    "plan": (_plan, "Check the training config against the hardware profile before any GPU hour: batch layout, "
             "steps, epochs, estimated peak memory per device, the camera slots, and the exact accelerate launch "
             "line; writes plan.json/plan.txt, which training follows."),
    "train": (_train, "Train up to --until-step optimizer steps, resuming from the checkpoint before it; writes "
              "train/checkpoint-{step}/. Run it under `accelerate launch` for several processes."),
    "eval": (_eval, "Closed-loop success and open-loop action error of one checkpoint on the held-out episodes."),
    "retention": (_retention, "Apply train.checkpoints_total_limit once checkpoint --step is evaluated: delete the "
                  "weights of checkpoints that are neither the best by held-out success nor the latest."),
    "baseline": (_baseline, "Evaluate the blind mean-trajectory baseline on the held-out episodes."),
    "transfer": (_transfer, "eval.transfer: the weights a fine-tune starts from on its own held-out episodes "
                 "(zero-shot), and those weights and its final checkpoint on its pretraining's held-out episodes."),
    "report": (_report, "Write the self-contained HTML report (report/index.html) and provenance.json."),
    "compare": (_compare, "Compare the runs of a sweep (a config with `sweep:`): every run's success per checkpoint, "
                "each setting's mean +- spread over seeds, links to each run's report; results/{run}/index.html."),
}
STEP_FLAGS = {"train": ("--until-step", "optimizer step of the checkpoint to write"),
              "eval": ("--step", "optimizer step of the checkpoint to evaluate"),
              "retention": ("--step", "optimizer step of the checkpoint just evaluated")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdtflow",
        description="Raw robot demonstrations (HDF5) -> fine-tuned RDT checkpoints -> held-out evaluation -> HTML report. "
        "Each subcommand is one pipeline stage; `snakemake` runs them all with caching.",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text) in STAGES.items():
        sub = stages.add_parser(name, help=help_text, description=help_text)
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--config", type=Path, help="a whole run config (YAML/JSON, see config/config.yaml), "
                            "to run this stage by hand on the paths the workflow would give it")
        source.add_argument("--run-config", type=Path, help="the run file the workflow writes for a job "
                            "(results/{run}/config/JOB.json: this stage's config sections and its paths)")
        if name in STEP_FLAGS:
            flag, flag_help = STEP_FLAGS[name]
            sub.add_argument(flag, dest="step", type=int, help=f"{flag_help} (with --config; a run file names it)")
        else:
            sub.set_defaults(step=None)
    export = stages.add_parser("export", help="Write a checkpoint in the official RDT layout for RDT's own code.",
                               description="Write a checkpoint in the official RDT layout (config.json + "
                               "model.safetensors, ema/ when kept, stats.json, run_config.json) for RDT's own code. "
                               "It takes no --config: the checkpoint carries the config it was trained with.")
    export.add_argument("--checkpoint", type=Path, help="train/checkpoint-{step} folder")
    export.add_argument("--out", type=Path, help="folder to write")
    export.add_argument("--run-config", type=Path, help="instead: the run file of a workflow's export job, which "
                        "exports another run's final, best or named checkpoint for a run that starts from it")
    inspect = stages.add_parser("inspect", help="Show what one episode file holds and which data preset reads it.",
                                description="Print the tree of one HDF5 episode file (groups, datasets with shapes, "
                                "dtypes, storage and frame format, links, attributes) and, for every shipped data "
                                "preset (config/data/), whether validation would read it or why not. Exits 1 when "
                                "no preset fits.")
    inspect.add_argument("path", type=Path, help="an episode file (*.hdf5)")
    return parser


def _job(args: argparse.Namespace) -> Job:
    """The job from the workflow's run file, or from a whole config and the stage's usual paths."""
    stage = args.stage.replace("-", "_")
    if args.run_config is not None:
        run = load_run_file(args.run_config, stage)
        return Job(run["config"], run["inputs"], run["outputs"], run["step"])
    if stage in STEP_STAGES and args.step is None:
        raise ConfigError(f"rdtflow {args.stage} --config needs {STEP_FLAGS[stage][0]} N (the checkpoint step)")
    config = load_config(args.config)
    if stage == "compare":
        return Job(*_comparison(config), None)
    if "sweep" in config:
        raise ConfigError(f"{args.config} is a sweep (it has `sweep:`): run one of its runs' stages through snakemake, "
                          "or give a config without `sweep:`")
    files = stage_files(config, stage, args.step)
    # A stage sees only the sections it declares (rdtflow/stages.py): the same ones the workflow
    # hands it and re-runs it for, so an undeclared dependency fails loudly instead of hiding.
    return Job(stage_config(config, stage), files.inputs, files.outputs, args.step)


def _comparison(config: dict) -> tuple[dict, dict, dict]:
    """A sweep config's comparison job: its config, inputs and outputs as the workflow gives them."""
    from rdtflow.sweep import comparison_run_file, expand_sweep

    if "sweep" not in config:
        raise ConfigError("rdtflow compare needs a config with `sweep:` (the runs to compare)")
    run = comparison_run_file(config, expand_sweep(config))
    return run["config"], run["inputs"], run["outputs"]


def main(argv: list[str] | None = None) -> int:
    """Run one stage. A user's mistake is one line and a non-zero exit; a bug propagates."""
    args = _parser().parse_args(argv)
    try:
        if args.stage == "export":
            _export(args)
        elif args.stage == "inspect":
            return _inspect(args)
        else:
            STAGES[args.stage][0](_job(args))
    except ConfigError as error:
        print(f"rdtflow {args.stage}: invalid configuration: {error}", file=sys.stderr)
        return 2
    except RdtflowError as error:
        print(f"rdtflow {args.stage}: {error}", file=sys.stderr)
        return 1
    return 0


def entry() -> int:
    """The `rdtflow` command: anything but a user's mistake is an internal error, shown with
    its traceback (in the job's log) and then one line that says so."""
    try:
        return main()
    except Exception as error:  # reported, not swallowed: the exit code says it failed
        traceback.print_exc()
        stage = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
        print(f"rdtflow {stage}: internal error (a bug in rdtflow, not in your data or config): "
              f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entry())
