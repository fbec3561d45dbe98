"""Mutation check, run on demand (not in CI): break the code on purpose and see whether a test notices.

Two parts:
- listed: each README claim that once had no test holding it, broken the way a review broke
  it, with the tests that must catch it. A listed mutation whose code has changed is reported
  as stale, so the list cannot silently rot;
- sampled: one operator changed at a seeded random site in rdtflow/train, rdtflow/data,
  rdtflow/evaluate, rdtflow/report and rdtflow/stages.py (a comparison, an arithmetic or
  boolean operator, an integer constant, a `not`), each run against that package's tests.
  The kill rate is the share of mutants some test fails on, per package; survivors are
  printed with their place, to be read: some are equivalent to the original.

Every mutant runs in one copy of the repository (git's tracked and untracked, not ignored
files), with PYTHONPATH putting the copy first, so tests that start subprocesses (the
workflow, `accelerate launch`) run the mutant too. mutmut's in-process trampolines would
not reach those. The copy is restored after each mutant.

    python scripts/mutation_check.py                  # both parts; each outcome is printed as it comes
    python scripts/mutation_check.py --part listed    # or --part sampled --mutants 20 --seed 1
    python scripts/mutation_check.py --part sampled --packages rdtflow/evaluate rdtflow/report
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILL_RESUME = "tests/test_workflow.py::test_killed_mid_training_resumes_exactly_and_keeps_finished_work"


@dataclass(frozen=True)
class Mutation:
    claim: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


LISTED = (
    Mutation("evaluation uses the EMA", "rdtflow/train/checkpoint.py",
             "kept_ema = (checkpoint_dir / File.EMA_WEIGHTS).is_file()", "kept_ema = False",
             ("tests/train/test_checkpoint.py",)),
    Mutation("retention keeps the best", "rdtflow/train/retention.py",
             'keep.add(best_evaluated_step(list(evaluated.values())))', "pass", ("tests/train/test_retention.py",)),
    Mutation("retention fills up to the limit with the most recent", "rdtflow/train/retention.py",
             "    for step in sorted(alive, reverse=True):", "    for step in []:", ("tests/train/test_retention.py",)),
    Mutation("warmup with a constant schedule is an error", "rdtflow/config.py",
             'if train["lr_warmup_steps"] > 0 and', 'if train["lr_warmup_steps"] > 1 and', ("tests/train/test_plan.py",)),
    Mutation("resume restores the optimizer", "rdtflow/train/checkpoint.py",
             "    optimizer.load_state_dict(torch.load(checkpoint_dir / File.OPTIMIZER, weights_only=True))\n", "",
             (KILL_RESUME,)),
    Mutation("resume restores the schedule", "rdtflow/train/checkpoint.py",
             "    scheduler.load_state_dict(torch.load(checkpoint_dir / File.SCHEDULER, weights_only=True))\n", "",
             (KILL_RESUME,)),
    Mutation("resume restores the EMA", "rdtflow/train/checkpoint.py",
             "        ema.load_state_dict(torch.load(checkpoint_dir / File.EMA_STATE, weights_only=True))\n",
             "        pass\n", (KILL_RESUME,)),
    Mutation("a resumed job continues the sample order (a bug both resuming sides would share)",
             "rdtflow/train/trainer.py", "batch_sampler=MicroBatches(layout, start, end, rank),",
             "batch_sampler=MicroBatches(layout, 0, end - start, rank),", (KILL_RESUME,)),
    Mutation("memory: activations scale with depth", "rdtflow/train/memory.py",
             "return self.hidden_size * self.depth * (", "return self.hidden_size * 28 * (", ("tests/train/test_plan.py",)),
    Mutation("memory: accumulation keeps a gradient copy", "rdtflow/train/memory.py",
             "accumulation_gib=gradient_gib if accumulation > 1 else 0.0,", "accumulation_gib=0.0,",
             ("tests/train/test_plan.py",)),
    Mutation("memory: the tower in the loop has its weights", "rdtflow/train/memory.py",
             "vision_gib=footprint.vision_params_in_loop * 2 / GIB,", "vision_gib=REFERENCE_VISION_PARAMS * 2 / GIB,",
             ("tests/train/test_plan.py",)),
    Mutation("unified slots: left gripper at 60", "rdtflow/data/state_vec.json",
             '"left_gripper_open": 60,', '"left_gripper_open": 61,', ("tests/model/test_normalizer.py",)),
    Mutation("hardware table: a800-80g-x8 is 32 x 1 x 8", "config/hardware/a800-80g-x8.yaml",
             "per_device_batch: 32\ngradient_accumulation: 1", "per_device_batch: 16\ngradient_accumulation: 2",
             ("tests/train/test_plan.py",)),
    Mutation("hardware table: cpu is 64 x 4 x 1", "config/hardware/cpu.yaml",
             "per_device_batch: 64", "per_device_batch: 32", ("tests/train/test_plan.py",)),
    Mutation("rejection: external raw storage", "rdtflow/data/validate.py",
             "for file_name, _, _ in item.external or []:", "for file_name, _, _ in []:",
             ("tests/data/test_validate.py",)),
    Mutation("rejection: float64 beyond float32 is inf_values", "rdtflow/data/validate.py",
             'elif dataset.dtype.kind == "f" and dataset.dtype.itemsize > 4:', "elif False:",
             ("tests/data/test_validate.py",)),
    Mutation("no code runs from a .bin", "rdtflow/model/weights.py",
             'map_location="cpu", weights_only=True)', 'map_location="cpu", weights_only=False)',
             ("tests/model/test_weights.py",)),
    Mutation("a data setting shares only the stages before it (a key left out of the stage key)",
             "rdtflow/stages.py",
             "settings = {name: {key: config[key] for key in STAGE_SECTIONS[name]",
             'settings = {name: {key: ({k: v for k, v in config[key].items() if k != "moving_threshold"} '
             'if key == "data" else config[key]) for key in STAGE_SECTIONS[name]',
             ("tests/test_stages.py",)),
    Mutation("success is the last stage reached at any step", "rdtflow/evaluate/closed_loop.py",
             'return {"success": best_level == top,', 'return {"success": final_level == top,',
             ("tests/evaluate/test_closed_loop.py",)),
    Mutation("the verdict names the best checkpoint when it beats the final beyond chance", "rdtflow/report/page.py",
             "        return sentence + (f\"; it is significantly better",
             "        return sentence.replace(str(best['step']), str(final['step'])) + (f\"; it is significantly better",
             ("tests/report/test_report.py",)),
)

# Each package (or module) with the tests that exercise it (tests/test_workflow.py, which
# exercises all of them, takes minutes per mutant and holds the listed resume mutations instead).
SAMPLED_PACKAGES = {
    "rdtflow/train": ("tests/train", "tests/model/test_upstream_golden.py", "tests/slurm/test_launch.py"),
    "rdtflow/data": ("tests/data", "tests/test_presets.py", "tests/model/test_normalizer.py"),
    "rdtflow/evaluate": ("tests/evaluate",),
    "rdtflow/report": ("tests/report",),
    "rdtflow/stages.py": ("tests/test_stages.py", "tests/test_sweep.py"),
}
SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.And: ast.Or, ast.Or: ast.And,
}


@dataclass(frozen=True)
class Site:
    """One place a sampled mutation can change: the n-th candidate of a file."""

    path: str
    index: int
    line: int
    change: str


def _candidates(tree: ast.AST) -> Iterator[tuple[ast.AST, int | None, str]]:
    """(node, which of a comparison's operators or None, what the change does), in a fixed
    order. Operators are changed through their node: ast.parse shares one operator object
    among all the places it occurs."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in SWAPS:
                    yield node, position, f"{type(op).__name__} -> {SWAPS[type(op)].__name__}"
        elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            yield node, None, f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, None, "drop not"
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, None, f"{node.value} -> {node.value + 1}"


def _mutated_source(source: str, index: int) -> str:
    """`source` with its `index`-th candidate changed."""
    tree = ast.parse(source)
    target, position, _ = list(_candidates(tree))[index]

    class Change(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> ast.AST:
            if node is not target:
                return self.generic_visit(node)
            if isinstance(node, ast.Compare):
                node.ops = [SWAPS[type(op)]() if k == position else op for k, op in enumerate(node.ops)]
            elif isinstance(node, (ast.BinOp, ast.BoolOp)):
                node.op = SWAPS[type(node.op)]()
            elif isinstance(node, ast.UnaryOp):
                return node.operand
            else:
                return ast.copy_location(ast.Constant(node.value + 1), node)
            return node

    return ast.unparse(ast.fix_missing_locations(Change().visit(tree)))


def sites(package: str) -> list[Site]:
    """Every candidate of a package's modules (or of one module)."""
    paths = [REPO / package] if package.endswith(".py") else sorted((REPO / package).glob("*.py"))
    return [Site(str(path.relative_to(REPO)), index, getattr(node, "lineno", 0), change)
            for path in paths
            for index, (node, _, change) in enumerate(_candidates(ast.parse(path.read_text())))]


def copy_repository(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, str]:
    """('killed', first failing test) / ('survived', '') / ('timeout', '')."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    if result.returncode == 0:
        return "survived", ""
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    why = re.search(r"^E +(.{0,100})", result.stdout, re.MULTILINE)  # the first line of the failed assertion
    return "killed", (failed[1] if failed else f"pytest exit {result.returncode}") + (f"\n           {why[1]}" if why else "")


def check(copy: Path, path: str, mutated: str, tests: tuple[str, ...], timeout: float) -> tuple[str, str]:
    original = (copy / path).read_text()
    (copy / path).write_text(mutated)
    try:
        return run_tests(copy, tests, timeout)
    finally:
        (copy / path).write_text(original)


def listed_part(copy: Path) -> list[tuple[str, str]]:
    outcomes = []
    for mutation in LISTED:
        source = (copy / mutation.path).read_text()
        if source.count(mutation.old) != 1:
            outcome = ("stale", f"{mutation.path} no longer holds the text this mutation changes")
        else:
            outcome = check(copy, mutation.path, source.replace(mutation.old, mutation.new), mutation.tests, 900)
        print(f"{outcome[0]:>9}  {mutation.claim}  {outcome[1]}", flush=True)
        outcomes.append(outcome)
    return outcomes


def sampled_part(copy: Path, mutants: int, seed: int, packages: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each package's outcomes: `mutants` sites drawn for each (all of a smaller one's)."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for package in packages:
        tests = SAMPLED_PACKAGES[package]
        started = time.monotonic()
        status, detail = run_tests(copy, tests, 1800)
        if status != "survived":
            raise SystemExit(f"{package}'s tests fail without any mutation ({detail}): fix them first")
        timeout = 3 * (time.monotonic() - started) + 30
        chosen = random.Random(seed).sample(sites(package), min(mutants, len(sites(package))))
        outcomes[package] = []
        for site in chosen:
            mutated = _mutated_source((copy / site.path).read_text(), site.index)
            outcome = check(copy, site.path, mutated, tests, timeout)
            print(f"{outcome[0]:>9}  {site.path}:{site.line} {site.change}  {outcome[1]}", flush=True)
            outcomes[package].append(outcome)
        print(summary(f"sampled {package} (seed {seed})", outcomes[package]), flush=True)
    return outcomes


def summary(name: str, outcomes: list[tuple[str, str]]) -> str:
    killed = sum(status == "killed" for status, _ in outcomes)
    counted = sum(status in ("killed", "survived", "timeout") for status, _ in outcomes)
    timeouts = sum(status == "timeout" for status, _ in outcomes)
    stale = len(outcomes) - counted
    return (f"{name}: {killed}/{counted} killed ({100 * killed / max(counted, 1):.0f}%), "
            f"{timeouts} timed out (counted as not killed), {stale} stale")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--part", choices=["listed", "sampled", "both"], default="both")
    parser.add_argument("--mutants", type=int, default=10, help="sampled mutants per package")
    parser.add_argument("--seed", type=int, default=0, help="which sites are sampled")
    parser.add_argument("--packages", nargs="+", choices=list(SAMPLED_PACKAGES), default=list(SAMPLED_PACKAGES),
                        help="where the sampled part mutates (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdtflow-mutants-") as folder:
        copy = Path(folder)
        copy_repository(copy)
        listed = listed_part(copy) if args.part in ("listed", "both") else []
        sampled = sampled_part(copy, args.mutants, args.seed, args.packages) if args.part in ("sampled", "both") else {}
    if listed:
        print(summary("listed", listed))
    for package, outcomes in sampled.items():
        print(summary(f"sampled {package} (seed {args.seed})", outcomes))
    return 1 if any(status != "killed" for status, _ in listed) else 0  # every listed claim must be held


if __name__ == "__main__":
    sys.exit(main())
