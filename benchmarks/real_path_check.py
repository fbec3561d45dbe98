"""The real RDT path at full size on one GPU: the check issue 4 asks for, as one script.

1. Writes a random RDT-1B checkpoint in the official layout (config.json + pytorch_model.bin)
   and builds a SigLIP-so400m-shaped vision tower and a T5-shaped text encoder (width 4096;
   `--full-t5` gives all 24 XXL layers) from configs, so nothing is downloaded.
2. Writes agilex-format episodes (3 cameras of 480x640 JPEG, 14 joints, a still start) and
   runs validate -> split -> manifest -> encode-lang -> plan -> train (bf16, image
   augmentation, the tower in the loop at 384 px) through the `rdtflow` CLI and the exact
   launch line the workflow uses.
3. Exports the checkpoint, reloads it into a fresh model and checks identical predictions.
4. Prints samples/s and peak memory next to the plan's estimate and the reference H200
   measurement at the same micro-batch, and writes them to OUT/real_path_check.json.

    python benchmarks/real_path_check.py --out "$OUT"             # on a GPU machine
    python benchmarks/real_path_check.py --out /tmp/x --tiny      # the same steps, tiny, on CPU
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from rdtflow.config import validate_config
from rdtflow.data.episode import write_episode
from rdtflow.model.encoders import build_small_text_encoder, build_small_vision_tower
from rdtflow.model.policy import RDTPolicy
from rdtflow.model.rdt import UPSTREAM_NORM
from rdtflow.model.shapes import KNOWN_VISION, encoder_shapes, policy_config
from rdtflow.model.weights import load_pretrained
from rdtflow.train.checkpoint import load_checkpoint_weights
from rdtflow.train.launch import train_command
from rdtflow.train.memory import measurements

CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
T5_XXL = {"d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_heads": 64, "feed_forward_proj": "gated-gelu"}
TINY_VISION = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
               "patch_size": 8, "image_size": 32}
TINY_TEXT = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_heads": 2, "num_layers": 1}


def build_encoders(work: Path, tiny: bool, full_t5: bool) -> tuple[Path, Path]:
    vision, text = work / "siglip-so400m-patch14-384", work / "t5-v1_1-xxl"
    settings = dict(TINY_VISION if tiny else KNOWN_VISION["siglip-so400m-patch14-384"])
    build_small_vision_tower(vision, settings.pop("image_size"), settings, seed=0)
    text_settings = TINY_TEXT if tiny else {**T5_XXL, "num_layers": 24 if full_t5 else 2}
    build_small_text_encoder(text, text_settings, max_tokens=1024, seed=0)
    return vision, text


def write_episodes(folder: Path, count: int, steps: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    (folder / "expanded_instruction_gpt-4-turbo.json").write_text(json.dumps({"instruction": "fold the towel"}))
    for index in range(count):
        qpos = np.cumsum(rng.normal(0, 0.05, (steps, 14)), axis=0).astype(np.float32)
        qpos[:5] = qpos[0]  # still start, trimmed by the agilex preset
        frames = {camera: [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(steps)] for camera in CAMERAS}
        write_episode(folder / f"episode_{index}.hdf5", action=np.roll(qpos, -1, axis=0), qpos=qpos, frames=frames)


def run_config(work: Path, args: argparse.Namespace, vision: Path, text: Path) -> dict:
    hardware = ({"device": "cpu", "per_device_batch": args.micro_batch} if args.tiny else
                {"device": "gpu", "gpus_per_node": 1, "gpu_memory_gib": 139, "mixed_precision": "bf16",
                 "param_dtype": "bf16", "per_device_batch": args.micro_batch, "gradient_accumulation": 1,
                 "dataloader_workers": 8})
    model = {"hidden_size": 32, "depth": 2, "num_heads": 2} if args.tiny else {"size": "rdt-1b"}
    return {
        "run": "real-path", "results_dir": str(work / "results"), "hardware": hardware,
        "demos": {"generate": False, "dir": str(work / "demos")},
        "data": {"preset": "agilex", "min_episode_steps": 20},
        "split": {"held_out": 1},
        "encoders": {"vision_path": str(vision), "text_path": str(text), "max_lang_tokens": 1024},
        "model": {**model, "pred_horizon": 64, "img_history_size": 2, "pretrained": str(work / "rdt-1b")},
        "train": {"max_steps": args.steps, "checkpointing_period": args.steps, "effective_batch": args.micro_batch,
                  "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 1, "learning_rate": 1e-4,
                  "loss": "upstream",
                  "augment": {"recipe": "upstream", "image": True, "state_noise_snr_db": 40, "cond_mask_prob": 0.1}},
    }


def write_random_checkpoint(config: dict, vision: Path, text: Path, folder: Path) -> None:
    """A random policy of this run's architecture in the official layout (what rdt-1b ships)."""
    torch.manual_seed(0)
    policy = RDTPolicy(policy_config(config, encoder_shapes(config, vision, text), UPSTREAM_NORM))
    folder.mkdir(parents=True)
    policy.config.to_json(folder / "config.json")
    torch.save(policy.state_dict(), folder / "pytorch_model.bin")


