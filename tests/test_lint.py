"""The code and the workflow pass their linters, and every file a text names exists.

ruff (configured in pyproject.toml) and `snakemake --lint` report nothing. A docstring,
comment or document that sends a reader to a file of this repository (`docs/formats.md`,
`rdtflow/stages.py`) names one that exists, so moving a file cannot leave stale pointers.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers.workflow import ENV, REPO

TOP_FOLDERS = ("rdtflow", "tests", "docs", "config", "workflow", "scripts", "benchmarks", "envs", "profiles")
# A path that starts at one of those folders, not one inside another (results/{run}/config/..., ~/.config/...).
REFERENCE = re.compile(rf"(?<![\w./{{}}~-])(?:{'|'.join(TOP_FOLDERS)})/[\w./-]*\w")
TEXT_SUFFIXES = {".py", ".smk", ".md", ".rst", ".sh", ".yaml", ".toml", ""}


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "rdtflow", "tests", "benchmarks"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile")],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations, your workflow is in a good condition!" in output, output[-3000:]


def test_every_repository_file_a_text_names_exists():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    texts = [REPO / name for name in tracked if not name.startswith("tests/fixtures/")
             and (REPO / name).suffix in TEXT_SUFFIXES and (REPO / name).is_file()]
    missing = sorted({f"{text.relative_to(REPO)}: {reference}" for text in texts
                      for reference in REFERENCE.findall(text.read_text(errors="ignore"))
                      if not (REPO / reference).exists()})
    assert not missing
