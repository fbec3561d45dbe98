"""benchmarks/real_path_check.py, the GPU check of the real RDT path, runs end to end (tiny, on CPU).

A GPU session has minutes, not hours: the script it runs must already work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_script_runs_tiny_on_cpu(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "real_path_check.py"), "--out", str(tmp_path / "out"),
                    "--work", str(tmp_path / "work"), "--tiny", "--micro-batch", "2", "--steps", "2"],
                   check=True, env=env, capture_output=True, text=True)
    result = json.loads((tmp_path / "out" / "real_path_check.json").read_text())
    assert result["export_roundtrip_identical"] is True and result["samples_per_s"] > 0
    assert set(result["timings_s"]) >= {"validate", "manifest", "encode-lang", "plan", "train", "export"}
    exported = tmp_path / "work" / "exported"
    assert (exported / "config.json").is_file() and (exported / "model.safetensors").is_file()