def timed(name: str, timings: dict, command: list[str] | str) -> None:
    started = time.perf_counter()
    subprocess.run(command, shell=isinstance(command, str), check=True)
    timings[name] = round(time.perf_counter() - started, 1)
    print(f"{name}: {timings[name]} s", flush=True)


def steady_samples_per_s(log: pd.DataFrame, batch: int) -> float:
    """Rate between the middle and the last step (train_log's rate is cumulative from step one,
    so it includes the first step's warm-up); the cumulative rate when there are too few steps."""
    middle = (len(log) - 1) // 2
    if middle == 0:
        return float(log["samples_per_s"].iloc[-1])
    elapsed = (log["step"] - log["step"].iloc[0] + 1) * batch / log["samples_per_s"]
    return float((log["step"].iloc[-1] - log["step"].iloc[middle]) * batch / (elapsed.iloc[-1] - elapsed.iloc[middle]))


def identical_after_export(checkpoint: Path, exported: Path, device: str) -> bool:
    trained, _ = load_checkpoint_weights(checkpoint)
    reloaded = load_pretrained(exported).eval()
    generator = torch.Generator().manual_seed(0)
    shape = trained.config
    batch = {
        "state": torch.randn(2, 1, 128, generator=generator),
        "action_mask": torch.ones(2, 1, 128),
        "lang_tokens": torch.randn(2, 12, shape.lang_token_dim, generator=generator),
        "lang_mask": torch.ones(2, 12, dtype=torch.bool),
        "img_tokens": torch.randn(2, shape.img_cond_len, shape.img_token_dim, generator=generator),
        "control_frequency": torch.full((2,), 25.0),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    outputs = []
    for policy in (trained, reloaded):
        with torch.no_grad():
            outputs.append(policy.to(device).predict_action(batch, torch.Generator(device).manual_seed(1)))
        policy.to("cpu")
    return bool(torch.equal(*outputs))


def reference_row(micro_batch: int) -> dict | None:
    return next((row for row in measurements() if row["mode"] == "bf16-params" and row["batch"] == micro_batch
                 and row["accum"] == 1 and row["vision"]), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for real_path_check.json")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and encoders on the CPU (tests the script)")
    parser.add_argument("--full-t5", action="store_true", help="all 24 T5-XXL layers (4.8 B parameters) in encode_lang")
    parser.add_argument("--micro-batch", type=int, default=8, help="per-GPU micro-batch (reference rows: 4, 8, 16, 32)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps to fine-tune")
    parser.add_argument("--episodes", type=int, default=6)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rdtflow-real-path-"))
    rdtflow = str(Path(sys.executable).parent / "rdtflow")
    timings: dict[str, float] = {}

    started = time.perf_counter()
    vision, text = build_encoders(work, args.tiny, args.full_t5)
    write_episodes(work / "demos", args.episodes, 40 if args.tiny else 100, (24, 32) if args.tiny else (480, 640))
    config = run_config(work, args, vision, text)
    write_random_checkpoint(validate_config(json.loads(json.dumps(config))), vision, text, work / "rdt-1b")
    timings["build inputs"] = round(time.perf_counter() - started, 1)
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))

    for stage in ("validate", "split", "manifest", "encode-lang", "plan"):
        timed(stage, timings, [rdtflow, stage, "--config", str(config_file)])
    resolved = validate_config(json.loads(json.dumps(config)))
    timed("train", timings, train_command(resolved["hardware"], f"--config {config_file} --until-step {args.steps}"))
    run = work / "results" / "real-path"
    checkpoint, exported = run / "train" / f"checkpoint-{args.steps}", work / "exported"
    timed("export", timings, [rdtflow, "export", "--checkpoint", str(checkpoint), "--out", str(exported)])

    device = "cpu" if args.tiny else "cuda"
    plan = json.loads((run / "plan.json").read_text())
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    result = {
        "micro_batch": args.micro_batch,
        "steps": args.steps,
        "samples_per_s": round(steady_samples_per_s(pd.read_csv(checkpoint / "train_log.csv"), args.micro_batch), 2),
        "peak_alloc_gib": state["peak_device_memory_gib"],
        "plan_estimate_gib": plan["peak_gib"],
        "reference_h200": reference_row(args.micro_batch),
        "export_roundtrip_identical": identical_after_export(checkpoint, exported, device),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "timings_s": timings,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_path_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if not result["export_roundtrip_identical"]:
        sys.exit("exported checkpoint predicts differently from the trained one")


if __name__ == "__main__":
    main()
