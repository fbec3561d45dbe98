"""rdtflow: raw robot demonstrations -> fine-tuned RDT checkpoints -> held-out evaluation -> report.

One subpackage per pipeline stage (data, model, train, evaluate, sim, report); `rdtflow.cli`
wires them into one command per stage, and the Snakefile runs those commands with caching.
`rdtflow.load_policy` is the public inference API (loaded lazily: importing rdtflow stays cheap).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rdtflow.evaluate.inference import RobotPolicy


def load_policy(checkpoint_dir: str | Path, vision_dir: str | Path | None = None, text_dir: str | Path | None = None,
                seed: int = 0) -> "RobotPolicy":
    """A trained checkpoint ready to act on a robot: `load_policy(dir).predict(frames, qpos,
    instruction)` gives an action chunk in the robot's units (rdtflow.evaluate.inference)."""
    from rdtflow.evaluate.inference import load_policy as load

    return load(checkpoint_dir, vision_dir, text_dir, seed)
