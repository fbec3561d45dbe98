"""`rdtflow`: one subcommand per pipeline stage, usable with or without Snakemake.

Every subcommand takes `--config`: a YAML/JSON file with the full run configuration
(config/config.yaml) or the inline JSON the workflow passes. Outputs go to
results/{run}/ as described in docs/formats.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rdtflow.config import checkpoint_steps, load_config
from rdtflow.paths import RunPaths, demo_dir, encoder_dirs
from rdtflow.stages import stage_config


def _demos(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.sim.demos import generate_demos
    from rdtflow.sim.pick_place import TaskSettings

    demos = config["demos"]
    out = RunPaths.from_config(config).demos
    completed = generate_demos(out, demos["n_episodes"], demos["seed"], TaskSettings.from_config(demos["sim"]))
    print(f"wrote {demos['n_episodes']} episodes to {out} ({completed} completed by the expert)")


def _encoders(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.model.encoders import build_small_text_encoder, build_small_vision_tower

    encoders = config["encoders"]
    vision_dir, text_dir = encoder_dirs(config)
    if encoders["vision_path"] is None:
        build_small_vision_tower(vision_dir, config["demos"]["sim"]["image_size"], encoders["tiny_vision"], encoders["seed"])
    if encoders["text_path"] is None:
        build_small_text_encoder(text_dir, encoders["tiny_text"], encoders["max_lang_tokens"], encoders["seed"])
    print(f"vision encoder: {vision_dir}\ntext encoder: {text_dir}")


def _validate(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.data.validate import validate_demos

    paths = RunPaths.from_config(config)
    validate_demos(demo_dir(config), config["data"], paths.validated, paths.validation_report)


def _split(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.data.split import split_episodes

    paths = RunPaths.from_config(config)
    index = split_episodes(paths.validated, config["split"], paths.index)
    print(f"split: {index['split'].value_counts().to_dict()}")


def _manifest(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.data.manifest import build_manifest

    paths = RunPaths.from_config(config)
    manifest = build_manifest(paths.index, config["data"], paths.manifest, paths.stats)
    print(f"manifest: {len(manifest)} samples from {manifest['episode_id'].nunique()} training episodes")


def _encode_lang(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.model.language import encode_instructions

    paths = RunPaths.from_config(config)
    count = encode_instructions(paths.index, encoder_dirs(config)[1], config["encoders"], paths.language)
    print(f"encoded {count} distinct instructions and the empty one into {paths.language}")


def _encode_images(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.model.image_features import encode_image_features

    paths = RunPaths.from_config(config)
    encode_image_features(paths.manifest, config["data"], encoder_dirs(config)[0], paths.image_features)


def _plan(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.train.plan import write_plan

    write_plan(config)


def _train(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.train.trainer import train_until

    out = train_until(config, args.until_step, args.resume_from)
    print(f"checkpoint written: {out}")


def _success_text(result: dict) -> str:
    if result["success_rate"] is None:
        return "no simulator, so no success rate"
    return f"success {result['success_rate']:.1%}"


def _eval(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.evaluate.run import evaluate_checkpoint
    from rdtflow.train.retention import apply_retention

    result = evaluate_checkpoint(config, args.checkpoint, args.out)
    apply_retention(config, checkpoint_steps(config["train"]))
    print(f"{args.checkpoint.name}: {_success_text(result)} on {result['n_episodes']} held-out episodes, "
          f"open-loop MSE {result['open_loop_mse']:.4f}")


def _baseline(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.evaluate.run import evaluate_baseline

    result = evaluate_baseline(config, args.out)
    print(f"baseline: {_success_text(result)} on {result['n_episodes']} held-out episodes, "
          f"open-loop MSE {result['open_loop_mse']:.4f}")


def _export(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.model.weights import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} to {out} (official RDT layout: config.json + model.safetensors, ema/)")


def _report(config: dict, args: argparse.Namespace) -> None:
    from rdtflow.report.html import write_report

    paths = RunPaths.from_config(config)
    steps = checkpoint_steps(config["train"])
    write_report(
        config=config,
        validation_json=paths.validation_report,
        index_parquet=paths.index,
        checkpoint_dirs=[paths.checkpoint(step) for step in steps],
        eval_files=[paths.evaluation(step) for step in steps],
        baseline_json=paths.baseline,
        out_html=paths.report,
    )
    print(f"report: {paths.report.resolve()}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdtflow",
        description="Raw robot demonstrations (HDF5) -> fine-tuned RDT checkpoints -> held-out evaluation -> HTML report. "
        "Each subcommand is one pipeline stage; `snakemake` runs them all with caching.",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", required=True, help="config YAML/JSON file (see config/config.yaml) or inline JSON")
        sub.set_defaults(handler=handler)
        return sub

    stage("demos", _demos, "Generate scripted-expert episodes of the built-in pick-and-place task into results/{run}/demos.")
    stage("encoders", _encoders, "Build the small SigLIP/T5 encoders (when the config gives no encoder paths).")
    stage("validate", _validate, "Check every *.hdf5 episode; write data/validated.parquet and data/validation.json.")
    stage("split", _split, "Deterministic train / held-out split of the valid episodes; write data/index.parquet.")
    stage("manifest", _manifest, "Full-step sample manifest and training-set statistics: data/manifest.parquet, data/stats.json.")
    stage("encode-lang", _encode_lang, "Embed each distinct instruction once with the text encoder: lang/embeddings.safetensors.")
    stage("encode-images", _encode_images, "Encode every training frame once with the frozen vision tower: "
          "features/images.safetensors (model.precompute_image_features).")
    stage("plan", _plan, "Check the training config against the hardware profile before any GPU hour: batch layout, "
          "steps, epochs, estimated peak memory per device, and the exact accelerate launch line; writes plan.json/plan.txt.")
    train = stage("train", _train, "Train up to --until-step optimizer steps, resuming from --resume-from; writes train/checkpoint-{step}/. "
                  "Run it under `accelerate launch` for several processes.")
    train.add_argument("--until-step", type=int, required=True, help="optimizer step of the checkpoint to write")
    train.add_argument("--resume-from", type=Path, default=None, help="checkpoint folder to continue from")
    evaluate = stage("eval", _eval, "Closed-loop success and open-loop action error of one checkpoint on the held-out episodes.")
    evaluate.add_argument("--checkpoint", type=Path, required=True, help="train/checkpoint-{step} folder")
    evaluate.add_argument("--out", type=Path, required=True, help="JSON file to write (eval/checkpoint-{step}.json)")
    baseline = stage("baseline", _baseline, "Evaluate the blind mean-trajectory baseline on the held-out episodes.")
    baseline.add_argument("--out", type=Path, required=True, help="JSON file to write (eval/baseline.json)")
    export = stage("export", _export, "Write a checkpoint in the official RDT layout (config.json + model.safetensors, "
                   "ema/ when kept, stats.json) for RDT's own inference code.")
    export.add_argument("--checkpoint", type=Path, required=True, help="train/checkpoint-{step} folder")
    export.add_argument("--out", type=Path, required=True, help="folder to write")
    stage("report", _report, "Write the self-contained HTML report: report/index.html.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except Exception as error:  # a bad config is the user's to fix: say what, not a traceback
        print(f"rdtflow {args.stage}: invalid configuration: {error}", file=sys.stderr)
        return 2
    # A stage sees only the sections it declares (rdtflow/stages.py): the same ones the workflow
    # passes it and re-runs it for, so an undeclared dependency fails loudly instead of hiding.
    args.handler(stage_config(config, args.stage.replace("-", "_")), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
